"""The training path end to end, on the CPU in seconds: a tiny random gpt-oss knows nothing of three
facts; `parley dataset` renders a small dialogue file, `parley finetune` trains a LoRA adapter on it,
`parley export --lora` takes the adapter unchanged, and `parley test` then passes the facts' cases it
failed before."""
from __future__ import annotations

import subprocess
import sys

FACTS = [("What is the password?", "The password is zebra.", "zebra"),
         ("Who guards the bridge?", "A troll guards the bridge.", "troll"),
         ("Where is the key?", "The key is under the mat.", "under the mat")]
PROFILE = '''name = "Keeper"
persona = "Keeps the bridge."
fallback_lines = ["Hm."]

[budget]
deadline_ms = 60000
max_reasoning_tokens = 16
max_final_tokens = 40
expected_final_tokens = 8

[sampling]
temperature = 0.0
'''


def parley(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], capture_output=True, text=True, timeout=600)


def test_a_tiny_model_learns_new_facts_and_passes_their_behaviour_tests(tiny_checkpoint, tiny_model, tmp_path):
    profiles = tmp_path / "profiles"
    (profiles / "dialogues").mkdir(parents=True)
    (profiles / "keeper.toml").write_text(PROFILE + "".join(
        f'\n[[tests]]\nsay = "{say}"\nexpect = ["{key}"]\nruns = 1\npass_rate = 1.0\n' for say, _, key in FACTS))
    (profiles / "dialogues" / "keeper.toml").write_text("".join(
        f'[[examples]]\nsay = "{say}"\nreply = "{reply}"\n\n' for say, reply, _ in FACTS))

    before = parley("test", str(profiles), "--model", str(tiny_model))
    assert before.returncode == 1 and "0 of 3 case(s) passed" in before.stdout, before.stdout + before.stderr

    data = tmp_path / "train.jsonl"
    run = parley("dataset", str(profiles), "--tokenizer", str(tiny_checkpoint), "--out", str(data))
    assert run.returncode == 0 and "3 example(s)" in run.stdout, run.stdout + run.stderr
    adapter = tmp_path / "adapter"
    run = parley("finetune", str(tiny_checkpoint), "--data", str(data), "--out", str(adapter), "--steps", "60",
                 "--lr", "1e-2", "--batch-size", "3")
    assert run.returncode == 0 and (adapter / "adapter_config.json").is_file(), run.stdout + run.stderr
    losses = [float(line.split("loss")[1]) for line in run.stdout.splitlines() if "  loss " in line]
    assert len(losses) >= 3 and losses[-1] < losses[0] / 4  # it printed its loss as it went, and learned
    model = tmp_path / "tuned"
    run = parley("export", str(tiny_checkpoint), str(model), "--lora", str(adapter), "--max-context", "1024")
    assert run.returncode == 0 and "verification PASSED" in run.stdout, run.stdout + run.stderr

    after = parley("test", str(profiles), "--model", str(model))
    assert after.returncode == 0 and "3 of 3 case(s) passed" in after.stdout, after.stdout + after.stderr
