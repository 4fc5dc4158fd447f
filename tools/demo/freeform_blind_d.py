"""Free-form set D: player lines written by an outside writer (a helper that read only the three profiles in
npc_profiles/ and the Line format, never the training generator or sets A, B and C), on 2026-11-26, after
the checkpoint they measure was trained and after its unsure-reply threshold was chosen. Scored like set A
(tools/demo/freeform.py); never used to shape the data or any setting. The writer wrote 120 lines, then 30
more; the 27 whose line (or earlier line), normalized, the shipped checkpoint's training data already held
were taken out unseen (most were short stock questions), so every line here is new to it."""
from __future__ import annotations

from tools.demo.freeform import UNKNOWN, Line

LINES = [
    # ---- Brenna: iron sword (40 silver)
    Line("brenna", "I've got coin. What's a plain iron blade going to run me?", "iron"),
    Line("brenna", "What do you charge for an iron sword, and is the forge open tomorrow?", "iron", also=("hours",)),
    Line("brenna", "Just a simple iron sword for my boy, nothing fancy. What's that run?", "iron"),
    # ---- Brenna: steel sword (90 silver)
    Line("brenna", "steel price?", "steel"),
    Line("brenna", "Good smith, I seek a blade of true steel for my journey. What coin would such a sword demand?",
         "steel"),
    Line("brenna", "so my old sword snapped on a bandit last week, total junk, and i want something that actually "
                   "holds an edge this time, how much is one of your steel swords, and dont give me the noble price lol",
         "steel"),
    Line("brenna", "whats a steal sword cost", "steel"),
    # ---- Brenna: shield (25 silver)
    Line("brenna", "how much for a sheild", "shield"),
    Line("brenna", "Need something to block with. What's a shield go for?", "shield"),
    Line("brenna", "What coin for one of them round shields hanging on the wall?", "shield"),
    Line("brenna", "I need a shield before I head into the Greywood. What's your price?", "shield"),
    Line("brenna", "How much is a shield, and do you fix dented ones too?", "shield", also=("repair",)),
    # ---- Brenna: repairs (5 silver)
    Line("brenna", "can u fix my sword? how much", "repair"),
    Line("brenna", "My blade's got a nick in it the size of my thumb. What do you charge to mend it?", "repair"),
    Line("brenna", "REPAIR COST", "repair"),
    Line("brenna", "Suppose I brought you a cracked shield that's already mine, what would fixing it cost me?", "repair"),
    # ---- Brenna: forge hours (dawn until the evening bell)
    Line("brenna", "If I come by tomorrow morning real early, will you be working yet?", "hours"),
    Line("brenna", "forge open late? like after supper?", "hours"),
    Line("brenna", "When's the forge open, and where's your apprentice today?", "hours", also=("apprentice",)),
    # ---- Brenna: wolves on the north road
    Line("brenna", "Heard anything lately, smith? Anything I should watch out for?", "wolves"),
    Line("brenna", "is the north road safe at night", "wolves"),
    Line("brenna", "I'm heading up the north road after dark tonight. Any reason I shouldn't?", "wolves"),
    Line("brenna", "Suppose I wanted to leave town at night by the north way... anything out there I should know about?",
         "wolves"),
    Line("brenna", "wolfs around here?", "wolves"),
    # ---- Brenna: apprentice Tomas, away in Millbrook
    Line("brenna", "Where's your apprentice? The lad usually works the bellows.", "apprentice"),
    Line("brenna", "You're working alone today? Where'd your helper go?", "apprentice"),
    Line("brenna", "Man, this place is loud. I was hoping to catch that young fellow who sold me nails last spring, "
                   "Tomas I think his name was. Is he about, or off somewhere?", "apprentice"),
    # ---- Brenna: unknown
    Line("brenna", "How much for a dagger?", UNKNOWN),
    Line("brenna", "do you sell horseshoes? price?", UNKNOWN),
    Line("brenna", "How much for a chainmail shirt?", UNKNOWN),
    Line("brenna", "Who's the reeve round here?", UNKNOWN),
    Line("brenna", "know a good healer in town? took a nasty cut", UNKNOWN),

    # ---- Marta: room (8 silver)
    Line("marta", "How much for a bed tonight, love?", "room"),
    Line("marta", "Evening, mistress. My feet are killing me and I've got coin. What's a night's lodging cost?", "room"),
    Line("marta", "got any rooms? how much", "room"),
    Line("marta", "How much is a room, and what's in the stew today?", "room", also=("stew",)),
    # ---- Marta: hot meal (2 silver)
    Line("marta", "What's a hot meal cost here?", "meal"),
    Line("marta", "I'm starving. How much for some grub?", "meal"),
    Line("marta", "i dont need a bed, just dinner. price?", "meal"),
    Line("marta", "Long road from Millbrook, three days of hard bread and creek water, and I swear if I don't get "
                  "something warm in my belly I'll fall over. What's a hot plate cost in this place?", "meal"),
    Line("marta", "wat do u charge for a meal", "meal"),
    # ---- Marta: stew (mutton and barley)
    Line("marta", "What's cooking today? Smells good.", "stew"),
    Line("marta", "Stew of the day?", "stew"),
    Line("marta", "What kind of meat's in the pot tonight?", "stew"),
    Line("marta", "What's the stew today, and how much is a bowl?", "stew", also=("meal",)),
    Line("marta", "what is it today tho", "stew", before="How much is a hot meal?"),
    Line("marta", "Pray tell, good hostess, what fare simmers in yonder kettle this day?", "stew"),
    # ---- Marta: lights in the abandoned watchtower
    Line("marta", "anything weird going on at the old watchtower?", "lights"),
    Line("marta", "Heard any rumours about the watchtower up the north road?", "lights"),
    Line("marta", "whats this i hear about the tower", "lights"),
    Line("marta", "Someone in the common room was muttering about something strange on the north road, up by the "
                  "old tower. What's the story?", "lights"),
    Line("marta", "Is anybody living up in the abandoned tower these days?", "lights"),
    Line("marta", "SPOOKY TOWER RUMOUR??", "lights"),
    Line("marta", "What's the talk about the old watchtower, and is anyone hiring guards?", "lights", also=("caravan",)),
    # ---- Marta: merchant from Millbrook hiring caravan guards
    Line("marta", "any work for a sellsword round here?", "caravan"),
    Line("marta", "I'm good with a sword and short on coin. Know anyone who needs a hired blade?", "caravan"),
    Line("marta", "looking for guard work", "caravan"),
    Line("marta", "Heard somebody's looking for muscle. Who is he?", "caravan"),
    Line("marta", "Suppose a fella wanted to earn some silver escorting wagons... who'd he talk to?", "caravan"),
    # ---- Marta: unknown
    Line("marta", "How much is a pint of ale?", UNKNOWN),
    Line("marta", "do you have stables for my horse?", UNKNOWN),
    Line("marta", "When does the inn close for the night?", UNKNOWN),
    Line("marta", "Is there a bath I can use?", UNKNOWN),
    Line("marta", "Who's the reeve in this village?", UNKNOWN),

    # ---- Aldric: gate closes at sunset
    Line("aldric", "Captain, what time do you shut the north gate?", "gate"),
    Line("aldric", "Till when's the gate open today?", "gate"),
    Line("aldric", "I'm going out to hunt in the Greywood this afternoon, what time do I need to be back by before "
                   "you lock up?", "gate"),
    Line("aldric", "When does the gate close, and what's the reward on wolf pelts?", "gate", also=("bounty",)),
    Line("aldric", "how long have I got before you close up?", "gate", before="I need to get out to the Greywood."),
    Line("aldric", "WHEN U CLOSE THE GATE", "gate"),
    # ---- Aldric: writ from the reeve to pass after dark
    Line("aldric", "Suppose I wanted to leave town at night, what would I need?", "writ"),
    Line("aldric", "What papers do I need to get through the gate after nightfall?", "writ"),
    Line("aldric", "whos gotta sign off for me to go out at night", "writ"),
    Line("aldric", "Captain, I've urgent business in Millbrook and must ride tonight. How might I pass your gate once "
                   "the sun is down?", "writ"),
    Line("aldric", "What do I need to get out after dark, and is the old tower still manned?", "writ", also=("tower",)),
    # ---- Aldric: 50 silver per wolf pelt
    Line("aldric", "wolf pelt reward?", "bounty"),
    Line("aldric", "How much do you pay for wolf pelts?", "bounty"),
    Line("aldric", "I've got three wolf hides on my horse. What are they worth to the watch?", "bounty"),
    Line("aldric", "is there a bounty on wolves", "bounty"),
    Line("aldric", "So I was out in the Greywood yesterday and a pack jumped me, killed two of them, skinned 'em like "
                   "my da taught me. Does the watch pay anything for that sort of thing or am I wasting my time?",
         "bounty"),
    Line("aldric", "you paying for them?", "bounty", before="Are there wolves in the Greywood?"),
    Line("aldric", "wat u pay 4 a wolf skin", "bounty"),
    # ---- Aldric: old watchtower abandoned last winter
    Line("aldric", "Whats the deal with the old tower on the north road?", "tower"),
    Line("aldric", "is the watchtower still manned", "tower"),
    Line("aldric", "Why's nobody stationed at the north road tower anymore?", "tower"),
    Line("aldric", "Could I shelter in the old watchtower for a night, or is the watch using it?", "tower"),
    Line("aldric", "TOWER. still in use?", "tower"),
    Line("aldric", "Captain, sir, I've a cousin who swears he served at the watchtower up the north road, before... "
                   "before whatever happened. Is it still in service?", "tower"),
    Line("aldric", "Is the old watchtower still in use, and when do you shut the gate?", "tower", also=("gate",)),
    Line("aldric", "who holds the old tower now", "tower"),
    # ---- Aldric: unknown
    Line("aldric", "How much does a room cost at the inn?", UNKNOWN),
    Line("aldric", "What's the reward for bandits?", UNKNOWN),
    Line("aldric", "how far is it to Millbrook?", UNKNOWN),
    Line("aldric", "Is there a toll to come into town?", UNKNOWN),
    Line("aldric", "Who's the blacksmith here?", UNKNOWN),

    # --- more lines, same writer's brief
    # ---- Brenna
    Line("brenna", "Just joined the militia and the sarge says bring your own blade. Nothing fancy, iron'll do. "
                   "What's the damage?", "iron"),
    Line("brenna", "the missus made me swear id stop blocking axes with my forearm. whats one of them round bucklers "
                   "cost ya", "shield"),
    Line("brenna", "Me blade's gone all notchy after that business with the bandits. Hammer it straight for us? "
                   "What's that cost?", "repair"),
    Line("brenna", "I work the fields till noon most days. How late can I catch you at the anvil, and what do you "
                   "want for a shield?", "hours", also=("shield",)),
    Line("brenna", "My cousin's taking his cart up north tonight, says the road's quiet as a graveyard. You hear "
                   "different?", "wolves"),
    Line("brenna", "Oi, where's the skinny lad with soot on his nose? He owes me a game of knucklebones.",
         "apprentice"),
    Line("brenna", "Need to split firewood and maybe the odd bandit skull. What'd you want for a good hunting axe?",
         UNKNOWN),
    Line("brenna", "Could you point me to the nearest shrine? I'd like to light a candle for my mum.", UNKNOWN),
    Line("brenna", "who owns the mill down by the river? lookin for honest work thats not swinging a hammer", UNKNOWN),

    # ---- Marta
    Line("marta", "Been sleeping in hedges for a week, I smell like a goat. Name your price for a proper mattress "
                  "under a proper roof.", "room"),
    Line("marta", "grand! how much'll that set me back then?", "room", before="Do you have any beds free tonight?"),
    Line("marta", "Keep the bed, I've a tent outside town. Just want something hot and a heel of bread. What's that "
                  "come to?", "meal"),
    Line("marta", "Mistress, my nose tells me there's lamb or some such in that big pot. Am I close?", "stew"),
    Line("marta", "im a picky eater ok, be honest, whats actually IN todays stew before i order", "stew"),
    Line("marta", "Old Jory at the bar keeps going on about something glowing past the north gate at night. You know "
                  "what he's on about?", "lights"),
    Line("marta", "Pour me another, dear, and give me the juiciest gossip about that ruin on the north road.",
         "lights"),
    Line("marta", "Me and my brother swing a mean cudgel and we're flat broke. Anyone in town paying for protection "
                  "on the road?", "caravan"),
    Line("marta", "Between you and me, love, my purse is empty and my sword arm's itching. Heard of any trader short "
                  "of hands for a journey?", "caravan"),

    # ---- Aldric
    Line("aldric", "My sister's wedding party is coming up from the farms this evening. How late can they roll in "
                   "before they're stuck outside the walls?", "gate"),
    Line("aldric", "Oi captain, me and the lads are off poaching- er, foraging in the woods. When d'you bar the doors "
                   "on us?", "gate"),
    Line("aldric", "what if i really gotta get thru after that tho", "writ", before="When does the north gate close?"),
    Line("aldric", "Look, I ride for a cloth trader and I'm due out at midnight. What do your men need to see from "
                   "me?", "writ"),
    Line("aldric", "What's the watch paying per wolf skin these days, and would the old tower be a safe spot to camp "
                   "while I hunt?", "bounty", also=("tower",)),
    Line("aldric", "Greywood's crawling with the grey beasts and my bow's itching. Worth my while, coin-wise, to "
                   "bring you their hides?", "bounty"),
    Line("aldric", "Captain, my map shows a garrison post up the north road. Can I resupply there?", "tower"),
    Line("aldric", "The lads at the Stag say the lookout up north's stood empty since the snows. That true?", "tower"),
    Line("aldric", "What's the penalty for brawling inside the walls? Asking for a friend who may have thrown the "
                   "first punch.", UNKNOWN),
    Line("aldric", "where can a fella get his boots resoled in this town, mine are flapping like a duck", UNKNOWN),
]
