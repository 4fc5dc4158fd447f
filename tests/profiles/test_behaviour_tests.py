"""Behaviour tests in profiles ([[tests]]): checked like every other key, judged on real replies, and run
by `parley test` against a real server with an exit code."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.behaviour_tests import fold, judge
from runtime.npc import BehaviourTest
from runtime.profiles import ProfileError, parse_profile

ROOT = Path(__file__).resolve().parents[2]
HEAD = 'name = "Ada"\npersona = "A tinker."\nfallback_lines = ["Hm, busy."]\n\n[[actions]]\nname = "open_shop"\n' \
       'description = "Open the shop."\n'


def done(text: str, fallback: bool = False, actions=()) -> dict:
    return {"text": text, "stats": {"fallback_used": fallback}, "actions": [{"name": a, "args": {}} for a in actions]}


def test_cases_parse_with_their_defaults_and_lines(tmp_path):
    path = tmp_path / "ada.toml"
    path.write_text(HEAD + '\n[[tests]]\nsay = "Price?"\nexpect = ["40 silver"]\n\n[[tests]]\nsay = "Open up."\n'
                           'action = "open_shop"\nruns = 3\npass_rate = 1.0\nstate = { time = "night" }\n')
    first, second = parse_profile(path).tests
    assert (first.say, first.expect, first.runs, first.pass_rate, first.allow_fallback) == \
        ("Price?", ("40 silver",), 5, 0.8, False)
    assert (second.action, second.runs, second.state, second.line) == ("open_shop", 3, (("time", "night"),), 13)


def test_a_broken_case_names_its_line_and_what_is_allowed(tmp_path):
    path = tmp_path / "ada.toml"
    path.write_text(HEAD + '\n[[tests]]\nsay = "Fine."\nruns = 2\n\n[[tests]]\nsay = "Dance!"\naction = "dance"\n\n'
                           '[[tests]]\nsay = "Hi"\nruns = 0\nspeling = 1\n')  # runs: fine in the first case, not the third
    with pytest.raises(ProfileError) as caught:
        parse_profile(path)
    found = {(p.key, p.line): p.message for p in caught.value.problems}
    assert "not one of this NPC's actions (open_shop)" in found[("tests.action", 15)]
    assert "1 to 100" in found[("tests.runs", 19)]
    assert "unknown key" in found[("tests.speling", 20)]


def test_a_case_whose_game_state_the_server_would_refuse_is_a_profile_problem(tmp_path):
    """An outside review: a state of more than 2000 characters passed lint, then every run was `too_large`."""
    path = tmp_path / "ada.toml"
    path.write_text(HEAD + f'\n[[tests]]\nsay = "Hi"\nstate = {{ weather = "{"r" * 1995}" }}\n')
    with pytest.raises(ProfileError) as caught:
        parse_profile(path)
    (problem,) = caught.value.problems
    assert problem.key == "tests.state" and "2000 characters" in problem.message
    path.write_text(HEAD + f'\n[[tests]]\nsay = "Hi"\nstate = {{ weather = "{"r" * 1990}" }}\n')
    assert parse_profile(path).tests[0].state == (("weather", "r" * 1990),)


def test_a_reply_is_judged_by_what_it_says_and_does():
    case = BehaviourTest(say="Price?", expect=("40 silver", "forty"), reject=("90",), action="open_shop")
    assert judge(case, done("Forty SILVER, traveller.", actions=["open_shop"])) is None  # case aside
    assert "none of" in judge(case, done("Fifty.", actions=["open_shop"]))
    assert "said '90'" in judge(case, done("40 silver, or 90 for steel.", actions=["open_shop"]))
    assert "did not take the action" in judge(case, done("40 silver."))
    assert "fallback" in judge(case, done("Hm, busy.", fallback=True))
    assert judge(BehaviourTest(say="x", allow_fallback=True), done("Hm, busy.", fallback=True)) is None
    # allowed, a fallback line passes a case that expects words it does not hold (an outside review: it failed)
    assert judge(BehaviourTest(say="Price?", expect=("40 silver",), allow_fallback=True),
                 done("Hm, busy.", fallback=True)) is None
    assert fold("  Crème   BRÛLÉE ") == "creme brulee"


def test_parley_test_passes_and_fails_with_its_exit_code(tiny_model, tmp_path):
    """On a random tiny model: a case any reply passes, and one no reply can pass."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "ada.toml").write_text(HEAD + '\n[budget]\nmax_reasoning_tokens = 4\nmax_final_tokens = 8\nexpected_final_tokens = 4\n'
                                            '\n[[tests]]\nsay = "Hello"\nallow_fallback = true\nruns = 2\n')
    command = [sys.executable, "-m", "runtime.cli", "test", str(folder), "--model", str(tiny_model)]
    run = subprocess.run(command + ["--json", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "1 of 1 case(s) passed" in run.stdout, run.stdout + run.stderr
    assert json.loads((tmp_path / "r.json").read_text())[0]["passed"] == 2
    with (folder / "ada.toml").open("a") as f:
        f.write('\n[[tests]]\nsay = "What is the secret word?"\nexpect = ["xylophone-zebra"]\nruns = 2\n')
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "FAIL  ada" in run.stdout, run.stdout + run.stderr
    assert "said none of ['xylophone-zebra']" in run.stdout or "fell back" in run.stdout
    assert "1 of 2 case(s) passed" in run.stdout


def test_parley_test_needs_a_model_or_an_endpoint(tmp_path):
    run = subprocess.run([sys.executable, "-m", "runtime.cli", "test", str(ROOT / "npc_profiles")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "--model" in run.stderr
