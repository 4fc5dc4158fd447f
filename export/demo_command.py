"""`parley demo`: the bundled demo (tools/demo/: its model checkpoint, training data and scripts) lives in
the source checkout, not in the package. From a checkout this runs it; from an installed package it says
where to get it. Registered from the export package: the demo exports its checkpoint first (torch)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from runtime.cli_errors import CommandFailed

CHECKOUT_ONLY = ("the demo runs from a source checkout (its model checkpoint and scripts are not in the installed "
                 "package): clone the Parley repository and run `bash tools/demo.sh` in it")


def register_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="serve the demo NPCs on the bundled demo model and talk to each (source checkout)",
                       description="Export the bundled demo checkpoint (first run), serve the three demo NPCs on "
                                   "loopback,\nhold a streamed conversation with each through the ZeroMQ client, "
                                   "stop the server.\nNeeds a source checkout with the export extra installed.",
                       epilog="examples:\n  parley demo\n  parley demo --chat marta     # then keep talking to "
                              "Marta yourself",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chat", metavar="NPC", help="after the script, keep talking to this NPC")
    p.set_defaults(run=run_demo)


def checkout_root() -> Path | None:
    """The source checkout this package runs from (an editable install), or None for an installed one."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "tools" / "demo" / "run.py").is_file() else None


def run_demo(args: argparse.Namespace) -> int:
    root = checkout_root()
    if root is None:
        raise CommandFailed(CHECKOUT_ONLY)
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise CommandFailed("the demo exports its checkpoint first, which needs the export extra: "
                            "run `bash tools/demo.sh` (it sets up .venv) or pip install -e '.[export]'") from exc
    return subprocess.call([sys.executable, "-m", "tools.demo.run", *(["--chat", args.chat] if args.chat else [])],
                           cwd=root)
