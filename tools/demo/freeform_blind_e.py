"""Free-form set E: player lines written by an outside writer (a helper that read only the three profiles in
npc_profiles/ and a list of their facts, never the training generator, the banks or sets A to D), on
2026-11-26, at the same time as, and apart from, the writers of the banks that data version 6 added; scored
like set A (tools/demo/freeform.py) and never used to shape the data or any setting. The writer wrote 160 lines;
three whose label it called arguable (details the profiles do not give, about a fact's own words) were taken
out before any scoring, and the 24 whose line (or earlier line), normalized, the training data of runs 1-6
already held were taken out unseen, so every line here is new to the checkpoints trained since."""
from __future__ import annotations

from tools.demo.freeform import UNKNOWN, Line

LINES = [
    # ---- Brenna: iron sword (40 silver)
    Line("brenna", "I've got coin but not a lot of it. What's the cheapest sword you forge, the plain iron kind?", "iron"),
    Line("brenna", "hw much 4 a iron blade", "iron"),
    Line("brenna", "Good morrow, smith! Pray tell, what wouldst thou ask for a sword of honest iron?", "iron"),
    Line("brenna", "my kid brother wants his first sword, nothing fancy, iron's fine. what would that set me back", "iron"),
    Line("brenna", "IRON SWORD. HOW MUCH.", "iron"),
    # ---- Brenna: steel sword (90 silver)
    Line("brenna", "steel, what's it going for", "steel"),
    Line("brenna", "forget the iron junk, i want the good stuff. steel sword, whats the damage", "steel"),
    Line("brenna", "Mistress Ironhand, what coin would a blade of tempered steel fetch from thee?", "steel"),
    Line("brenna", "been saving up all season for a proper steel longsword, how much silver am I gonna need", "steel"),
    Line("brenna", "What's a steel sword go for, and is it really that much better than iron?", "steel"),
    Line("brenna", "A caravan guard told me your steel is the finest this side of the Greywood. Name your price for a sword of it.", "steel"),
    # ---- Brenna: shield (25 silver)
    Line("brenna", "Need something to hide behind when the arrows fly. You sell shields? what price", "shield"),
    Line("brenna", "how much silver for one of them round shields hanging on the wall", "shield"),
    Line("brenna", "I'll think about a sword later, first tell me what a shield runs.", "shield"),
    Line("brenna", "Wouldst thou part with a sturdy shield, good smith, and for what sum?", "shield"),
    Line("brenna", "SHIELDS?? price pls", "shield"),
    # ---- Brenna: repairs (5 silver)
    Line("brenna", "my horse threw a shoe and kicked my sword into a rock, the edge is all notched now. what do you charge to fix it", "repair"),
    Line("brenna", "not buying a new shield, just want this old one patched up. cost?", "repair"),
    Line("brenna", "Hail, smith. My blade hath grown dull and chipped in battle; what is thy fee for its mending?", "repair"),
    Line("brenna", "straighten out a bent blade for me, whats that gonna cost", "repair"),
    Line("brenna", "Quick one, what's your rate on fixing up damaged gear?", "repair"),
    # ---- Brenna: forge hours (dawn until the evening bell)
    Line("brenna", "when r u open", "hours"),
    Line("brenna", "What time does the forge close tonight?", "hours"),
    Line("brenna", "I'll be back with some scrap tomorrow. How early can I catch you at the forge?", "hours"),
    Line("brenna", "Art thou at thine anvil on the morrow, and from what hour until what hour?", "hours"),
    Line("brenna", "OPENING HOURS?", "hours"),
    Line("brenna", "I wonder how late you keep the fires going, I don't finish in the fields till dusk.", "hours"),
    # ---- Brenna: wolves on the north road after dark
    Line("brenna", "is the north road safe at night", "wolves"),
    Line("brenna", "Heading toward Millbrook after dark, anything I should worry about on the way?", "wolves"),
    Line("brenna", "any danger out there once the sun goes down?", "wolves"),
    Line("brenna", "Fair smith, are the highways perilous once the sun hath set?", "wolves"),
    Line("brenna", "i heard howling last night lol, what's out there", "wolves"),
    Line("brenna", "Be honest with me, would you walk the north road alone after nightfall?", "wolves"),
    # ---- Brenna: apprentice Tomas (buying ore in Millbrook)
    Line("brenna", "Where's Tomas got to today?", "apprentice"),
    Line("brenna", "Usually there's a lad working the bellows in here, what happened to him", "apprentice"),
    Line("brenna", "you running the forge all alone? where'd your helper go", "apprentice"),
    Line("brenna", "tomas around?? he owes me a copper", "apprentice"),
    Line("brenna", "Prithee, whither hath thy young apprentice wandered?", "apprentice"),
    # ---- Brenna: unknown
    Line("brenna", "how much for a battle axe?", UNKNOWN),
    Line("brenna", "you sell horseshoes? what do they cost", UNKNOWN),
    Line("brenna", "What's a shirt of chainmail go for around here?", UNKNOWN),
    Line("brenna", "how much is a room at the inn", UNKNOWN),
    Line("brenna", "Who's the reeve of this village?", UNKNOWN),
    Line("brenna", "got any arrows for sale, and what are they", UNKNOWN),
    Line("brenna", "know a good tavern round here for a pint", UNKNOWN),
    Line("brenna", "Could you forge me a dagger? What would that be?", UNKNOWN),
    Line("brenna", "think it'll rain tomorrow?", UNKNOWN),
    Line("brenna", "Does the lord of Ashford pay his soldiers well?", UNKNOWN),
    Line("brenna", "How much silver for a pair of steel gauntlets?", UNKNOWN),
    # ---- Brenna: follow-ups
    Line("brenna", "and a steel one?", "steel", before="What do you want for an iron sword?"),
    Line("brenna", "how much?", "shield", before="I'd like a new shield, my old one split."),
    Line("brenna", "can you fix it? for what", "repair", before="My sword's got a crack running down the middle."),
    Line("brenna", "road safe at that hour?", "wolves", before="I need to get out of town tonight."),

    # ---- Aldric: gate hours (closes at sunset, opens at dawn)
    Line("aldric", "when does the gate shut", "gate"),
    Line("aldric", "Captain, what hour do you open the north gate in the morning?", "gate"),
    Line("aldric", "gate hours?", "gate"),
    Line("aldric", "I have a cart of turnips to bring through today, how long till you lock the gate", "gate"),
    Line("aldric", "Good sir, at what hour is the great gate barred?", "gate"),
    Line("aldric", "I wonder if I'll make it back from the fields before you close up, when's that?", "gate"),
    # ---- Aldric: writ from the reeve to pass after dark
    Line("aldric", "What do I need to get through the gate at night?", "writ"),
    Line("aldric", "my sister is sick in the next village and I have to ride out tonight, what papers do I need to pass?", "writ"),
    Line("aldric", "Who gives permission to go out after sunset?", "writ"),
    Line("aldric", "Kind captain, what document must a traveller bear to pass thy gate past nightfall?", "writ"),
    Line("aldric", "need a night pass, how do i get one", "writ"),
    Line("aldric", "ok so what's the deal with going through after dark, is there like a permit or something", "writ"),
    # ---- Aldric: wolf pelt bounty (50 silver)
    Line("aldric", "wolf pelt bounty?", "bounty"),
    Line("aldric", "How much coin for a wolf skin?", "bounty"),
    Line("aldric", "I'm a decent hunter and I hear the Greywood is crawling with wolves. Is anyone paying for pelts?", "bounty"),
    Line("aldric", "What reward doth the watch offer for the hides of Greywood wolves, good captain?", "bounty"),
    Line("aldric", "I've got three wolf pelts in my pack. What are they worth to you?", "bounty"),
    Line("aldric", "BOUNTY ON WOLVES HOW MUCH", "bounty"),
    # ---- Aldric: old watchtower (abandoned last winter)
    Line("aldric", "what's the story with the old watchtower", "tower"),
    Line("aldric", "Who mans the watchtower on the north road these days?", "tower"),
    Line("aldric", "Is there still a garrison in that tower up the north road?", "tower"),
    Line("aldric", "tower still in use?", "tower"),
    Line("aldric", "Captain, pray tell, what became of the old watchtower?", "tower"),
    Line("aldric", "I was thinking of sheltering at the watchtower on my way north, will your men be there?", "tower"),
    # ---- Aldric: unknown
    Line("aldric", "Where can I find the reeve at this hour?", UNKNOWN),
    Line("aldric", "Is there a bounty on bears too?", UNKNOWN),
    Line("aldric", "what's the toll to bring a wagon into the village?", UNKNOWN),
    Line("aldric", "Where can I buy a decent sword in town?", UNKNOWN),
    Line("aldric", "how much is a bed at the inn", UNKNOWN),
    Line("aldric", "What's the name of the lord who rules these lands?", UNKNOWN),
    Line("aldric", "Do you know any good healers in Ashford?", UNKNOWN),
    Line("aldric", "how far is it to Millbrook from here", UNKNOWN),
    Line("aldric", "Any word of bandits on the east road, captain?", UNKNOWN),
    # ---- Aldric: follow-ups
    Line("aldric", "and when does it open again?", "gate", before="What time does the gate shut?"),
    Line("aldric", "any coin in it for me if I hunt while I'm there?", "bounty", before="I need to get out to the Greywood."),
    Line("aldric", "and bears?", UNKNOWN, before="What's the bounty on wolf pelts?"),
    Line("aldric", "who issues it?", "writ", before="I need a writ to pass at night, right?"),

    # ---- Marta: room (8 silver a night)
    Line("marta", "I've been on the road three days and I'm dead on my feet. What's a bed cost here?", "room"),
    Line("marta", "need a kip for the night, how much", "room"),
    Line("marta", "Good mistress, what wouldst thou charge for a chamber this night?", "room"),
    Line("marta", "how much 2 stay the nite", "room"),
    Line("marta", "Got any rooms free? What's your rate?", "room"),
    Line("marta", "I wonder what you charge for a bed, the stable's starting to look tempting.", "room"),
    # ---- Marta: hot meal (2 silver)
    Line("marta", "hot meal price?", "meal"),
    Line("marta", "I'm starving, what's a plate of hot food cost?", "meal"),
    Line("marta", "Not staying the night, just want something warm to eat. What's that run me?", "meal"),
    Line("marta", "Pray, what coin for a hot supper, good woman?", "meal"),
    Line("marta", "WHAT DOES FOOD COST HERE", "meal"),
    # ---- Marta: today's stew (mutton and barley)
    Line("marta", "whats in the stew today", "stew"),
    Line("marta", "What's cooking back there? Smells amazing.", "stew"),
    Line("marta", "What's today's stew made of, love?", "stew"),
    Line("marta", "Is the stew beef again or something else today?", "stew"),
    Line("marta", "What meat hath gone into thy pot this day, goodwife?", "stew"),
    Line("marta", "ugh I hope the stew's not turnip again... what is it?", "stew"),
    # ---- Marta: lights in the abandoned watchtower (rumour)
    Line("marta", "heard any rumours about the watchtower?", "lights"),
    Line("marta", "Anything strange going on up at the old tower on the north road?", "lights"),
    Line("marta", "is the old watchtower haunted or what", "lights"),
    Line("marta", "Any tales going round about that abandoned watchtower, dear?", "lights"),
    Line("marta", "Prithee, what strange sightings have folk spoken of near the old tower?", "lights"),
    Line("marta", "spooky stuff at the watchtower?? spill", "lights"),
    # ---- Marta: caravan guards (merchant from Millbrook)
    Line("marta", "I'm good with a blade and short on coin. Know anyone who needs protection for a trip?", "caravan"),
    Line("marta", "who's looking for caravan guards", "caravan"),
    Line("marta", "jobs? i need work bad", "caravan"),
    Line("marta", "Goodwife, knowest thou of any merchant in need of stout arms for the road?", "caravan"),
    Line("marta", "Heard some trader wants escorts, who is he?", "caravan"),
    # ---- Marta: unknown
    Line("marta", "price of an ale?", UNKNOWN),
    Line("marta", "Can I stable my horse here, and what's that cost?", UNKNOWN),
    Line("marta", "What's that caravan merchant's name?", UNKNOWN),
    Line("marta", "How much does the caravan job pay?", UNKNOWN),
    Line("marta", "When's breakfast served?", UNKNOWN),
    Line("marta", "Do you have a bath I could use? how much", UNKNOWN),
    Line("marta", "who's the prettiest lass in the village lol", UNKNOWN),
    Line("marta", "Got any wine from the southern vineyards?", UNKNOWN),
    Line("marta", "Where's the temple in this town?", UNKNOWN),
    Line("marta", "what's the bounty on wolf pelts these days?", UNKNOWN),
    # ---- Marta: follow-ups
    Line("marta", "and a hot meal on top?", "meal", before="Room for tonight, how much?"),
    Line("marta", "what's on the menu then?", "stew", before="What's a hot meal cost here?"),
    Line("marta", "got a bed for me? what's it cost", "room", before="I just got in from Millbrook, my legs are jelly."),
    Line("marta", "what about that old tower up it?", "lights", before="Heard anything about the north road?"),
    Line("marta", "know anyone who'd pay for that?", "caravan", before="I need work, I'm good with a sword."),
]
