"""Many ways to ask the same thing: a small grammar of openers, cores (with synonyms) and closers.

Training questions come from here so the model keys on what is asked about (the item, the place,
rumours...) rather than on a handful of memorised sentences. The held-out evaluation phrasings in
facts.QUESTIONS[...][1] are excluded verbatim.
"""
from __future__ import annotations

import random

OPENERS = ["", "", "", "Tell me, ", "Say, ", "Hey, ", "Excuse me, ", "Quick question: ", "Friend, ", "Well, ",
           "I was wondering, ", "Listen, "]
CLOSERS = ["?", "?", "?", " please?", "? I'm in a hurry.", "?!", " then?", "? Just curious."]

CORES = {
    "price": ["how much for a {item}", "what does a {item} cost", "what's the price of a {item}",
              "how much is a {item}", "what do you charge for a {item}", "how many coins for a {item}",
              "what would you sell a {item} for", "how much does a {item} go for", "what do I pay for a {item}",
              "is a {item} expensive", "how pricey is a {item}", "what's a {item} cost these days",
              "name your price for a {item}", "I'd like to buy a {item}, what's it cost",
              "how much silver for a {item}", "what's the cost of a {item}", "could I afford a {item}",
              "what are you asking for a {item}", "I need a {item}, how much", "price for a {item}"],
    "hours": ["when is the {place} open", "what are the hours of the {place}", "when does the {place} close",
              "what time does the {place} shut", "when does the {place} shut", "what time do you close the {place}",
              "is the {place} open late", "until when is the {place} open", "when do you close the {place}",
              "what hours does the {place} keep", "when does the {place} open", "how long is the {place} open",
              "is the {place} open now", "when can I visit the {place}", "at what time does the {place} close",
              "when is the {place} closed", "till what hour is the {place} open"],
    "rumour": ["any rumours", "heard any news", "what's the gossip", "anything strange happening",
               "what's new around here", "tell me a rumour", "any news from the road", "what's the talk of the town",
               "heard anything odd", "anything I should know about", "any tales going around",
               "what are people saying", "what's everyone talking about", "what are folk gossiping about",
               "what's the word in the village", "know any gossip", "anything unusual lately", "any news",
               "what's the latest", "what's the latest word", "any fresh news", "what's going on",
               "anything going on", "what's happening in town", "anything happening around the village",
               "what's the whisper", "what are folk whispering", "heard any whispers", "heard any stories",
               "any strange tales", "know any stories", "what have you heard", "heard anything new",
               "what's the buzz", "what's the talk at the tavern", "anything interesting happen",
               "what news is there", "what's stirring out there"],
    "rule": ["what about {thing}", "what do I need for {thing}", "tell me the rule for {thing}", "is {thing} allowed",
             "what's required for {thing}", "how does {thing} work", "any rules about {thing}",
             "what are the rules on {thing}", "am I permitted {thing}"],
    "reward": ["is there a reward for a {thing}", "what do you pay for a {thing}", "how much is a {thing} worth",
               "any bounty on a {thing}", "what's the bounty for a {thing}", "do you pay for a {thing}",
               "how much silver for a {thing}", "what's a {thing} fetch", "is a {thing} worth anything to you"],
    "person": ["where is {person}", "have you seen {person}", "what is {person} doing", "is {person} around",
               "where did {person} go", "what happened to {person}", "is {person} here", "when is {person} back",
               "do you know where {person} is"],
    "food": ["what's the stew today", "what's for dinner", "what food do you have", "what's cooking",
             "what are you serving", "is there anything to eat", "what's in the pot", "what's the meal tonight",
             "can I get some food", "what's on the fire", "what's today's dish", "what's the special",
             "what's the meal of the day", "anything to eat", "what can I get to eat", "I'm hungry, what have you got",
             "what's good tonight", "what's on the table", "is the kitchen serving", "what are you making"],
    "job": ["is there any work", "anyone hiring", "do you know of any jobs", "I need work", "any work going",
            "who's looking for help", "any jobs for a traveller", "know of paying work", "anyone need a hand",
            "how can I earn some coin", "anyone need a sword arm", "any way to make money here",
            "where can I find work", "how can I earn some silver", "how do I make some coin", "any odd jobs",
            "anyone need help", "got any work", "is there paid work", "who pays for help", "any tasks going",
            "anybody looking for hands", "where's the work"],
}
# Indirect questions ("Could you tell me what a sword costs?"): an opener that asks, then a clause.
ASKING = ["Could you tell me ", "Can you tell me ", "Do you know ", "Mind telling me ", "I'd like to know ",
          "Would you tell me ", "Tell me "]
CLAUSES = {
    "price": ["what a {item} costs", "how much a {item} is", "what you charge for a {item}",
              "what you'd want for a {item}", "the price of a {item}", "what I'd pay for a {item}"],
    "hours": ["when the {place} closes", "when the {place} shuts", "how late the {place} is open",
              "what time the {place} opens", "the hours of the {place}", "when the {place} is open"],
    "rumour": ["what people are saying", "what folk are talking about", "if there's any news", "what the gossip is",
               "any rumours you've heard", "what's been happening", "the latest news", "what's going on",
               "what folk are whispering", "any stories you've heard"],
    "rule": ["what I need for {thing}", "what the rule is for {thing}", "how {thing} works"],
    "reward": ["what a {thing} is worth", "if there's a reward for a {thing}", "what you pay for a {thing}"],
    "person": ["where {person} is", "what {person} is up to", "when {person} will be back"],
    "food": ["what's cooking", "what you're serving", "what there is to eat", "what today's dish is",
             "what's on offer to eat"],
    "job": ["if anyone's hiring", "where I could find work", "how to earn some coin", "who needs help",
            "where to earn some silver", "if there's work to be had"],
}
INSULTS = ["you're useless", "what a dump", "hurry up, fool", "nobody likes you", "you smell", "this place is a pigsty",
           "you're a fraud", "you're slow as a snail", "what an idiot", "get lost"]
OFF_TOPIC = ["what's the capital of France", "can you write me a poem about the sea", "what is two plus two",
             "tell me about quantum physics", "who won the election", "what's the square root of nine",
             "can you code in Python", "what is the meaning of life", "tell me about the stock market"]
GREETINGS = ["hello", "good morning", "hi there", "greetings", "hey", "good evening", "well met", "howdy",
             "good day to you", "hail"]
FAREWELLS = ["goodbye", "farewell", "see you later", "I must be going", "bye", "until next time", "take care",
             "I'll be off now"]


def ask(core: str, rng: random.Random, **slots: str) -> str:
    """One surface form of a question: opener + core + closer, sometimes lower-cased or without punctuation."""
    text = core.format(**slots)
    opener = rng.choice(OPENERS)
    text = opener + (text if opener else text[0].upper() + text[1:])
    closer = rng.choice(CLOSERS)
    roll = rng.random()
    if roll < 0.1:
        return text.lower()
    if roll < 0.15:
        return text + "..."
    return text + closer


def indirect(topic: str, rng: random.Random, **slots: str) -> str:
    return rng.choice(ASKING) + rng.choice(CLAUSES[topic]).format(**slots) + rng.choice(["?", "?", ".", " please?"])


def phrase(topic: str, rng: random.Random, excluded: set[str], fix=lambda t: t, **slots: str) -> str:
    """A training phrasing that contains none of the excluded (held-out) questions, in any letter case
    or punctuation."""
    banned = [held.lower().rstrip("?.!") for held in excluded]
    while True:
        text = fix(indirect(topic, rng, **slots) if rng.random() < 0.3 else ask(rng.choice(CORES[topic]), rng, **slots))
        if not any(held in text.lower() for held in banned):
            return text


def chitchat(pool: list[str], rng: random.Random) -> str:
    return ask(rng.choice(pool), rng).replace("??", "?")
