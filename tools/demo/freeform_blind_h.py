"""Free-form set H: player lines written by an outside writer (a helper that read only the three profiles in
npc_profiles/, the facts each NPC knows and the format of tools/demo/freeform.py, never the training generator,
the banks or sets A to G), on 2026-11-26 (ninth session), after the shipped checkpoint was chosen; scored like
set A (tools/demo/freeform.py) and never used to shape the data or any setting. The writer wrote 180 lines (35
follow-ups, 49 the NPC cannot answer, 11 two-part) and called 13 labels arguable (a right answer that might
not hold the scored words, an honest one that might, a reading of the profile); those were taken out before
any scoring, then the 43 whose line (or earlier line), normalized, the shipped checkpoint's training data
(its runs' data regenerated from their logs, before this set joined the lines the generator keeps out)
held were taken out unseen, leaving 124 (11 follow-ups)."""
from __future__ import annotations

from tools.demo.freeform import UNKNOWN, Line

LINES = [
    # ---- brenna, the blacksmith -----------------------------------------------------------------------
    # iron
    Line('brenna', 'whats an iron sword go for', 'iron'),
    Line('brenna', "I've got coin. What's the price on a plain iron blade?", 'iron'),
    Line('brenna', 'prithee, good smith, what wouldst thou ask for a sword of iron?', 'iron'),
    Line('brenna', 'My da always said buy iron before you buy steel, so go on, how much is the iron sword?', 'iron'),
    Line('brenna', 'hw much 4 irn sword pls', 'iron'),
    # steel
    Line('brenna', "I've been saving up for something proper. What'd a steel sword set me back?", 'steel'),
    Line('brenna', 'what do you charge for your best sword, the steel one', 'steel'),
    Line('brenna', 'prithee, how many coins for a blade of good steel?', 'steel'),
    Line('brenna', 'stel sword how mutch', 'steel'),
    Line('brenna', "Just got paid from the mill and I'm done with this rusty thing. If I wanted steel instead of iron, what's that run?", 'steel'),
    # shield
    Line('brenna', 'need something to block with. shield price?', 'shield'),
    Line('brenna', 'What would you want for one of those shields on the wall?', 'shield'),
    Line('brenna', 'prithee, what price for a stout shield?', 'shield'),
    Line('brenna', "Headed out past the woods tomorrow and I'd feel better with a shield on my arm. What do you charge for one?", 'shield'),
    # repair
    Line('brenna', 'my blade got chipped, what do repairs cost', 'repair'),
    Line('brenna', "Dented my helm falling off a cart, don't ask. What do you charge to hammer it back out?", 'repair'),
    Line('brenna', 'prithee, what fee for mending a broken blade?', 'repair'),
    Line('brenna', 'wat u charge 2 repair stuff', 'repair'),
    # hours
    Line('brenna', 'u open tmrw morning? what time', 'hours'),
    Line('brenna', 'When does the forge close for the night?', 'hours'),
    Line('brenna', "I'll be back with the ore later. How late do you work?", 'hours'),
    Line('brenna', 'prithee, at what hour doth the forge open its doors?', 'hours'),
    Line('brenna', 'Need a blade sharpened first thing. What time do you light the forge?', 'hours'),
    # wolves
    Line('brenna', 'is the north road safe after dark?', 'wolves'),
    Line('brenna', 'heard any news lately, smith?', 'wolves'),
    Line('brenna', 'anything dangerous out on the roads?', 'wolves'),
    Line('brenna', "I'm heading north tonight, anything I should watch out for?", 'wolves'),
    Line('brenna', 'prithee, what perils lurk upon the north road?', 'wolves'),
    Line('brenna', 'any beasts about at night? asking for a friend', 'wolves'),
    # apprentice
    Line('brenna', 'who usually helps u at the forge, hes not here', 'apprentice'),
    Line('brenna', 'Your apprentice around? I wanted a word with him.', 'apprentice'),
    Line('brenna', "Used to be a lad working the bellows here. Where'd he go?", 'apprentice'),
    Line('brenna', 'prithee, whither hath thy apprentice gone?', 'apprentice'),
    Line('brenna', 'Thought you had a boy working for you. Off somewhere?', 'apprentice'),
    # follow-ups
    Line('brenna', 'and if it breaks, what do you charge to fix it?', 'repair', before="I'll take the iron sword."),
    Line('brenna', 'when do you close then?', 'hours', before='are you still open?'),
    Line('brenna', 'how many of them?', UNKNOWN, before='seen any wolves around?'),
    # unknown
    Line('brenna', 'how much for a battle axe?', UNKNOWN),
    Line('brenna', 'do you sell chainmail? price?', UNKNOWN),
    Line('brenna', 'how much are horseshoes', UNKNOWN),
    Line('brenna', 'whats a dagger cost', UNKNOWN),
    Line('brenna', 'how much is a room at the inn?', UNKNOWN),
    Line('brenna', 'when does the north gate close?', UNKNOWN),
    Line('brenna', 'can you make me a longbow, and for how much?', UNKNOWN),
    Line('brenna', 'whats the price of iron ore these days', UNKNOWN),
    # two-part
    Line('brenna', 'how much for iron and steel swords?', 'iron', also=('steel',)),
    Line('brenna', 'shield price, and when do you open in the morning?', 'shield', also=('hours',)),
    Line('brenna', "what's a repair cost, and where's tomas got to?", 'repair', also=('apprentice',)),
    Line('brenna', 'iron sword plus a shield, how much each', 'iron', also=('shield',)),

    # ---- aldric, the gate captain ---------------------------------------------------------------------
    # gate
    Line('aldric', 'wat time u shut the gates', 'gate'),
    Line('aldric', "I've got business outside the walls. How long have I got before you close up?", 'gate'),
    Line('aldric', 'what hours is the north gate open?', 'gate'),
    Line('aldric', 'prithee, captain, when are the gates barred for the night?', 'gate'),
    Line('aldric', 'Captain, how late can I come back in tonight before the gate is shut?', 'gate'),
    Line('aldric', "My cousin's farm is a few hours' walk north and I don't want to get stuck outside. When do you lock up?", 'gate'),
    # writ
    Line('aldric', 'how do I get out after dark', 'writ'),
    Line('aldric', 'can i leave town after sunset? what papers do i need', 'writ'),
    Line('aldric', "I've a sick mother in the next village and I must travel tonight. How can I get through?", 'writ'),
    Line('aldric', 'prithee, what warrant must one bear to pass the gate by night?', 'writ'),
    Line('aldric', 'need 2 get thru gate at nite, how', 'writ'),
    Line('aldric', 'is there any way past the gate once it closes?', 'writ'),
    # bounty
    Line('aldric', 'how much do u pay per pelt', 'bounty'),
    Line('aldric', "I'm a fair hand with a bow. Is there coin in wolf hunting?", 'bounty'),
    Line('aldric', 'reward for greywood wolf pelts?', 'bounty'),
    Line('aldric', 'prithee, what bounty is offered for the hides of wolves?', 'bounty'),
    Line('aldric', "Killed three wolves on the way in and skinned 'em. What are they worth to the watch?", 'bounty'),
    # tower
    Line('aldric', 'is the watchtower on the north road still manned?', 'tower'),
    Line('aldric', "Who's posted at the tower up the north road these days?", 'tower'),
    Line('aldric', 'prithee, doth any soldier keep the old watchtower?', 'tower'),
    Line('aldric', 'watchtower still in use?', 'tower'),
    Line('aldric', 'could i shelter in that old tower up the road, or do your men still hold it?', 'tower'),
    # follow-ups
    Line('aldric', 'where do I turn the pelts in?', UNKNOWN, before='is there a bounty on wolves?'),
    Line('aldric', "what's the reeve's name?", UNKNOWN, before='how do I get through at night?'),
    Line('aldric', 'and the south gate?', UNKNOWN, before='when does the north gate close?'),
    # unknown
    Line('aldric', 'where can i get a hot meal and how much', UNKNOWN),
    Line('aldric', 'who is the lord of this village?', UNKNOWN),
    Line('aldric', 'is the road to millbrook safe by day?', UNKNOWN),
    Line('aldric', 'how much for a room at the stag?', UNKNOWN),
    Line('aldric', 'how far is it to the greywood from here?', UNKNOWN),
    Line('aldric', "what's the toll to get into town?", UNKNOWN),
    # two-part
    Line('aldric', "when's the gate close, and if I'm late do I need papers?", 'gate', also=('writ',)),
    Line('aldric', 'pelt bounty? and whats the deal with the old tower', 'bounty', also=('tower',)),
    Line('aldric', 'what do I need to pass at night, and when does the gate shut anyway?', 'writ', also=('gate',)),

    # ---- marta, the innkeeper -------------------------------------------------------------------------
    # room
    Line('marta', 'need a bed for the night, whats it cost', 'room'),
    Line('marta', "I've got coin. What's a night's lodging here?", 'room'),
    Line('marta', 'prithee, good woman, what price for a chamber this night?', 'room'),
    Line('marta', 'rooom price pls', 'room'),
    Line('marta', 'Long day on the road, my feet are killing me and I just want to sleep. What do you charge for a bed?', 'room'),
    Line('marta', 'wat do u charge per nite for lodging', 'room'),
    # meal
    Line('marta', 'how much is a hot meal', 'meal'),
    Line('marta', 'what does food cost here', 'meal'),
    Line('marta', 'price of grub?', 'meal'),
    Line('marta', "I'm starving. What's a plate of something hot run me?", 'meal'),
    Line('marta', 'prithee, what coin for a warm supper?', 'meal'),
    Line('marta', 'hw much 4 a meal', 'meal'),
    # stew
    Line('marta', 'what kind of stew is it tonight', 'stew'),
    Line('marta', 'smells good in here, what is that?', 'stew'),
    Line('marta', 'prithee, what meat is in thy pot today?', 'stew'),
    Line('marta', 'stew of the day?', 'stew'),
    Line('marta', "I'm picky about meat, so before I order, what's today's stew made of?", 'stew'),
    # lights
    Line('marta', 'heard anything about the old watchtower?', 'lights'),
    Line('marta', "what's the gossip about the tower on the north road", 'lights'),
    Line('marta', 'people keep whispering about the watchtower, whats that about', 'lights'),
    Line('marta', 'prithee, what rumour runs about the abandoned tower?', 'lights'),
    Line('marta', "Somebody at the bar mentioned the old tower and then clammed up. What's the story?", 'lights'),
    Line('marta', 'is anyone living in the old tower now? folk say they saw something up there', 'lights'),
    # caravan
    Line('marta', 'know of any work for a sword arm?', 'caravan'),
    Line('marta', "I'm broke and handy with a blade. Any jobs going?", 'caravan'),
    Line('marta', 'prithee, doth anyone seek hired blades?', 'caravan'),
    Line('marta', 'lookin for work, u heard of anything', 'caravan'),
    Line('marta', 'is there any escort work around?', 'caravan'),
    # follow-ups
    Line('marta', 'whats in it?', 'stew', before='is there stew tonight?'),
    Line('marta', 'how much does he pay?', UNKNOWN, before='anyone looking for guards?'),
    Line('marta', 'when does it leave?', UNKNOWN, before='I heard a caravan needs guards?'),
    Line('marta', 'who saw them?', UNKNOWN, before='what about the lights in the tower?'),
    Line('marta', 'and a pint of ale?', UNKNOWN, before='how much is a hot meal?'),
    # unknown
    Line('marta', 'how much for a bath', UNKNOWN),
    Line('marta', 'do you have stabling? what for a horse', UNKNOWN),
    Line('marta', 'how much is a steel sword at the smithy', UNKNOWN),
    Line('marta', 'how much for a bottle of wine', UNKNOWN),
    Line('marta', 'who owned the inn before you?', UNKNOWN),
    # two-part
    Line('marta', 'room and a hot meal, how much', 'room', also=('meal',)),
    Line('marta', "any work going? and what's this about lights in the tower", 'caravan', also=('lights',)),
    Line('marta', 'bed for the night + whats cooking', 'room', also=('stew',)),
]
