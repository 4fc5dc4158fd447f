"""The shipped demo model: its data matches the profiles and the engine, and its NPCs state the right facts."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path


from runtime.engine import Engine, ReplyRequest
from runtime.harmony import Turn
from runtime.profiles import parse_profile
from runtime.sampler import GREEDY
from runtime import dialogues
from tools.demo import dataset
from tools.demo.evaluate import evaluate
from tools.demo.facts import SHIPPED

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "tools" / "demo" / "checkpoint"


def test_training_facts_are_the_shipped_profiles_knowledge():
    for d in SHIPPED:
        npc = parse_profile(ROOT / "npc_profiles" / f"{d.id}.toml")
        for fact in d.facts:
            assert fact.sentence in npc.knowledge, (d.id, fact.sentence)
            assert fact.key.lower() in fact.sentence.lower()


def test_no_held_out_question_occurs_in_the_training_data():
    held_out = {q.lower().rstrip("?.!") for q in dataset.HELD_OUT}
    lines = [ex.user.lower() for ex in dataset.make_examples(3000, seed=0)]
    assert len(held_out) > 150 and lines
    assert not [(q, line) for line in lines for q in held_out if q in line]


def test_a_question_that_sets_a_thing_aside_is_answered_with_the_other_from_data_version_15():
    from tools.demo import player_talk

    def set_aside(version: int) -> list:
        frames = [re.compile("^" + re.escape(frame).replace(re.escape("{q}"), ".+")
                             .replace(re.escape("{other}"), "(.+?)") + "$") for frame in player_talk.CONTRAST]
        out = []
        for ex in dataset.make_examples(4000, seed=3, version=version):
            if ex.history or ex.key is None:
                continue
            for frame in frames:
                m = frame.match(ex.say)
                if m:
                    out.append((ex, m.group(1)))
                    break
        return out
    found = set_aside(15)
    assert len(found) > len(set_aside(14)) + 20  # people's lines set things aside now and then before
    for ex, other in found:
        # the reasoning names what is asked for and the reply states its fact, never the thing set aside
        asked = ex.reply.analysis.split(" I know:")[0].lower()
        assert ex.key in ex.reply.final and other.lower() not in asked + ex.reply.final.lower(), (ex.say, ex.reply)


def test_training_prompts_are_exactly_what_the_engine_sends(demo_model):
    shipped = dataset.shipped_npcs()
    engine = Engine(demo_model, {i: n for i, (_, n) in shipped.items()})
    engine.import_session("brenna", "p", [Turn("Player: Hello!", "Welcome to my forge, traveller.")])
    history = (dialogues.Turn("Hello!", "Welcome to my forge, traveller."),)
    example = dataset.Example(shipped["brenna"][1], history, "Any rumours?", dataset.Reply("", ""), None)
    result = list(engine.reply(ReplyRequest(npc="brenna", text="Any rumours?", session_id="p", sampling=GREEDY)))[-1]
    served = engine.store.get("brenna", "p").tokens[: result.stats.prompt_tokens]
    assert dataset.prompt_ids(engine.tok, example) == served


# The demo model's promise: the shipped NPCs state the right fact on >= 90% of held-out template phrasings
# (the two test sets; MODEL_CARD.md has the shipped checkpoint's figure), with greedy decoding, which is
# deterministic on the CPU provider.
TARGET = 0.9


def test_shipped_npcs_state_the_right_fact_on_held_out_phrasings(demo_model):
    report = evaluate(demo_model)
    shipped = report["shipped"]
    misses = [(r["question"], r["answer"]) for r in shipped["rows"] if not r["correct"]]
    assert shipped["n"] == 128
    assert shipped["final_channel_rate"] == 1.0  # always the final channel, reasoning never shown
    assert shipped["accuracy"] >= TARGET, misses


def test_the_demo_command_holds_conversations_and_stops_the_server(tmp_path):
    env = {**os.environ, "PARLEY_DEMO_MODEL": str(tmp_path / "model")}
    result = subprocess.run([sys.executable, "-m", "tools.demo.run"], capture_output=True, text=True, timeout=600,
                            cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("[first token") == 8 and "server stopped cleanly" in out
    assert "Brenna Ironhand" in out and "Captain Aldric" in out and "Marta Fairweather" in out
    assert "They ask about" not in out and "I know:" not in out  # the reasoning stays hidden


def test_parley_test_gates_the_shipped_npcs(demo_model, tmp_path):
    """The demo NPCs' own behaviour tests ([[tests]] in npc_profiles/) pass on the shipped model: the
    gate a studio runs in its CI, here run the same way."""
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "runtime.cli", "test", str(ROOT / "npc_profiles"), "--model",
                          str(demo_model), "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(out.read_text())
    assert len(results) >= 10 and all(r["ok"] and r["runs"] == 5 for r in results)
    assert {r["npc"] for r in results} == {"aldric", "brenna", "marta"}


def test_no_free_form_line_occurs_in_the_training_data():
    """The free-form yardsticks (tools/demo/freeform.py, freeform_blind.py, _c.py to _k.py) stay apart from
    every generator: none of their lines, normalized, is a line the training data holds."""
    from tools.demo import freeform

    norm = dataset.normal
    examples = []
    log = json.loads((CHECKPOINT / "training_log.json").read_text())  # the shipped checkpoint's own data
    while log:  # and that of every run it continued
        seed = int(re.search(r"--seed (\d+)", log["command"]).group(1))
        examples += dataset.make_examples(log["examples"], seed=seed, version=log.get("data_version", 1))
        log = log.get("continued_from")
    training = {norm(ex.say) for ex in examples} | \
        {norm(t.say) for ex in examples for t in ex.history}
    from tools.demo import (freeform_blind, freeform_blind_c, freeform_blind_d, freeform_blind_e, freeform_blind_f,
                            freeform_blind_g, freeform_blind_h, freeform_blind_i, freeform_blind_j,
                            freeform_blind_k, freeform_blind_l, freeform_blind_m, freeform_blind_n)

    each = (freeform.LINES, freeform_blind.LINES, freeform_blind_c.LINES, freeform_blind_d.LINES,
            freeform_blind_e.LINES, freeform_blind_f.LINES, freeform_blind_g.LINES, freeform_blind_h.LINES,
            freeform_blind_i.LINES, freeform_blind_j.LINES, freeform_blind_k.LINES, freeform_blind_l.LINES,
            freeform_blind_m.LINES, freeform_blind_n.LINES)
    sets = [line for lines in each for line in lines]
    # the generator keeps out exactly these, and lines withdrawn from scoring (a shipped run's data held them)
    assert sets + freeform_blind_g.WITHDRAWN == list(dataset.YARDSTICKS)
    lines = {norm(line.say) for line in sets} | {norm(line.before) for line in sets if line.before}
    assert min(len(s) for s in each) >= 100
    assert len(training) > 500
    assert lines.isdisjoint(training), sorted(lines & training)


# The shipped checkpoint and profiles (unsure replies at min_confidence 0.80) on a fixed third of sets A, B
# and C (MODEL_CARD.md has the full figures; development sets, so that no failure prints a blind set's
# replies): greedy decoding is deterministic on the CPU provider, so these floors hold it to what it measured.
FREE_FORM_SUBSET_RIGHT = 0.95  # measured 95.3% (102 of 107; the checkpoint before: 97.2%, 104)
FREE_FORM_SUBSET_WRONG = 0.0  # measured 0.0% (none of 107; the checkpoint before: 0.9%, 1)


def test_the_demo_npcs_answer_players_own_words_on_a_fixed_free_form_subset(demo_model):
    from tools.demo import freeform, freeform_blind, freeform_blind_c

    lines = freeform.LINES[::3] + freeform_blind.LINES[::3] + freeform_blind_c.LINES[::3]
    report = freeform.evaluate(demo_model, lines)
    misses = [(r["say"], r["answer"]) for r in report["rows"] if r["score"] != "right"]
    assert report["n"] == 107
    assert report["right"] >= FREE_FORM_SUBSET_RIGHT, misses
    assert report["wrong"] <= FREE_FORM_SUBSET_WRONG, misses


def test_the_free_form_scorer_counts_a_wrong_fact_worse_than_a_deflection():
    from tools.demo.freeform import Line, score

    iron = Line("brenna", "Iron sword price?", "iron")
    assert score(iron, "Forty silver, traveller.") == "right"
    assert score(iron, "90 silver for a steel sword.") == "wrong"  # a fact, but the wrong one
    assert score(iron, "Welcome to my forge.") == "deflection"
    assert score(iron, "That'll be 140 silver.") == "deflection"  # 40 only as a whole number
    unknown = Line("brenna", "Who rules these lands?", None)
    assert score(unknown, "I couldn't say, traveller.") == "right"
    assert score(unknown, "Wolves have been seen on the north road.") == "wrong"


def test_a_two_part_line_answered_only_on_its_other_question_is_partial_not_a_wrong_fact():
    from tools.demo.freeform import Line, score

    both = Line("brenna", "How much is a shield, and do you fix armour as well?", "shield", also=("repair",))
    assert score(both, "25 silver for a shield, and 5 silver for a repair.") == "right"
    assert score(both, "5 silver for a repair, traveller.") == "partial"  # true, and asked for
    assert score(both, "5 silver for a repair, and a steel sword is 90.") == "wrong"  # steel was not asked
    assert score(both, "Couldn't tell you.") == "deflection"
    unknown_first = Line("brenna", "Do you sell axes, and when do you open?", None, also=("hours",))
    assert score(unknown_first, "Open from dawn, traveller.") == "partial"
    assert score(unknown_first, "No axes here, traveller.") == "right"
    assert score(unknown_first, "Forty silver.") == "wrong"
