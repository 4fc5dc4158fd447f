"""What the demo NPCs know, as question/answer material for synthetic training data.

Each fact has a topic (which question templates ask about it), slots for the templates, the sentence
that goes into the profile's knowledge list, and the key phrase a correct answer must contain.
The three shipped NPCs' facts mirror npc_profiles/*.toml (a test checks that they agree).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from tools.demo import lexicon


@dataclass(frozen=True)
class Fact:
    topic: str  # price, hours, rumour, reward, rule, person
    slots: dict[str, str]  # e.g. {"item": "iron sword"}
    sentence: str  # as written in the profile's knowledge
    key: str  # what a correct final answer must contain, e.g. "40 silver"
    label: str = ""  # a shipped fact's name in tools/demo/lexicon.py and tools/demo/freeform.py


@dataclass(frozen=True)
class DemoNpc:
    id: str
    name: str
    persona: str
    style: str
    address: str  # how the NPC addresses the player
    greeting: str
    farewell: str
    refusal: str  # to insults and off-topic questions
    facts: tuple[Fact, ...]
    sample_lines: tuple[str, ...] = ()
    effort: str = "low"
    actions: tuple[tuple[str, str], ...] = field(default=())


def price(item: str, amount: int, sentence: str | None = None, label: str = "") -> Fact:
    return Fact("price", {"item": item}, sentence or f"A {item} costs {amount} silver.", f"{amount} silver", label)


SHIPPED = (
    DemoNpc(
        id="brenna", name="Brenna Ironhand", address="traveller", effort="low",
        persona="The blacksmith of Ashford, a village at the edge of the Greywood.",
        style="Short, plain sentences. Calls strangers 'traveller'.",
        greeting="Welcome to my forge, traveller.", farewell="Safe roads, traveller.",
        refusal="I make swords, traveller, not conversation.",
        facts=(price("iron sword", 40, "An iron sword costs 40 silver; a steel sword costs 90 silver.", "iron"),
               price("steel sword", 90, "An iron sword costs 40 silver; a steel sword costs 90 silver.", "steel"),
               Fact("price", {"item": "shield"}, "A shield costs 25 silver; repairs cost 5 silver.", "25 silver", "shield"),
               Fact("price", {"item": "repair"}, "A shield costs 25 silver; repairs cost 5 silver.", "5 silver", "repair"),
               Fact("hours", {"place": "forge"}, "The forge is open from dawn until the evening bell.",
                    "evening bell", "hours"),
               Fact("rumour", {}, "Wolves have been seen on the north road after dark.", "wolves", "wolves"),
               Fact("person", {"person": "Tomas"}, "Her apprentice Tomas is away buying ore in Millbrook.",
                    "Millbrook", "apprentice")),
    ),
    DemoNpc(
        id="aldric", name="Captain Aldric", address="citizen", effort="medium",
        persona="Captain of the Ashford watch, keeper of the north gate.",
        style="Formal and clipped, like a soldier giving a report. Addresses people as 'citizen'.",
        greeting="State your business, citizen.", farewell="Keep the peace, citizen.",
        refusal="Mind your tongue, citizen. I have a gate to watch.",
        facts=(Fact("hours", {"place": "gate"}, "The north gate closes at sunset and opens at dawn.", "sunset", "gate"),
               Fact("rule", {"thing": "passing the gate after dark"},
                    "Travellers need a writ from the reeve to pass after dark.", "writ", "writ"),
               Fact("reward", {"thing": "wolf pelt"},
                    "A reward of 50 silver is offered for every wolf pelt from the Greywood.", "50 silver",
                    "bounty"),
               Fact("rumour", {}, "The old watchtower on the north road was abandoned last winter.",
                    "watchtower", "tower")),
    ),
    DemoNpc(
        id="marta", name="Marta Fairweather", address="love", effort="low",
        persona="Innkeeper of the Sleeping Stag, the only inn in Ashford.",
        style="Chatty and warm; calls people 'love' or 'dear'.",
        greeting="Come in out of the cold, love!", farewell="Mind how you go, love.",
        refusal="Now now, dear, none of that in my inn.",
        facts=(Fact("price", {"item": "room"}, "A room for the night costs 8 silver; a hot meal costs 2 silver.",
                    "8 silver", "room"),
               Fact("price", {"item": "meal"}, "A room for the night costs 8 silver; a hot meal costs 2 silver.",
                    "2 silver", "meal"),
               Fact("food", {}, "The stew today is mutton and barley.", "mutton", "stew"),
               Fact("rumour", {}, "Rumour says lights were seen in the abandoned watchtower on the north road.",
                    "lights", "lights"),
               Fact("job", {}, "A merchant from Millbrook is looking for guards for his caravan.", "caravan",
                    "caravan")),
    ),
)

# ---- question templates: (train, held-out) ----------------------------------------------------

QUESTIONS = {
    "price": (["How much for a {item}?", "What does a {item} cost?", "What's the price of a {item}?",
               "How much is a {item}?", "I need a {item}. How much?", "Tell me the price of a {item}.",
               "what do you charge for a {item}", "Price of a {item}?", "How many coins for a {item}?",
               "Is a {item} expensive?"],
              ["What would a {item} set me back?", "How much do you want for a {item}?",
               "Could you tell me what a {item} costs?", "i want to buy a {item}, how much"]),
    "hours": (["When is the {place} open?", "What are the hours of the {place}?", "When does the {place} close?",
               "Is the {place} open late?", "Until when is the {place} open?"],
              ["What time does the {place} shut?", "How late can I come to the {place}?"]),
    "rumour": (["Any rumours?", "Heard any news?", "What's the gossip?", "Anything strange happening?",
                "What's new around here?", "Tell me a rumour."],
               ["Have you heard anything interesting lately?", "What are people talking about?"]),
    "rule": (["What about {thing}?", "What do I need for {thing}?", "Tell me the rule for {thing}.",
              "Is {thing} allowed?"],
             ["What is required for {thing}?", "Can I go ahead with {thing}?"]),
    "reward": (["Is there a reward for a {thing}?", "What do you pay for a {thing}?",
                "How much is a {thing} worth to the watch?", "Any bounty on a {thing}?"],
               ["What would the watch give me for a {thing}?", "Do you reward a {thing}?"]),
    "person": (["Where is {person}?", "Have you seen {person}?", "What is {person} doing?",
                "Is {person} around?"],
               ["Where has {person} gone?", "Any news of {person}?"]),
    "food": (["What's the stew today?", "What's for dinner?", "What food do you have?", "What's cooking?"],
             ["What's on the menu tonight?", "Anything good to eat?"]),
    "job": (["Is there any work?", "Anyone hiring?", "Do you know of any jobs?", "I need work."],
            ["Know anyone who needs a sword arm?", "Any way to earn some coin?"]),
}
# The second held-out set: fresh when the v2 checkpoint was trained (it scored 82.8% on it); its misses
# then guided the grammar again, so it is a development set now, like QUESTIONS[...][1].
DEV2_QUESTIONS = {
    "price": ["What's the going rate for a {item}?", "How much would you ask for a {item}?",
              "Got a {item}? What's it cost me?", "What's your price on a {item}?"],
    "hours": ["When do you shut the {place} for the night?", "Is the {place} still open this evening?",
              "What time is the {place} open till?", "When's closing time at the {place}?"],
    "rumour": ["What's the latest news?", "Heard any strange stories?", "Anything going on in the village?",
               "What's everyone whispering about?"],
    "rule": ["What's needed for {thing}?", "Do I need anything for {thing}?", "Is there a rule on {thing}?",
             "Can you explain {thing}?"],
    "reward": ["Will the watch pay for a {thing}?", "What's a {thing} worth to you?", "Is there coin in a {thing}?",
               "Do you give anything for a {thing}?"],
    "person": ["Where's {person} got to?", "Seen {person} lately?", "Is {person} about today?",
               "Where can I find {person}?"],
    "food": ["What are you cooking today?", "What's good to eat here?", "Is there any food tonight?",
             "What's the dish of the day?"],
    "job": ["Is anyone looking for help?", "Got any work for me?", "Where could I earn some silver?",
            "Anyone need an extra hand?"],
}
# The test sets: phrasings never in the training data and never used to shape it. The third set was
# written before this checkpoint's training run; the fourth after it, before the model was ever run
# on it (87.5% and 95.3%). If a test set's misses ever guide the grammar, it becomes a development set
# (like DEV2) and a fresh test set must be written before the next training run.
TEST3_QUESTIONS = {
    "price": ["What do you want for a {item}?", "How much are you selling a {item} for?",
              "What's a {item} going to cost me?", "Tell me, what's the price on a {item}?"],
    "hours": ["When does the {place} open and close?", "How late does the {place} stay open?",
              "Will the {place} still be open tonight?", "What hours is the {place} open?"],
    "rumour": ["Heard any rumours lately?", "What's the news around here?", "Anything odd been happening?",
               "Any gossip worth hearing?"],
    "rule": ["What are the rules for {thing}?", "What would I need for {thing}?", "Is {thing} permitted?",
             "How do I go about {thing}?"],
    "reward": ["Is there a bounty for a {thing}?", "What's the reward for a {thing}?",
               "How much will you pay for a {thing}?", "Does the watch buy a {thing}?"],
    "person": ["Where is {person} these days?", "Do you know where {person} went?", "What's {person} up to?",
               "Has {person} gone somewhere?"],
    "food": ["What's for supper?", "What can I eat here?", "What are you serving tonight?",
             "Got anything hot to eat?"],
    "job": ["Is there any work around here?", "Does anyone need help?", "Any jobs going?",
            "How can I make some money?"],
}
TEST4_QUESTIONS = {
    "price": ["How much would a {item} be?", "What are you charging for a {item}?",
              "How much will a {item} cost me?", "What's the price for a {item} today?"],
    "hours": ["When do you open the {place}?", "Is the {place} open in the evening?",
              "How long does the {place} stay open today?", "What time does the {place} close tonight?"],
    "rumour": ["What's the word on the street?", "Any interesting rumours?", "Hear anything unusual?",
               "What's the news in town?"],
    "rule": ["What's the rule about {thing}?", "What do I need to know about {thing}?",
             "Are there any rules for {thing}?", "Tell me what {thing} requires."],
    "reward": ["How much is the bounty on a {thing}?", "What do I get for a {thing}?", "Would a {thing} earn me anything?",
               "Will you pay me for a {thing}?"],
    "person": ["Is {person} in town?", "Where has {person} been?", "Have you heard from {person}?",
               "Why isn't {person} here?"],
    "food": ["What's to eat tonight?", "What have you got cooking?", "What's the food like today?",
             "What can I get for dinner?"],
    "job": ["Do you know anyone who's hiring?", "Is there work to be found here?", "Any paying jobs around?",
            "I'm looking for work. Any ideas?"],
}
# Every held-out question set by name, per topic: evaluation asks these, and training data excludes
# all of them (one list, so a new set cannot be evaluated without also being held out).
HELD_OUT_SETS = {"dev": lambda topic: QUESTIONS[topic][1] + DEV2_QUESTIONS[topic],
                 "test3": lambda topic: TEST3_QUESTIONS[topic], "test4": lambda topic: TEST4_QUESTIONS[topic]}
GREETINGS = ["Hello!", "Good morning.", "Hi there.", "Greetings.", "Hey.", "Good evening!"]
FAREWELLS = ["Goodbye.", "Farewell.", "See you later.", "I must be going.", "Bye!"]
INSULTS = ["You're useless.", "What a dump.", "Hurry up, fool.", "Nobody likes you."]
OFF_TOPIC = ["What's the capital of France?", "Can you write me a poem about the sea?",
             "What is two plus two?", "Tell me about quantum physics."]

# pools for training-only NPCs, so the model learns to read facts from the developer message
FIRST = ["Ada", "Bram", "Cora", "Dunstan", "Elsie", "Finn", "Greta", "Hugo", "Ivy", "Jory", "Kira", "Lorcan",
         "Mabel", "Ned", "Orla", "Piers", "Quill", "Rosa", "Silas", "Tilda", "Ulric", "Vera", "Wynn", "Yara"]
TRADES = [("baker", ["loaf of bread", "honey cake", "meat pie"]), ("fletcher", ["bow", "quiver", "bundle of arrows"]),
          ("tailor", ["cloak", "pair of boots", "wool hat"]), ("alchemist", ["healing potion", "antidote", "candle"]),
          ("fisher", ["salted fish", "fishing net", "eel"]), ("carpenter", ["chair", "wooden chest", "stool"]),
          ("herbalist", ["bundle of sage", "sleeping draught", "poultice"])]
PLACES = ["shop", "stall", "workshop", "market"]
TIMES = ["noon", "midnight", "the second bell", "dusk", "the harvest moon"]
JOBS = [("A farmer at Oakfield needs hands for the harvest.", "harvest"),
        ("The miller pays a silver a day for hauling sacks.", "sacks"),
        ("The temple wants someone to clear the rats from its cellar.", "rats"),
        ("A trapper is looking for a partner for the winter.", "trapper")]
KIN = ["sister", "son", "daughter", "brother", "partner"]
AWAY = [("gone to the fair at Dunmere", "Dunmere"), ("away hunting in the hills", "hunting"),
        ("visiting family in Oakfield", "Oakfield"), ("sick in bed with a fever", "fever")]
STYLES = [("Speaks slowly and kindly.", "friend", "Hello, friend.", "Take care, friend."),
          ("Brisk and businesslike.", "customer", "What'll it be, customer?", "Next customer!"),
          ("Cheerful and loud.", "pal", "Ho there, pal!", "See you, pal!")]


def random_npc(rng: random.Random, index: int) -> DemoNpc:
    first = rng.choice(FIRST)
    trade, items = rng.choice(TRADES)
    place = rng.choice(PLACES)
    style, address, greeting, farewell = rng.choice(STYLES)
    facts = [price(item, rng.randint(2, 99)) for item in rng.sample(items, 2)]
    close = rng.choice(TIMES)
    facts.append(Fact("hours", {"place": place}, f"The {place} is open until {close}.", close))
    rumour, key, _ = rng.choice(lexicon.RUMOURS)
    facts.append(Fact("rumour", {}, rumour, key))
    if rng.random() < 0.4:
        job, key = rng.choice(JOBS)
        facts.append(Fact("job", {}, job, key))
    if rng.random() < 0.4:
        kin, name = rng.choice(KIN), rng.choice(FIRST)
        where, key = rng.choice(AWAY)
        facts.append(Fact("person", {"person": name}, f"Their {kin} {name} is {where}.", key))
    rng.shuffle(facts)
    return DemoNpc(id=f"train-{index}", name=f"{first} the {trade.title()}",
                   persona=f"The {trade} of a small village.", style=style, address=address, greeting=greeting,
                   farewell=farewell, refusal=f"I'm a {trade}, {address}, not a scholar.", facts=tuple(facts),
                   effort=rng.choice(["low", "low", "medium", "high"]))


# A profile that never appears in training: the honest test of reading facts from the prompt.
UNSEEN = DemoNpc(
    id="oswin", name="Oswin the Cooper", address="friend", effort="low",
    persona="The cooper of Ashford, who makes barrels and buckets.", style="Speaks slowly and kindly.",
    greeting="Hello, friend.", farewell="Take care, friend.", refusal="I'm a cooper, friend, not a scholar.",
    facts=(price("barrel", 12), price("bucket", 3),
           Fact("hours", {"place": "workshop"}, "The workshop is open until dusk.", "dusk"),
           Fact("rumour", {}, "The bridge at Fenwick has washed away.", "bridge")),
)
