"""Data version 16's follow-ups: a player first only *tells* something ("My cart goes up the north road at
dusk."), then asks about it by reference ("is that a bad idea?"); or asks to hear an answer again ("sorry,
didn't catch that", "sunset, you said?").

The shipped checkpoint missed these on development set O (tools/demo/freeform_dev_o.py): its earlier turns
were always questions, so after a line that only told something it deflected; a repair's price came back
for "what's a new one cost" after a shield "not worth fixing"; "say again? the crows were loud" got a
deflection. Written for this generator, not copied from any set (dataset.py keeps every set's lines out).
"""
from __future__ import annotations

import random

# For each shipped NPC: something a player tells, then questions about it by reference, each with the fact
# label that answers it.
TOLD = {
    "brenna": [
        ("My sword broke clean in two on the road.",
         [("What would a new iron one be?", "iron"), ("How much to mend it?", "repair"),
          ("And a steel one to replace it?", "steel"), ("Can it be saved? What would that cost?", "repair")]),
        ("There's a big crack right down the middle of my shield.",
         [("How much for a new one?", "shield"), ("Can you patch it up? Cost?", "repair"),
          ("Forget fixing it, what's a fresh one?", "shield")]),
        ("My buckler got smashed to splinters by an ogre.",
         [("So how much is a new one?", "shield"), ("what would replacing it cost", "shield")]),
        ("I need a blade before I head out.",
         [("Cheapest you've got?", "iron"), ("What does your best one go for?", "steel"),
          ("Something cheap will do. How much?", "iron")]),
        ("My helmet took a nasty dent.",
         [("What would you charge to knock it straight?", "repair"), ("Can you fix that? how much", "repair")]),
        ("I'll be on the north road tomorrow night.",
         [("Anything out there I should know about?", "wolves"), ("Should I be worried?", "wolves"),
          ("Is that wise?", "wolves")]),
        ("I want to drop my spear off for sharpening later.",
         [("Till when are you here?", "hours"), ("When do you shut up shop?", "hours")]),
        ("I was hoping to see that lad who helps you.",
         [("Where's he gone?", "apprentice"), ("Is he about?", "apprentice"), ("When's he back?", "apprentice")]),
    ],
    "aldric": [
        ("I've got business outside the walls tonight.",
         [("When do you shut the gate?", "gate"), ("How do I get back in after dark?", "writ"),
          ("What do I need to come back in late?", "writ")]),
        ("I'll be coming back late from the farms.",
         [("Will the gate still be open?", "gate"), ("What would I need to get in?", "writ")]),
        ("I killed three wolves in the woods yesterday.",
         [("Does the watch pay for those?", "bounty"), ("What do I get for the pelts?", "bounty"),
          ("Worth anything to you?", "bounty")]),
        ("I'm thinking of camping by the old tower tonight.",
         [("Is anyone posted there?", "tower"), ("Is it manned?", "tower"), ("Any guards up there?", "tower")]),
        ("I lost track of time in the market yesterday and nearly got locked out.",
         [("What time does it close again?", "gate"), ("How late can I be?", "gate")]),
    ],
    "marta": [
        ("I need somewhere to sleep tonight.",
         [("What's that cost?", "room"), ("And food too, how much?", "meal"), ("How much for a bed?", "room")]),
        ("I'm starving.",
         [("What's on the fire?", "stew"), ("How much for a plate?", "meal"), ("What are you cooking?", "stew")]),
        ("I want to get to Millbrook but not on my own.",
         [("Anyone going that way?", "caravan"), ("Know anyone who wants a sword along?", "caravan")]),
        ("I'm walking past the old watchtower tonight.",
         [("Heard anything odd about it?", "lights"), ("Anything strange there lately?", "lights"),
          ("What do people say about it?", "lights")]),
        ("I'm looking for guard work.",
         [("Anyone hiring?", "caravan"), ("Heard of anything?", "caravan")]),
        ("My feet are killing me after the long walk in.",
         [("How much to stay the night?", "room"), ("What's a hot dinner cost?", "meal")]),
    ],
}

# What an NPC says to a line that only told something, when it does not answer with the fact at once.
NODS = ["Is that so, {a}?", "Hm. Go on, {a}.", "Aye, {a}.", "I see, {a}.", "What of it, {a}?",
        "Sounds like trouble, {a}.", "Well then, {a}."]

# Asking to hear the last answer again, whatever it was about.
AGAIN = ["Sorry, didn't catch that.", "Come again?", "Say that again?", "What was that?", "Pardon?",
         "sorry, it's loud in here. what did you say?", "huh? missed that", "Could you repeat that?",
         "sorry what", "one more time?", "I didn't hear you, say again", "What did you say, sorry?"]
# ... or by naming what was said ("sunset, you said?"): {k} is the fact's key.
ECHO = ["{k}, you said?", "{k}? really?", "Did you say {k}?", "{k}, was it?", "wait, {k}?", "{k}, right?"]


def nod(address: str, rng: random.Random) -> str:
    return rng.choice(NODS).format(a=address)


def again(key: str, rng: random.Random) -> str:
    """A request to hear the answer about `key` again."""
    if rng.random() < 0.35:
        return rng.choice(ECHO).format(k=key)
    return rng.choice(AGAIN)
