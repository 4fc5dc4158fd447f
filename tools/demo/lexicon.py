"""The words players use for what an NPC knows: other names for each thing, and questions only one fact answers.

Written from the facts themselves (what would a player call an iron sword, what would they ask when the
answer is "wolves on the north road"), never from a test set. tools/demo/player_talk.py composes these
into player lines; {slot}s inside cues are filled from SLOTS.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Words:
    names: tuple[str, ...] = ()  # noun phrases with their article ("an iron blade", "iron swords")
    cues: tuple[str, ...] = ()  # whole questions this fact answers, in a player's words


SLOTS = {
    "gear": ["sword", "shield", "armour", "axe", "helmet", "mail shirt", "blade", "spear", "dagger", "hammer"],
    "damage": ["dented", "cracked", "notched", "bent", "chipped", "broken", "battered", "rusty"],
    "way": ["north", "to Millbrook", "through the Greywood", "up the north road", "out of town"],
    "when": ["tonight", "after dark", "at night", "late", "before dawn", "after sunset"],
}

# Keyed by (NPC id, fact label); tools/demo/facts.py gives each shipped fact its label.
SHIPPED_WORDS = {
    ("brenna", "iron"): Words(
        names=("an iron sword", "an iron blade", "a sword of iron", "an iron longsword", "iron swords", "an iron one",
               "iron blades", "a plain iron sword", "iron", "a cheap sword", "your iron swords"),
        cues=("what's iron going for", "how much is the iron one", "what's the cheaper sword cost",
              "what's your cheapest sword", "got a sword that won't break the bank? price")),
    ("brenna", "steel"): Words(
        names=("a steel sword", "a steel blade", "a sword of steel", "a steel longsword", "steel swords", "a steel one",
               "steel blades", "a good steel sword", "steel", "your best sword", "your steel swords"),
        cues=("what's steel going for", "how much is the steel one", "what's your best sword cost",
              "how much for your finest blade", "what does good steel cost")),
    ("brenna", "shield"): Words(
        names=("a shield", "a new shield", "a buckler", "shields", "a sturdy shield", "a round shield",
               "one of your shields")),
    ("brenna", "repair"): Words(
        names=("a repair", "repairs", "a fix", "mending", "a quick repair", "a fix-up"),
        cues=("how much to fix my {gear}", "what do you charge to mend my {gear}", "can you repair my {gear}? how much",
              "my {gear} is {damage}. what's it cost to fix", "what's it cost to mend a {damage} {gear}",
              "could you hammer out my {damage} {gear}? for how much", "fixing a {gear}, what's that cost",
              "how much do repairs run")),
    ("brenna", "hours"): Words(
        names=("the forge", "your forge", "the smithy", "your smithy", "your shop"),
        cues=("when do you open", "when do you close", "when do you start work in the morning", "how late do you work",
              "are you working {when}", "are you open tomorrow", "till when are you open", "what hours do you keep",
              "when can I come back", "when does your fire go out", "can I come by {when}")),
    ("brenna", "wolves"): Words(
        cues=("is the north road safe", "is the road safe {when}", "any danger on the roads", "I'm going {way}. anything to worry about",
              "what's out on the road {when}", "is it safe to travel {when}", "any trouble on the roads",
              "anything I should watch out for on the road", "any beasts about", "seen any wolves",
              "what should a traveller fear round here", "is it dangerous {way}")),
    ("brenna", "apprentice"): Words(
        names=("Tomas", "your apprentice", "the apprentice", "your helper", "the lad who works for you",
               "your boy Tomas", "the young smith"),
        cues=("who helps you at the forge", "where's the lad gone", "you work alone", "where's your help today")),
    ("aldric", "gate"): Words(
        names=("the gate", "the north gate", "the town gate", "the gates", "the north gates"),
        cues=("when do you shut the gate", "how late can I get back into town", "when can I get back in",
              "when do you lock up", "is the gate open {when}", "what time do you open the gate", "when can I leave in the morning",
              "when do the gates shut", "if I'm out late will I get back in", "till when can I come and go")),
    ("aldric", "writ"): Words(
        names=("passing the gate after dark", "leaving after dark", "going out at night", "travel after dark"),
        cues=("what do I need to leave {when}", "can I go out {when}", "can I pass the gate {when}",
              "what papers do I need to travel {when}", "I must leave {when}. will you let me through",
              "who gives out night passes", "how do I get through the gate {when}", "do I need permission to leave {when}",
              "will you open the gate for me {when}", "is there a way out of town {when}", "need a pass to go {way} {when}")),
    ("aldric", "bounty"): Words(
        names=("a wolf pelt", "wolf pelts", "a wolf hide", "wolf hides", "wolf skins", "a Greywood wolf pelt",
               "dead wolves", "wolves"),
        cues=("do you pay for {x}", "what's {x} worth to the watch", "I've got {x}. what do I get",
              "I killed some wolves. any reward", "does the town buy {x}", "how much per pelt",
              "what's the bounty on wolves", "any coin for killing wolves", "is hunting wolves worth my while")),
    ("aldric", "tower"): Words(
        names=("the old watchtower", "the watchtower", "the tower on the north road", "the old tower"),
        cues=("what happened to {x}", "is anyone in {x}", "who holds {x}", "is {x} manned", "why is {x} empty",
              "what about {x}", "does the watch still use {x}", "who guards {x}")),
    ("marta", "room"): Words(
        names=("a room", "a bed", "a bed for the night", "a room for the night", "lodging", "a place to sleep",
               "a night's stay", "rooms", "a room tonight", "a bed tonight"),
        cues=("I need somewhere to sleep. how much", "can I stay the night? price", "got any rooms free? how much",
              "what's it cost to sleep here", "how much to stay the night", "I'm dead on my feet. what's a bed cost")),
    ("marta", "meal"): Words(
        names=("a meal", "a hot meal", "food", "a bowl of stew", "a plate of food", "meals", "a hot supper",
               "something to eat"),
        cues=("what does eating here cost", "how much to eat", "how much for a bite to eat",
              "I'm starving. what does food cost", "what do you charge for food")),
    ("marta", "stew"): Words(
        cues=("what's cooking", "what's in the pot", "what's for supper", "what kind of stew is it", "what's the stew today",
              "what are you serving", "what's on the fire", "what smells so good", "what's to eat", "what's in the stew",
              "what's for dinner tonight", "what's on the menu", "what are you cooking")),
    ("marta", "lights"): Words(
        cues=("anything strange about the watchtower", "what's going on up north", "seen anything odd {when}",
              "what's up with the old tower", "any ghost stories", "anything spooky going on")),
    ("marta", "caravan"): Words(
        cues=("anyone need guards", "any work for a sellsword", "anyone hiring guards", "any caravan work",
              "is the Millbrook merchant still hiring", "I can swing a sword. any work", "I'm broke. any work",
              "who's hiring", "where can I earn some coin", "anyone need a strong arm", "know of any guard jobs",
              "any work protecting wagons")),
}

# Rumours for training-only NPCs, with questions each one answers.
RUMOURS = [
    ("A bear was seen near the old mill.", "bear",
     ("is it safe near the mill", "anything dangerous in the woods", "any wild beasts about")),
    ("The bridge at Fenwick has washed away.", "bridge",
     ("can I cross the river at Fenwick", "is the Fenwick road open", "any trouble on the roads")),
    ("A stranger in black has been asking questions.", "stranger",
     ("anyone new in town", "seen any strangers", "anyone suspicious about")),
    ("The miller found silver in the river.", "miller",
     ("anyone struck it rich", "what's the miller up to", "any luck in the river")),
    ("Ghost lights dance on the marsh.", "marsh",
     ("anything spooky going on", "is the marsh safe at night", "seen anything odd at night")),
]

# Questions no demo NPC knows the answer to: the right reply says so, in character.
UNKNOWABLE = [
    "who's the lord of these lands", "who runs the mill", "who's the best archer in town", "who built the bridge",
    "who lives in the big house on the hill", "who's the priest here", "what year is it", "how old is this town",
    "what's the name of the river", "how many people live here", "when is the next market day", "what's the reeve like",
    "which way to the capital", "how far is the coast", "where's the nearest temple", "where can I find a healer",
    "can you read this letter for me", "can you teach me to read", "do you know any songs", "what's your favourite colour",
    "who was king before the war", "where do the roads south lead", "is there a library here", "what's the weather tomorrow",
    "where can I hire a boat", "who's the richest man in town", "what's beyond the mountains", "where's the graveyard",
    "can you lend me some coin", "what do you think of the king", "do you have family", "where were you born",
    "what's the best way to catch fish", "who drew the map of this valley", "how deep is the river",
]
# More of them, composed: who/where/what about the world, and services nobody here offers. None touches a
# demo NPC's facts (no rooms, food, weapons, repairs, gates, wolves or work).
UNKNOWN_FRAMES = ["who runs the {place}", "who built the {structure}", "who's the {role} here", "who owns the {place}",
                  "do you know {name}", "have you met {name}", "who is {name}", "where's the nearest {place}",
                  "how far is it to {town}", "which way to {town}", "how do I get to {town}",
                  "what's the {structure} called", "when was the {structure} built", "how many {people} live here",
                  "what's the weather like in {town}", "what do you think of the {role}", "is the {role} a fair man",
                  "can you {service}", "will you {service}", "could you {service} for me", "is {name} married",
                  "where does {name} live", "what's {town} like", "is there a {place} in town"]
UNKNOWN_SLOTS = {
    "place": ["mill", "temple", "tannery", "harbour", "bakery", "stables", "chapel", "town hall", "bathhouse",
              "library", "brewery", "orchard", "weaver's shop", "dye works"],
    "structure": ["bridge", "town walls", "chapel", "old well", "mill", "town hall", "old keep", "clock tower"],
    "role": ["mayor", "priest", "baron", "healer", "magistrate", "lord", "abbot", "tax collector"],
    "name": ["old Hilda", "Jonas", "the miller's boy", "Sir Edric", "Widow Pell", "Garrick", "Maud", "the hermit"],
    "town": ["Dunmere", "Oakfield", "the capital", "the coast", "Redwater", "Stonebridge", "the sea", "the mountains"],
    "people": ["folk", "families", "children", "farmers", "soldiers"],
    "service": ["teach me to swim", "read my fortune", "heal my wounds", "change my gold coins", "carry my bags",
                "lend me a horse", "write a letter for me", "sing me a song", "teach me to read", "hide me for a night"],
}


# Goods a demo NPC does not sell (asking the price of one is a wrong-item question).
OTHER_GOODS = ["a horse", "a saddle", "a lantern", "a coil of rope", "a map", "a fishing rod", "a bow", "a pair of boots",
               "a cloak", "a healing potion", "a wagon", "a goat", "a cart", "a tent", "a violin", "some spices",
               "a candle", "a mule", "a bedroll"]
# Kept out of training: the development set asks these (tools/demo/devset.py).
UNKNOWABLE_DEV = ["who's the miller's wife", "where does the river end", "how many bells does the chapel have",
                  "who painted the inn sign", "what's the smith's favourite song", "where can I buy a dog",
                  "when was the town founded", "who taught you your trade"]
