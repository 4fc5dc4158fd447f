"""Judging a candidate demo checkpoint on sets C to F at every unsure-reply threshold (tools/demo/judge.py),
from replies computed once without unsure lines."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tools.demo.freeform import FACTS, score
from tools.demo.judge import THRESHOLDS, at_threshold, development_sets, judge, unsure_lines

ROOT = Path(__file__).resolve().parents[2]


def answered(line, right: bool = True) -> str:
    """A reply stating the line's fact (right) or another of its NPC's facts (wrong)."""
    facts = FACTS[line.npc]
    key = line.fact if right and line.fact else next(k for k in facts if k != line.fact and k not in line.also)
    return f"That would be {facts[key][0]}."


def row(line, answer: str, confidence: float | None) -> dict:
    return {"npc": line.npc, "say": line.say, "fact": line.fact, "follow_up": bool(line.before), "answer": answer,
            "score": score(line, answer), "confidence": confidence, "unsure": False}


def all_right(confidence: float = 0.99) -> dict[str, list[dict]]:
    return {name: [row(line, answered(line) if line.fact else "No idea, friend.", confidence) for line in lines]
            for name, lines in development_sets().items()}


def test_a_reply_below_the_threshold_becomes_its_npcs_unsure_line_scored_as_such():
    lines = development_sets()["c"]
    known = next(line for line in lines if line.fact and not line.before)
    unknowable = next(line for line in lines if line.fact is None and not line.before)
    rows = [row(known, answered(known), 0.7), row(unknowable, answered(unknowable, right=False), 0.5)]
    assert [r["score"] for r in rows] == ["right", "wrong"]
    off = at_threshold([known, unknowable], rows, 0.0, unsure_lines())
    assert [r["score"] for r in off] == ["right", "wrong"] and not any(r["unsure"] for r in off)
    held = at_threshold([known, unknowable], rows, 0.8, unsure_lines())
    # the right fact was unsure: a deflection now; the wrong one to a question it cannot answer: honest now
    assert [r["score"] for r in held] == ["deflection", "right"] and all(r["unsure"] for r in held)
    assert held[0]["answer"] == unsure_lines()[known.npc]
    assert [r["score"] for r in at_threshold([known], [row(known, answered(known), None)], 0.8,
                                               unsure_lines())] == ["deflection"]  # nothing to judge: unsure


def test_the_least_cost_counts_a_wrong_fact_as_three_deflections_and_a_tie_goes_to_the_lower_threshold():
    sets = all_right()
    j = judge(sets)
    assert j["best"] == 0.0 and all(t["cost"] == 0 for t in j["table"].values())
    c = development_sets()["c"]
    i = next(k for k, line in enumerate(c) if line.fact and not line.also)
    sets["c"][i] = row(c[i], answered(c[i], right=False), 0.82)  # a wrong fact, fairly sure of itself
    j = judge(sets)
    assert j["table"][0.0]["wrong"] == 1 and j["table"][0.0]["cost"] == 3
    assert j["table"][0.80]["cost"] == 3 and j["table"][0.85] == {"right": j["table"][0.0]["right"], "wrong": 0,
                                                                    "deflection": 1, "partial": 0, "cost": 1}
    assert j["best"] == 0.85 and set(j["table"]) == set(THRESHOLDS)
    assert j["per_set"]["c"]["unsure"] == round(1 / len(c), 3) and j["per_set"]["d"]["right"] == 1.0


def test_replies_that_are_not_the_sets_lines_are_refused():
    sets = all_right()
    sets["d"] = sets["d"][1:]
    try:
        judge(sets)
    except ValueError as e:
        assert "judge the checkpoint again" in str(e)
    else:
        raise AssertionError("a shortened set was judged")


def test_the_command_judges_again_from_saved_replies_and_names_a_file_it_cannot_read(tmp_path):
    saved = tmp_path / "judged.json"
    saved.write_text(json.dumps({"replies": all_right(0.86)}))
    run = subprocess.run([sys.executable, "-m", "tools.demo.judge", "--replies", str(saved)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "| off (least) | 498 | 0 | 0 | 0 | 0 |" in run.stdout
    assert "| 0.88 | " in run.stdout and "| 0.88 | 498 | 0 |" not in run.stdout  # 0.86 < 0.88: all unsure
    saved.write_text("{not json")
    bad = subprocess.run([sys.executable, "-m", "tools.demo.judge", "--replies", str(saved)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and f"{saved}: not a judgement this tool wrote" in bad.stderr


def test_set_o_is_reported_at_the_threshold_chosen_on_c_to_f_and_never_moves_it():
    from tools.demo.judge import follow_up_set

    sets = all_right(0.99)
    o = follow_up_set()
    sets["o"] = [row(line, answered(line) if line.fact else "No idea, friend.", 0.99) for line in o]
    i = next(k for k, line in enumerate(o) if line.before and line.fact and not line.also)
    sets["o"][i] = row(o[i], answered(o[i], right=False), 0.5)  # a wrong follow-up, unsure of itself
    alone = judge({k: v for k, v in sets.items() if k != "o"})
    j = judge(sets)
    assert j["best"] == alone["best"] == 0.0 and j["table"] == alone["table"] and "o" not in alone
    follow = sum(bool(line.before) for line in o)
    assert follow > 80 and j["o"] == {"0.0": {"follow_ups": follow, "follow_ups_right": follow - 1,
                                              "follow_ups_wrong": 1, "others_wrong": 0}}
    c = development_sets()["c"]
    k = next(n for n, line in enumerate(c) if line.fact and not line.also)
    sets["c"][k] = row(c[k], answered(c[k], right=False), 0.82)  # C to F now choose 0.85
    j = judge(sets)
    assert j["best"] == 0.85
    assert j["o"]["0.85"] == {"follow_ups": follow, "follow_ups_right": follow - 1, "follow_ups_wrong": 0,
                              "others_wrong": 0}  # the wrong one is an unsure line there
