"""Free-form set F: player lines written by an outside writer (a helper that read only the three profiles in
npc_profiles/ and a list of their facts, never the training generator, the banks or sets A to E), on
2026-11-26, after data version 7 and before any checkpoint trained on it; scored like set A
(tools/demo/freeform.py) and never used to shape the data or any setting. The writer wrote 170 lines (34
follow-ups) and called none of its labels arguable; the 30 whose line (or earlier line), normalized, the
training data of the shipped checkpoint's runs 1-6 already held, and 4 more that the data of a run started
before this set joined the yardsticks held (data version 7, 60,000 examples, seed 9), were taken out unseen."""
from __future__ import annotations

from tools.demo.freeform import UNKNOWN, Line

LINES = [
    # ---- Brenna: iron sword (40 silver)
    Line("brenna", "iron sword, how much", "iron"),
    Line("brenna", "My da always said never buy a blade you can't afford to lose. What's a plain iron one going for?", "iron"),
    Line("brenna", "whats the cheapest sword u got, the iron ones", "iron"),
    Line("brenna", "Good morrow, smith! Prithee, what coin wouldst thou ask for a sword of iron?", "iron"),
    Line("brenna", "I've got coin, not a lot, so tell me straight what an iron blade runs.", "iron"),
    Line("brenna", "so before i pick between steel and iron... the iron one, what are you asking", "iron"),
    # ---- Brenna: steel sword (90 silver)
    Line("brenna", "I wonder what a proper steel sword would set me back, the kind that doesn't bend", "steel"),
    Line("brenna", "my old iron sword snapped on a bandit's helm so I want steel this time. how much?", "steel"),
    Line("brenna", "how many silvers for one of them steel swords hangin on the wall", "steel"),
    Line("brenna", "Pray tell, good smith, at what price dost thou part with thy finest steel?", "steel"),
    Line("brenna", "ok forget the cheap stuff whats steel go for", "steel"),
    # ---- Brenna: shield (25 silver)
    Line("brenna", "Got hit in the arm twice last week, reckon I need something to hide behind. what do your shields cost", "shield"),
    Line("brenna", "need a shield. cost?", "shield"),
    Line("brenna", "How dear is a good stout shield from your forge?", "shield"),
    Line("brenna", "i wonder if i can afford one of those round shields, whats the damage", "shield"),
    Line("brenna", "Not after a sword, already got one - it's a shield I'm after. Price?", "shield"),
    # ---- Brenna: repairs (5 silver)
    Line("brenna", "my horse threw me and my blade's bent all to hell, what do you charge to fix it", "repair"),
    Line("brenna", "Could you hammer the dents out of my shield and what would that cost me", "repair"),
    Line("brenna", "what's the going rate for a repair job, smith", "repair"),
    Line("brenna", "Mine armour hath a rent in it from a wolf's claw; what fee for thy mending?", "repair"),
    # ---- Brenna: forge hours (dawn to the evening bell)
    Line("brenna", "when r u open", "hours"),
    Line("brenna", "If I come back tomorrow after breakfast will you be working, what time do you start?", "hours"),
    Line("brenna", "till when can I find you here at the anvil", "hours"),
    Line("brenna", "Forge open late tonight? I've got a job after supper and can't come before.", "hours"),
    Line("brenna", "what time do you shut up shop", "hours"),
    # ---- Brenna: wolves on the north road after dark
    Line("brenna", "is the north road safe at night?", "wolves"),
    Line("brenna", "Heard some howling last night coming in. Should I be worried about the roads?", "wolves"),
    Line("brenna", "any danger out there after dark", "wolves"),
    Line("brenna", "I'm thinking of walking on to the next village tonight, any reason I shouldn't?", "wolves"),
    Line("brenna", "WHAT'S OUT ON THE ROADS AT NIGHT", "wolves"),
    Line("brenna", "Be the ways north perilous once the sun hath set, smith?", "wolves"),
    # ---- Brenna: apprentice Tomas away in Millbrook
    Line("brenna", "Your lad Tomas not about today? I had a message for him.", "apprentice"),
    Line("brenna", "who usually works the bellows for you? he's not here", "apprentice"),
    Line("brenna", "I wonder where your helper got to, the young one", "apprentice"),
    Line("brenna", "Place seems quiet without the boy. Where'd he run off to?", "apprentice"),
    # ---- Brenna: unknown
    Line("brenna", "how much for an axe", UNKNOWN),
    Line("brenna", "Do you sell horseshoes? My mare needs new ones.", UNKNOWN),
    Line("brenna", "whats a full set of chainmail cost", UNKNOWN),
    Line("brenna", "Who's the reeve around here?", UNKNOWN),
    Line("brenna", "Where can I find the inn?", UNKNOWN),
    Line("brenna", "arrows? how many silver for a dozen", UNKNOWN),
    Line("brenna", "Could you teach me smithing? how long would it take to learn", UNKNOWN),
    Line("brenna", "What's the price of a good helmet?", UNKNOWN),
    Line("brenna", "do u buy scrap iron, what do you pay", UNKNOWN),
    Line("brenna", "Who's the best healer in Ashford?", UNKNOWN),
    Line("brenna", "I wonder what the weather's going to do tomorrow", UNKNOWN),
    Line("brenna", "How far is it to the capital from here?", UNKNOWN),
    # ---- Brenna: follow-ups
    Line("brenna", "what about a shield to go with it", "shield", before="steel sword price?"),
    Line("brenna", "and if it gets dented, what to fix it?", "repair", before="what's the price on a shield"),
    Line("brenna", "anything I should watch out for?", "wolves", before="I'm heading north tonight."),
    Line("brenna", "and a helm?", UNKNOWN, before="iron sword cost?"),
    Line("brenna", "could I pick it up tonight, when do you close?", "hours", before="How much to fix a cracked shield?"),
    Line("brenna", "is that enough for a steel sword?", "steel", before="I've got 50 silver."),
    Line("brenna", "safe to set off after sundown?", "wolves", before="I need to get to Millbrook by tomorrow."),
    Line("brenna", "can you sort it? for how much", "repair", before="my sword's got a nasty notch in it"),

    # ---- Aldric: gate closes at sunset, opens at dawn
    Line("aldric", "Captain, I've a cart of turnips to bring in from the fields - how long have I before you shut the gate?", "gate"),
    Line("aldric", "what time do you open up in the morning", "gate"),
    Line("aldric", "GATE HOURS?", "gate"),
    Line("aldric", "north gate open all night or what", "gate"),
    Line("aldric", "I wonder when I'd be able to leave at first light, when do you lift the bar", "gate"),
    Line("aldric", "Hail, captain. At what hour are the gates of Ashford sealed?", "gate"),
    # ---- Aldric: writ from the reeve to pass after dark
    Line("aldric", "need to get out after dark, what do i need", "writ"),
    Line("aldric", "what papers do I need to pass at night", "writ"),
    Line("aldric", "My sister's sick in the next hamlet and I must go tonight. Is there any way through once the gate's shut?", "writ"),
    Line("aldric", "can i go thru after dark", "writ"),
    Line("aldric", "Who must I petition for leave to pass the gate by night?", "writ"),
    Line("aldric", "do i need some kind of pass to go through late", "writ"),
    # ---- Aldric: 50 silver per Greywood wolf pelt
    Line("aldric", "wolf pelt bounty?", "bounty"),
    Line("aldric", "Got three wolf skins from the Greywood in my pack. What'll the watch give me for them?", "bounty"),
    Line("aldric", "is anyone paying for dead wolves", "bounty"),
    Line("aldric", "How much coin per pelt, captain?", "bounty"),
    Line("aldric", "any rewards going? i'm good with a bow", "bounty"),
    Line("aldric", "I hear the watch pays for Greywood wolves. Is that true, and how much?", "bounty"),
    # ---- Aldric: watchtower abandoned last winter
    Line("aldric", "whats with the old watchtower", "tower"),
    Line("aldric", "Passed a tower on the north road on my way in, nobody on the walls. Is it still yours?", "tower"),
    Line("aldric", "is the north road tower still manned", "tower"),
    Line("aldric", "When did the watch stop using the old tower?", "tower"),
    Line("aldric", "the watchtower up north. anyone posted there?", "tower"),
    Line("aldric", "Captain, what news of the old tower on the north road?", "tower"),
    # ---- Aldric: unknown
    Line("aldric", "where can I buy a horse", UNKNOWN),
    Line("aldric", "What's the name of the reeve?", UNKNOWN),
    Line("aldric", "Who's the best blacksmith in town?", UNKNOWN),
    Line("aldric", "how much is a room at the inn", UNKNOWN),
    Line("aldric", "Can I join the watch? What's the pay?", UNKNOWN),
    Line("aldric", "What's the fastest way to Millbrook?", UNKNOWN),
    Line("aldric", "do you know where i can get a map", UNKNOWN),
    Line("aldric", "Any news from the king's court?", UNKNOWN),
    Line("aldric", "what does the reeve charge in taxes", UNKNOWN),
    # ---- Aldric: follow-ups
    Line("aldric", "and if I need out after that?", "writ", before="When does the gate shut?"),
    Line("aldric", "opens again when?", "gate", before="what time does the gate close"),
    Line("aldric", "any coin in it if I bring back wolf hides?", "bounty", before="I need to get out to the Greywood."),
    Line("aldric", "from anywhere, or just the Greywood?", "bounty", before="What's the bounty on wolf pelts?"),
    Line("aldric", "and what time do you lock up?", "gate", before="Who signs the writs?"),
    Line("aldric", "can I shelter with your men there?", "tower", before="Passing the watchtower tomorrow."),
    Line("aldric", "and the reeve, where's his hall?", UNKNOWN, before="The gate closes at sunset, right?"),

    # ---- Marta: room (8 silver)
    Line("marta", "room for the night, how much", "room"),
    Line("marta", "Been on the road four days and my back's killing me. What'll a bed cost me here?", "room"),
    Line("marta", "how much to kip here tonight", "room"),
    Line("marta", "Good mistress, what is thy charge for a night's lodging?", "room"),
    Line("marta", "i wonder if you've got a cheap bed, what's it run", "room"),
    Line("marta", "Don't need food, just somewhere to sleep. Price?", "room"),
    # ---- Marta: hot meal (2 silver)
    Line("marta", "how much for hot food", "meal"),
    Line("marta", "Smells amazing in here. What's a plate of something warm cost?", "meal"),
    Line("marta", "grub price?", "meal"),
    Line("marta", "I'm not staying the night, just want a hot supper. What do I owe for that?", "meal"),
    Line("marta", "what do u charge for a meal", "meal"),
    Line("marta", "Prithee, how many coins for a hot repast?", "meal"),
    # ---- Marta: today's stew (mutton and barley)
    Line("marta", "whats in the stew today", "stew"),
    Line("marta", "What's bubbling in that big pot by the fire?", "stew"),
    Line("marta", "Before I order, I'm picky about meat - what's the stew made of?", "stew"),
    Line("marta", "I wonder what today's pot is, is it the lamb again?", "stew"),
    # ---- Marta: rumour of lights in the abandoned watchtower
    Line("marta", "heard anything about the old watchtower", "lights"),
    Line("marta", "Any strange stories going round the common room lately?", "lights"),
    Line("marta", "A drunk at the bar swore he saw something at the north road tower. Nonsense, or is there talk?", "lights"),
    Line("marta", "whats the latest gossip about that tower", "lights"),
    Line("marta", "Tell me true, goodwife: doth anything stir in the ruined watchtower?", "lights"),
    # ---- Marta: Millbrook merchant seeking caravan guards
    Line("marta", "I'm handy with a sword and broke as a beggar. Anyone in town needing a sellsword?", "caravan"),
    Line("marta", "I wonder if any merchants passing through need an escort", "caravan"),
    Line("marta", "Is there coin to be earned around here for a strong arm?", "caravan"),
    Line("marta", "heard someone from millbrook wants guards, true?", "caravan"),
    # ---- Marta: unknown
    Line("marta", "how much is a pint of ale", UNKNOWN),
    Line("marta", "Can I stable my horse here? What's it cost?", UNKNOWN),
    Line("marta", "what wine have you got", UNKNOWN),
    Line("marta", "how much for a bath", UNKNOWN),
    Line("marta", "Where's the temple in this village?", UNKNOWN),
    Line("marta", "do you sell bread for the road? how much a loaf", UNKNOWN),
    Line("marta", "Who owned the Sleeping Stag before you?", UNKNOWN),
    Line("marta", "what's tomorrow's stew gonna be", UNKNOWN),
    Line("marta", "How far is Millbrook from here?", UNKNOWN),
    Line("marta", "can you change gold into silver for me", UNKNOWN),
    # ---- Marta: follow-ups
    Line("marta", "know anyone hiring swords?", "caravan", before="I need coin bad."),
    Line("marta", "any ale to wash it down? how much?", UNKNOWN, before="Mutton stew, you said?"),
    Line("marta", "stabling for my horse too?", UNKNOWN, before="A room's 8 silver?"),
    Line("marta", "anything strange up that way I should know about?", "lights", before="I'm riding the north road tomorrow."),
    Line("marta", "where's he headed?", UNKNOWN, before="Caravan guard work, you said?"),
    Line("marta", "and something hot to eat, what's that extra?", "meal", before="I'll take a bed."),
]
