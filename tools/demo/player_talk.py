"""Player lines composed from meaning, the way players type: an intent (the fact asked for), a way to name the
thing (tools/demo/lexicon.py), a frame for the question, context before or after it, and chat-box noise
(lower case, no apostrophes, "u"/"4"/"pls", a dropped letter).

The template grammar (tools/demo/phrasing.py) teaches the common phrasings; this teaches that the same
question comes in any shape, that a line can carry two questions, lean on the one before it, or ask
for something the NPC does not know.
"""
from __future__ import annotations

import random
import re

from tools.demo.lexicon import SLOTS, Words

# Frames per topic; {x} is a name of the thing with its article, {X} the same capitalised.
FRAMES = {
    "price": ["how much for {x}", "how much is {x}", "what does {x} cost", "what's {x} cost", "price of {x}",
              "price on {x}", "{x}, how much", "{X}. price", "{X}. how much", "{X} price", "what do you charge for {x}",
              "what do you ask for {x}", "what'd {x} cost me", "what'll {x} run me", "what's {x} going for",
              "how pricey is {x}", "is {x} dear", "how much coin for {x}", "how many silver for {x}",
              "I need {x}. what's it cost", "I'm after {x}, what's the price", "do you sell {x}? how much",
              "got {x}? price", "what's your price for {x}", "cost of {x}", "how much to buy {x}",
              "looking for {x}, how much", "I want {x}. name your price", "quote me a price on {x}",
              "what do I owe for {x}", "you sell {x}? for how much", "{X}: what's the damage",
              "how much are you asking for {x}", "what would I pay for {x}", "{X}? how much silver"],
    "hours": ["when does {x} open", "when does {x} close", "what hours does {x} keep", "is {x} open {when}",
              "till what hour is {x} open", "how late is {x} open", "when is {x} open", "when's {x} shut",
              "what time does {x} open", "is {x} still open", "how long is {x} open today", "{X}, when's it open",
              "{X}. hours", "when can I get to {x}"],
    "rumour": ["any news", "any gossip", "heard anything", "what's the talk round here", "any rumours going round",
               "what's new", "anything happening", "what's the word", "heard any tales", "what are folk saying",
               "anything interesting going on", "what's the news {way}", "anything I should know",
               "what's been going on lately", "hear anything worth knowing", "news?", "gossip?", "whats the latest"],
    "rule": ["what's the rule on {x}", "what do I need for {x}", "is {x} allowed", "can I go ahead with {x}",
             "what about {x}", "how does {x} work here", "{X}: what's needed"],
    "reward": ["is there a reward for {x}", "any bounty on {x}", "what do you pay for {x}", "what's {x} worth",
               "what's the bounty for {x}", "how much silver for {x}", "do you buy {x}", "{X}, what's it fetch"],
    "person": ["where is {x}", "where's {x}", "have you seen {x}", "is {x} around", "where did {x} go",
               "what's {x} up to", "is {x} here today", "when's {x} back", "{X} around", "any word of {x}",
               "where'd {x} get to", "{X}? where"],
    "food": ["what's cooking", "what are you serving", "what's in the pot", "what's to eat", "what's the dish today",
             "what's on the fire", "what food is there", "what's for dinner", "what's good to eat tonight"],
    "job": ["any work", "anyone hiring", "any jobs going", "know of any work", "need work, any ideas",
            "who's looking for help", "any paid work about", "where can I find work", "how do I earn some coin",
            "got any jobs", "anyone need a hand"],
}
CONTEXT = ["I've got coin.", "Long day on the road.", "I'm new in town.", "Just got paid.", "My purse is light.",
           "I'm in a hurry.", "Been walking all day.", "Don't have long.", "First time here.", "Sorry to bother you.",
           "Nice place.", "Cold out there.", "My friend sent me.", "I'm just passing through.", "Right then."]
GREET = ["Hello", "Hi", "Hey", "Evening", "Morning", "Good day", "Well met", "Oi", "Hail", "Greetings"]
SECOND = ["also", "and", "oh and", "one more thing:", "and while I'm here,"]
TWO = ["Two things: ", "Two questions: ", "A couple of things. ", ""]
UNKNOWN_FRAMES = ["{q}?", "{q}", "Say, {q}?", "Do you know {q}?", "Any idea {q}?", "{q}? just wondering"]
WRONG_ITEM = ["how much for {x}", "do you sell {x}", "got {x} for sale", "what's {x} cost", "{X}. price",
              "can I buy {x} here", "I need {x}. how much"]
FOLLOW_OTHER = ["And {x}?", "What about {x}, then?", "How about {x}?", "And for {x}?", "{X} then?", "and {x}",
                "ok and {x}?", "What of {x}?"]
FOLLOW_SAME = {
    "price": ["How much was that again?", "Sorry, how much?", "what did you say it costs", "How much, you said?",
              "So what do I owe?"],
    "hours": ["And opening time?", "And when does it close?", "What time was that?", "So when can I come?",
              "sorry, till when?"],
    "reward": ["What was the pay again?", "What does it pay?", "and how much is that?"],
    "food": ["Which kind is it?", "What kind?", "what's it made with?", "Sounds good. What is it?"],
    "rumour": ["Tell me more.", "Really? What was that?", "say that again?"],
    "job": ["Who was that again?", "who's hiring, you said?", "Tell me more about that."],
    "rule": ["What do I need again?", "So what must I bring?"],
    "person": ["Where did you say?", "Where was that again?"],
}
# A follow-up that names the other thing only by comparison, for the shipped NPCs' pairs of prices.
RELATIVE = {("brenna", "steel"): ["the better one", "the good one", "the dearer one", "the fancy one", "the other one",
                                  "the pricier one", "the proper one"],
            ("brenna", "iron"): ["the cheaper one", "the cheap one", "the plain one", "the other one", "the basic one",
                                 "the lesser one"]}
# Something a player tells before asking (the question comes after it), with the facts its words touch:
# a long line's story must not decide the answer.
STORIES = [
    ("Came down the north road last night and heard howling the whole way.", {"wolves", "tower", "lights"}),
    ("My cousin got bitten by a wolf out past the fields.", {"wolves", "bounty"}),
    ("I sold two wolf pelts at the market this morning.", {"bounty", "wolves"}),
    ("The gate was already shut when I got here yesterday.", {"gate", "writ"}),
    ("The guards gave me a hard time at the gate.", {"gate", "writ"}),
    ("I had a bowl of stew at the inn, not bad at all.", {"stew", "meal"}),
    ("Slept in a barn last night, my back is killing me.", {"room"}),
    ("My old shield finally split in two on the road.", {"shield", "repair"}),
    ("My sword snapped on a bandit's helmet.", {"iron", "steel", "repair"}),
    ("Some merchant at the square was shouting about his wagons.", {"caravan"}),
    ("People at the tavern keep whispering about the old watchtower.", {"lights", "tower"}),
    ("I saw a boy heading off toward Millbrook with a cart.", {"apprentice", "caravan"}),
    ("It's been raining for three days straight.", set()),
    ("My horse threw a shoe a mile back.", set()),
    ("I've been walking since dawn and my feet are sore.", {"hours", "gate"}),
    ("Just got paid for a week of hauling grain.", set()),
    ("My brother used to work the forge in Dunmere.", {"hours", "apprentice"}),
    ("The innkeeper says the rooms are full of traders this week.", {"room", "caravan"}),
    ("I lost my map somewhere in the Greywood.", {"wolves", "bounty"}),
    ("The captain was shouting at his men all morning.", {"gate", "writ", "tower"}),
    ("Everyone in this village seems in a hurry today.", set()),
    ("I only have a few coins left after the toll.", set()),
]


def with_story(question_text: str, asked: str, rng: random.Random) -> str:
    """One or two things the player tells first, none of them about the fact asked."""
    told = [story for story, touches in STORIES if asked not in touches]
    first = " ".join(rng.sample(told, rng.choice([1, 1, 2])))
    joined = f"{first} {rng.choice(['', 'Anyway, ', 'So ', 'Anyhow, '])}{question_text}"
    return noise(joined, rng) if rng.random() < 0.3 else joined


def follow_relative(npc: str, label: str, rng: random.Random) -> str | None:
    names = RELATIVE.get((npc, label))
    return noise(fill(rng.choice(FOLLOW_OTHER), rng, rng.choice(names)), rng) if names else None


# Data version 15: a question that names another of the NPC's things only to set it aside ("Not the steel
# one. How much for a sword?"): what is asked is the thing not set aside, wherever the other stands.
CONTRAST = ["{q} Not the {other}.", "{q} not the {other}", "Not the {other}. {q}", "{q} I don't mean the {other}.",
            "Forget the {other}. {q}", "{q} (not the {other})", "Not the {other}, mind. {q}",
            "I don't want the {other}. {q}", "{q} The {other} I don't need.", "Never mind the {other}. {q}"]


def contrast(question: str, other: str, rng: random.Random) -> str:
    """`question` with another thing, `other` (no article), set aside before or after it."""
    return rng.choice(CONTRAST).format(q=question, other=other)


# Asking an NPC to act (its actions in the profile), composed like questions.
ACTIONS = {
    "open_shop": ["show me your {x}", "let me look at your {x}", "I want to see what you've got", "what have you got for sale",
                  "what are you selling", "let's trade", "I'd like to browse your {x}", "open your shop",
                  "got anything for sale", "let me have a look at your {x}", "mind if I look at your {x}",
                  "what {x} do you have", "show me what you sell", "I'm buying. what've you got"],
    "rent_room": ["I'd like a room for the night", "can I rent a room", "I need a bed for tonight", "give me a room",
                  "I'll take a room", "book me a bed for the night", "a room for one night please", "I want to stay the night"],
    "open_gate": ["open the gate, I have a writ", "let me through, here is my writ", "I've got the reeve's writ, open up",
                  "here's my writ. open the gate", "writ from the reeve. let me pass", "I have a writ, let me out"],
}
WARES = ["wares", "goods", "stock", "weapons", "blades", "things", "swords"]

CHAT = [("you", "u"), ("your", "ur"), ("for", "4"), ("what", "wat"), ("tonight", "tonite"), ("please", "pls"),
        ("are", "r"), ("to", "2"), ("thanks", "thx"), ("okay", "ok")]


def fill(template: str, rng: random.Random, x: str = "") -> str:
    """A frame with its thing and any SLOTS filled in."""
    def slot(m: re.Match) -> str:
        name = m.group(1)
        if name == "x":
            return x
        if name == "X":
            return x[:1].upper() + x[1:]
        return rng.choice(SLOTS[name])
    return re.sub(r"\{(\w+)\}", slot, template)


def names_of(topic: str, slots: dict[str, str], words: Words) -> list[str]:
    """Every way to name a fact's thing: the lexicon's names, or its slot with an article."""
    if words.names:
        return list(words.names)
    value = next(iter(slots.values()), "")
    if not value:
        return [""]
    if topic == "price":
        article = "an" if value[0] in "aeiou" else "a"
        return [f"{article} {value}", plural(value), f"one {value}"]
    if topic == "hours":
        return [f"the {value}", f"your {value}"]
    if topic == "reward":
        return [f"a {value}", plural(value)]
    return [value]


def plural(noun: str) -> str:
    head, sep, rest = noun.partition(" of ")
    words = head.split()
    last = words[-1]
    words[-1] = last + ("es" if last.endswith(("s", "sh", "ch", "x")) else "s")
    return " ".join(words) + (sep + rest if sep else "")


def core(topic: str, slots: dict[str, str], words: Words, rng: random.Random) -> str:
    """The question itself, without context or noise."""
    if words.cues and (topic not in FRAMES or rng.random() < 0.45):
        template = rng.choice(words.cues)
    else:
        template = rng.choice(FRAMES[topic])
    return fill(template, rng, rng.choice(names_of(topic, slots, words)))


def dress(question: str, rng: random.Random, address: str | None = None) -> str:
    """Punctuation, a greeting, context around it, then noise."""
    q = question[:1].upper() + question[1:]
    if not q.endswith(("?", ".", "!")):
        q += rng.choice(["?", "?", "?", "??", "", "?!"])
    roll = rng.random()
    if roll < 0.25:
        q = f"{rng.choice(CONTEXT)} {q}"
    elif roll < 0.35:
        q = f"{q} {rng.choice(CONTEXT)}"
    if rng.random() < 0.15:
        who = f" {address}" if address and rng.random() < 0.5 else ""
        q = f"{rng.choice(GREET)}{who}{rng.choice(['! ', '. ', ', '])}{q[:1].lower() if rng.random() < 0.5 else q[:1]}{q[1:]}"
    return noise(q, rng)


def noise(text: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.55:
        return text
    if roll < 0.7:
        return text.lower()
    if roll < 0.8:
        return text.lower().replace("'", "").rstrip("?.!")
    words = text.lower().replace("'", "").split()
    swaps = dict(CHAT)
    words = [swaps.get(w, w) if rng.random() < 0.7 else w for w in words]
    if rng.random() < 0.5:  # one dropped letter in a longer word
        long = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
        if long:
            i = rng.choice(long)
            j = rng.randrange(1, len(words[i]) - 1)
            words[i] = words[i][:j] + words[i][j + 1:]
    return " ".join(words)


def question(topic: str, slots: dict[str, str], words: Words, rng: random.Random, address: str | None = None) -> str:
    return dress(core(topic, slots, words, rng), rng, address)


def two_part(first: str, second: str, rng: random.Random) -> str:
    """Two questions in one line ('what's iron cost, and when do you open?')."""
    line = f"{rng.choice(TWO)}{first}, {rng.choice(SECOND)} {second}?"
    return noise(line[:1].upper() + line[1:], rng)


def unknowable(question_text: str, rng: random.Random) -> str:
    line = rng.choice(UNKNOWN_FRAMES).replace("{q}", question_text).replace("??", "?")
    return noise(line[:1].upper() + line[1:], rng)


def wrong_item(goods: str, rng: random.Random) -> str:
    return dress(fill(rng.choice(WRONG_ITEM), rng, goods), rng)


def follow_other(name: str, rng: random.Random) -> str:
    return noise(fill(rng.choice(FOLLOW_OTHER), rng, name), rng)


def action_request(name: str, rng: random.Random) -> str:
    return dress(fill(rng.choice(ACTIONS[name]), rng, rng.choice(WARES)), rng)


def follow_same(topic: str, rng: random.Random) -> str:
    return noise(rng.choice(FOLLOW_SAME.get(topic, ["Say that again?"])), rng)
