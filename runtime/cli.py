"""The `parley` command: one entry point, one subcommand per job.

Subcommands that live outside the runtime (export, inspect) are found through the
`parley.commands` entry-point group, so the runtime never imports the exporter.
"""
from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points

from runtime import cli_client, cli_service, cli_test
from runtime.studio import cli as studio_cli
from runtime.cli_errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandFailed
from runtime.lifeline import ending
from runtime.log_outlet import flush_log

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "CommandFailed", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley", description="Parley: a local runtime that gives game NPCs a voice.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  parley export ./my-finetune ./models/my-npc-model\n"
               "  parley inspect ./models/my-npc-model")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    cli_service.register(sub)
    cli_client.register(sub)
    cli_test.register(sub)
    studio_cli.register(sub)
    for ep in sorted(entry_points(group="parley.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def _subcommand_parser(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


def main(argv: list[str] | None = None) -> int:
    # Windows writes a redirected stdout in the ANSI code page, strictly: a reply or profile line in
    # Japanese would end the command in a traceback. Characters the stream cannot hold are escaped instead.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the subcommand's own parser: its usage line, not the top-level one
        chosen = _subcommand_parser(parser, getattr(args, "command", None)) or parser
        chosen.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.run(args) or EXIT_OK
    except CommandFailed as exc:
        ending(EXIT_FAILURE)  # a pipe closed or a signal from now on must not turn this into 0 (lifeline.py)
        # in a --log-file too (a player's bug report may hold only that), and after what the log still holds,
        # so that a game reading stderr finds the reason on its last line
        record = logging.getLogger("parley").makeRecord("parley", logging.ERROR, __file__, 0, str(exc), None, None)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
        flush_log(timeout_s=2.0)
        print(f"parley {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"parley {args.command}: interrupted", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
