"""Decode speed against the bandwidth floor, each sample against the read bandwidth measured just before it.

On the development VM the read bandwidth figure moves twofold between runs (docs/performance.md), so a
floor computed once and a decode rate measured minutes later say more about the VM than the runtime.
Here the two alternate in one process, round after round, and each round's share of its own floor is
reported with the median.

    .venv/bin/python -m tools.experiments.floor_share MODEL_FOLDER [--rounds 7] [--tokens 16]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=16, help="decode steps a round")
    ap.add_argument("--threads", type=int, default=None, help="reader threads (default: the CPU count)")
    args = ap.parse_args()

    import os

    from export.bench.floor import read_bandwidth
    from export.bench.worker import prompt_ids
    from export.weight_bytes import active_bytes_per_token
    from runtime.session import ModelSession, SessionOptions
    from tools.experiments.measure_model_folder import export_choice

    manifest, choice = export_choice(args.folder)
    active = active_bytes_per_token(manifest.config, choice)
    threads = args.threads or os.cpu_count() or 1
    start = time.perf_counter()
    ms = ModelSession(args.folder, SessionOptions(provider="cpu"))
    print(f"{args.folder}: {choice.label()}, {active / 1e9:.2f} GB a token; loaded in {time.perf_counter() - start:.1f} s",
          flush=True)
    cache = ms.new_cache(length=64 + args.rounds * (args.tokens + 1))
    token = ms.step(prompt_ids(32, 0, ms.config.vocab_size).reshape(1, -1), cache).candidates()[1][:, :1]
    rounds = []
    for r in range(args.rounds):
        bandwidth = read_bandwidth(threads, repeats=3)
        t = time.perf_counter()
        for _ in range(args.tokens):
            token = ms.step(token.astype(np.int64), cache).candidates()[1][:, :1]
        tok_s = args.tokens / (time.perf_counter() - t)
        floor = bandwidth / active
        rounds.append({"bandwidth_gb_s": bandwidth / 1e9, "decode_tok_s": tok_s, "floor_tok_s": floor,
                       "share": tok_s / floor})
        print(f"round {r + 1}: read {bandwidth / 1e9:5.1f} GB/s, floor {floor:5.2f} tok/s, decode {tok_s:5.2f} tok/s, "
              f"{100 * tok_s / floor:4.0f}% of the floor", flush=True)
    shares = [x["share"] for x in rounds]
    print(json.dumps({"folder": str(args.folder), "choice": choice.label(), "active_bytes_per_token": active,
                      "median_share": statistics.median(shares), "min_share": min(shares), "max_share": max(shares),
                      "median_decode_tok_s": statistics.median(x["decode_tok_s"] for x in rounds),
                      "median_bandwidth_gb_s": statistics.median(x["bandwidth_gb_s"] for x in rounds),
                      "rounds": rounds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
