"""`parley bench`: registered from the export package (it needs torch to make and export checkpoints);
the benchmark itself lives in the source tree's tools/bench/, so it runs from a checkout."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "bench"


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure Parley against onnxruntime-genai and transformers on one checkpoint",
                       epilog="examples:\n  parley bench\n  parley bench ./my-finetune --json bench.json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    if (TOOLS / "main.py").is_file():
        sys.path.insert(0, str(TOOLS.parents[1]))
        from tools.bench.main import add_arguments, run

        add_arguments(p)
        p.set_defaults(run=run)
    else:
        p.set_defaults(run=_needs_checkout)


def _needs_checkout(args: argparse.Namespace) -> int:
    from runtime.cli import CommandFailed

    raise CommandFailed("the benchmark runs from a source checkout (tools/bench/ next to export/); "
                        "clone the repository and `pip install -e '.[export,test]'` there")
