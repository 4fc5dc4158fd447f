"""Where an N-reply decode batch's time goes, on one model folder: the bench NPC's replies (tools/bench's,
no reasoning) all arriving at once, driven through the engine's DecodeBatch as `parley serve` drives it,
every graph run timed by kind (prompt chunk, decode step by rows, tokens run ahead on a pool row).
Each pass runs the runtime's way and a baseline, interleaved, so the two compare on the same machine
state: `--baseline chunk` runs one prompt's chunk between two decode steps (the way before waiting prompts
shared the chunk, sixth session of 2026-11-26), `--baseline ahead` feeds forced tokens one a decode step
(the way before they ran ahead, fifth session).

    .venv/bin/python -m tools.experiments.batch_trace MODEL_FOLDER [--n 8] [--tokens 32] [--passes 2]
        [--baseline chunk|ahead]
"""
from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from pathlib import Path

from export.bench.concurrency import bench_npc
from runtime.decode_batch import DecodeBatch, run_to_end
from runtime.engine import Engine, ReplyRequest, ReplyResult
from runtime.profiles import parse_profile


BASELINES = {"chunk": {"share_chunk": False}, "ahead": {"run_ahead": False}}


def one_pass(engine: Engine, n: int, tag: str, options: dict) -> dict:
    runs: list[tuple[str, int, int, float]] = []  # (kind, rows, tokens, ms)
    real = engine.run_model

    def timed(ids, cache, prefill=False, first_row=0, waited_ms=0.0):
        start = time.perf_counter()
        try:
            return real(ids, cache, prefill, first_row, waited_ms)
        finally:
            kind = ("prompt" if cache.batch == 1 else "ahead") if prefill else "decode"
            runs.append((kind, ids.shape[0], ids.shape[1], (time.perf_counter() - start) * 1000))

    engine.run_model = timed
    batch = DecodeBatch(engine, max_batch=n, **options)
    reqs = [ReplyRequest(npc="bench", text=f"Tell me about road number {tag}{i}.", session_id=f"{tag}-{i}",
                         deadline_ms=600_000, request_id=f"{tag}-{i}") for i in range(n)]
    start = time.perf_counter()
    try:
        events = run_to_end(batch, reqs)
    finally:
        engine.run_model = real
    wall = time.perf_counter() - start
    results = [e[-1] for e in events.values() if isinstance(e[-1], ReplyResult)]
    tokens = sum(r.stats.reasoning_tokens + r.stats.final_tokens for r in results)
    ms = collections.defaultdict(float)
    count = collections.Counter()
    for kind, rows, t, took in runs:
        ms[kind] += took
        count[kind] += 1
    return {"wall_s": wall, "tokens": tokens, "tok_s": tokens / wall, "replies": len(results),
            "prompt_tokens": sum(t for k, _, t, _ in runs if k == "prompt"), "decode_steps": count["decode"], "mean_rows": statistics.mean([r for k, r, _, _ in runs if k == "decode"] or [0]),
            **{f"{k}_s": v / 1000 for k, v in ms.items()}, **{f"{k}_runs": c for k, c in count.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--n", type=int, default=8, help="replies arriving at once (the batch's rows)")
    ap.add_argument("--tokens", type=int, default=32, help="final tokens per reply")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--baseline", choices=sorted(BASELINES), default="chunk")
    args = ap.parse_args()
    profile = Path(tempfile.mkdtemp(prefix="parley-trace-")) / "bench.toml"
    profile.write_text(bench_npc(args.tokens, args.tokens))
    engine = Engine(args.folder, {"bench": parse_profile(profile)})
    list(engine.reply(ReplyRequest(npc="bench", text="warm up")))  # the NPC's prefix, cached as a server has it
    table = collections.defaultdict(list)
    ways = {"runtime": {}, f"before ({args.baseline})": BASELINES[args.baseline]}
    for p in range(args.passes):
        for w, (name, options) in enumerate(ways.items()):
            r = one_pass(engine, args.n, f"p{p}w{w}", options)
            table[name].append(r)
            print(f"pass {p} {name}: " +
                  ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()), flush=True)
    print(f"\n{args.folder}: {args.n} replies of {args.tokens} final tokens at once, medians of {args.passes}")
    keys = ["wall_s", "tok_s", "decode_steps", "mean_rows", "decode_s", "prompt_s", "ahead_s"]
    print(f"  {'':<14}" + "".join(f"{k:>13}" for k in keys))
    for name in ways:
        print(f"  {name:<14}" + "".join(f"{statistics.median([r.get(k, 0) for r in table[name]]):>13.2f}" for k in keys))
    now, before = (statistics.median([r["tok_s"] for r in table[name]]) for name in ways)
    print(f"  tokens/s, runtime / before ({args.baseline}): {now / before:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
