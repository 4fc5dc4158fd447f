"""`parley serve`, `parley keys` and `parley lint`."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from runtime.cli_errors import CommandFailed

log = logging.getLogger(__name__)

DEFAULT_PROFILES = Path("npc_profiles")
SERVE_EXAMPLES = """examples:
  parley serve --model models/demo --profiles npc_profiles
  parley serve --model models/demo --bind tcp://0.0.0.0:5555 --keys keys/server.key_secret
"""


def whole_number(minimum: int):
    """An argparse type: an int of at least `minimum`."""
    def check(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text}: must be {minimum} or more")
        return value
    check.__name__ = "int"  # argparse: "invalid int value: 'four'", as for type=int
    return check


positive_int, non_negative_int = whole_number(1), whole_number(0)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="serve NPCs over ZeroMQ", epilog=SERVE_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--model", type=Path, required=True, help="model folder made by `parley export`")
    s.add_argument("--profiles", type=Path, default=DEFAULT_PROFILES,
                   help="folder of NPC profiles (*.toml; default: npc_profiles in the current folder)")
    s.add_argument("--bind", default="tcp://127.0.0.1:5555", help="ZeroMQ endpoint (default: loopback only)")
    s.add_argument("--keys", type=Path,
                   help="the server's secret key file, DIR/server.key_secret from `parley keys DIR` (enables CurveZMQ)")
    s.add_argument("--client-keys", type=Path, help="folder of allowed client public certificates")
    s.add_argument("--blob-key", type=Path, help="file with the key that signs session blobs (made on first use; "
                                                 "default: blob.key beside --keys, else $XDG_CONFIG_HOME/parley/blob.key, "
                                                 "or the system's config folder: ~/.config/parley on Linux, "
                                                 "%%APPDATA%%\\parley on Windows, ~/Library/Application "
                                                 "Support/parley on macOS). "
                                                 "Keep it: saves signed with it load only with it")
    s.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without CurveZMQ keys")
    s.add_argument("--provider", default="auto", choices=["auto", "cuda", "cpu"])
    s.add_argument("--device-id", type=int, default=0, help="GPU index")
    s.add_argument("--gpu-mem-mb", type=positive_int, help="GPU memory Parley may use, in MiB: it will not start if the "
                   "weights and the decode batch's KV cache do not fit, and onnxruntime's working memory is "
                   "capped to it too (the conversations' own caches come on top)")
    s.add_argument("--threads", type=positive_int, help="CPU threads for onnxruntime (default: all cores)")
    s.add_argument("--max-queue", type=positive_int, default=32, help="requests waiting to start before `busy`")
    s.add_argument("--max-queue-per-client", type=positive_int,
                   help="of them, the most one client may have waiting (default: half of --max-queue)")
    s.add_argument("--max-connections", type=positive_int, default=512,
                   help="client connections; more are closed as they open (default 512, and never more than "
                        "the open-file limit allows)")
    s.add_argument("--max-cache-mb", type=non_negative_int, default=1024,
                   help="device memory the conversations' own KV caches may take, in MiB (default 1024); over it "
                        "the least recently used let go of theirs and prefill their history again next turn")
    s.add_argument("--max-batch", type=positive_int, default=8,
                   help="replies decoded together in one run of the graph (continuous batching)")
    s.add_argument("--rate-limit", type=float, default=20.0,
                   help="requests per second per client, bursts of twice that (0: no limit, for load tests)")
    s.add_argument("--debug-reasoning", action="store_true", help="log the NPCs' hidden reasoning (designers)")
    s.add_argument("--exit-with-stdin", action="store_true",
                   help="stop when standard input closes: a game that starts the server keeps a pipe to it, and "
                        "when the game quits or crashes the server stops too (before the model has loaded: at once)")
    s.add_argument("--log-file", type=Path, help="append the log to this file instead of standard error (a game "
                                                 "that starts the server need not read its output)")
    s.set_defaults(run=run_serve)

    k = sub.add_parser("keys", help="make CurveZMQ key pairs for remote use",
                       epilog="example:\n  parley keys keys/   # writes server.key(_secret) and client.key(_secret)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    k.add_argument("folder", type=Path)
    k.set_defaults(run=run_keys)

    lint = sub.add_parser("lint", help="check NPC profiles and explain every problem",
                          epilog="examples:\n  parley lint npc_profiles\n"
                                 "  parley lint npc_profiles --model models/demo   # also: does each NPC fit the model's context?",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    lint.add_argument("folder", type=Path, nargs="?", default=DEFAULT_PROFILES,
                      help="folder of NPC profiles (*.toml; default: npc_profiles in the current folder)")
    lint.add_argument("--model", type=Path, help="model folder: also check each NPC's prompt against its context")
    lint.set_defaults(run=run_lint)


def _default_profiles_exist(folder: Path, usage: str) -> None:
    """When the profiles folder was left to its default and there is none here, say what to pass (an
    installed Parley ships no profiles; a checkout has npc_profiles/ at its root)."""
    if folder == DEFAULT_PROFILES and not folder.is_dir():
        raise CommandFailed(f"no npc_profiles folder in {Path.cwd()}; {usage}, a folder of NPC profiles (*.toml, "
                            "written as docs/profiles.md says; the source repository's npc_profiles/ has three "
                            "to copy)")


def run_lint(args: argparse.Namespace) -> int:
    from runtime.dialogues import read_folder
    from runtime.profiles import load_profiles

    _default_profiles_exist(args.folder, "name one: parley lint FOLDER")
    report = load_profiles(args.folder, context_fit(args.model) if args.model else None)
    dialogues, dialogue_problems = read_folder(args.folder)  # and the NPCs' example dialogues
    examples = sum(len(found) for _, _, found in dialogues)
    # a broken profile that has a dialogue file is reported by both: once is enough
    problems = list(report.problems) + [p for p in dialogue_problems if p not in report.problems]
    problems += windows_device_names(args.folder)
    for problem in problems:
        print(problem)
    ok = ", ".join(sorted(report.npcs)) or "none"
    print(f"{len(report.npcs)} NPC profile(s) OK ({ok})" + (f", {examples} example dialogue(s)" if examples else "")
          + f"; {len(problems)} problem(s)")
    return 1 if problems or not report.npcs else 0


def windows_device_names(folder: Path) -> list:
    """Profiles (and their dialogue folders) named as a Windows device: they load here, but a studio's
    Windows machines cannot check them out, nor a player's install them."""
    from runtime.profile_parser import WINDOWS_DEVICES, ProfileProblem

    return [ProfileProblem(str(path), None, "", f"Windows reserves the name {path.stem.upper()} for a device, so "
                           "this file cannot exist on a Windows machine (a designer's or a player's); rename it "
                           "(the file name is the NPC's id)")
            for path in sorted(folder.glob("*.toml")) if path.stem.lower() in WINDOWS_DEVICES]


def context_fit(model: Path):
    """A model folder's ContextFit for the CLI: a clear error when the folder is not usable."""
    from runtime.context_fit import ContextFit
    from runtime.manifest import ManifestError

    try:
        return ContextFit.for_model_folder(model)
    except (ManifestError, OSError, ValueError) as exc:
        raise CommandFailed(f"{model}: not a usable model folder ({exc})") from exc


def rate_burst(rate_per_s: float) -> int:
    """Requests a client may send at once: twice its rate, at least one (a burst of 0 refused every request at
    rates under 0.5/s); 0, no limit, is a burst no client reaches."""
    return max(1, int(2 * rate_per_s)) if rate_per_s else 1 << 30


def run_keys(args: argparse.Namespace) -> int:
    import zmq.auth

    args.folder.mkdir(parents=True, exist_ok=True)
    for name in ("server", "client"):
        if (args.folder / f"{name}.key_secret").exists():
            raise CommandFailed(f"{args.folder / (name + '.key_secret')} exists; refusing to overwrite keys")
    # secret keys readable by their owner only, from the moment they are written (an outside probe found
    # them 0644, readable by every user of the machine); the public ones as the umask leaves them
    previous = os.umask(0o077)
    try:
        for name in ("server", "client"):
            zmq.auth.create_certificates(str(args.folder), name)
    finally:
        os.umask(previous)
    for name in ("server", "client"):
        (args.folder / f"{name}.key").chmod(0o644 & ~previous)
    print(f"wrote {args.folder}/server.key_secret (keep on the server), server.key (give to clients),\n"
          f"      client.key_secret (the game's), client.key (for --client-keys allow-lists)")
    if os.name == "nt":  # no file modes: the secret files carry the folder's permissions (docs/reliability.md)
        print(f"note: on Windows the .key_secret files are as readable as {args.folder} itself: keep it a folder "
              "only the server's account can read, or narrow them with icacls (docs/reliability.md)")
    return 0


def _start_lifeline():
    from runtime.lifeline import Lifeline

    try:
        fd = sys.stdin.fileno()  # None (pythonw), or closed: no pipe to watch
    except (AttributeError, OSError, ValueError) as exc:
        raise CommandFailed("--exit-with-stdin: this process has no standard input to watch; start it with "
                            "its standard input a pipe the game keeps open") from exc
    if os.isatty(fd):  # a shell's terminal: reading it would wait for Ctrl-D, or suspend a background job
        raise CommandFailed("--exit-with-stdin: standard input is a terminal; it must be a pipe the game that "
                            "starts the server keeps open (docs/shipping.md)")
    lifeline = Lifeline()
    lifeline.start(fd)
    return lifeline


def _log_to_file(path: Path) -> None:
    from runtime.log_outlet import send_log_to

    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # a game's first run: its log folder may not exist yet
        send_log_to(logging.FileHandler(path, encoding="utf-8"))
    except OSError as exc:
        raise CommandFailed(f"--log-file {path}: {exc.strerror or exc}") from exc


def run_serve(args: argparse.Namespace) -> int:
    from runtime.lifeline import GRACE_S, STOP_SIGNALS, end_if_not_stopped_within, end_on_signals_while_loading

    now_serving = end_on_signals_while_loading()
    from runtime.connection_guard import open_file_limit
    from runtime.engine import Engine, EngineOptions
    from runtime.manifest import ManifestError
    from runtime.profile_registry import ProfileRegistry
    from runtime.server import Server, ServerOptions
    from runtime.server_socket import CLIENT_KEYS_WITHOUT_KEYS, InsecureBind, insecure_bind_refusal, is_local
    from runtime.session import ModelLoadError, SessionOptions, cuda_usable

    if args.log_file is not None:
        _log_to_file(args.log_file)
    else:  # a pipe nobody reads must not stop the server at its next log line
        from runtime.log_outlet import NonBlockingStderr, send_log_to

        send_log_to(NonBlockingStderr())
    lifeline = _start_lifeline() if args.exit_with_stdin else None
    if args.client_keys is not None and args.keys is None:  # before the model loads: say it at once
        raise CommandFailed(CLIENT_KEYS_WITHOUT_KEYS)
    if not is_local(args.bind) and args.keys is None and not args.insecure:
        raise CommandFailed(insecure_bind_refusal(args.bind))
    if args.keys is not None and not args.keys.is_file():
        raise CommandFailed(f"--keys {args.keys}: not a file; pass the server's secret key file, "
                            "DIR/server.key_secret from `parley keys DIR`")
    if args.rate_limit < 0:
        raise CommandFailed(f"--rate-limit {args.rate_limit:g}: requests per second per client, 0 for no limit")
    _default_profiles_exist(args.profiles, "pass --profiles FOLDER")
    from runtime.blob_key import BlobKeyError, default_path, load_or_create
    try:
        blob_key = load_or_create(args.blob_key or default_path(args.keys))
    except (BlobKeyError, OSError) as exc:
        raise CommandFailed(str(exc)) from exc
    registry = ProfileRegistry(args.profiles, context_fit(args.model))
    registry.reload()  # each problem is logged (WARNING), through the log's own outlet: never a blocking write
    if not registry.npcs:
        raise CommandFailed(f"no valid NPC profile in {args.profiles}; `parley lint {args.profiles}` explains why")
    if args.gpu_mem_mb and args.provider != "cpu" and cuda_usable(args.device_id):
        from runtime.memory_plan import MemoryPlan, over_gpu_cap

        plan = MemoryPlan.for_folder(args.model, args.max_batch)
        problem = over_gpu_cap(plan.weights_bytes, plan.batch_kv_bytes, args.gpu_mem_mb)
        if problem:
            raise CommandFailed(f"{args.model}: {problem}")
    try:
        engine = Engine(args.model, registry.npcs, EngineOptions(session=SessionOptions(
            provider=args.provider, device_id=args.device_id, gpu_mem_limit_mb=args.gpu_mem_mb,
            cpu_threads=args.threads), max_cache_bytes=args.max_cache_mb * 2**20))
    except (ManifestError, ModelLoadError) as exc:
        raise CommandFailed(str(exc)) from exc
    open_file_limit(raise_soft=True)  # each client connection holds a file descriptor
    try:
        server = Server(engine, registry, ServerOptions(
            bind=args.bind, max_connections=args.max_connections, max_queue=args.max_queue,
            max_queued_per_client=args.max_queue_per_client, max_batch=args.max_batch, rate_per_s=args.rate_limit or float("inf"),
            burst=rate_burst(args.rate_limit), curve_secret_file=args.keys, client_keys_dir=args.client_keys,
            insecure=args.insecure, debug_reasoning=args.debug_reasoning, blob_key=blob_key))
    except (InsecureBind, ValueError) as exc:
        raise CommandFailed(str(exc)) from exc
    except Exception as exc:  # zmq.ZMQError: address in use, bad endpoint
        raise CommandFailed(f"cannot bind {args.bind}: {exc}") from exc

    def on_signal(signum, _frame):
        server.stop(wait=False)
        end_if_not_stopped_within(GRACE_S)  # a worker stuck in a C call must not keep the process

    # SIGTERM is never delivered on Windows, where terminate() is a hard kill: there CTRL_BREAK_EVENT to a
    # CREATE_NEW_PROCESS_GROUP child (SIGBREAK) stops it
    for number in STOP_SIGNALS:
        signal.signal(number, on_signal)
    now_serving()
    if lifeline is not None:
        lifeline.serving(lambda: server.stop(wait=False))
    from runtime.memory_plan import MemoryPlan

    plan = MemoryPlan.for_folder(args.model, args.max_batch, engine.options.max_cache_bytes, engine.session.manifest)
    log.info("memory: %s", "; ".join(plan.lines()))
    print(f"parley serve: ready on {server.endpoint} with {len(registry.npcs)} NPCs "
          f"({', '.join(sorted(registry.npcs))})", flush=True)
    server.serve_forever()
    return 0
