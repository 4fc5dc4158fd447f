"""What batching prompts would buy, measured before building it: on one model folder, the graph run alone
(runtime.session.ModelSession.step), after a shared prefix as `parley serve` has it:

- eight prompts of T tokens as eight one-row runs, against one run of 8 x T tokens on one row (the same
  tokens through the experts at once, as a batched prefill of eight prompts would send them);
- the final channel's header (3 tokens) as a run of its own on its reply's own cache and on a row of an
  8-row pool, against a decode step of one row and of eight.

Rounds interleave the shapes, so they compare on the same machine state; medians are printed.

    .venv/bin/python -m tools.experiments.prefill_shapes MODEL_FOLDER [--prefix 300] [--prompt 41] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from runtime.session import ModelSession


def timed(session: ModelSession, ids: np.ndarray, cache, first_row: int = 0) -> float:
    start = time.perf_counter()
    session.step(ids, cache, first_row)
    return (time.perf_counter() - start) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--prefix", type=int, default=300, help="tokens already in every row's cache")
    ap.add_argument("--prompt", type=int, default=41, help="new tokens per prompt")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    session = ModelSession(args.folder)
    vocab = session.config.vocab_size
    rng = np.random.default_rng(0)
    n, t, prefix = args.rows, args.prompt, args.prefix

    def ids(rows: int, tokens: int) -> np.ndarray:
        return rng.integers(0, vocab, size=(rows, tokens), dtype=np.int64)

    def fresh(rows: int = 1):
        cache = session.new_cache(batch=rows)
        cache.lengths[:] = prefix  # the prefix's KV: any values do for timing
        return cache

    own, long_row, pool = fresh(), fresh(), fresh(n)
    results: dict[str, list[float]] = {}
    timed(session, ids(1, t), fresh())  # warm-up: first runs allocate
    for r in range(args.rounds):
        rows = []
        for _ in range(n):
            own.lengths[:] = prefix
            rows.append(timed(session, ids(1, t), own))
        results.setdefault(f"{n} prompts of {t}, one run each (sum)", []).append(sum(rows))
        long_row.lengths[:] = prefix
        results.setdefault(f"{n * t} tokens in one run", []).append(timed(session, ids(1, n * t), long_row))
        own.lengths[:] = prefix + t
        results.setdefault("header, 3 tokens, own cache", []).append(timed(session, ids(1, 3), own))
        pool.lengths[:] = prefix + t
        results.setdefault(f"header, 3 tokens, row of the {n}-row pool", []).append(timed(session, ids(1, 3), pool, 3))
        own.lengths[:] = prefix + t
        results.setdefault("decode step, 1 row", []).append(timed(session, ids(1, 1), own))
        pool.lengths[:] = prefix + t
        results.setdefault(f"decode step, {n} rows", []).append(timed(session, ids(n, 1), pool))
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in results.items()), flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    width = max(map(len, med))
    print(f"\n{args.folder}: after a {prefix}-token prefix, medians of {args.rounds} rounds")
    for k, v in med.items():
        print(f"  {k:<{width}}  {v:>9.1f} ms")
    sep, together = med[f"{n} prompts of {t}, one run each (sum)"], med[f"{n * t} tokens in one run"]
    print(f"  one run / {n} runs: {together / sep:.2f}; header on the pool / a 1-row step: "
          f"{med[f'header, 3 tokens, row of the {n}-row pool'] / med['decode step, 1 row']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
