"""`parley bench`: registered from the export package, since the benchmark makes and exports checkpoints
(torch); the benchmark itself is export/bench/, shipped in the package."""
from __future__ import annotations

import argparse

from runtime.cli_errors import CommandFailed


def register_bench(sub: argparse._SubParsersAction) -> None:
    from export.bench.main import add_arguments

    p = sub.add_parser("bench", help="measure Parley against onnxruntime-genai and transformers on one checkpoint",
                       description="Each system runs in its own process, warmed up; the measurements interleave\n"
                                   "the systems round by round, after checking that all of them give the same\n"
                                   "greedy tokens; the table shows medians and ratios to onnxruntime-genai.",
                       epilog="examples:\n  parley bench\n  parley bench ./my-finetune --json bench.json --png bench.png\n"
                              "  parley bench --systems parley,transformers --experts int8",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise CommandFailed(f"the benchmark exports checkpoints, which needs the export extra ({exc.name} is "
                            "missing): pip install 'parley-npc[export]', or 'parley-npc[bench]' for the "
                            "transformers peer and the chart too") from exc
    from export.bench.main import run

    return run(args)
