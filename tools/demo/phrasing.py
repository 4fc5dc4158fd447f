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
              "is the {place} open late", "until when is the {place} open", "when do you close the {place}",
              "what hours does the {place} keep", "when does the {place} open", "how long is the {place} open",
              "is the {place} open now", "when can I visit the {place}", "at what time does the {place} close",
              "when is the {place} closed", "till what hour is the {place} open"],
    "rumour": ["any rumours", "heard any news", "what's the gossip", "anything strange happening",
               "what's new around here", "tell me a rumour", "any news from the road", "what's the talk of the town",
               "heard anything odd", "anything I should know about", "any tales going around",
               "what's the word in the village", "know any gossip", "anything unusual lately", "any news"],
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
             "can I get some food", "what's on the fire"],
    "job": ["is there any work", "anyone hiring", "do you know of any jobs", "I need work", "any work going",
            "who's looking for help", "any jobs for a traveller", "know of paying work", "anyone need a hand",
            "where can I find work"],
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


def phrase(topic: str, rng: random.Random, excluded: set[str], **slots: str) -> str:
    for _ in range(20):
        text = ask(rng.choice(CORES[topic]), rng, **slots)
        if text not in excluded:
            return text
    return text


def chitchat(pool: list[str], rng: random.Random) -> str:
    return ask(rng.choice(pool), rng).replace("??", "?")
