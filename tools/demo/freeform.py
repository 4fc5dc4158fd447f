"""The demo NPCs' honest yardstick: player lines as players write them, kept apart from every generator.

    .venv/bin/python -m tools.demo.freeform [--model .cache/demo-model] [--json results.json]

Written once, by hand, before any retraining on them, and never used to shape the training data (a test
checks that no line, normalized, occurs in it): short and long lines, slang and typos, context clauses,
questions buried in longer sentences, synonyms (blade, bed, pelt, fix), two-part questions, follow-ups
that need the session's history, and questions about what the NPC does not know. Each reply is scored
right (it states the fact asked for), wrong (it states another of the NPC's facts in its place: the
worst outcome, a wrong fact said with confidence), or a deflection (neither: an honest "I don't know",
a greeting, a refusal). For a question the NPC cannot answer, a deflection is right and any fact wrong.
"""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

# Each NPC's facts as the words a right answer contains (any one of them).
FACTS = {
    "brenna": {"iron": ["40", "forty"], "steel": ["90", "ninety"], "shield": ["25", "twenty-five", "twenty five"],
               "repair": ["5 silver", "five silver"], "hours": ["dawn", "evening bell"],
               "wolves": ["wolf", "wolves"], "apprentice": ["tomas", "millbrook"]},
    "aldric": {"gate": ["sunset"], "writ": ["writ"], "bounty": ["50", "fifty"], "tower": ["abandoned"]},
    "marta": {"room": ["8 silver", "eight silver"], "meal": ["2 silver", "two silver"], "stew": ["mutton", "barley"],
              "lights": ["lights"], "caravan": ["caravan", "merchant"]},
}
UNKNOWN = None  # a question the NPC has no fact for


@dataclass(frozen=True)
class Line:
    npc: str
    say: str
    fact: str | None  # the FACTS key a right answer states; UNKNOWN: none
    before: str | None = None  # an earlier line in the same session (a follow-up needs it)
    also: tuple[str, ...] = ()  # the other facts a two-part line asks for (`fact` is the first asked)


LINES = [
    # ---- brenna, the blacksmith -----------------------------------------------------------------------
    Line("brenna", "Steel sword. Price?", "steel"),
    Line("brenna", "how much 4 a iron sword", "iron"),
    Line("brenna", "I've got coin. What does an iron blade cost?", "iron"),
    Line("brenna", "My old blade snapped on the road. What would a new iron one set me back?", "iron"),
    Line("brenna", "whats the price on steel swords these days", "steel"),
    Line("brenna", "Got any steel? How much?", "steel"),
    Line("brenna", "I need something that won't break. What's steel going for?", "steel"),
    Line("brenna", "How pricey are your iron swords?", "iron"),
    Line("brenna", "Shield. How much?", "shield"),
    Line("brenna", "Wolves tore up my last shield. What does a new one cost?", "shield"),
    Line("brenna", "do u sell shields and for how much", "shield"),
    Line("brenna", "My shield is dented. What's a fix going to run me?", "repair"),
    Line("brenna", "Can you mend my sword? What do you charge?", "repair"),
    Line("brenna", "How much do you ask to repair armour?", "repair"),
    Line("brenna", "When do you open up in the morning?", "hours"),
    Line("brenna", "Are you still working tonight or do I come back tomorrow?", "hours"),
    Line("brenna", "till what hour is ur forge hot", "hours"),
    Line("brenna", "I'm heading north tonight. Anything I should worry about?", "wolves"),
    Line("brenna", "Is the north road safe after dark?", "wolves"),
    Line("brenna", "Heard anything about the roads lately?", "wolves"),
    Line("brenna", "Where's your apprentice got to?", "apprentice"),
    Line("brenna", "Is the boy who works for you around?", "apprentice"),
    Line("brenna", "Tomas around today or what?", "apprentice"),
    Line("brenna", "And a steel one?", "steel", before="I was eyeing an iron sword. Cost?"),
    Line("brenna", "What about a shield, then?", "shield", before="Say, what do you want for steel swords?"),
    Line("brenna", "Who rules these lands?", UNKNOWN),
    Line("brenna", "Do you sell horses?", UNKNOWN),
    Line("brenna", "What's the capital city called?", UNKNOWN),
    Line("brenna", "Can you teach me to fight?", UNKNOWN),
    Line("brenna", "Good day! I'm new here. How much for a sword of iron?", "iron"),
    Line("brenna", "Two things: what's iron cost, and are you open tomorrow at dawn?", "iron", also=("hours",)),
    Line("brenna", "ey smith, irn swrd price??", "iron"),
    Line("brenna", "Price check on one steel longsword please", "steel"),
    Line("brenna", "I'd like to buy a blade of good steel. Name your price.", "steel"),
    # ---- aldric, the gate guard -------------------------------------------------------------------------
    Line("aldric", "Till when can I get back in through the gate?", "gate"),
    Line("aldric", "what time u close the gate", "gate"),
    Line("aldric", "I have business outside. How long is the north gate open today?", "gate"),
    Line("aldric", "If I come back late, will the gate still be open?", "gate"),
    Line("aldric", "Suppose I have to leave town at night, what paperwork do I need?", "writ"),
    Line("aldric", "Can I get out after dark?", "writ"),
    Line("aldric", "What do I need to pass through at night?", "writ"),
    Line("aldric", "who do i ask for a night pass", "writ"),
    Line("aldric", "Is there someone in town who pays for wolf pelts?", "bounty"),
    Line("aldric", "How much is a wolf pelt worth to the town?", "bounty"),
    Line("aldric", "I killed three wolves. What do I get for the pelts?", "bounty"),
    Line("aldric", "any bounty on wolfs", "bounty"),
    Line("aldric", "Is the town paying for wolf hides?", "bounty"),
    Line("aldric", "What's the story with that old tower on the north road?", "tower"),
    Line("aldric", "Does anyone still man the watchtower?", "tower"),
    Line("aldric", "Is the watchtower garrisoned?", "tower"),
    Line("aldric", "And when does it open again?", "gate", before="When does the north gate close?"),
    Line("aldric", "How much per pelt, you said?", "bounty", before="Is there a reward for wolves?"),
    Line("aldric", "How many guards serve the town?", UNKNOWN),
    Line("aldric", "Where can I buy a horse?", UNKNOWN),
    Line("aldric", "What's the reeve's name?", UNKNOWN),
    Line("aldric", "Who built the town walls?", UNKNOWN),
    Line("aldric", "Evening, guard. Quick one: when's the gate close?", "gate"),
    Line("aldric", "I'm a hunter from the south. Does the town reward wolf pelts, and how much?", "bounty"),
    Line("aldric", "gate closes when??", "gate"),
    Line("aldric", "Is the old watchtower abandoned or is someone up there?", "tower"),
    Line("aldric", "I must ride out tonight on urgent business. Will you let me through?", "writ"),
    Line("aldric", "What's the pay for a pelt?", "bounty"),
    # ---- marta, the innkeeper ---------------------------------------------------------------------------
    Line("marta", "Is there someone in town who needs guards?", "caravan"),
    Line("marta", "Any work going for a sellsword?", "caravan"),
    Line("marta", "im broke, know anyone hiring?", "caravan"),
    Line("marta", "Heard of any jobs guarding wagons?", "caravan"),
    Line("marta", "How much for a bed tonight?", "room"),
    Line("marta", "wat do u charge for a room lol", "room"),
    Line("marta", "I've walked all day. Got a bed, and what's the price?", "room"),
    Line("marta", "Need a place to sleep. How much?", "room"),
    Line("marta", "Can I rent a room for one night? Price?", "room"),
    Line("marta", "How much is a hot meal?", "meal"),
    Line("marta", "What's it cost to eat here?", "meal"),
    Line("marta", "I'm starving, how much for food?", "meal"),
    Line("marta", "What's cooking today?", "stew"),
    Line("marta", "smells good! whats bubbling in that pot", "stew"),
    Line("marta", "What kind of stew have you got?", "stew"),
    Line("marta", "Any gossip?", "lights"),
    Line("marta", "Heard anything strange about the old watchtower?", "lights"),
    Line("marta", "What are people whispering about?", "lights"),
    Line("marta", "What's the talk of the tavern tonight?", "lights"),
    Line("marta", "And a meal?", "meal", before="Long day. A room, what will it cost me?"),
    Line("marta", "What's in it?", "stew", before="What stew are you serving tonight?"),
    Line("marta", "Who owns this inn?", UNKNOWN),
    Line("marta", "Do you have wine from the south?", UNKNOWN),
    Line("marta", "How far is it to the sea?", UNKNOWN),
    Line("marta", "Can you change gold coins?", UNKNOWN),
    Line("marta", "Evening Marta! Long road behind me. How much for a room?", "room"),
    Line("marta", "two questions: price of a room, and what's the stew", "room", also=("stew",)),
    Line("marta", "rm 4 tonite how much", "room"),
    Line("marta", "My friend is a guard looking for work. Anyone hiring?", "caravan"),
    Line("marta", "Is that merchant from Millbrook still looking for people?", "caravan"),
    Line("marta", "Meal price?", "meal"),
    Line("marta", "Tell me what's for supper.", "stew"),
    Line("marta", "Anything odd going on up north?", "lights"),
    Line("marta", "I'm bored. What's the latest rumour?", "lights"),
    Line("brenna", "Gotta fix my sword, how much?", "repair"),
    Line("brenna", "Is the forge open this evening?", "hours"),
    Line("aldric", "Can I walk through the gate after sunset?", "writ"),
    Line("aldric", "What's the bounty on a Greywood wolf?", "bounty"),
    Line("marta", "What's the price of a night's lodging?", "room"),
    Line("marta", "Where can a fighter find paid work around here?", "caravan"),
    Line("brenna", "what u charge for a shield", "shield"),
    Line("aldric", "Who keeps the old tower now?", "tower"),
]


def words_in(text: str, words: list[str]) -> bool:
    t = text.lower()
    return any(re.search(rf"(?<![\w]){re.escape(w)}(?![\w])", t) for w in words)


def score(line: Line, answer: str) -> str:
    """right, wrong, partial or deflection. Partial: a two-part line answered only on its other question,
    with true facts the player asked for; neither right (the first question went unanswered) nor a wrong fact."""
    facts = FACTS[line.npc]
    stated = {key for key, words in facts.items() if words_in(answer, words)}
    if line.fact is not UNKNOWN and line.fact in stated:
        return "right"
    if stated and stated <= set(line.also):
        return "partial"
    if line.fact is UNKNOWN:
        return "wrong" if stated else "right"
    return "wrong" if stated else "deflection"


def evaluate(model: Path, lines: list[Line] | None = None, min_confidence: float | None = None) -> dict:
    """Greedy replies to `lines` (set A by default) with the shipped profiles; `min_confidence` replaces
    theirs (0: no unsure replies)."""
    import dataclasses

    from runtime.engine import Engine, ReplyRequest
    from runtime.sampler import GREEDY
    from tools.demo import dataset

    npcs = {i: n if min_confidence is None else dataclasses.replace(n, min_confidence=min_confidence)
            for i, (_, n) in dataset.shipped_npcs().items()}
    engine = Engine(model, npcs)
    rows = []
    for i, line in enumerate(LINES if lines is None else lines):
        session = f"freeform-{i}" if line.before else None
        if line.before:
            list(engine.reply(ReplyRequest(npc=line.npc, text=line.before, session_id=session, sampling=GREEDY,
                                            deadline_ms=60_000)))
        result = list(engine.reply(ReplyRequest(npc=line.npc, text=line.say, session_id=session, sampling=GREEDY,
                                                  deadline_ms=60_000)))[-1]
        rows.append({"npc": line.npc, "say": line.say, "fact": line.fact, "follow_up": bool(line.before),
                     "answer": result.text, "score": score(line, result.text),
                     "confidence": result.stats.confidence, "unsure": result.stats.finish_reason == "unsure"})
    return figures(rows)


def figures(rows: list[dict]) -> dict:
    """A set's shares from its scored rows (evaluate's, or rows re-scored at another threshold)."""
    def share(selected: list[dict], what: str) -> float:
        return round(sum(r["score"] == what for r in selected) / len(selected), 3) if selected else 0.0
    known = [r for r in rows if r["fact"] is not None]
    return {"n": len(rows), "right": share(rows, "right"), "wrong": share(rows, "wrong"),
            "deflection": share(rows, "deflection"), "partial": share(rows, "partial"),
            "known_right": share(known, "right"),
            "follow_up_right": share([r for r in rows if r["follow_up"]], "right"),
            "unknown_right": share([r for r in rows if r["fact"] is None], "right"),
            "unsure": round(sum(r["unsure"] for r in rows) / len(rows), 3) if rows else 0.0, "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path(".cache/demo-model"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    report = evaluate(args.model)
    for r in report["rows"]:
        print(f"{r['score']:<10} {r['npc']:<7} {r['say'][:60]!r:<64} -> {r['answer'][:70]!r}")
    print(f"\n{report['n']} lines: right {report['right']:.1%}, wrong fact {report['wrong']:.1%}, the other half of a "
          f"two-part line only {report['partial']:.1%}, deflection {report['deflection']:.1%}; facts asked {report['known_right']:.1%} right; follow-ups "
          f"{report['follow_up_right']:.1%}; unknowable questions answered honestly {report['unknown_right']:.1%}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
