"""Judge a candidate demo checkpoint by the rule every shipped one since the eleventh was chosen by: its
least cost on the development sets C to F (498 free-form lines) over the unsure-reply thresholds.

    .venv/bin/python -m tools.demo.judge --checkpoint .cache/run-22 --json .cache/run-22.json
    .venv/bin/python -m tools.demo.judge --replies .cache/run-22.json   # the tables again, no model needed

Cost: deflections plus "other half only" replies plus three for each wrong fact (docs/training.md: a
wrong fact stated with confidence is the worst outcome). The replies are computed once, greedy, without
unsure lines, each with its confidence (the lowest probability its reasoning chose); a threshold's rows
follow from them: a reply whose confidence is below it would have been its NPC's first unsure line (the
line a greedy reply says). One approximation: a follow-up's first turn is taken as answered, although at
a threshold it could have been unsure, which changes the history the follow-up reads (a line or so on
sets C to F). Beside them it reports development set O (tools/demo/freeform_dev_o.py, 101 follow-ups) at the
chosen threshold and without unsure replies: the threshold is chosen on C to F alone. The blind sets G onwards
are never read here: they are scored once, for a checkpoint that ships, by tools/demo/model_card.py.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

THRESHOLDS = (0.0, 0.80, 0.85, 0.88, 0.90, 0.93)


def development_sets() -> dict:
    from tools.demo import freeform_blind_c, freeform_blind_d, freeform_blind_e, freeform_blind_f

    return {"c": freeform_blind_c.LINES, "d": freeform_blind_d.LINES, "e": freeform_blind_e.LINES,
            "f": freeform_blind_f.LINES}


def follow_up_set() -> list:
    from tools.demo import freeform_dev_o

    return freeform_dev_o.LINES


def replies(model: Path) -> dict[str, list[dict]]:
    """Each development set's rows (freeform.evaluate's) with unsure replies off, set O's under "o"."""
    from tools.demo import freeform

    sets = dict(development_sets(), o=follow_up_set())
    return {name: freeform.evaluate(model, lines, min_confidence=0.0)["rows"] for name, lines in sets.items()}


def unsure_lines() -> dict[str, str]:
    """What each shipped NPC says, greedy, when it is unsure."""
    from tools.demo import dataset

    return {i: (n.unsure_lines or n.fallback_lines)[0] for i, (_, n) in dataset.shipped_npcs().items()}


def at_threshold(lines: list, rows: list[dict], floor: float, unsure: dict[str, str]) -> list[dict]:
    """The rows as they would be with unsure replies at `floor` (0: off): the same replies, but each one
    whose confidence is below it (or unknown) becomes its NPC's unsure line, scored as such."""
    from tools.demo.freeform import score

    if len(lines) != len(rows) or any(line.say != row["say"] for line, row in zip(lines, rows)):
        raise ValueError("the replies are not this set's lines, in order: judge the checkpoint again")
    out = []
    for line, row in zip(lines, rows):
        if floor > 0 and (row["confidence"] is None or row["confidence"] < floor):
            row = dict(row, answer=unsure[line.npc], score=score(line, unsure[line.npc]), unsure=True)
        out.append(row)
    return out


def tally(rows: list[dict]) -> dict:
    count = {k: sum(r["score"] == k for r in rows) for k in ("right", "wrong", "deflection", "partial")}
    return dict(count, cost=count["deflection"] + count["partial"] + 3 * count["wrong"])


def judge(sets: dict[str, list[dict]]) -> dict:
    """Every threshold's tally over sets C to F together, the least cost's threshold, and its per-set figures."""
    from tools.demo.freeform import figures

    lines, unsure = development_sets(), unsure_lines()
    table = {}
    for floor in THRESHOLDS:
        rows = [r for name in lines for r in at_threshold(lines[name], sets[name], floor, unsure)]
        table[floor] = tally(rows)
    best = min(THRESHOLDS, key=lambda f: (table[f]["cost"], f))  # a tie goes to the lower threshold
    per_set = {name: figures(at_threshold(lines[name], sets[name], best, unsure)) for name in lines}
    out = {"table": table, "best": best, "per_set": per_set}
    if "o" in sets:  # judged since set O existed
        out["o"] = {str(floor): follow_ups(at_threshold(follow_up_set(), sets["o"], floor, unsure))
                    for floor in sorted({0.0, best})}
    return out


def follow_ups(rows: list[dict]) -> dict:
    """A set's follow-ups right of all, and its wrong facts on follow-ups and on the other lines."""
    follow = [r for r in rows if r["follow_up"]]
    counted = tally(follow)
    return {"follow_ups": len(follow), "follow_ups_right": counted["right"], "follow_ups_wrong": counted["wrong"],
            "others_wrong": tally([r for r in rows if not r["follow_up"]])["wrong"]}


def print_judgement(j: dict) -> None:
    print("| min_confidence (sets C-F) | right | wrong fact | deflection | other half only | cost |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for floor, t in j["table"].items():
        mark = " (least)" if floor == j["best"] else ""
        print(f"| {floor or 'off'}{mark} | {t['right']} | {t['wrong']} | {t['deflection']} | {t['partial']} | "
              f"{t['cost']} |")
    print(f"\nat {j['best'] or 'off'}, sets C / D / E / F:")
    for key in ("right", "wrong", "partial", "deflection", "unsure", "follow_up_right", "unknown_right"):
        print(f"  {key:<16}" + " / ".join(f"{s[key]:.1%}" for s in j["per_set"].values()))
    for floor, o in j.get("o", {}).items():
        print(f"set O (development) at {float(floor) or 'off'}: {o['follow_ups_right']} of {o['follow_ups']} follow-ups "
              f"right, {o['follow_ups_wrong']} wrong facts on them and {o['others_wrong']} on its other lines")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a trained checkpoint folder (exported first)")
    source.add_argument("--replies", type=Path, help="a --json file an earlier judgement wrote")
    ap.add_argument("--model", type=Path, help="where to export --checkpoint (default: .cache/judged-<name>)")
    ap.add_argument("--json", type=Path, help="write the replies and the judgement here")
    args = ap.parse_args()
    if args.checkpoint:
        if not (args.checkpoint / "model.safetensors").is_file():
            ap.error(f"{args.checkpoint}: no model.safetensors here; name a folder tools/demo/train.py wrote")
        from tools.demo.evaluate import export_demo

        model = export_demo(args.checkpoint, args.model or Path(".cache") / f"judged-{args.checkpoint.name}")
        sets = replies(model)
    else:
        try:
            sets = json.loads(args.replies.read_text())["replies"]
        except (OSError, ValueError, KeyError) as e:
            ap.error(f"{args.replies}: not a judgement this tool wrote ({e})")
    j = judge(sets)
    print_judgement(j)
    if args.json:
        per_set = {name: {k: v for k, v in s.items() if k != "rows"} for name, s in j["per_set"].items()}
        args.json.write_text(json.dumps({"replies": sets, **j, "per_set": per_set}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
