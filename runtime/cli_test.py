"""`parley test`: run the behaviour tests NPC profiles hold (`[[tests]]`) against a model, with an exit
code a studio's CI can gate on (a new fine-tune, a profile change)."""
from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from runtime.cli_errors import EXIT_FAILURE, EXIT_OK, CommandFailed
from runtime.cli_service import context_fit

EXAMPLES = """examples:
  parley test npc_profiles --model models/demo
  parley test npc_profiles --model models/demo --npc brenna --runs 10
  parley test npc_profiles --endpoint tcp://127.0.0.1:5555     # against a running server
"""


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("test", help="run the NPC profiles' behaviour tests ([[tests]]) against a model",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("profiles", type=Path, help="folder of NPC profiles (*.toml)")
    t.add_argument("--model", type=Path, help="model folder made by `parley export` (served in this process)")
    t.add_argument("--endpoint", help="test against a running `parley serve` instead (its profiles are used "
                                      "for the replies; the test cases come from PROFILES)")
    t.add_argument("--server-key", type=Path, help="with --endpoint: server.key from `parley keys` (CurveZMQ)")
    t.add_argument("--npc", action="append", help="only this NPC (repeat for several)")
    t.add_argument("--runs", type=int, help="runs per case, 1 to 100 (default: each case's own `runs`)")
    t.add_argument("--deadline-ms", type=float, help="deadline for every reply (default: each NPC's own)")
    t.add_argument("--json", type=Path, help="also write the results to this file")
    t.set_defaults(run=run_test)


def run_test(args: argparse.Namespace) -> int:
    from runtime.behaviour_tests import run_all
    from runtime.profile_registry import ProfileRegistry

    if (args.model is None) == (args.endpoint is None):
        raise CommandFailed("pass --model MODEL_FOLDER (served in this process) or --endpoint ENDPOINT")
    if args.runs is not None and not 1 <= args.runs <= 100:
        raise CommandFailed(f"--runs must be 1 to 100, got {args.runs}")
    if not args.profiles.is_dir():
        raise CommandFailed(f"{args.profiles}: not a folder of NPC profiles")
    registry = ProfileRegistry(args.profiles, context_fit(args.model) if args.model else None)
    result = registry.reload()
    for problem in result.problems:
        print(f"profile problem: {problem}", file=sys.stderr)
    npcs = [registry.npcs[i] for i in sorted(registry.npcs) if not args.npc or i in args.npc]
    unknown = sorted(set(args.npc or ()) - set(registry.npcs))
    if unknown:
        raise CommandFailed(f"no valid profile for {', '.join(unknown)} in {args.profiles}")
    cases = sum(len(n.tests) for n in npcs)
    if not cases:
        print(f"no test cases in {args.profiles} ([[tests]] in a profile; docs/profiles.md)")
        return EXIT_FAILURE if result.problems else EXIT_OK
    print(f"{cases} test case(s) of {len(npcs)} NPC(s)")
    with _server(args, registry) as client:
        results = run_all(client, npcs, args.runs, args.deadline_ms, on_result=_print)
    failed = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(failed)} of {len(results)} case(s) passed"
          + (f"; {len(result.problems)} profile problem(s)" if result.problems else ""))
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in results], indent=2))
    return EXIT_FAILURE if failed or result.problems else EXIT_OK


def _print(r) -> None:
    mark = "PASS" if r.ok else "FAIL"
    print(f"{mark}  {r.npc:<10} line {r.case.line or '?':<4} {r.passed}/{r.runs} (need {r.case.pass_rate:.0%})  "
          f"{r.case.say[:60]!r}")
    for why in ([] if r.ok else r.failures):
        print(f"        {why[:160]}")


class _server:
    """A client of the server to test: the one at --endpoint, or one served here from --model."""

    def __init__(self, args: argparse.Namespace, registry):
        self.args, self.registry, self.server, self.thread = args, registry, None, None

    def __enter__(self):
        endpoint = self.args.endpoint
        if endpoint is None:
            from runtime.engine import Engine
            from runtime.server import Server, ServerOptions
            from runtime.session import ModelLoadError

            try:
                engine = Engine(self.args.model, self.registry.npcs)
            except (ModelLoadError, OSError, ValueError) as exc:
                raise CommandFailed(f"{self.args.model}: {exc}") from exc
            self.server = Server(engine, self.registry, ServerOptions(bind="tcp://127.0.0.1:0",
                                                                      rate_per_s=float("inf")))
            self.thread = threading.Thread(target=self.server.serve_forever, name="parley-test-server", daemon=True)
            self.thread.start()
            endpoint = self.server.endpoint
        from runtime.cli_client import open_client

        try:
            self.client = open_client(endpoint, self.args.server_key, timeout_s=60.0, retries=0)
        except CommandFailed:
            if self.server is not None:
                self.server.stop(wait=True)
            raise
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop(wait=True)
            self.thread.join(10)
