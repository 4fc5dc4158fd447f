"""A development set for choosing the demo model's size and learning rate: player lines for the shipped NPCs
from the training generator with another seed, minus every line the training data holds.

It measures how well a model learned the generator's language (in distribution); tools/demo/freeform.py
measures what it is for, players' own lines. Sweeps choose on this set so the free-form sets stay unused.
"""
from __future__ import annotations

import random

from tools.demo import dataset, lexicon, player_talk
from tools.demo.freeform import Line


def dev_lines(n: int = 150, seed: int = 12345, training_examples: int = 12000, version: int = 2) -> list[Line]:
    """version: the data generator's, 2 as the recorded sweep (tools/demo/sweep.json) ran."""
    rng = random.Random(seed)
    shipped = list(dataset.shipped_npcs().values())
    training = {dataset.normal(ex.say) for ex in dataset.make_examples(training_examples, seed=0, version=version)}
    lines: list[Line] = []
    while len(lines) < n:
        d, npc = rng.choice(shipped)
        roll = rng.random()
        if roll < 0.12:
            earlier, text, _, fact = dataset.follow_up(d, npc, rng, version)
            line = Line(d.id, text, fact.label, before=earlier.say)
        elif roll < 0.24:
            line = Line(d.id, player_talk.unknowable(rng.choice(lexicon.UNKNOWABLE_DEV), rng), None)
        else:
            fact = rng.choice(d.facts)
            line = Line(d.id, player_talk.question(fact.topic, fact.slots, dataset.words_for(d, fact), rng, d.address),
                        fact.label)
        said = dataset.normal(line.say)
        if said not in training and said not in dataset.FREE_FORM and (line.before or "") not in {l.say for l in lines}:
            lines.append(line)
    return lines
