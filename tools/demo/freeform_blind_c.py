"""Free-form set C: player lines written by an outside writer (a helper that read only the three profiles in
npc_profiles/, never the training generator, set A or set B), before the checkpoint they measure was trained.
Scored like set A (tools/demo/freeform.py); never used to shape the data. The writer wrote 120 lines; the 14
whose line (or earlier line), normalized, the earlier checkpoints' training data already held ("how much is
a room", "where is tomas") were taken out unseen, so every line here is new to every run."""
from __future__ import annotations

from tools.demo.freeform import Line

LINES = [
    # --- Brenna: iron
    Line('brenna', "cheapest sword u got?", 'iron'),
    Line('brenna', "HOW MUCH FOR AN IRON BLADE", 'iron'),
    Line('brenna', "whats a plain iron sword run me", 'iron'),
    Line('brenna', "Good morrow, smith. I would purchase a simple blade of iron, if thy price be fair. What dost thou ask?", 'iron'),
    Line('brenna', "irn swrd price", 'iron'),
    Line('brenna', "my da always said never buy steel you cant afford. so. the regular sword, not the steel one. how much", 'iron'),
    Line('brenna', "i only got like 50 silver on me, which sword can i actually afford and for how much", 'iron'),
    # --- Brenna: steel
    Line('brenna', "steel sword cost?", 'steel'),
    Line('brenna', "whats ur best blade go for", 'steel'),
    Line('brenna', "tomas said you'd know. how much for one of the steel swords", 'steel'),
    Line('brenna', "how mch 4 stel sword", 'steel'),
    Line('brenna', "Mistress Ironhand, pray tell, what price for a sword of true tempered steel?", 'steel'),
    Line('brenna', "STEEL. PRICE. NOW.", 'steel'),
    # --- Brenna: shield
    Line('brenna', "need somethin to hide behind when the arrows start flyin, whatcha charge for that", 'shield'),
    Line('brenna', "sheild price and also do u fix stuff", 'shield', also=('repair',)),
    Line('brenna', "What would a buckler cost me? Round wooden thing with an iron rim.", 'shield'),
    Line('brenna', "u sell shields? price?", 'shield'),
    # --- Brenna: repair
    Line('brenna', "can u fix my sword its all chipped. how much", 'repair'),
    Line('brenna', "lol my axe got all notched up chopping firewood, what do you charge to mend it", 'repair'),
    Line('brenna', "how much", 'repair', before="can you fix my blade?"),
    Line('brenna', "REPAIR COST??", 'repair'),
    Line('brenna', "Good smith, my mail hath been rent by a bandit's blade. What wouldst thou take to set it right?", 'repair'),
    Line('brenna', "wat do repairs cost here", 'repair'),
    # --- Brenna: hours
    Line('brenna', "when r u open", 'hours'),
    Line('brenna', "what time does the forge close", 'hours'),
    Line('brenna', "I'll be back tomorrow with the ore money. what hour do you light the forge?", 'hours'),
    Line('brenna', "u open late tonight?", 'hours'),
    Line('brenna', "Forgive the intrusion, madam. At what hours may one find your smithy open for trade?", 'hours'),
    Line('brenna', "open hours and do u sell horseshoes", 'hours'),
    # --- Brenna: wolves
    Line('brenna', "is the north road safe after dark", 'wolves'),
    Line('brenna', "my brother and me are heading up toward the hills tonight, we were gonna take the north road since its quicker. he says its fine but ive got a bad feeling about it. should i?", 'wolves'),
    Line('brenna', "what's been prowling the roads lately?", 'wolves'),
    Line('brenna', "any danger round here at nite", 'wolves'),
    Line('brenna', "heard folk whispering about beasts on the road. true?", 'wolves'),
    # --- Brenna: apprentice
    Line('brenna', "where's your apprentice got to? usually he's out here hammering away", 'apprentice'),
    Line('brenna', "wheres the kid who works for u", 'apprentice'),
    Line('brenna', "I have a message for young Tomas. Is he about?", 'apprentice'),
    Line('brenna', "you're working alone today? where's your helper", 'apprentice'),
    Line('brenna', "TOMAS??", 'apprentice'),
    # --- Brenna: not in her knowledge
    Line('brenna', "when does the north gate close", None),
    Line('brenna', "how much is a room at the inn", None),
    Line('brenna', "whats the bounty on wolf pelts", None),
    Line('brenna', "how far is millbrook from here", None),
    Line('brenna', "Who is the lord of Ashford?", None),

    # --- Aldric: gate
    Line('aldric', "when does the gate shut", 'gate'),
    Line('aldric', "WHAT TIME DO U CLOSE THE GATES", 'gate'),
    Line('aldric', "Captain, I must be on the road by first light. When do you open the north gate?", 'gate'),
    Line('aldric', "gate opens wen", 'gate'),
    Line('aldric', "i got here at noon and walked right through, but when do you lot lock it up for the night?", 'gate'),
    Line('aldric', "Hail, Captain. At what hour are the gates barred?", 'gate'),
    # --- Aldric: writ
    Line('aldric', "how do i get out after dark", 'writ'),
    Line('aldric', "what paper do i need to go through at night", 'writ'),
    Line('aldric', "listen captain, my sister is sick in the next village and i only just got word. the sun's already down and your men won't let me by. what do i actually need to get through this gate tonight?", 'writ'),
    Line('aldric', "who do i talk to so i can leave at night", 'writ'),
    Line('aldric', "Captain, what permission must a traveller carry to pass the gate once night has fallen?", 'writ'),
    Line('aldric', "nite pass?? how", 'writ'),
    # --- Aldric: bounty
    Line('aldric', "any reward for wolves", 'bounty'),
    Line('aldric', "how much for a wolf pelt", 'bounty'),
    Line('aldric', "what does the watch pay for greywood wolf hides", 'bounty'),
    Line('aldric', "I killed a wolf last night near the treeline. Skinned it too. Is that worth anything to you?", 'bounty'),
    Line('aldric', "how much per hide", 'bounty', before="is there a reward for wolves"),
    Line('aldric', "PELT BOUNTY HOW MUCH", 'bounty'),
    Line('aldric', "u pay for dead wolfs?", 'bounty'),
    # --- Aldric: tower
    Line('aldric', "whats with the old watchtower", 'tower'),
    Line('aldric', "who's stationed in the tower up the north road", 'tower'),
    Line('aldric', "passed a stone tower on the way in, looked empty. whats the story", 'tower'),
    Line('aldric', "since when is it empty", 'tower', before="whats that ruin up the north road"),
    Line('aldric', "Is the watchtower on the north road still manned, Captain?", 'tower'),
    Line('aldric', "twr on north rd still used?", 'tower'),
    Line('aldric', "was thinkin of bunking in that old tower on the north road, anyone up there these days?", 'tower'),
    # --- Aldric: not in his knowledge
    Line('aldric', "how much is a room at the inn", None),
    Line('aldric', "anyone hiring caravan guards", None),
    Line('aldric', "what's in the stew at the Sleeping Stag today", None),
    Line('aldric', "where do i find the reeve then", None, before="how do i get out after dark"),

    # --- Marta: room
    Line('marta', "need a bed for the night, what's it cost", 'room'),
    Line('marta', "Good evening, mistress. What price for lodging this night?", 'room'),
    Line('marta', "rm price", 'room'),
    Line('marta', "the captain says the gate's shut for the night so i guess im stuck here. how much to sleep?", 'room'),
    # --- Marta: meal
    Line('marta', "how much is a hot meal", 'meal'),
    Line('marta', "i need something to keep my belly full, what's that cost", 'meal'),
    Line('marta', "whats a plate of food cost here", 'meal'),
    Line('marta', "Madam, what would you charge for a warm supper?", 'meal'),
    Line('marta', "food price and is there a room free", 'meal', also=('room',)),
    # --- Marta: stew
    Line('marta', "what's in the stew today", 'stew'),
    Line('marta', "whats cookin", 'stew'),
    Line('marta', "smells amazing in here, what's in the pot?", 'stew'),
    Line('marta', "whats in it tho", 'stew', before="is there stew today"),
    Line('marta', "STEW?? WHAT KIND", 'stew'),
    Line('marta', "What meat goes in today's pottage, good woman?", 'stew'),
    # --- Marta: lights
    Line('marta', "any news about the old watchtower", 'lights'),
    Line('marta', "any spooky stories going round?", 'lights'),
    Line('marta', "whats this about the tower on the north road", 'lights'),
    Line('marta', "some drunk at the bar was going on about something weird up at the abandoned tower, what was he on about", 'lights'),
    Line('marta', "what did folk see exactly", 'lights', before="any gossip about the old tower"),
    Line('marta', "Pray, goodwife, what tales do folk tell of the ruined tower upon the north road?", 'lights'),
    Line('marta', "anythin strange at the watchtwr", 'lights'),
    # --- Marta: caravan
    Line('marta', "i need work, any jobs going", 'caravan'),
    Line('marta', "I'm good with a sword and short on coin after the smith took most of it. know anyone who needs protection on the road?", 'caravan'),
    Line('marta', "LOOKING FOR MERCENARY WORK", 'caravan'),
    Line('marta', "who needs guards round here", 'caravan'),
    Line('marta', "Goodwife, dost thou know of any merchant in want of sellswords?", 'caravan'),
    # --- Marta: not in her knowledge
    Line('marta', "when does the north gate close", None),
    Line('marta', "how much does the smith charge for a steel sword", None),
    Line('marta', "what's the bounty on wolf pelts", None),
    Line('marta', "where's tomas the apprentice", None),
    Line('marta', "what do i need to get through the gate after dark", None),
]
