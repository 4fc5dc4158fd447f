"""The C client, built with the system compiler (-Wall -Wextra -Werror), against a live `parley serve`."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import pytest
import zmq
from runtime.protocol import REPLY_WHITESPACE
from tests.helpers.live_server import profiles_copy

SOURCE = Path(__file__).resolve().parents[2] / "tools" / "clients" / "c"

HAVE_LIBS = Path("/usr/include/zmq.h").is_file() and Path("/usr/include/msgpack.h").is_file()
# CI installs the libraries (.ci/run); elsewhere a missing -dev package skips these tests and says so.
pytestmark = pytest.mark.skipif(shutil.which("cc") is None or (not HAVE_LIBS and not os.environ.get("CI")),
                                reason="needs a C compiler and libzmq3-dev + libmsgpack-dev")


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    build = tmp_path_factory.mktemp("c-build")
    result = subprocess.run(["make", "-C", str(SOURCE), f"BUILD={build}"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr  # any warning is an error here
    return build


# The library and drivers again with AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer, which
# end the program with a report on a memory error or undefined behaviour (an out-of-range double cast to int).
SANITIZE = "-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer"
NOWHERE = "tcp://127.0.0.1:1"  # no server: requests are only queued


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory):
    build = tmp_path_factory.mktemp("c-asan")
    flags = f"-std=c99 -g -O1 -Wall -Wextra -Werror -pedantic {SANITIZE}"
    result = subprocess.run(["make", "-C", str(SOURCE), f"BUILD={build}", f"CFLAGS={flags}"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return build


def probe(build, endpoint, mode, timeout_ms=20000) -> list[str]:
    """Run one scenario of examples/parley_probe.c; it must exit cleanly (no crash, no sanitizer report)."""
    # one malloc arena: a thread's new arena would reserve 64 MiB of address space, noise in VmPeak
    env = {**os.environ, "PARLEY_TIMEOUT_MS": str(timeout_ms), "ASAN_OPTIONS": "detect_leaks=1",
           "MALLOC_ARENA_MAX": "1"}
    result = subprocess.run([str(build / "parley_probe"), endpoint, mode], capture_output=True, text=True,
                            timeout=180, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result.stdout.splitlines()


def events(lines, reply=None) -> list[str]:
    """The probe's EVENT lines, without the prefix (of one reply, r0, r1..., if given)."""
    found = [line.split(" ", 1)[1] for line in lines if line.startswith("EVENT ")]
    return [e for e in found if reply is None or e.split(" ")[0] == reply]


def terminals(lines, reply) -> list[str]:
    return [e for e in events(lines, reply) if e.split(" ")[1] in ("DONE", "ERROR")]


class ScriptedServer:
    """A server played by a test: a ROUTER socket on loopback whose thread runs script(self), reading the C
    client's requests and answering whatever the script says, frames no real server sends included."""

    def __init__(self, script):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.router_mandatory = 1  # a full pipe blocks the script's send (bounded memory, no frame lost)
        self.sock.sndhwm = 1000
        self.sock.sndtimeo = self.sock.rcvtimeo = 10000
        self.endpoint = f"tcp://127.0.0.1:{self.sock.bind_to_random_port('tcp://127.0.0.1')}"
        self.failure = None
        self.stopping = threading.Event()  # set when the client has finished
        self.thread = threading.Thread(target=self._run, args=(script,), daemon=True)
        self.thread.start()

    def _run(self, script):
        try:
            script(self)
        except Exception as exc:  # reported by close()
            self.failure = exc

    def recv(self):
        routing, frame = self.sock.recv_multipart()
        return routing, msgpack.unpackb(frame)

    def send(self, routing, frame):
        """frame: a map to pack, or raw bytes sent as they are. A client that is gone drops it."""
        try:
            self.sock.send_multipart([routing, frame if isinstance(frame, bytes) else msgpack.packb(frame)])
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise

    def close(self):
        self.stopping.set()
        self.thread.join(30)
        self.sock.close()
        self.ctx.term()
        assert self.failure is None, self.failure


@pytest.fixture
def scripted():
    servers = []

    def make(script):
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def answer(rid, kind, **fields):
    return {"v": 1, "id": rid, "type": kind, **fields}


def check(binaries, endpoint, *args, timeout_ms=20000, token=None):
    env = {**os.environ, "PARLEY_TIMEOUT_MS": str(timeout_ms), **({"PARLEY_SESSION_TOKEN": token} if token else {})}
    result = subprocess.run([str(binaries / "parley_check"), endpoint, *args], capture_output=True, text=True,
                            timeout=120, env=env)
    # parley_check escapes control bytes, so "\n" is the only line break (str.splitlines would also split on
    # \x1c-\x1e, \x85 and U+2028 that a random model may emit).
    return result.returncode, result.stdout.rstrip("\n").split("\n")


def unescape(text: str) -> str:
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def test_streamed_reply_equals_the_done_text(binaries, live):
    rc, lines = check(binaries, live.endpoint, "say", "brenna", "How much for a sword?")
    assert rc == 0, lines
    deltas = "".join(unescape(line[len("DELTA "):]) for line in lines if line.startswith("DELTA "))
    done = next(unescape(line[len("DONE "):]) for line in lines if line.startswith("DONE "))
    assert deltas.strip(REPLY_WHITESPACE) == done and done


def test_ipv6_loopback_is_reached(binaries, make_server):
    server = make_server(bind="tcp://[::1]:0")  # libzmq connects to an IPv6 address only with ZMQ_IPV6 set
    rc, lines = check(binaries, server.endpoint, "say", "brenna", "How much for a sword?", timeout_ms=10000)
    assert rc == 0 and any(line.startswith("DONE ") for line in lines), lines


def test_cancel_ends_the_reply_with_cancelled(binaries, live):
    rc, lines = check(binaries, live.endpoint, "cancel", "talker", "hello")
    assert rc == 2 and lines[-1].startswith("ERROR cancelled"), lines


def test_unknown_npc_yields_its_error_code(binaries, live):
    rc, lines = check(binaries, live.endpoint, "say", "ghost", "hello")
    assert rc == 2 and lines == ["ERROR unknown_npc unknown NPC 'ghost'; known: aldric, brenna, marta, talker"]


def test_health_and_session_export_reset_import(binaries, live):
    assert check(binaries, live.endpoint, "health") == (0, ["HEALTH ok"])
    rc, lines = check(binaries, live.endpoint, "session", "marta")
    assert rc == 0 and lines[-3].startswith("EXPORTED ") and lines[-2:] == ["RESET", "IMPORTED"]


def test_a_session_answers_only_the_client_holding_its_token(binaries, live):
    rc, lines = check(binaries, live.endpoint, "session", "aldric")
    token = next(line[len("TOKEN "):] for line in lines if line.startswith("TOKEN "))
    assert rc == 0 and len(token) == 32
    rc, lines = check(binaries, live.endpoint, "say", "aldric", "I am the same player, honest.")
    assert rc == 2 and lines[-1].startswith("ERROR forbidden"), lines  # another process, its own token
    rc, lines = check(binaries, live.endpoint, "say", "aldric", "Back from my save.", token=token)
    assert rc == 0 and lines[-1].startswith("STATS"), lines  # the saved token, given back


def test_a_missing_server_is_a_timeout_not_a_hang(binaries):
    started = time.monotonic()
    rc, lines = check(binaries, "tcp://127.0.0.1:1", "say", "brenna", "hi", timeout_ms=300)
    assert rc == 3 and lines[0].startswith("ERROR timeout")
    # the reply's own 300 ms timeout ends it, not the 30 s wait of parley_check (an outside review: it came at 30 s)
    assert time.monotonic() - started < 15
    rc, lines = check(binaries, "tcp://127.0.0.1:1", "health", timeout_ms=300)
    assert rc == 3 and lines[0].startswith("ERROR timeout")


def test_example_conversation_runs_in_a_frame_loop(binaries, live):
    result = subprocess.run([str(binaries / "conversation"), live.endpoint, "aldric", "Good day.", "Open the gate."],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("deadline met") == 2


# ---- the review's findings: each test failed before its fix -------------------------------------------------

def test_arguments_the_server_would_refuse_are_refused_before_sending(sanitized):
    lines = probe(sanitized, NOWHERE, "args")
    results = {line.split(" ")[0]: line.split(" ", 1)[1] for line in lines}
    accepted = {"text_4000_emoji", "session_64_accented"}  # limits count characters, not bytes
    assert {name for name, status in results.items() if status == "0"} == accepted, results
    assert all(results[name] == "1" for name in results if name not in accepted | {"wait_unknown"}), results
    assert results["wait_unknown"] == "1 fast"  # a wait for no reply in flight does not block


def test_a_reply_the_server_could_not_read_leaves_the_running_one_alone(binaries, live):
    lines = probe(binaries, live.endpoint, "nil_id_live")
    assert "START_BAD 1" in lines, lines  # invalid UTF-8: refused, never sent
    assert [e.split(" ")[1] for e in terminals(lines, "r0")] == ["DONE"], lines
    assert not events(lines, "other"), lines


def test_an_error_with_a_nil_id_goes_to_the_request_sent_last(sanitized, scripted):
    def script(server):
        (routing, first), (_, second) = server.recv(), server.recv()
        server.send(routing, answer(None, "error", code="bad_message", message="not valid msgpack"))
        server.send(routing, answer(first["id"], "done", text="fine", stats={}, actions=[]))

    lines = probe(sanitized, scripted(script).endpoint, "fake_two", timeout_ms=1500)
    assert terminals(lines, "r1") == ["r1 ERROR bad_message"], lines
    assert [e.split(" ")[1] for e in terminals(lines, "r0")] == ["DONE"], lines
    assert not events(lines, "other"), lines


def test_cancel_reports_found_and_its_own_answer_is_no_event(binaries, live):
    lines = probe(binaries, live.endpoint, "cancel_live")
    assert "CANCEL 0 found=1" in lines and "CANCEL_ENDED CANCEL 0 found=0" in lines, lines
    assert terminals(lines, "r0") == ["r0 ERROR cancelled"], lines  # the reply's own end
    assert [e.split(" ")[1] for e in terminals(lines, "r1")] == ["DONE"], lines
    assert not events(lines, "other"), lines


def test_cancel_answers_before_or_after_the_replys_cancelled_error(sanitized, scripted):
    def script(server):
        routing, queued = server.recv()
        _, cancel = server.recv()  # a queued target: its error comes first
        server.send(routing, answer(queued["id"], "error", code="cancelled", message="cancelled"))
        server.send(routing, answer(cancel["id"], "done", found=True))
        _, running = server.recv()
        server.send(routing, answer(running["id"], "delta", text="Well, "))
        _, cancel = server.recv()  # a running one: the answer first, a delta on its way, then the error
        server.send(routing, answer(cancel["id"], "done", found=True))
        server.send(routing, answer(running["id"], "delta", text="you see"))
        server.send(routing, answer(running["id"], "error", code="cancelled", message="cancelled"))

    lines = probe(sanitized, scripted(script).endpoint, "fake_cancel", timeout_ms=3000)
    assert lines.count("CANCEL 0 found=1") == 2, lines
    assert events(lines, "r0") == ["r0 ERROR cancelled"], lines
    assert events(lines, "r1") == ["r1 DELTA len=6", "r1 DELTA len=7", "r1 ERROR cancelled"], lines
    assert not events(lines, "other"), lines


def test_a_reply_can_be_cancelled_with_64_in_flight(binaries, live):
    lines = probe(binaries, live.endpoint, "busy_cancel")
    assert lines[:3] == ["STARTED 64", "START_65TH 7", "CANCEL 0"], lines
    assert lines[-1] == "ENDED 64", lines


def test_cancels_of_a_game_that_only_waits_leak_nothing(binaries, live):
    lines = probe(binaries, live.endpoint, "wait_cancel_cycles")
    assert lines == ["CYCLES 80"], lines


def test_a_reply_token_override_stays_the_sessions_token(binaries, live):
    lines = probe(binaries, live.endpoint, "token_override")
    assert lines == ["FIRST DONE", "SECOND DONE", "TOKEN_IS_OVERRIDE 1", "RESET 0"], lines


def test_session_token_strings_stay_valid_as_sessions_are_added(sanitized):
    lines = probe(sanitized, NOWHERE, "token_pointer")
    assert lines == ["FIRST_TOKEN SAME", "SET 0", "FIRST_TOKEN_NOW a-token-set-after-loading"], lines


def test_actions_of_a_no_stream_reply_come_as_events_with_any_args(sanitized, scripted):
    actions = [{"name": "open_shop", "args": {"item": "sword"}}, {"name": "wave", "args": [1, "x", None]},
               {"name": "nod", "args": None}, {"name": "say", "args": "hi"}]
    streamed = [{"name": "count", "args": 7}, {"name": "tilt", "args": -2.5}]

    def script(server):
        routing, quiet = server.recv()
        assert quiet["stream"] is False
        server.send(routing, answer(quiet["id"], "done", text="Here.", actions=actions, stats={
            "ttft_ms": None, "finish_reason": "deadline", "reasoning_tokens": 1e300, "final_tokens": -1e300}))
        _, loud = server.recv()
        for action in streamed:
            server.send(routing, answer(loud["id"], "action", **action))
        server.send(routing, answer(loud["id"], "done", text="Done.", actions=streamed,
                                    stats={"ttft_ms": 12.5, "finish_reason": "return"}))

    lines = probe(sanitized, scripted(script).endpoint, "fake_actions")

    def seen(reply):
        return [(e.split(" ")[2], msgpack.unpackb(bytes.fromhex(e.split(" ")[3])))
                for e in events(lines, reply) if e.split(" ")[1] == "ACTION"]

    assert seen("r0") == [(a["name"], a["args"]) for a in actions], lines  # in order, before the DONE
    assert seen("r1") == [(a["name"], a["args"]) for a in streamed], lines  # not twice
    assert events(lines, "r0")[-1] == "r0 DONE ttft=-1 finish=deadline reasoning=2147483647 final=-2147483648 len=5"
    assert events(lines, "r1")[-1] == "r1 DONE ttft=12.5 finish=return reasoning=0 final=0 len=5"


def test_a_wait_ends_at_its_timeout_while_other_replies_flood(sanitized, scripted):
    def script(server):
        (routing, flooded), _ = server.recv(), server.recv()
        # a key the client ignores, but must read: frames come faster than it takes them, always one waiting
        delta = msgpack.packb(answer(flooded["id"], "delta", text="x", padding=[0] * 2000))
        end = time.monotonic() + 6
        server.sock.sndtimeo = 3000  # past the game's busy second
        while time.monotonic() < end and not server.stopping.is_set():
            try:
                server.send(routing, delta)
            except zmq.Again:  # the client is gone
                break

    lines = probe(sanitized, scripted(script).endpoint, "fake_flood")
    status, elapsed_ms = lines[0].split(" ")[1:]
    assert status == "3" and float(elapsed_ms) < 1000, lines  # PARLEY_ERR_TIMEOUT, near its 300 ms


def test_a_full_queue_drops_deltas_never_a_replys_end(sanitized, scripted):
    def script(server):
        (routing, first), (_, waited), (_, talker) = server.recv(), server.recv(), server.recv()
        server.send(routing, answer(first["id"], "done", text="Bye.", stats={}, actions=[]))
        for i in range(1100):
            server.send(routing, answer(talker["id"], "delta", text=f"{i:04d}"))
        server.send(routing, answer(talker["id"], "done", text="Long.", stats={}, actions=[]))
        server.send(routing, answer(waited["id"], "done", text="Yes.", stats={}, actions=[]))

    lines = probe(sanitized, scripted(script).endpoint, "fake_queue", timeout_ms=2000)
    assert [e.split(" ")[1] for e in terminals(lines, "r0")] == ["DONE"], lines[-5:]
    assert [e.split(" ")[1] for e in terminals(lines, "r2")] == ["DONE"], lines[-5:]
    assert 900 < sum(e.startswith("r2 DELTA") for e in events(lines)) < 1024


HOSTILE = [
    b"\xdd\xff\xff\xff\xff",  # an array declaring 2^32 - 1 values (msgpack-c would reserve 64 GiB)
    b"\xdd\x00\xff\xff\xff",  # 16 million values: 256 MiB
    b"\xdf\x0f\xff\xff\xff",  # a map of 268 million pairs
    b"\x91" * 100 + b"\xc0",  # nested 100 deep
    b"\xc1", b"", b"\xa5ab", b"\xda\xff\xff", b"\x92\x01", msgpack.packb([1, 2]), msgpack.packb("a string"),
]


def hostile_script(server):
    routing, request = server.recv()
    rid = request["id"]
    for frame in HOSTILE:
        server.send(routing, frame)
    server.sock.send_multipart([routing, msgpack.packb(answer(rid, "done", text="multi"))] * 2)  # two parts
    server.send(routing, answer("someone-else", "done", text="not ours"))
    server.send(routing, answer(None, "done", text="nil id"))
    server.send(routing, answer(rid * 5, "done", text="too long an id"))
    server.send(routing, answer(rid, "mystery"))
    server.send(routing, answer(rid, "delta", text=123))
    server.send(routing, answer(rid, "action", name=["x"], args={"deep": [[[[{"e": msgpack.ExtType(5, b"abc")}]]]]}))
    server.send(routing, answer(rid, "done", text="fine", stats={
        "ttft_ms": "soon", "total_ms": float("nan"), "reasoning_tokens": float("inf"),
        "final_tokens": 2 ** 64 - 1, "deadline_met": "yes"}))
    server.send(routing, answer(rid, "done", text="twice", stats={}))


@pytest.mark.parametrize("build", ["binaries", "sanitized"])
def test_a_hostile_server_cannot_crash_or_bloat_the_client(build, request, scripted):
    lines = probe(request.getfixturevalue(build), scripted(hostile_script).endpoint, "fake_hostile", timeout_ms=3000)
    assert [e.split(" ")[:2] for e in events(lines)] == [["r0", "DELTA"], ["r0", "ACTION"], ["r0", "DONE"]], lines
    assert events(lines)[-1] == "r0 DONE ttft=-1 finish= reasoning=2147483647 final=2147483647 len=4", lines
    if build == "binaries":  # (AddressSanitizer's own mappings make VmPeak meaningless)
        growth_kb = int(next(line for line in lines if line.startswith("VMPEAK_GROWTH_KB")).split(" ")[1])
        assert growth_kb < 64 * 1024, lines


def test_frames_over_one_mib_are_refused_a_48_kib_blob_passes(sanitized, scripted):
    def script(server):
        routing, export = server.recv()
        server.send(routing, answer(export["id"], "done", blob=os.urandom(48 * 1024), turns=3))
        _, reply = server.recv()
        server.send(routing, answer(reply["id"], "delta", text="x" * (2 << 20)))
        server.send(routing, answer(reply["id"], "done", text="x", stats={}, actions=[]))

    lines = probe(sanitized, scripted(script).endpoint, "fake_big", timeout_ms=1500)
    assert lines[0] == f"EXPORTED 0 {48 * 1024}", lines
    assert events(lines) == ["r0 ERROR timeout"], lines  # ZeroMQ dropped the connection at the big frame


def test_waiting_on_the_id_inside_the_event_being_filled_works(sanitized, live):
    """parley_wait(c, ev.request_id, t, &ev) cleared ev, and the id with it, before matching: it timed out."""
    assert "OWN_ID 0 DONE" in probe(sanitized, live.endpoint, "wait_own_id")


def test_a_session_operation_that_times_out_does_not_take_effect_later(binaries, live):
    """An outside review: parley_reset_session returned a timeout (it waited behind the session's running reply)
    and then ran anyway once the reply ended, wiping the session the game believed untouched."""
    import threading

    held = threading.Event()

    def hold():
        with live.engine.lock:  # the reply cannot finish while the reset waits its 300 ms
            held.set()
            time.sleep(2.0)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    result = {"lines": probe(binaries, live.endpoint, "late_reset")}
    holder.join(10)
    lines = result["lines"]
    assert "RESET 3" in lines and "REPLY 0 3" in lines, lines  # the reset timed out; the reply ended DONE
    conv = live.engine.store.get("talker", "late-reset")
    assert conv is not None and len(conv.history) == 1  # the session kept its turn: the reset never ran


# ---- parley_server_start: the server as the game's child (server_process.c, docs/shipping.md) ------------

def serve_argv(model, profiles, log_file, bind="tcp://127.0.0.1:*"):
    return [sys.executable, "-m", "runtime.cli", "serve", "--model", str(model), "--profiles", str(profiles),
            "--bind", bind, "--exit-with-stdin", "--log-file", str(log_file)]


def spawn(build, mode, argv, timeout=180, **env):
    return subprocess.run([str(build / "parley_spawn"), mode, "--", *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1", **env})


def script(text):
    """A stand-in server: a shell script, with --exit-with-stdin as its $0 (the library asks for the flag)."""
    return ["sh", "-c", text, "--exit-with-stdin"]


def test_a_game_starts_talks_to_and_stops_its_server(sanitized, tiny_model, tmp_path):
    result = spawn(sanitized, "talk", serve_argv(tiny_model, profiles_copy(tmp_path), tmp_path / "p.log"))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"READY tcp://127\.0\.0\.1:\d+", lines[0]) and lines[1:] == ["DONE", "RUNNING 1", "EXIT 0"]
    assert "server stopped" in (tmp_path / "p.log").read_text(encoding="utf-8")


def test_a_server_that_cannot_start_gives_its_own_reason_and_exit_code(sanitized, tmp_path):
    result = spawn(sanitized, "talk", serve_argv(tmp_path / "missing", profiles_copy(tmp_path), tmp_path / "p.log"))
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith("START_FAILED parley serve ended before it was ready (exit code 1): "
                                    "parley serve: error: ") and "no manifest.json" in result.stdout
    missing = spawn(sanitized, "talk", [str(tmp_path / "no-python"), "--exit-with-stdin"])
    assert missing.stdout.startswith("START_FAILED could not start") and "No such file" in missing.stdout


def test_a_crashing_game_takes_its_server_with_it(binaries, tiny_model, tmp_path):
    result = spawn(binaries, "crash", serve_argv(tiny_model, profiles_copy(tmp_path), tmp_path / "p.log"))
    assert result.returncode != 0 and result.stdout.startswith("READY "), result.stdout + result.stderr
    port = int(result.stdout.split()[1].rsplit(":", 1)[1])
    deadline = time.monotonic() + 30
    while True:  # the port comes free once the orphaned server has ended
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                break
            except OSError:
                assert time.monotonic() < deadline, "the server outlived the game that started it"
                time.sleep(0.2)
    assert "server stopped" in (tmp_path / "p.log").read_text(encoding="utf-8")


READY_LINE = "echo 'parley serve: ready on tcp://127.0.0.1:9 with 0 NPCs'"


def test_a_ready_line_after_unfinished_output_is_still_seen(binaries):
    """Another thread's unfinished line (a progress counter rewritten with \\r) may come before it."""
    result = spawn(binaries, "ready", script(f"printf 'loading 50%%'; {READY_LINE}; read line; exit 0"))
    assert result.stdout.splitlines() == ["READY tcp://127.0.0.1:9", "EXIT 0"], result.stdout + result.stderr


def test_an_early_exit_is_seen_even_if_a_process_it_left_holds_its_output(binaries):
    """A leftover child keeps the output pipe open, so its end never comes: the process itself is asked."""
    result = subprocess.run([str(binaries / "parley_spawn"), "ready", "--",
                             *script("sleep 20 & echo 'parley serve: error: boom'; exit 1")],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PARLEY_START_TIMEOUT_MS": "15000"})
    assert result.stdout.startswith("START_FAILED parley serve ended before it was ready (exit code 1): "
                                    "parley serve: error: boom"), result.stdout


def test_the_server_starts_with_no_signal_blocked_whatever_the_games_thread_had(binaries, tmp_path):
    """posix_spawn passes the calling thread's signal mask on: a loading thread with SIGTERM blocked would
    start a server that SIGTERM cannot stop."""
    mask = tmp_path / "mask"
    result = spawn(binaries, "blocked", script(f"grep SigBlk /proc/self/status > {mask}; {READY_LINE}; "
                                               "read line; exit 0"))
    assert result.stdout.splitlines()[-1] == "EXIT 0", result.stdout + result.stderr
    assert mask.read_text().split() == ["SigBlk:", "0000000000000000"]


def test_a_game_started_with_its_stdin_closed_still_gives_the_server_its_pipe(binaries):
    """With fd 0 closed in the game, pipe() hands out 0 itself: the server must still get the game's pipe."""
    result = subprocess.run([str(binaries / "parley_spawn"), "ready", "--", *script(f"{READY_LINE}; read line; exit 0")],
                            capture_output=True, text=True, timeout=120,
                            preexec_fn=lambda: os.close(0))
    assert result.stdout.splitlines() == ["READY tcp://127.0.0.1:9", "EXIT 0"], result.stdout + result.stderr


def test_a_command_without_exit_with_stdin_is_refused(binaries):
    result = spawn(binaries, "ready", ["sh", "-c", f"{READY_LINE}; read line"])
    assert result.stdout.startswith("START_FAILED the command lacks --exit-with-stdin"), result.stdout


def test_a_server_that_does_not_stop_on_its_input_closing_is_asked_with_sigterm_before_it_is_killed(binaries):
    result = spawn(binaries, "ready", script(f"trap 'exit 7' TERM; {READY_LINE}; while :; do sleep 0.1; done"),
                   PARLEY_STOP_TIMEOUT_MS="4000")
    assert result.stdout.splitlines() == ["READY tcp://127.0.0.1:9", "EXIT 7"], result.stdout + result.stderr


def test_a_game_that_must_not_block_launches_and_polls_until_ready(sanitized, tiny_model, tmp_path):
    result = spawn(sanitized, "async", serve_argv(tiny_model, profiles_copy(tmp_path), tmp_path / "p.log"))
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 3, result.stdout + result.stderr
    assert int(lines[0].split()[1]) > 0  # frames went by while the model loaded
    assert re.fullmatch(r"READY tcp://127\.0\.0\.1:\d+", lines[1]) and lines[2] == "EXIT 0"


def test_leaving_the_loading_screen_ends_the_server_while_it_loads(sanitized, tiny_model, tmp_path):
    result = spawn(sanitized, "cancel", serve_argv(tiny_model, profiles_copy(tmp_path), tmp_path / "p.log"))
    assert result.stdout.splitlines() == ["EXIT 0"], result.stdout + result.stderr
