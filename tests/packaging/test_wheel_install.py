"""The package installs: the wheel, installed (not editable) into a fresh virtual environment with its
declared dependencies and run from outside the checkout, gives a working `parley` (tools/check_wheel_install.sh
says what it runs)."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_wheel_serves_answers_and_exports_outside_the_checkout(tiny_model, tiny_checkpoint):
    done = subprocess.run(["bash", str(ROOT / "tools" / "check_wheel_install.sh"), str(tiny_model),
                           str(tiny_checkpoint)],
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "wheel install check passed" in done.stdout
    for command in ("parley lint profiles", "parley test profiles", "parley keys keys", "parley inspect", "parley export --help",
                    "parley bench --help", "parley demo", "parley say brenna", "parley chat brenna",
                    "parley export", "parley inspect exported", "python -c import sys, urllib"):
        assert f"ok: {command}" in done.stdout, command
