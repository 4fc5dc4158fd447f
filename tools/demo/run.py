"""The demo: serve the bundled NPCs with the bundled model and talk to each of them.

    bash tools/demo.sh            # set up, export (first run), serve, converse, stop
    .venv/bin/python -m tools.demo.run --chat marta    # then keep talking to one NPC yourself
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from runtime.child_server import ChildServer, ServerStartFailed, start_server
from runtime.cli_client import stats_line
from runtime.client import ParleyClient, ParleyError

CHECKPOINT = ROOT / "tools" / "demo" / "checkpoint"
MODEL = Path(os.environ.get("PARLEY_DEMO_MODEL", ROOT / ".cache" / "demo-model"))
SCRIPT = [
    ("brenna", "Good morning!"),
    ("brenna", "How much do you want for a steel sword?"),
    ("brenna", "Any rumours?"),
    ("aldric", "When does the gate close?"),
    ("aldric", "What would the watch give me for a wolf pelt?"),
    ("marta", "How much is a room?"),
    ("marta", "What's cooking tonight?"),
    ("marta", "Have you heard anything interesting lately?"),
]
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def export_once() -> Path:
    from tools.demo.evaluate import export_demo

    if not (MODEL / "manifest.json").is_file():
        print(f"exporting the demo checkpoint to {MODEL} (first run only) ...", flush=True)
    logging.getLogger("export").setLevel(logging.WARNING)
    return export_demo(CHECKPOINT, MODEL)


def start(model: Path) -> ChildServer:
    """The server as a game starts it (docs/shipping.md): its own port, it ends with us, its log in a file."""
    log_file = model.parent / "demo-server.log"
    try:
        server = start_server(model, ROOT / "npc_profiles", log_file=log_file)
    except ServerStartFailed as exc:
        raise SystemExit(f"{exc}\n(its log: {log_file})") from None
    print(f"{DIM}{server.output[-1]}{RESET}")
    return server


def talk(client: ParleyClient, npc: str, text: str, names: dict[str, str], session: str) -> dict:
    print(f"\n{BOLD}Player{RESET} → {names.get(npc, npc)}: {text}")
    print(f"{BOLD}{names.get(npc, npc)}{RESET}: ", end="", flush=True)
    done = {}
    for frame in client.reply(npc, text, session=session):
        if frame["type"] == "delta":
            print(frame["text"], end="", flush=True)
        elif frame["type"] == "action":
            print(f" {DIM}<action {frame['name']} {frame['args']}>{RESET}", end="", flush=True)
        elif frame["type"] == "done":
            done = frame
    print(f"\n{DIM}{stats_line(done['stats'])}{RESET}")
    return done["stats"]


def main() -> int:
    sys.stdout.reconfigure(errors="backslashreplace")  # '→' on a console code page without it
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chat", metavar="NPC", help="after the script, keep talking to this NPC")
    args = ap.parse_args()
    model = export_once()
    server = start(model)
    stats = []
    try:
        with ParleyClient(server.endpoint, timeout_s=60) as client:
            names = {n["id"]: n["name"] for n in client.list_npcs()}
            for npc, text in SCRIPT:
                stats.append(talk(client, npc, text, names, session="demo-player"))
            if args.chat:
                print(f"\nYour turn: talking to {args.chat}. An empty line ends.")
                while (line := input("> ").strip()):
                    stats.append(talk(client, args.chat, line, names, session="demo-player"))
    except ParleyError as exc:
        print(f"\nerror from the server: {exc}", file=sys.stderr)
        return 1
    finally:
        code = server.stop(30)  # closes its stdin: how a game stops it, on every system
    ttft = sorted(s["ttft_ms"] for s in stats if s["ttft_ms"] is not None)
    met = sum(s["deadline_met"] for s in stats)
    print(f"\n{BOLD}{len(stats)} replies{RESET}: median time to first word {ttft[len(ttft) // 2]:.0f} ms, "
          f"deadlines met {met}/{len(stats)}, " + ("server stopped cleanly." if code == 0 else
                                                    f"but the server ended with code {code} (its log: "
                                                    f"{model.parent / 'demo-server.log'})."))
    print("Next: write your own NPC (copy npc_profiles/brenna.toml, see docs/profiles.md) and run "
          "`bash tools/demo.sh --chat <your-npc>`; export your own gpt-oss fine-tune with `parley export`.")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
