"""Serve one model folder on this machine and measure it against physics: load time, resident memory,
time to first token, decode tokens/s against the memory-bandwidth floor, and N-concurrent tokens/s
through a real `parley serve` against the N-row ceiling. For full-size exports (docs/performance.md);
`parley bench` compares systems on the small standard checkpoint.

    .venv/bin/python -m tools.experiments.measure_model_folder MODEL_FOLDER [--steps 32] [--concurrent 8] [--json OUT]

Floor: decode must read every weight a token touches once (export.weight_bytes.active_bytes_per_token,
laid out as this folder's export options say), so tokens/s <= read bandwidth / active bytes. For N rows
a step reads the union of the experts they chose (1 - (1 - k/E)^N of them, choices taken as
independent): the N-row ceiling is N x bandwidth / those bytes. Each phase runs in its own process, one
at a time, so the model is in memory once.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from export.weight_bytes import ExportChoice, active_bytes_per_token
from runtime.manifest import Manifest

SINGLE = """
import json, statistics, sys, time
from export.bench.system_parley import Parley
from export.bench.worker import peak_rss_mb
start = time.perf_counter()
p = Parley({folder!r})
load = time.perf_counter() - start
rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
ttft = [p.ttft({prompt}, seed) for seed in range({repeats})]
decode = [p.decode(16, {steps}, seed) for seed in range({repeats})]
print(json.dumps(dict(load_s=load, rss_after_load_mb=rss, ttft_ms=statistics.median(ttft),
                      decode_tok_s=statistics.median(decode), peak_rss_mb=peak_rss_mb())))
"""


def log(msg: str) -> None:
    print(f"[measure {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def export_choice(folder: Path) -> tuple[Manifest, ExportChoice]:
    import onnx

    manifest = Manifest.read(folder)
    opts = manifest.export_options
    graph = onnx.load(folder / manifest.graph_file, load_external_data=False).graph
    # with dense int8/int4 weights the table is block-quantized (embed.qweight) and this flag is moot
    embed = next((t for t in graph.initializer if t.name == "embed.weight"), None)
    return manifest, ExportChoice(opts.get("dtype", "float32"), opts.get("experts", "float"), opts.get("dense", "float"),
                                  embed is not None and embed.data_type == onnx.TensorProto.BFLOAT16,
                                  opts.get("block_size", 32))


def single_stream(folder: Path, prompt: int, steps: int, repeats: int) -> dict:
    code = SINGLE.format(folder=str(folder), prompt=prompt, steps=steps, repeats=repeats)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"single-stream measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def concurrent(folder: Path, levels: list[int], tokens: int) -> dict:
    from export.bench.concurrency import BenchServer, aggregate_tok_s, bench_npc

    work = Path(tempfile.mkdtemp(prefix="parley-measure-"))
    server = BenchServer(folder, work, max_batch=max(levels), npc=bench_npc(tokens, tokens),
                         start_timeout_s=1800)
    try:
        result = {"serve_load_s": server.start_seconds, "serve_rss_after_load_mb": server.peak_rss_mb("VmRSS")}
        aggregate_tok_s(server.endpoint, 1, 1, "warm")
        for n in levels:
            result[f"concurrent_tok_s_{n}"], result[f"mean_batch_{n}"] = server.mean_batch(
                lambda: aggregate_tok_s(server.endpoint, n, 1, f"n{n}"))
            log(f"  {n} concurrent: {result[f'concurrent_tok_s_{n}']:.2f} tok/s, mean batch {result[f'mean_batch_{n}']:.2f}")
        result["serve_peak_rss_mb"] = server.peak_rss_mb()
        return result
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--prompt", type=int, default=128, help="prompt tokens for time to first token")
    ap.add_argument("--steps", type=int, default=32, help="decode steps per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrent", default="1,8", help="levels through parley serve ('' to skip)")
    ap.add_argument("--tokens", type=int, default=32, help="reply tokens per concurrent request")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from export.bench.floor import read_bandwidth

    manifest, choice = export_choice(args.folder)
    cfg, threads = manifest.config, os.cpu_count() or 1
    log(f"{args.folder}: {choice.label()}; measuring read bandwidth ({threads} threads) ...")
    bandwidth = read_bandwidth(threads)
    log(f"single stream: load, {args.prompt}-token prompt, {args.steps} decode steps x {args.repeats} ...")
    results = {"folder": str(args.folder), "choice": choice.label(), "bandwidth_gb_s": bandwidth / 1e9,
               **single_stream(args.folder, args.prompt, args.steps, args.repeats)}
    active = active_bytes_per_token(cfg, choice)
    results["active_bytes_per_token"] = active
    results["floor_tok_s"] = bandwidth / active
    levels = [int(n) for n in args.concurrent.split(",") if n.strip()]
    if levels:
        log(f"through parley serve: {levels} concurrent, {args.tokens}-token replies ...")
        results.update(concurrent(args.folder, levels, args.tokens))
        for n in levels:
            results[f"ceiling_tok_s_{n}"] = n * bandwidth / active_bytes_per_token(cfg, choice, rows=n)
    print(format_table(results, levels))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def format_table(r: dict, levels: list[int]) -> str:
    rows = [("load (engine)", f"{r['load_s']:.1f} s", ""),
            ("resident after load", f"{r['rss_after_load_mb']:,.0f} MB", f"peak {r['peak_rss_mb']:,.0f} MB"),
            ("time to first token", f"{r['ttft_ms']:,.0f} ms", ""),
            ("decode, one stream", f"{r['decode_tok_s']:.2f} tok/s",
             f"{100 * r['decode_tok_s'] / r['floor_tok_s']:.0f}% of the floor {r['floor_tok_s']:.2f} tok/s")]
    for n in levels:
        got, ceiling = r[f"concurrent_tok_s_{n}"], r[f"ceiling_tok_s_{n}"]
        rows.append((f"parley serve, {n} concurrent", f"{got:.2f} tok/s", f"{100 * got / ceiling:.0f}% of the "
                     f"{n}-row ceiling {ceiling:.2f} tok/s; mean batch {r[f'mean_batch_{n}']:.2f}"))
    if levels:
        rows.append(("parley serve resident", f"{r['serve_rss_after_load_mb']:,.0f} MB after load",
                     f"peak {r['serve_peak_rss_mb']:,.0f} MB; load {r['serve_load_s']:.1f} s"))
    width = max(len(name) for name, _, _ in rows)
    head = (f"{r['folder']} ({r['choice']}); read bandwidth {r['bandwidth_gb_s']:.1f} GB/s, "
            f"{r['active_bytes_per_token'] / 1e9:.2f} GB of weights per token")
    return "\n".join([head] + [f"  {name:<{width}}  {value:>16}  {note}" for name, value, note in rows])


if __name__ == "__main__":
    sys.exit(main())
