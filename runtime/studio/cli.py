"""`parley studio`: the studio page beside a real Parley server, both in this process, on loopback."""
from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from pathlib import Path

from runtime.cli_errors import CommandFailed

EXAMPLE = "example:\n  parley studio --model models/demo --profiles npc_profiles   # then open the address it prints"


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("studio", help="a local web page to edit NPCs, talk to them and run their tests",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--model", type=Path, required=True, help="model folder made by `parley export`")
    s.add_argument("--profiles", type=Path, default=Path("npc_profiles"), help="folder of NPC profiles (*.toml)")
    s.add_argument("--port", type=int, default=8765, help="the page's port (0: any free one)")
    s.add_argument("--host", default="127.0.0.1", help="the page's address (loopback unless --insecure)")
    s.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host: anyone who reaches it can edit your profiles")
    s.set_defaults(run=run_studio)


def run_studio(args: argparse.Namespace) -> int:
    from runtime.context_fit import ContextFit
    from runtime.engine import Engine
    from runtime.manifest import ManifestError
    from runtime.profile_registry import ProfileRegistry
    from runtime.server import Server, ServerOptions
    from runtime.session import ModelLoadError
    from runtime.studio.app import Studio, make_server
    from runtime.studio.profiles_api import Profiles

    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback and not args.insecure:
        raise CommandFailed(f"refusing to serve the studio on {args.host}: anyone who reaches it could edit your "
                            "profiles. Use the default 127.0.0.1, or pass --insecure")
    if not args.profiles.is_dir():
        raise CommandFailed(f"{args.profiles}: not a folder of NPC profiles; pass --profiles FOLDER")
    try:
        fit = ContextFit.for_model_folder(args.model)
        registry = ProfileRegistry(args.profiles, fit)
        for problem in registry.reload().problems:
            print(f"profile problem: {problem}", file=sys.stderr)
        engine = Engine(args.model, registry.npcs)
    except (ManifestError, ModelLoadError, OSError, ValueError) as exc:
        raise CommandFailed(f"{args.model}: {exc}") from exc
    server = Server(engine, registry, ServerOptions(bind="tcp://127.0.0.1:0", rate_per_s=float("inf"),
                                                    keep_reasoning=256, profile_poll_s=0.5))
    parley = threading.Thread(target=server.serve_forever, name="parley-server", daemon=True)
    parley.start()
    try:
        httpd = make_server(Studio(Profiles(args.profiles, fit), server.endpoint, server.answers), args.host, args.port)
    except OSError as exc:
        server.stop()
        raise CommandFailed(f"cannot serve the studio on {args.host}:{args.port}: {exc}") from exc
    host, port = httpd.server_address[:2]
    print(f"Parley Studio on http://{host}:{port}/ (profiles {args.profiles}, model {args.model}); Ctrl-C stops",
          flush=True)

    def on_signal(signum, _frame):
        threading.Thread(target=httpd.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, on_signal)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        server.stop()
        parley.join(10)
    return 0
