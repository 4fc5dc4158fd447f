"""`parley say` and `parley chat`: talk to NPCs on a running server."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runtime.cli_errors import CommandFailed


def register(sub: argparse._SubParsersAction) -> None:
    for name, helptext, example in (
            ("say", "send one line to an NPC and print the streamed reply",
             'parley say brenna "How much for a sword?" --session player-1'),
            ("chat", "talk with an NPC interactively", "parley chat brenna")):
        c = sub.add_parser(name, help=helptext, epilog=f"example:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        c.add_argument("npc")
        if name == "say":
            c.add_argument("text")
        c.add_argument("--endpoint", default="tcp://127.0.0.1:5555")
        c.add_argument("--session", help="conversation id (chat: a new one per run)" if name == "chat" else
                       "conversation id (none: a one-off line)")
        c.add_argument("--session-token", help="the session's token, to continue a session an earlier run "
                                               "made (it printed the token)")
        c.add_argument("--speaker", default="Player")
        c.add_argument("--deadline-ms", type=float)
        c.add_argument("--timeout", type=float, default=30.0, help="seconds of silence before checking that the server is there (a "
                       "server that answers is waited for, up to the reply's deadline)")
        c.add_argument("--server-key", type=Path, help="server.key from `parley keys` (CurveZMQ)")
        c.set_defaults(run=run_say if name == "say" else run_chat)


def open_client(endpoint: str, server_key: Path | None, timeout_s: float, retries: int):
    """A ParleyClient for a command: a bad endpoint or key file is the user's error, said in one line."""
    import zmq
    from runtime.client import ParleyClient

    key = None
    if server_key:
        import zmq.auth
        try:
            key, _ = zmq.auth.load_certificate(str(server_key))
        except (OSError, ValueError) as exc:
            raise CommandFailed(f"--server-key {server_key}: {exc}; pass the server's public key file, "
                                "DIR/server.key from `parley keys DIR`") from exc
        if key is None:
            raise CommandFailed(f"--server-key {server_key}: no public key in it; pass DIR/server.key "
                                "from `parley keys DIR`")
    try:
        return ParleyClient(endpoint, timeout_s=timeout_s, retries=retries, server_public_key=key)
    except zmq.ZMQError as exc:  # a misspelt transport, or ipc:// where pyzmq has none (Windows)
        raise CommandFailed(f"--endpoint {endpoint}: {exc.strerror}; an endpoint looks like "
                            "tcp://127.0.0.1:5555") from exc


def _client(args):
    client = open_client(args.endpoint, args.server_key, args.timeout, retries=1)
    if args.session and args.session_token:
        client.set_session_token(args.npc, args.session, args.session_token)
    return client


def _token_hint(client, args) -> None:
    """Sessions belong to whoever holds their token: say it, so a later run can continue this one."""
    if args.session and not args.session_token:
        print(f"(session {args.session!r}: continue it with --session {args.session} --session-token "
              f"{client.session_token(args.npc, args.session)})", file=sys.stderr)


def stats_line(stats: dict) -> str:
    ttft = f"{stats['ttft_ms']:.0f} ms" if stats.get("ttft_ms") is not None else "-"
    flags = [f for f, on in (("reasoning cut", stats["reasoning_cut"]), ("fallback", stats["fallback_used"]),
                             ("unsure", stats.get("finish_reason") == "unsure")) if on]
    if stats.get("confidence") is not None:  # what an NPC's min_confidence is held against
        flags.append(f"confidence {stats['confidence']:.2f}")
    return (f"[first token {ttft} | total {stats['total_ms']:.0f} ms | {stats['decode_tok_s']:.0f} tok/s | "
            f"reasoning {stats['reasoning_tokens']} tok | final {stats['final_tokens']} tok | deadline "
            f"{'met' if stats['deadline_met'] else 'MISSED'} ({stats['deadline_ms']:.0f} ms)"
            + (f" | {', '.join(flags)}" if flags else "") + "]")


def _one(client, args, text: str) -> None:
    from runtime.client import ParleyError

    try:
        for frame in client.reply(args.npc, text, session=args.session, speaker=args.speaker,
                                  deadline_ms=args.deadline_ms):
            if frame["type"] == "delta":
                print(frame["text"], end="", flush=True)
            elif frame["type"] == "action":
                print(f"\n  <action {frame['name']} {frame['args']}>", flush=True)
            elif frame["type"] == "done":
                print("\n" + stats_line(frame["stats"]), flush=True)
    except ParleyError as exc:
        raise CommandFailed(str(exc)) from exc


def run_say(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _one(client, args, args.text)
        _token_hint(client, args)
    return 0


def run_chat(args: argparse.Namespace) -> int:
    if not args.session:
        import secrets
        args.session = f"cli-{secrets.token_hex(4)}"
    with _client(args) as client:
        _token_hint(client, args)
        print(f"Talking to {args.npc} (session {args.session!r}); an empty line or Ctrl-D (Ctrl-Z then Enter on Windows) ends.")
        while True:
            try:
                line = input("> ")
            except EOFError:
                print()
                return 0
            if not line.strip():
                return 0
            _one(client, args, line)
            sys.stdout.flush()
