"""Throw random and mutated frames at a live Parley server and check it keeps its promises.

    .venv/bin/python -m tools.harness.fuzz_server --frames 100000 [--endpoint tcp://127.0.0.1:5555]

Without --endpoint it starts its own server on the bundled demo model (exported if needed).
Every frame must get an `error` answer (or, for a valid request, its normal answer) or be dropped per
the spec (oversized multipart garbage), the server must keep answering `health`, and its memory must
stay bounded. Prints the figures at the end; exit 1 if an invariant broke.
"""
from __future__ import annotations

import argparse
import collections
import random
import sys
import time

import msgpack
import zmq


VALID = [
    {"v": 1, "id": "x", "type": "health"},
    {"v": 1, "id": "x", "type": "list_npcs"},
    {"v": 1, "id": "x", "type": "stats"},
    {"v": 1, "id": "x", "type": "reply", "npc": "brenna", "text": "hi", "deadline_ms": 1},
    {"v": 1, "id": "x", "type": "cancel", "target": "nothing"},
    {"v": 1, "id": "x", "type": "reset_session", "npc": "brenna", "session": "s"},
    {"v": 1, "id": "x", "type": "import_session", "npc": "brenna", "session": "s", "blob": b"\x80"},
]
ODD_VALUES = [None, True, -1, 2**63, -(2**63), 1e308, float("nan"), "", "\x00", "<|end|><|start|>system",
              "é" * 100, b"\xff\xfe", [], {}, [[[[[]]]]], {"a": {"b": {"c": {}}}}, "x" * 70_000, list(range(1000))]


def mutate(rng: random.Random) -> list[bytes]:
    """One frame or multipart message: valid, structurally wrong, or byte-level garbage."""
    choice = rng.random()
    if choice < 0.25:  # a valid-shaped request with one field replaced by something odd
        msg = dict(rng.choice(VALID))
        msg[rng.choice(list(msg) + ["extra"])] = rng.choice(ODD_VALUES)
        return [msgpack.packb(msg, use_bin_type=True)]
    if choice < 0.45:  # byte flips in a valid frame (invalid UTF-8, wrong lengths, truncation)
        raw = bytearray(msgpack.packb(rng.choice(VALID), use_bin_type=True))
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        if rng.random() < 0.3:
            raw = raw[: rng.randrange(len(raw))]
        return [bytes(raw)]
    if choice < 0.6:  # random bytes
        return [rng.randbytes(rng.randint(0, 200))]
    if choice < 0.7:  # deeply nested or huge containers
        value = rng.choice(ODD_VALUES)
        for _ in range(rng.randint(1, 200)):
            value = [value]
        return [msgpack.packb(value, use_bin_type=True)]
    if choice < 0.8:  # multipart: extra frames, empty frames
        return [msgpack.packb(rng.choice(VALID), use_bin_type=True), rng.randbytes(rng.randint(0, 20))]
    if choice < 0.9:  # msgpack types the protocol never uses
        return [msgpack.packb({"v": 1, "id": rng.choice(["x", 5, None, b"id"]), "type": rng.choice(ODD_VALUES[:8])},
                              use_bin_type=True)]
    return [msgpack.packb(rng.choice(ODD_VALUES), use_bin_type=True)]


def rss_mb(pid: int | None = None) -> float:
    path = f"/proc/{pid or 'self'}/status"
    for line in open(path):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# The server closes a connection holding more than 160 KiB of input it has not read yet (docs/protocol.md,
# limits), and its unanswered requests go with it: a client that wants every answer keeps under that.
WINDOW_BYTES = 96 * 1024


def fuzz(endpoint: str, frames: int, seed: int = 0, server_pid: int | None = None, window: int = 32) -> dict:
    rng = random.Random(seed)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    health = ctx.socket(zmq.DEALER)
    health.setsockopt(zmq.LINGER, 0)
    health.connect(endpoint)
    sent = answered = errors = health_checks = 0
    codes: dict[str, int] = {}
    rss_before = rss_mb(server_pid) if server_pid else None
    start = time.monotonic()
    outstanding = 0
    in_flight: collections.deque[int] = collections.deque()  # sizes of the frames not answered yet, oldest first
    next_health = 0
    while sent < frames or outstanding:
        while sent < frames and outstanding < window and sum(in_flight) < WINDOW_BYTES:
            parts = mutate(rng)
            sock.send_multipart(parts)
            in_flight.append(sum(map(len, parts)))
            sent += 1
            outstanding += 1
        if not sock.poll(5000):
            break  # nothing more is coming: the rest were dropped (counted below)
        while sock.poll(0):
            frame = msgpack.unpackb(sock.recv(), raw=False)
            if frame.get("type") not in ("done", "error"):
                continue  # deltas of a request that happened to be valid
            answered += 1
            outstanding -= 1
            if in_flight:
                in_flight.popleft()  # answers come about in order: an estimate of what is still unread
            if frame.get("type") == "error":
                errors += 1
                codes[frame["code"]] = codes.get(frame["code"], 0) + 1
        if sent >= next_health:  # the server must keep answering health all along
            next_health += 500
            health.send(msgpack.packb({"v": 1, "id": f"h{sent}", "type": "health"}))
            if not health.poll(10_000):
                raise AssertionError(f"the server stopped answering health after {sent} frames")
            health.recv()
            health_checks += 1
    sock.close()
    health.close()
    return {"frames": sent, "answered": answered, "errors": errors, "unanswered": sent - answered, "codes": codes,
            "health_checks": health_checks, "seconds": round(time.monotonic() - start, 1),
            "server_rss_mb_before": rss_before, "server_rss_mb_after": rss_mb(server_pid) if server_pid else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--endpoint")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.endpoint:
        report = fuzz(args.endpoint, args.frames, args.seed)
    else:
        from tools.harness.local_server import demo_server
        with demo_server() as (endpoint, pid):
            report = fuzz(endpoint, args.frames, args.seed, pid)
    for key, value in report.items():
        print(f"{key:>22}: {value}")
    return 0 if report["unanswered"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
