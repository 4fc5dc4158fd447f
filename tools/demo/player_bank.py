"""Player lines written by people (tools/demo/player_lines/*.json), for the shipped NPCs' training data.

The composer (tools/demo/player_talk.py) knows only the words its authors thought of; a blind test set
showed the model missing plain lines worded unlike any of them ("need something to hide behind when the
arrows start flying"). So outside writers who read only npc_profiles/ (never the generator or a test
set) wrote lines for each fact, each NPC's unanswerable questions, follow-ups and two-part questions.
The generator draws from them, adds typos now and then, and asks one NPC another's questions (the
right answer then is "I don't know", never the nearest fact of its own).

A bank file: {"brenna": {"iron": [...], ..., "unknown": [...]}, ..., "follow_ups": [{"npc", "before", "say",
"fact"}], "two_part": [{"npc", "say", "facts": [a, b]}]}; fact keys are tools/demo/facts.py's labels.
"""
from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "player_lines"

# Another NPC's facts that this NPC must not simply disown: they overlap one of its own (the watchtower
# is both Aldric's news and Marta's rumour; wolves are Brenna's danger and Aldric's bounty; a paid job
# may be Aldric's bounty or Marta's caravan; leaving after dark touches Brenna's wolves).
OVERLAPS = {"brenna": {"bounty", "writ", "tower", "lights", "caravan"},
            "aldric": {"wolves", "lights", "caravan", "hours"},
            "marta": {"tower", "bounty", "wolves", "hours"}}


# A follow-up's earlier line names its own fact in one of these words (its answer is trained on too, so
# a row whose earlier line names none of them, or several, is left out).
EARLIER_WORDS = {"iron": ["iron"], "steel": ["steel"], "shield": ["shield", "buckler"],
                 "repair": ["repair", "fix", "mend"], "hours": ["open", "close", "hours", "shut"],
                 "wolves": ["wolf", "wolves", "road", "safe"], "apprentice": ["tomas", "apprentice", "lad", "boy"],
                 "gate": ["gate"], "writ": ["writ", "pass", "permit"], "bounty": ["bounty", "pelt", "reward"],
                 "tower": ["tower"], "room": ["room", "bed"], "meal": ["meal", "dinner", "food", "eat"],
                 "stew": ["stew", "cooking"], "lights": ["rumour", "news", "gossip", "lights"],
                 "caravan": ["work", "job", "caravan", "guard"]}


def earlier_fact(npc_labels: set[str], before: str) -> str | None:
    words = set("".join(c if c.isalnum() else " " for c in before.lower()).split())
    named = [label for label in npc_labels
             if any(w in words or w + "s" in words for w in EARLIER_WORDS.get(label, []))]
    return named[0] if len(named) == 1 else None


@dataclass(frozen=True)
class Bank:
    facts: dict[tuple[str, str], tuple[str, ...]]  # (npc, fact label) -> lines
    unknown: dict[str, tuple[str, ...]]  # npc -> questions it cannot answer
    follow_ups: tuple[tuple[str, str, str, str, str], ...]  # (npc, before, say, fact, the before line's fact)
    two_part: tuple[tuple[str, str, str, str], ...]  # (npc, say, first fact, second fact)

    def cross(self, npc: str) -> list[str]:
        """Other NPCs' fact questions this one cannot answer."""
        return [line for (other, label), lines in self.facts.items()
                if other != npc and label not in OVERLAPS.get(npc, ()) for line in lines]


def _check(path: Path, data: dict, labels: dict[str, set[str]]) -> None:
    for npc, keys in labels.items():
        for key in data.get(npc, {}):
            if key != "unknown" and key not in keys:
                raise ValueError(f"{path}: {npc} has no fact {key!r} (facts: {sorted(keys)})")
    for row in data.get("follow_ups", []):
        if row["fact"] not in labels.get(row["npc"], ()):
            raise ValueError(f"{path}: follow-up {row['say']!r}: {row['npc']} has no fact {row['fact']!r}")
    for row in data.get("two_part", []):
        if len(row["facts"]) != 2 or not set(row["facts"]) <= labels.get(row["npc"], set()):
            raise ValueError(f"{path}: two-part {row['say']!r}: facts {row['facts']} are not two of {row['npc']}'s")


# A bank written for a later data version joins from that version on (others from version 3), so the
# earlier versions' data, and the checkpoints trained on it, regenerate byte for byte.
FROM_VERSION = {"bank_3a.json": 5, "bank_3b.json": 5, "bank_4a.json": 6, "bank_4b.json": 6, "bank_4c.json": 6,
                "bank_5a.json": 13, "bank_5b.json": 13, "bank_5c.json": 13}


@functools.lru_cache(maxsize=None)
def load(folder: Path = FOLDER, version: int = 4) -> Bank:
    """The banks a data version draws from."""
    from tools.demo.facts import SHIPPED

    labels = {d.id: {f.label for f in d.facts} for d in SHIPPED}
    facts: dict[tuple[str, str], list[str]] = {}
    unknown: dict[str, list[str]] = {}
    follow, two = [], []
    for path in sorted(folder.glob("*.json")):
        if FROM_VERSION.get(path.name, 3) > version:
            continue
        data = json.loads(path.read_text())
        _check(path, data, labels)
        for npc in labels:
            for key, lines in data.get(npc, {}).items():
                target = unknown.setdefault(npc, []) if key == "unknown" else facts.setdefault((npc, key), [])
                target.extend(line.strip() for line in lines if line.strip())
        for r in data.get("follow_ups", []):
            first = earlier_fact(labels[r["npc"]], r["before"])
            if first:
                follow.append((r["npc"], r["before"].strip(), r["say"].strip(), r["fact"], first))
        two += [(r["npc"], r["say"].strip(), *r["facts"]) for r in data.get("two_part", [])]
    return Bank({k: tuple(v) for k, v in facts.items()}, {k: tuple(v) for k, v in unknown.items()},
                tuple(follow), tuple(two))


def typos(text: str, rng: random.Random, rate: float = 0.25) -> str:
    """A fast typist's slips: in some longer words a letter dropped, doubled or swapped with the next,
    or the vowels left out."""
    words = text.split(" ")
    for i, w in enumerate(words):
        if len(w) < 4 or not w.isalpha() or rng.random() >= rate:
            continue
        j = rng.randrange(1, len(w) - 1)
        kind = rng.randrange(4)
        if kind == 0:
            w = w[:j] + w[j + 1:]
        elif kind == 1:
            w = w[:j] + w[j] + w[j:]
        elif kind == 2:
            w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        else:
            w = w[0] + "".join(c for c in w[1:] if c.lower() not in "aeiou")
        words[i] = w
    return " ".join(words)
