"""parley bench: Parley against onnxruntime-genai and transformers on one gpt-oss checkpoint, in one run.

    parley bench [CHECKPOINT_DIR] [--json PATH] [--png PATH] [--repeats 5]

With no checkpoint it generates the standard one (export/synthetic.py's BENCH_SHAPE, random weights, seed 0). Each
system runs in its own process (its peak memory is its own), all are warmed up, and the measurements
interleave the systems round by round so drift hits all of them; the table shows medians and ratios
to onnxruntime-genai. Nothing here asserts a timing: targets are reported, met or not.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

from export.bench import concurrency, floor, peers, report
from export.bench.systems import SystemFailed, SystemProcess

GENAI, TRANSFORMERS, PARLEY = "onnxruntime-genai", "transformers", "parley"
ALL_SYSTEMS = (PARLEY, GENAI, TRANSFORMERS)
WARM_PREFIX, WARM_LINE = 400, 32

# metric -> (worker op, its arguments)
SINGLE_STREAM = {
    "ttft_ms_128": ("ttft", {"n": 128}),
    "ttft_ms_512": ("ttft", {"n": 512}),
    "warm_ttft_ms": ("warm_ttft", {"prefix": WARM_PREFIX, "n": WARM_LINE}),
    # the warm scenario's whole prompt, cold: what a runtime without a prefix cache pays for that line
    "full_prompt_ttft_ms": ("ttft", {"n": WARM_PREFIX + WARM_LINE}),
    "decode_tok_s": ("decode", {"prompt": 128, "steps": 128}),
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def checkpoint_key(checkpoint: Path) -> str:
    """Changes when the checkpoint's config or weight files change, so cached exports stay honest."""
    h = hashlib.sha256((checkpoint / "config.json").read_bytes())
    for f in sorted(checkpoint.glob("*.safetensors")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def standard_checkpoint(work: Path, mxfp4: bool = False) -> Path:
    """The standard checkpoint: float32, or (mxfp4) laid out as gpt-oss is released, MXFP4 experts and
    bfloat16 the rest, the start of every 4-bit comparison."""
    from export.synthetic import BENCH_SHAPE, make_random_checkpoint, make_released_layout_checkpoint

    folder = work / ("standard-checkpoint-mxfp4" if mxfp4 else "standard-checkpoint")
    if not (folder / "config.json").is_file():
        log(f"generating the standard benchmark checkpoint ({'MXFP4 experts, ' if mxfp4 else ''}random weights, "
            "seed 0) ...")
        (make_released_layout_checkpoint if mxfp4 else make_random_checkpoint)(folder, BENCH_SHAPE, seed=0)
    return folder


def parley_model(checkpoint: Path, out: Path, experts: str = "float", dense: str = "float",
                 int8_activations: bool = False) -> Path:
    from export.exporter import ExportOptions, export_model

    if not (out / "manifest.json").is_file():
        log(f"exporting the checkpoint with parley export ({experts} experts, {dense} dense weights"
            f"{', int8 activations' if int8_activations else ''}, verified against torch) to {out} ...")
        export_model(checkpoint, out, ExportOptions(max_context=1024, force=True, experts=experts, dense=dense,
                                                    int8_activations=int8_activations))
    return out


def parley_folder(work: Path, experts: str, dense: str = "float", int8_activations: bool = False) -> Path:
    parts = [f"{experts}-experts" if experts != "float" else "", f"{dense}-dense" if dense != "float" else "",
             "int8-activations" if int8_activations else ""]
    return work / "-".join(["parley", *[p for p in parts if p]])


def genai_precision(experts: str) -> str:
    """genai's builder precision to compare with: int4 against Parley's 4-bit experts, else fp32."""
    return "int4" if experts == "int4" else "fp32"


def start_systems(names: list[str], checkpoint: Path, work: Path, peer_venv: Path,
                  experts: str = "float", dense: str = "float", int8_activations: bool = False) -> tuple[dict, dict]:
    """The systems that could start, and for the others the reason they could not."""
    started, missing = {}, {}
    for name in names:
        try:
            if name == PARLEY:
                model = parley_model(checkpoint, parley_folder(work, experts, dense, int8_activations), experts,
                                     dense, int8_activations)
                started[name] = SystemProcess(name, [peers.this_python(), "-m", "export.bench.system_parley", model],
                                              work)
            elif name == TRANSFORMERS:
                if not peers.transformers_available():
                    raise peers.PeerUnavailable("transformers with GptOssForCausalLM is not installed here")
                started[name] = SystemProcess(
                    name, [peers.this_python(), "-m", "export.bench.system_transformers", checkpoint], work)
            elif name == GENAI:
                python = peers.peer_python(peer_venv, log)
                precision = genai_precision(experts)
                model = peers.build_genai_model(python, checkpoint,
                                                work / ("genai" if precision == "fp32" else f"genai-{precision}"),
                                                log, precision)
                # by path: the peer's environment has no Parley installed (see system_genai.py)
                started[name] = SystemProcess(name, [python, peers.GENAI_SCRIPT, model], work)
        except (peers.PeerUnavailable, SystemFailed) as exc:
            log(f"{name} is left out: {exc}")
            missing[name] = str(exc)
    if PARLEY not in started:
        raise SystemExit(f"parley bench: Parley itself could not start: {missing.get(PARLEY)}")
    return started, missing


def check_same_model(systems: dict[str, SystemProcess], experts: str = "float", dense: str = "float") -> None:
    """Timings only compare when every system computes the same thing: same greedy tokens, same prompt.
    A quantized system computes a slightly different model (Parley's export measured how far from the
    checkpoint), so it is left out of the check and its continuation is shown beside the others."""
    continuations = {name: proc.ask("greedy", n=64, steps=8, seed=0) for name, proc in systems.items()}
    quantized = {PARLEY} if (experts, dense) != ("float", "float") else set()
    if genai_precision(experts) != "fp32":
        quantized.add(GENAI)
    checked = {n: c for n, c in continuations.items() if n not in quantized}
    if len({tuple(c) for c in checked.values()}) > 1:
        raise SystemExit("parley bench: the systems disagree on the greedy continuation of the same prompt, so "
                         f"they are not running the same model: {continuations}")
    if not quantized:
        log(f"all {len(systems)} systems give the same greedy continuation {continuations[PARLEY]}")
    else:
        log(f"greedy continuations ({', '.join(sorted(quantized))} quantized, not required to agree): "
            f"{continuations}")


def single_stream(systems: dict[str, SystemProcess], repeats: int, experts: str = "float",
                  dense: str = "float") -> dict[str, dict[str, float]]:
    check_same_model(systems, experts, dense)
    log("warming up every system on every measurement ...")
    for proc in systems.values():
        for op, args in SINGLE_STREAM.values():
            proc.ask(op, seed=0, **args)
    runs = {name: {m: [] for m in SINGLE_STREAM} for name in systems}
    order = list(systems)
    for r in range(repeats):
        log(f"round {r + 1}/{repeats}")
        for metric, (op, args) in SINGLE_STREAM.items():
            for name in order[r % len(order):] + order[: r % len(order)]:  # rotate who goes first
                runs[name][metric].append(systems[name].ask(op, seed=1 + r, **args))
    results = {}
    for name, metrics in runs.items():
        results[name] = {m: statistics.median(v) for m, v in metrics.items()}
        results[name]["peak_rss_mb"] = systems[name].peak_rss_mb  # before the engine below loads a 2nd session
    shares = [systems[PARLEY].ask("python_share", seed=r) for r in range(max(3, repeats))]
    results[PARLEY]["python_share_pct"] = statistics.median(shares)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="parley bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    return ap.parse_args(argv)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("checkpoint", type=Path, nargs="?", help="Hugging Face gpt-oss folder (default: the standard one)")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    ap.add_argument("--png", type=Path, help="chart path (default: WORK/<checkpoint key>/bench.png; needs matplotlib)")
    ap.add_argument("--repeats", type=int, default=5, help="measured rounds after warm-up (medians)")
    ap.add_argument("--systems", default=",".join(ALL_SYSTEMS), help=f"comma list of {', '.join(ALL_SYSTEMS)}")
    ap.add_argument("--levels", default="1,4,8", help="concurrent NPC requests to measure through the server")
    ap.add_argument("--per-client", type=int, default=3, help="replies each concurrent client sends in a round")
    ap.add_argument("--experts", default="float", choices=["float", "int8", "int4"],
                    help="Parley's expert weights, as `parley export --experts` takes them (default float, "
                         "whatever the checkpoint holds, unlike export's auto). int4 without a checkpoint makes "
                         "the standard one MXFP4, as gpt-oss is released, and builds onnxruntime-genai with -p "
                         "int4 too; otherwise the peers stay float32")
    ap.add_argument("--dense", default="float", choices=["float", "int8", "int4"],
                    help="Parley's attention projections and unembedding (`parley export --dense`)")
    ap.add_argument("--int8-activations", action="store_true",
                    help="Parley's 4-bit kernels with int8 activations (`parley export --int8-activations`), as "
                         "onnxruntime-genai's int4 build runs its MatMulNBits (accuracy_level 4)")
    ap.add_argument("--work", type=Path, default=Path(".cache") / "bench",
                    help="exports, peer builds and logs (default: .cache/bench in the current folder)")
    ap.add_argument("--peer-venv", type=Path,
                    help="virtual environment for onnxruntime-genai, made on first use (default: WORK/peer-venv); "
                         "a folder the bench did not make is WIPED and rebuilt: never name an environment of yours")


def run(args: argparse.Namespace) -> int:
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(names) - set(ALL_SYSTEMS)
    if unknown or PARLEY not in names:
        raise SystemExit(f"parley bench: --systems takes {', '.join(ALL_SYSTEMS)} and must include parley")
    levels = tuple(int(n) for n in args.levels.split(","))
    if args.repeats < 1 or args.per_client < 1 or not levels or min(levels) < 1:
        raise SystemExit("parley bench: --repeats, --per-client and every --levels value must be at least 1")
    args.work = args.work.absolute()  # the systems' processes run in folders of their own
    args.work.mkdir(parents=True, exist_ok=True)
    checkpoint = (args.checkpoint.resolve() if args.checkpoint
                  else standard_checkpoint(args.work, mxfp4=args.experts == "int4"))
    if not (checkpoint / "config.json").is_file():
        raise SystemExit(f"parley bench: {checkpoint} has no config.json (expected a Hugging Face gpt-oss folder)")
    work = args.work / checkpoint_key(checkpoint)
    work.mkdir(parents=True, exist_ok=True)

    peer_venv = (args.peer_venv or args.work / "peer-venv").absolute()
    systems, missing = start_systems(names, checkpoint, work, peer_venv, args.experts, args.dense,
                                     args.int8_activations)
    try:
        results = single_stream(systems, args.repeats, args.experts, args.dense)
    except SystemFailed as exc:
        raise SystemExit(f"parley bench: {exc}") from None
    finally:
        for proc in systems.values():
            proc.close()
    log(f"concurrent NPCs through parley serve: levels {levels}, {args.per_client} replies per client ...")
    results[PARLEY].update(concurrency.measure(parley_folder(work, args.experts, args.dense, args.int8_activations),
                                               work, levels, args.repeats, args.per_client, log))
    results[PARLEY]["experts"], results[PARLEY]["dense"] = args.experts, args.dense
    results[PARLEY]["int8_activations"] = args.int8_activations
    if GENAI in results:
        results[GENAI]["precision"] = genai_precision(args.experts)
    log("measuring memory read bandwidth for the floor ...")
    cfg = json.loads((checkpoint / "config.json").read_text())
    results["floor"] = floor.floor(cfg, threads=os.cpu_count() or 1, experts=args.experts, dense=args.dense)
    for name, why in missing.items():
        results[name] = {"error": why}
    ordered = {k: results[k] for k in (PARLEY, GENAI, TRANSFORMERS, "floor") if k in results}

    print(report.table(ordered, checkpoint, args.repeats))
    png = args.png or work / "bench.png"
    if report.chart(ordered, png):
        log(f"chart: {png}")
    if args.json:
        report.write_json(ordered, args.json)
        log(f"json: {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
