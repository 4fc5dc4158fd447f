"""Attacks on a running `parley serve`, each sending the real bytes a hostile client would send.

    .venv/bin/python -m tools.harness.attacks --seconds 60            # all at once, with tools/harness/stress.py clients
    .venv/bin/python -m tools.harness.attacks --endpoint tcp://127.0.0.1:5555 --seconds 60

Used one at a time by tests/hardening/test_attacks.py, and all together by the soak (main below): the
stress clients' requests must each get exactly one terminal frame, `health` must keep answering, and the
server's memory must stay flat. Without --endpoint it starts its own server on the bundled demo model.
"""
from __future__ import annotations

import argparse
import os
import socket
import struct
import tempfile
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import msgpack
import zmq

from tools.harness.fuzz_server import rss_mb


def _host_port(endpoint: str) -> tuple[str, int]:
    url = urlparse(endpoint)
    return url.hostname or "127.0.0.1", int(url.port)


def zmtp_connect(endpoint: str, timeout_s: float = 5.0) -> socket.socket:
    """A raw TCP connection that completes ZMTP 3.1's NULL handshake as a DEALER, and nothing more:
    what follows is whatever bytes the caller writes, unlike a ZeroMQ socket, which buffers a
    multipart message until its last part."""
    sock = socket.create_connection(_host_port(endpoint), timeout=timeout_s)
    greeting = b"\xff" + b"\x00" * 7 + b"\x01\x7f" + b"\x03\x01" + b"NULL".ljust(20, b"\x00") + b"\x00" * 32
    sock.sendall(greeting[:10])  # the signature first: the peer answers with its own, then the rest
    _read_exactly(sock, 10)
    sock.sendall(greeting[10:])
    _read_exactly(sock, 54)
    props = b"".join(bytes([len(k)]) + k + struct.pack(">I", len(v)) + v
                     for k, v in ((b"Socket-Type", b"DEALER"), (b"Identity", b"")))
    body = b"\x05READY" + props
    sock.sendall(bytes([0x04, len(body)]) + body)
    return sock


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection during the handshake")
        data += chunk
    return data


def endless_multipart(endpoint: str, max_bytes: int, seconds: float = 30.0) -> int:
    """One message of empty frames that never ends (2 bytes each on the wire). Returns the bytes sent
    before the server closed the connection, or max_bytes if it never did."""
    sock = zmtp_connect(endpoint)
    chunk, sent, stop = b"\x01\x00" * 32768, 0, time.monotonic() + seconds
    try:
        while sent < max_bytes and time.monotonic() < stop:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        return sent
    finally:
        sock.close()
    return max_bytes


def many_frame_messages(endpoint: str, frames: int, messages: int, seconds: float = 30.0) -> int:
    """Complete messages of `frames` empty frames each, back to back: what ZeroMQ holds whole until the
    server reads them. Returns how many were sent before the server closed the connection."""
    sock = zmtp_connect(endpoint)
    message = b"\x01\x00" * (frames - 1) + b"\x00\x00"  # the last frame has no MORE flag
    stop, sent = time.monotonic() + seconds, 0
    try:
        while sent < messages and time.monotonic() < stop:
            sock.sendall(message)
            sent += 1
    except OSError:
        pass
    finally:
        sock.close()
    return sent


def trickle(endpoint: str, connections: int, bytes_each: int) -> list[socket.socket]:
    """Many connections, each holding a small unfinished message (well under any one connection's
    limit); together they add up. The caller closes them."""
    conns = []
    for _ in range(connections):
        try:
            c = zmtp_connect(endpoint)
            c.sendall(b"\x01\x00" * (bytes_each // 2))
            conns.append(c)
        except OSError:
            break
    return conns


def nested(depth: int):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def deep_nesting_requests(depth: int = 1000) -> list[bytes]:
    """Requests whose `v`, `type` or `id` is a list nested `depth` deep (msgpack allows 1,024)."""
    return [msgpack.packb({"v": nested(depth), "id": "deep-v", "type": "health"}),
            msgpack.packb({"v": 1, "id": "deep-type", "type": nested(depth)}),
            msgpack.packb({"v": 1, "id": nested(depth), "type": "health"})]


def session_bomb(npc: str, session: str, turns: int, key: bytes | None = None) -> bytes:
    """A session blob holding `turns` empty turns: signed with `key` (the server's, as a studio's own
    tool could), or forged (a random key) without one."""
    from runtime.harmony import Turn
    from runtime.session_blob import dump

    return dump(npc, session, [Turn("", "")] * turns, key or os.urandom(32))


def idle_connections(endpoint: str, count: int) -> list[socket.socket]:
    """Plain TCP connections that say nothing: each holds a file descriptor in the server."""
    conns = []
    for _ in range(count):
        try:
            conns.append(socket.create_connection(_host_port(endpoint), timeout=5))
        except OSError:
            break
    return conns


def big_session_blob(npc: str, session: str, key: bytes) -> bytes:
    """A legitimate session (signed with the server's key) whose export is about 44 KiB: what a
    non-reading client asks for again."""
    from runtime.harmony import Turn
    from runtime.session_blob import dump

    return dump(npc, session, [Turn("x" * 180, "y" * 180)] * 120, key)


def non_readers(endpoint: str, npc: str, session: str, sockets: int, seconds: float, rate_per_s: float = 18.0,
                token: str | None = None) -> int:
    """Clients that ask for a session export again and again and never read an answer (with the
    session's token, so each answer is the big blob). Returns the number of requests sent."""
    held = {"session_token": token} if token else {}
    ctx = zmq.Context.instance()
    socks = []
    for _ in range(sockets):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVHWM, 1)  # and let nothing pile up on our side either
        s.connect(endpoint)
        socks.append(s)
    sent, stop, n = 0, time.monotonic() + seconds, 0
    while time.monotonic() < stop:
        for s in socks:
            s.send(msgpack.packb({"v": 1, "id": f"x{n}", "type": "export_session", "npc": npc, "session": session,
                                  **held}))
            n += 1
            sent += 1
        time.sleep(1 / rate_per_s)
    for s in socks:
        s.close()
    return sent


def send_raw(endpoint: str, payload: bytes, timeout_s: float = 10.0) -> dict | None:
    """One frame from a fresh DEALER; the first answer, or None if none came."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send(payload)
        if not sock.poll(int(timeout_s * 1000)):
            return None
        return msgpack.unpackb(sock.recv(), raw=False)
    finally:
        sock.close()


def soak(endpoint: str, seconds: float, server_pid: int | None, npc: str = "brenna",
         blob_key: bytes | None = None) -> dict:
    """Every attack at once, repeatedly, while tools/harness/stress.py's clients talk to the server."""
    from tools.harness.stress import stress

    report: dict = {"rss_mb": []}
    stop = threading.Event()
    counts = {"endless_multipart": 0, "many_frame_messages": 0, "trickle_bursts": 0, "deep_nesting": 0,
              "session_bombs": 0, "idle_connection_bursts": 0, "non_reader_requests": 0}

    def loop(name, action):
        while not stop.is_set():
            try:
                action()
                counts[name] += 1
            except (OSError, zmq.ZMQError):
                counts[name] += 1  # refused or cut: that is the server defending itself

    def bomb():
        send_raw(endpoint, msgpack.packb({"v": 1, "id": "b", "type": "import_session", "npc": npc,
                                          "session": "bomb", "blob": session_bomb(npc, "bomb", 2000)}))

    def fds():
        conns = idle_connections(endpoint, 300)
        time.sleep(1)
        for c in conns:
            c.close()

    def trickles():
        conns = trickle(endpoint, 100, 60_000)
        time.sleep(1)
        for c in conns:
            c.close()

    def deep():
        for payload in deep_nesting_requests():
            send_raw(endpoint, payload)

    threads = [threading.Thread(target=loop, args=args, daemon=True) for args in (
        ("endless_multipart", lambda: endless_multipart(endpoint, 64 << 20, 5)),
        ("many_frame_messages", lambda: many_frame_messages(endpoint, 250_000, 50, 5)),
        ("trickle_bursts", trickles),
        ("deep_nesting", deep), ("session_bombs", bomb), ("idle_connection_bursts", fds))]
    token = None
    if blob_key is not None:  # a big session for the non-readers to ask for (signed with the server's key)
        imported = send_raw(endpoint, msgpack.packb({"v": 1, "id": "big", "type": "import_session", "npc": npc,
                                                     "session": "big", "blob": big_session_blob(npc, "big", blob_key)}))
        token = (imported or {}).get("session_token")
    threads.append(threading.Thread(target=lambda: counts.__setitem__(
        "non_reader_requests", non_readers(endpoint, npc, "big", 10, seconds, token=token)), daemon=True))

    def sample():
        while not stop.is_set() and server_pid:
            report["rss_mb"].append(round(rss_mb(server_pid), 1))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for t in threads:
        t.start()
    start = time.monotonic()
    rounds = []
    while time.monotonic() - start < seconds:
        rounds.append(stress(endpoint, clients=4, requests=10, timeout_s=60))
    stop.set()
    for t in threads:
        t.join(30)
    report["attacks"] = counts
    rss = report.pop("rss_mb") or [0.0]
    quarter = rss[len(rss) // 4]
    report["server_rss_mb"] = {"start": rss[0], "at_25%": quarter, "max": max(rss), "end": rss[-1],
                               "growth_after_25%": round(rss[-1] - quarter, 1)}
    report["stress_rounds"] = len(rounds)
    report["requests"] = sum(r["requests"] for r in rounds)
    report["missing_terminal"] = sum(r["missing_terminal"] for r in rounds)
    report["duplicate_terminal"] = sum(r["duplicate_terminal"] for r in rounds)
    report["done"] = sum(r["done"] for r in rounds)
    health = send_raw(endpoint, msgpack.packb({"v": 1, "id": "h", "type": "health"}))
    report["health_after"] = health and health.get("status")
    stats = send_raw(endpoint, msgpack.packb({"v": 1, "id": "s", "type": "stats"}))
    report["counters"] = {k: v for k, v in (stats or {}).get("counters", {}).items()
                          if k.startswith(("connections_cut", "frames_dropped", "requests_dropped", "error."))}
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--endpoint")
    ap.add_argument("--blob-key", type=Path, help="the server's session-blob key file (with --endpoint), so the "
                                                  "non-reading clients can ask for a big session")
    args = ap.parse_args()
    from runtime.blob_key import load_or_create

    if args.endpoint:
        report = soak(args.endpoint, args.seconds, None, blob_key=load_or_create(args.blob_key) if args.blob_key else None)
    else:
        from tools.harness.local_server import demo_server
        with tempfile.TemporaryDirectory() as keys:
            key_file = Path(keys) / "blob.key"
            with demo_server("--max-queue", "64", "--blob-key", str(key_file)) as (endpoint, pid):
                report = soak(endpoint, args.seconds, pid, blob_key=load_or_create(key_file))
    for key, value in report.items():
        print(f"{key:>22}: {value}")
    ok = report["missing_terminal"] == 0 and report["duplicate_terminal"] == 0 and report["health_after"] == "ok"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
