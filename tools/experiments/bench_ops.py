"""Which ONNX op set runs gpt-oss faster? contrib (GQA + MoE fused ops) vs standard opset-21 ops.

Exports the standard benchmark checkpoint (export/synthetic.py's BENCH_SHAPE, random weights, fixed seed) both ways,
then times prompt steps and decode steps on the same session options, interleaving the two graphs
and reporting medians and ratios.

    .venv/bin/python -m tools.experiments.bench_ops [--repeats 5] [--threads N] [--cache .cache/bench]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from export.exporter import ExportOptions, export_model
from export.synthetic import BENCH_SHAPE, make_random_checkpoint
from runtime.session import ModelSession, SessionOptions

OP_SETS = ("contrib", "standard")


def prepare(cache: Path) -> dict[str, Path]:
    ckpt = cache / "bench-checkpoint"
    if not (ckpt / "config.json").is_file():
        print("generating the benchmark checkpoint ...", flush=True)
        make_random_checkpoint(ckpt, BENCH_SHAPE, seed=0)
    folders = {}
    for ops in OP_SETS:
        folders[ops] = cache / f"bench-{ops}"
        if not (folders[ops] / "manifest.json").is_file():
            print(f"exporting ({ops} ops) ...", flush=True)
            export_model(ckpt, folders[ops], ExportOptions(op_set=ops, max_context=1024, force=True))
    return folders


def time_prompt(session: ModelSession, n: int, rng) -> float:
    ids = rng.integers(0, session.config.vocab_size, size=(1, n))
    cache = session.new_cache(length=n + 1)
    start = time.perf_counter()
    session.run(ids, cache)
    return (time.perf_counter() - start) * 1000


def time_decode(session: ModelSession, prompt: int, steps: int, rng) -> float:
    cache = session.new_cache(length=prompt + steps + 1)
    logits = session.run(rng.integers(0, session.config.vocab_size, size=(1, prompt)), cache)
    start = time.perf_counter()
    for _ in range(steps):
        logits = session.run(np.array([[int(logits[0].argmax())]]), cache)
    return steps / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all)")
    ap.add_argument("--cache", type=Path, default=Path(".cache/bench"))
    args = ap.parse_args()
    folders = prepare(args.cache)
    sessions = {ops: ModelSession(f, SessionOptions(provider="cpu", cpu_threads=args.threads))
                for ops, f in folders.items()}
    rng = np.random.default_rng(0)
    metrics = {"prompt 128 (ms)": lambda s: time_prompt(s, 128, rng),
               "prompt 512 (ms)": lambda s: time_prompt(s, 512, rng),
               "decode tokens/s (128 after 128)": lambda s: time_decode(s, 128, 128, rng)}
    for s in sessions.values():  # warm-up
        for fn in metrics.values():
            fn(s)
    results = {m: {ops: [] for ops in OP_SETS} for m in metrics}
    for _ in range(args.repeats):
        for m, fn in metrics.items():
            for ops in OP_SETS:  # interleaved, so drift hits both
                results[m][ops].append(fn(sessions[ops]))
    print(f"\nmedians of {args.repeats} runs, CPU provider, benchmark checkpoint {BENCH_SHAPE}")
    print("| metric | contrib | standard | standard / contrib |\n| --- | ---: | ---: | ---: |")
    for m in metrics:
        c, s = (statistics.median(results[m][ops]) for ops in OP_SETS)
        print(f"| {m} | {c:,.1f} | {s:,.1f} | {s / c:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
