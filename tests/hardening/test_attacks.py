"""Attacks that once killed, froze or bloated `parley serve`: each sends the real bytes to a real server
process, then checks that it still answers `health` and other clients' replies."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import msgpack
import pytest

from runtime.blob_key import load_or_create
from runtime.client import ParleyClient
from tests.helpers.live_server import free_port, profiles_copy
from tools.harness import attacks
from tools.harness.fuzz_server import rss_mb


class Served:
    def __init__(self, model, profiles, *args: str, nofile: tuple[int, int] | None = None):
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.profiles = profiles
        key_file = profiles.parent / "blob.key"
        self.blob_key = load_or_create(key_file)  # the server reads the same file: tests can sign blobs

        def limits():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

        self.proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "serve", "--model", str(model),
                                      "--profiles", str(profiles), "--bind", self.endpoint, "--rate-limit", "0",
                                      "--blob-key", str(key_file), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=limits)
        line = self.proc.stdout.readline()
        assert "ready on" in line, self.proc.stderr.read() if self.proc.poll() is not None else line
        # a client connected before any attack: the game that must keep being served
        self.game = ParleyClient(self.endpoint, timeout_s=30.0, retries=0)

    def request(self, **body) -> dict:
        return attacks.send_raw(self.endpoint, msgpack.packb({"v": 1, "id": "q", **body}, use_bin_type=True), 30)

    def assert_serving(self, client: ParleyClient | None = None) -> None:
        assert self.proc.poll() is None, f"the server exited with {self.proc.returncode}"
        client = client or self.game
        health = client.health()
        assert health["status"] == "ok" and health["worker"] == "running"
        frames = list(client.reply("brenna", "Still open?", session="other-player"))
        assert frames[-1]["type"] == "done" and frames[-1]["text"]

    def stats(self) -> dict:
        return self.game.stats()

    def stop(self) -> None:
        self.game.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def serve(tiny_model, tmp_path):
    started = []

    def start(*args: str, **kw) -> Served:
        served = Served(tiny_model, profiles_copy(tmp_path / f"p{len(started)}"), *args, **kw)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def test_values_nested_a_thousand_deep_get_an_error_and_the_server_lives(serve):
    server = serve()
    codes = []
    for payload in attacks.deep_nesting_requests(1000):
        answer = attacks.send_raw(server.endpoint, payload)
        assert answer is not None and answer["type"] == "error"
        codes.append(answer["code"])
    assert codes == ["unsupported_version", "unknown_type", "bad_message"]
    server.assert_serving()


def test_a_session_blob_of_thousands_of_turns_is_refused_and_a_full_one_answers(serve):
    server = serve()
    forged = server.request(type="import_session", npc="brenna", session="s",
                            blob=attacks.session_bomb("brenna", "s", 2000))
    assert forged["type"] == "error" and forged["code"] == "bad_message" and "signature" in forged["message"]
    # even one signed with the server's own key (a studio's tool could) is held to the turn limit
    bomb = server.request(type="import_session", npc="brenna", session="s",
                          blob=attacks.session_bomb("brenna", "s", 2000, server.blob_key))
    assert bomb["type"] == "error" and bomb["code"] == "too_large" and "256" in bomb["message"]
    full = server.request(type="import_session", npc="brenna", session="s",
                          blob=attacks.session_bomb("brenna", "s", 256, server.blob_key))
    assert full["type"] == "done" and full["turns"] == 256
    with ParleyClient(server.endpoint, timeout_s=30.0, retries=0) as c:
        c.set_session_token("brenna", "s", full["session_token"])  # the import made the session: its token
        done = list(c.reply("brenna", "Do you remember me?", session="s"))[-1]
    assert done["type"] == "done"
    server.assert_serving()


def test_idle_connections_beyond_the_cap_are_closed_and_the_server_keeps_its_descriptors(serve):
    # a soft and hard limit of 256 open files: 300 idle connections would exhaust them; the default cap
    # of 512 connections comes down to what the limit allows (256 less 128 kept for the server)
    server = serve(nofile=(256, 256))
    conns = attacks.idle_connections(server.endpoint, 300)
    try:
        time.sleep(1.5)  # past a profile scan, which needs a descriptor of its own
        server.assert_serving()
        assert server.stats()["counters"].get("connections_cut.connection_limit", 0) > 0
    finally:
        for c in conns:
            c.close()


def test_serve_raises_its_open_file_limit_to_the_hard_limit(serve):
    server = serve(nofile=(256, 4096))
    limits = open(f"/proc/{server.proc.pid}/limits").read()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"]


def test_an_endless_multipart_message_is_cut_off_and_memory_stays_bounded(serve):
    server = serve()
    before = rss_mb(server.proc.pid)
    sent = attacks.endless_multipart(server.endpoint, max_bytes=32 << 20, seconds=30)
    assert sent < 32 << 20, "the server took 32 MiB of one unfinished message without cutting it off"
    assert rss_mb(server.proc.pid) - before < 200
    assert server.stats()["counters"].get("connections_cut.unfinished_input", 0) >= 1
    server.assert_serving()


def test_clients_that_never_read_do_not_make_the_server_grow(serve):
    server = serve()
    imported = server.request(type="import_session", npc="brenna", session="big",
                              blob=attacks.big_session_blob("brenna", "big", server.blob_key))
    assert imported["type"] == "done"
    pid = server.proc.pid
    samples = {}

    def sample(at: float):
        samples[at] = rss_mb(pid)

    import threading
    start = time.monotonic()
    timers = [threading.Timer(t, sample, args=(t,)) for t in (4.0, 10.0)]
    for t in timers:
        t.start()
    sent = attacks.non_readers(server.endpoint, "brenna", "big", sockets=10, seconds=10.5,
                               token=imported["session_token"])
    for t in timers:
        t.join()
    assert sent > 1000 and time.monotonic() - start >= 10
    # each client's unread frames are bounded: memory is flat once the bounds are reached
    assert samples[10.0] - samples[4.0] < 15, samples
    assert server.stats()["counters"].get("frames_dropped.not_reading", 0) > 0
    server.assert_serving()


def test_a_failed_graph_run_ends_the_live_replies_and_the_server_keeps_serving(make_server):
    server = make_server()
    with server.client() as c:
        frames = c.reply("talker", "Tell me everything.", stream_unit="token")  # a delta per step while it runs
        assert next(frames)["type"] == "delta"  # streaming: its row is in the decode batch
        server.engine.session.run_options.terminate = True  # the next graph run fails, as a lost GPU would
        try:
            rest = list(frames)
        except Exception as exc:  # the client raises the error frame
            rest = [{"type": "error", "code": getattr(exc, "code", None)}]
        server.engine.session.run_options.terminate = False
        assert rest[-1]["type"] == "error" and rest[-1]["code"] == "internal"
        health = c.health()
        assert health["status"] == "ok" and health["worker"] == "running"
        assert list(c.reply("brenna", "Are you there?"))[-1]["type"] == "done"


HOSTILE_PROFILES = {
    "deep_knowledge.toml": 'name = "D"\npersona = "p"\nfallback_lines = ["..."]\nknowledge = ' + "[" * 600 + "]" * 600,
    "deep_header.toml": 'name = "H"\npersona = "p"\nfallback_lines = ["..."]\n[style.description.'
                        + ".".join(["a"] * 1000) + "]\nx = 1\n",
    "deep_parameters.toml": 'name = "P"\npersona = "p"\nfallback_lines = ["..."]\n[[actions]]\nname = "go"\n'
                            'description = "d"\n[actions.parameters.' + ".".join(["a"] * 20) + "]\nx = 1\n",
    # 160 KB, under the size limit: tomllib alone would spend some 20 GB on it (an outside probe's find)
    "dotted_key_bomb.toml": 'name = "K"\npersona = "p"\nfallback_lines = ["..."]\n' + "a." * 80_000 + "b = 1\n",
    "many_actions.toml": 'name = "M"\npersona = "p"\nfallback_lines = ["..."]\n'
                         + "".join(f'[[actions]]\nname = "act{i}"\ndescription = "does thing number {i}"\n'
                                   for i in range(1000)),
    "huge_prompt.toml": 'name = "B"\npersona = "' + "word " * 790 + '"\nfallback_lines = ["..."]\nknowledge = ['
                        + ", ".join(f'"{"fact " * 90}"' for _ in range(60)) + "]\n",
}


def write_hostile_profiles(folder):
    for name, text in HOSTILE_PROFILES.items():
        (folder / name).write_text(text)
    os.mkfifo(folder / "fifo.toml")


def test_hostile_profiles_are_refused_on_hot_reload_with_their_reasons(serve):
    server = serve()
    write_hostile_profiles(server.profiles)
    answer = server.request(type="reload_profiles")
    assert answer["type"] == "done"
    problems = {os.path.basename(e["file"]): e["message"] for e in answer["errors"]}
    assert set(problems) == set(HOSTILE_PROFILES) | {"fifo.toml"}, problems
    assert "nested too deeply" in problems["deep_knowledge.toml"]
    assert "at most 16" in problems["many_actions.toml"]
    assert "nested at most" in problems["deep_parameters.toml"]
    assert "80001 dotted parts" in problems["dotted_key_bomb.toml"]
    assert "dotted parts" in problems["deep_header.toml"]
    assert "context" in problems["huge_prompt.toml"] and "tokens" in problems["huge_prompt.toml"]
    assert "not a regular file" in problems["fifo.toml"]
    time.sleep(1.5)  # the periodic scan sees the same files, FIFO included
    server.assert_serving()


def test_lint_explains_hostile_profiles_without_a_traceback(tiny_model, tmp_path):
    folder = profiles_copy(tmp_path)
    write_hostile_profiles(folder)
    run = subprocess.run([sys.executable, "-m", "runtime.cli", "lint", str(folder), "--model", str(tiny_model)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr + run.stdout
    for name in [*HOSTILE_PROFILES, "fifo.toml"]:
        assert f"{name}:" in run.stdout or f"{name}: " in run.stdout, name
    assert "4 NPC profile(s) OK" in run.stdout  # the demo NPCs and the talker still lint clean


def test_a_zmq_client_still_connects_after_an_attacker_is_cut(serve):
    server = serve()
    attacks.endless_multipart(server.endpoint, max_bytes=16 << 20, seconds=10)
    with ParleyClient(server.endpoint, timeout_s=30.0, retries=0) as fresh:
        server.assert_serving(fresh)


def test_clients_churning_in_the_servers_own_process_never_confuse_its_connection_checks(make_server):
    # The server inside the game's process (the Python API): descriptor numbers of closed connections
    # are reused at once by the process's own new sockets, which the checks must never take for the old.
    server = make_server()
    with server.client() as steady:
        frames = steady.reply("talker", "Tell me a long story.", stream_unit="token")
        assert next(frames)["type"] == "delta"
        for i in range(100):
            with server.client() as passer:
                assert passer.health()["status"] == "ok"
            attacks.idle_connections(server.endpoint, 1)[0].close()
        assert list(frames)[-1]["type"] == "done"
    assert server.thread.is_alive()
    with server.client() as c:
        assert c.health()["worker"] == "running"


def test_messages_of_a_quarter_million_frames_close_the_connection_and_sigterm_still_works(serve):
    server = serve()
    before = rss_mb(server.proc.pid)
    sent = attacks.many_frame_messages(server.endpoint, frames=250_000, messages=200, seconds=20)
    assert sent < 200, "the server kept taking messages of 250,000 frames"
    assert rss_mb(server.proc.pid) - before < 300
    counters = server.stats()["counters"]  # cut for its frame count, or for the input it sent unread
    assert counters.get("connections_cut.protocol", 0) + counters.get("connections_cut.unfinished_input", 0) >= 1
    server.assert_serving()
    server.proc.terminate()
    assert server.proc.wait(30) == 0


def test_many_small_unfinished_messages_are_cut_when_they_add_up(serve):
    server = serve()
    conns = attacks.trickle(server.endpoint, connections=100, bytes_each=60_000)  # 6 MB, 60 KB each
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not server.stats()["counters"].get("connections_cut.unfinished_input"):
            time.sleep(0.1)
        assert server.stats()["counters"].get("connections_cut.unfinished_input", 0) >= 1
        server.assert_serving()
    finally:
        for c in conns:
            c.close()


def test_idle_connections_at_the_cap_make_room_for_a_new_client(serve):
    server = serve("--max-connections", "32")
    idle = [attacks.zmtp_connect(server.endpoint) for _ in range(40)]
    try:
        with ParleyClient(server.endpoint, timeout_s=30.0, retries=3) as newcomer:
            server.assert_serving(newcomer)
        assert server.stats()["counters"].get("connections_cut.connection_limit", 0) >= 8
    finally:
        for c in idle:
            c.close()


def test_a_connection_waiting_for_its_reply_is_not_the_one_closed_to_make_room(make_server):
    """An outside probe's quiet client lost replies when the cap closed its connection mid-reply: the
    quietest connection was closed even while its answer was on the way."""
    server = make_server(max_connections=8)
    cuts = lambda: server.server.counters.snapshot().get("connections_cut.connection_limit", 0)  # noqa: E731
    with server.client() as waiter:
        with server.engine.lock:  # its reply is taken by the worker and waits: in flight, and quiet
            rid = waiter.send("reply", npc="brenna", text="Hello", deadline_ms=60000)
            deadline = time.monotonic() + 10
            while server.server.scheduler.idle() and time.monotonic() < deadline:
                time.sleep(0.005)
            idle = [attacks.zmtp_connect(server.endpoint) for _ in range(20)]  # each newer than its request
            while cuts() < 13 and time.monotonic() < deadline:
                time.sleep(0.01)
        try:
            assert cuts() >= 13
            frame = waiter.receive(rid)
            while frame is not None and frame["type"] not in ("done", "error"):
                frame = waiter.receive(rid)
            assert frame is not None and frame["type"] == "done"  # not lost with a closed connection
        finally:
            for c in idle:
                c.close()


def test_a_profile_with_thousands_of_problems_is_answered_at_once_with_the_first_fifty(serve):
    server = serve()
    keys = "".join(f"k{i}=1\n" for i in range(20_000))  # under the 256 KiB a profile may have
    (server.profiles / "noisy.toml").write_text('name = "N"\npersona = "p"\nfallback_lines = ["..."]\n' + keys)
    answer = server.request(type="reload_profiles")
    problems = [e for e in answer["errors"] if e["file"].endswith("noisy.toml")]
    assert len(problems) == 51 and "19950 more" in problems[-1]["message"]
    assert problems[0]["line"] == 4  # still pointing at the line
    server.assert_serving()


def test_a_version_that_is_not_the_integer_1_is_refused(serve):
    server = serve()
    for v in (True, 1.0, "1"):
        answer = attacks.send_raw(server.endpoint, msgpack.packb({"v": v, "id": "x", "type": "health"}))
        assert answer["type"] == "error" and answer["code"] == "unsupported_version", v


def test_a_profile_line_of_one_bracket_and_many_spaces_does_not_freeze_the_server(serve):
    server = serve()
    persona = "[" + " " * 30_000  # valid inside a multi-line string; once cubic work for the line lookup
    (server.profiles / "spaces.toml").write_text(f'name = "S"\npersona = """\n{persona}\n"""\n'
                                                  'fallback_lines = ["..."]\nunknown = 1\n')
    answer = server.request(type="reload_profiles")
    problems = [e for e in answer["errors"] if e["file"].endswith("spaces.toml")]
    assert problems and problems[0]["key"] == "unknown" and problems[0]["line"] == 6
    server.assert_serving()


def test_small_parts_on_several_connections_are_cut_before_they_add_up(serve):
    # parts of 34 bytes: ZeroMQ may keep each by reference into an 8 KiB buffer, so they are the
    # costliest input per byte; eight connections of 150 KB each pass the 1 MiB over all connections
    server = serve()
    before = rss_mb(server.proc.pid)
    conns = []
    for _ in range(8):
        c = attacks.zmtp_connect(server.endpoint)
        for _ in range(150_000 // 36):
            c.sendall(b"\x01\x22" + b"x" * 34)
        conns.append(c)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not server.stats()["counters"].get("connections_cut.unfinished_input"):
            time.sleep(0.1)
        assert server.stats()["counters"].get("connections_cut.unfinished_input", 0) >= 1
        assert rss_mb(server.proc.pid) - before < 400
        server.assert_serving()
    finally:
        for c in conns:
            c.close()


def zmtp10_frame(body: bytes, more: bool = False) -> bytes:
    """A frame as ZeroMQ 2.x (ZMTP 1.0, no greeting) sends it: length (flags included), flags, body."""
    n = len(body) + 1
    return (bytes([n]) if n < 255 else b"\xff" + n.to_bytes(8, "big")) + bytes([1 if more else 0]) + body


def test_peers_of_old_zeromq_protocols_and_web_pages_are_refused_and_the_server_lives(serve):
    """An outside probe: libzmq takes a peer that sends no ZMTP 3 greeting for a ZeroMQ 2.x one, and reading
    its frame's source fd raised and ended the server; any web page could do it with <img src> to the port,
    and an HTTP body could frame a real request. The socket's ZAP domain now makes libzmq refuse them."""
    import socket

    server = serve()
    host, port = server.endpoint.removeprefix("tcp://").rsplit(":", 1)
    request = msgpack.packb({"v": 1, "id": "old", "type": "reply", "npc": "brenna", "text": "Iron sword?",
                             "stream": False}, use_bin_type=True)
    payloads = [zmtp10_frame(b"OSTxyz") + zmtp10_frame(request),  # ZeroMQ 2.x: identity, then the request
                b"\xff" + b"\x00" * 7 + b"\x01\x7f" + b"\x01\x05" + b"\x00\x00" + b"\x00\x04abcd",  # ZMTP 2.0
                b"GET /favicon.png HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: image/*\r\n\r\n"]  # a browser
    for payload in payloads:
        replies_before = server.stats()["counters"].get("request.reply", 0)
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(payload)
            time.sleep(0.5)
        assert server.proc.poll() is None, server.proc.stderr.read()
        assert server.stats()["counters"].get("request.reply", 0) == replies_before  # nothing of it was run
        server.assert_serving()
