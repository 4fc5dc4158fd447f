"""What keeping a decode step's bindings with the cache saves (runtime/session.py, _StepBinding).

    python -m tools.experiments.bench_step_bindings FOLDER [--rows 1,8] [--steps 64] [--repeats 7]

Decodes the same steps through ModelSession.step with its bindings kept (today) and made afresh for every
step (as before: the baseline, forced by forgetting the kept ones before each step), interleaved, and
prints a table of medians and the ratio. The saving is a fixed cost per layer and step, so it matters where
steps are short: small models, and GPUs (a 24-layer decode step took 3.4 ms on an H100).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from runtime.session import ModelSession, SessionOptions


def decode_ms(ms: ModelSession, rows: int, steps: int, fresh: bool) -> float:
    cache = ms.new_cache(batch=rows, length=32 + steps)
    ms.step(np.full((rows, 8), 7, dtype=np.int64), cache)
    tokens = np.full((rows, 1), 5, dtype=np.int64)
    start = time.perf_counter()
    for _ in range(steps):
        if fresh:
            cache._decode_bindings.clear()
        tokens = ms.step(tokens, cache).candidates()[1][:, :1].astype(np.int64)
    return (time.perf_counter() - start) * 1000 / steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--provider", default="auto", choices=("auto", "cuda", "cpu"))
    ap.add_argument("--rows", default="1,8")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    ms = ModelSession(args.folder, SessionOptions(provider=args.provider))
    print(f"{args.folder.name}: {ms.config.num_hidden_layers} layers on {ms.device}; ms per decode step, "
          f"median of {args.repeats} interleaved runs of {args.steps} steps")
    print("| rows | fresh bindings (before) | kept bindings | ratio |\n| ---: | ---: | ---: | ---: |")
    for rows in (int(r) for r in args.rows.split(",")):
        decode_ms(ms, rows, 8, False)  # warm-up
        fresh, kept = [], []
        for _ in range(args.repeats):
            fresh.append(decode_ms(ms, rows, args.steps, True))
            kept.append(decode_ms(ms, rows, args.steps, False))
        f, k = statistics.median(fresh), statistics.median(kept)
        print(f"| {rows} | {f:.3f} | {k:.3f} | {f / k:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
