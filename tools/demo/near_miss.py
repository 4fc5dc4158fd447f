"""Single questions about something next to what an NPC knows, that its fact does not hold (data version 9).

A question that names the fact's thing ("When will Tomas be back?", "How much is a writ?") draws a small
model to the nearest fact it knows. The right answer is to say it does not know, in character; these teach
that a question is answered only when the fact holds what is asked, not whenever its words are near.
Every question here was checked against its fact's sentence: the sentence does not answer it.
"""

from __future__ import annotations

import random

from tools.demo import player_talk
from tools.demo.facts import DemoNpc, Fact

# {x}: what the fact is about, as a player names it
BY_TOPIC = {
    "hours": ["is {x} open on feast days", "does {x} keep the same hours in winter", "is {x} open on market day",
              "is {x} open on holy days", "is {x} open at midsummer",
              "does {x} shut for the harvest festival"],
    "person": ["when will {x} be back", "when's {x} due back", "how long has {x} been away", "what's {x} like",
               "how old is {x}", "when did {x} leave", "is {x} coming back soon", "can I send word to {x}",
               "is {x} married"],
    "rumour": ["who saw {x}", "who told you about {x}", "has anyone gone to look into {x}",
               "when did folk start talking about {x}", "how many people have seen {x}"],
    "job": ["what does {x} pay", "when does {x} start", "how many guards are needed for {x}", "how long is {x}",
            "who else has signed up for {x}"],
}
# The shipped NPCs' facts: what players call each thing, and questions only that fact draws near
SUBJECTS = {
    ("brenna", "apprentice"): ["Tomas", "your apprentice", "your apprentice Tomas"],
    ("brenna", "hours"): ["the forge", "your forge", "the smithy"],
    ("brenna", "wolves"): ["the wolves", "those wolves", "the wolves on the north road"],
    ("aldric", "gate"): ["the north gate", "the gate"],
    ("marta", "lights"): ["the lights", "the lights at the old tower", "the lights in the watchtower"],
    ("marta", "caravan"): ["the caravan job", "the caravan work", "the merchant's job", "the guard work"],
}
OWN = {
    ("brenna", "wolves"): ["how many wolves are out there", "where do the wolves den", "how big are these wolves",
                           "has anyone been bitten by the wolves"],
    ("aldric", "writ"): ["how much does a writ cost", "how long does it take to get a writ",
                         "can a friend fetch the writ for me", "how long is a writ good for",
                         "what does the reeve charge for a writ", "is the reeve in today"],
    ("aldric", "bounty"): ["what's the bounty on {q}", "do you pay for {q}", "what do you give for {q}",
                           "any reward for {q}", "is there a bounty on {q}"],
    ("aldric", "tower"): ["why was the watchtower abandoned", "who was posted at the old watchtower",
                          "will the watch ever go back to the old tower", "who built the old watchtower",
                          "how old is the watchtower on the north road"],
    ("marta", "stew"): ["what's the stew tomorrow", "what's cooking tomorrow", "do you serve bread with the stew",
                        "is there a pudding after", "what's for breakfast", "is the stew spicy",
                        "do you have anything sweet"],
    ("marta", "caravan"): ["where's the caravan headed", "what's the merchant's name", "when does the caravan leave"],
}
QUARRY = ["bear pelts", "a bear pelt", "boar hides", "fox pelts", "deer hides", "bandits", "a wildcat pelt",
          "rabbit skins", "a dead bear"]
# goods next to what a shipped NPC sells ("a steel axe" from a smith who sells steel swords)
GOODS = {
    "brenna": ["a steel axe", "an iron helmet", "a steel dagger", "an iron pot", "a steel spear", "some horseshoes",
               "a suit of steel armour", "an iron lock", "a steel breastplate", "some arrowheads"],
    "marta": ["a bath", "a jug of ale", "a bottle of wine", "some stabling", "a pipe of tobacco",
              "a mug of cider"],
}


def _subjects(d: DemoNpc, fact: Fact) -> list[str]:
    names = SUBJECTS.get((d.id, fact.label))
    if names:
        return names
    if fact.topic in ("hours", "person"):
        value = next(iter(fact.slots.values()))
        return [f"the {value}"] if fact.topic == "hours" else [value]
    return [{"rumour": f"the {fact.key}", "job": "that job"}.get(fact.topic, "that")]


def templates(d: DemoNpc, fact: Fact) -> list[str]:
    """The questions that draw near this fact without being answered by it (none for prices: those are goods)."""
    key = (d.id, fact.label)
    own = OWN.get(key, [])
    # a fact with questions of its own takes the topic's too only where it names its thing (the tower is no sight)
    general = BY_TOPIC.get(fact.topic, []) if key not in OWN or key in SUBJECTS else []
    return own + general


def question(d: DemoNpc, fact: Fact, rng: random.Random) -> str:
    """A near-miss question about this fact (any topic but price: every other has templates) as a player
    might type it."""
    template = rng.choice(templates(d, fact))
    text = template.replace("{x}", rng.choice(_subjects(d, fact))).replace("{q}", rng.choice(QUARRY))
    return player_talk.dress(text, rng, d.address)
