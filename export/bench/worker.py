"""The loop every benchmarked system runs in its own process (so its peak memory is its own).

The orchestrator writes one JSON command per line on stdin ({"op": "ttft", "args": {...}}) and reads one
JSON answer per line ({"value": ..., "peak_rss_mb": ...}). Only the standard library and numpy: this
file also runs inside the peer virtual environment, which has no Parley installed.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np

# Prompt tokens are drawn above this id: the benchmark tokenizer's merges and the harmony special
# tokens all sit below it, so every system sees plain, identical text tokens.
FIRST_PLAIN_ID = 1000


def prompt_ids(n: int, seed: int, vocab_size: int) -> np.ndarray:
    """The same n token ids for every system, given the same seed (tiny test vocabularies: any id)."""
    low = FIRST_PLAIN_ID if vocab_size > 2 * FIRST_PLAIN_ID else 0
    return np.random.default_rng(seed).integers(low, vocab_size, size=n, dtype=np.int64)


def peak_rss_mb() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries that over from the
    parent across fork and exec, so every worker would report the orchestrator's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # no /proc (Windows, macOS): the table shows no memory figure
        pass
    return float("nan")


def serve(system) -> None:
    """Answer commands until stdin closes. Anything a library prints goes to stderr, not the answers."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    answers.write(json.dumps({"ready": True, "peak_rss_mb": peak_rss_mb()}) + "\n")
    answers.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            value = getattr(system, cmd["op"])(**cmd.get("args", {}))
            answer = {"value": value, "peak_rss_mb": peak_rss_mb()}
        except Exception as exc:  # report it; the orchestrator decides what a failed op means
            traceback.print_exc()
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
