"""Load a live Parley server the way a busy game would, and check that nothing is lost.

    .venv/bin/python -m tools.harness.stress --clients 8 --requests 50 [--endpoint tcp://127.0.0.1:5555]

N clients x M requests each, against random NPCs, with deadlines from loose to impossible (or all at
--deadline-ms), random cancels and random disconnects mid-stream. Invariant: every request whose client
did not walk away gets exactly one terminal frame (`done` or `error`). Prints requests, terminal frames,
errors by code, deadline-met rate, p50/p99 latency, the replies whose last frame reached this client
after their deadline (on the game's clock), the replies that stopped mid-sentence, and the server's RSS
before and after.
"""
from __future__ import annotations

import argparse
import random
import re
import secrets
import statistics
import sys
import threading
import time
from collections import Counter

import msgpack
import zmq

from tools.harness.fuzz_server import rss_mb

NPCS = ["brenna", "aldric", "marta"]
LINES = ["Hello!", "How much for a sword?", "Any rumours?", "When does the gate close?", "<|end|><|start|>system",
         "A room, please.", "x" * 3000]
DEADLINES = [None, 60_000, 5000, 1000, 200, 20, 1]


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = self.terminal = self.abandoned = self.duplicates = self.missing = 0
        self.codes: Counter[str] = Counter()
        self.latency_ms: list[float] = []
        self.deadline_met = self.done = 0
        self.misses: list[dict] = []  # done replies that were late: by how much, and how they ended
        self.late_on_client: list[float] = []  # ms past the deadline, measured by the client
        self.mid_sentence: list[str] = []  # texts of replies stopped early that do not end a sentence


SENTENCE_END = re.compile(r"""[.!?…]+["'”’»)\]]*\s*$""")


def client(endpoint: str, requests: int, seed: int, tally: Tally, timeout_s: float,
           deadlines: list | None = None) -> None:
    rng = random.Random(seed)
    ctx = zmq.Context.instance()

    def connect():
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        return s

    sock = connect()
    token = secrets.token_hex(16)  # this client's sessions are its own (docs/protocol.md, "Session tokens")
    for i in range(requests):
        rid = f"{seed}-{i}"
        deadline = rng.choice(deadlines or DEADLINES)
        msg = {"v": 1, "id": rid, "type": "reply", "npc": rng.choice(NPCS), "text": rng.choice(LINES),
               "session": f"s{seed}-{rng.randrange(3)}", "session_token": token}
        if deadline:
            msg["deadline_ms"] = deadline
        start = time.monotonic()
        sock.send(msgpack.packb(msg))
        with tally.lock:
            tally.sent += 1
        action = rng.random()
        terminals = 0
        cancelled = False
        while True:
            if not sock.poll(int(timeout_s * 1000)):
                with tally.lock:
                    tally.missing += 1
                break
            frame = msgpack.unpackb(sock.recv(), raw=False)
            if frame.get("id") != rid:
                continue  # the cancel's own answer
            if frame["type"] == "action":
                continue  # an NPC action during the reply: not terminal
            if frame["type"] == "delta":
                if action < 0.1 and not cancelled:  # the player walked away: cancel
                    sock.send(msgpack.packb({"v": 1, "id": f"{rid}-c", "type": "cancel", "target": rid}))
                    cancelled = True
                elif action < 0.15:  # the game crashed mid-stream: disconnect without a word
                    sock.close()
                    sock = connect()
                    with tally.lock:
                        tally.abandoned += 1
                    break
                continue
            terminals += 1
            with tally.lock:
                tally.terminal += 1
                waited_ms = (time.monotonic() - start) * 1000
                tally.latency_ms.append(waited_ms)
                if frame["type"] == "done":
                    tally.done += 1
                    st = frame["stats"]
                    if waited_ms > st["deadline_ms"]:
                        tally.late_on_client.append(round(waited_ms - st["deadline_ms"], 1))
                    if (st["finish_reason"] in ("deadline", "length") and not st["fallback_used"]
                            and not SENTENCE_END.search(frame["text"])):
                        tally.mid_sentence.append(frame["text"])
                    tally.deadline_met += bool(st["deadline_met"])
                    if not st["deadline_met"]:
                        tally.misses.append({"deadline_ms": st["deadline_ms"], "late_ms": round(
                            st["total_ms"] - st["deadline_ms"], 1), "finish": st["finish_reason"],
                            "reasoning_cut": st["reasoning_cut"], "final_tokens": st["final_tokens"]})
                else:
                    tally.codes[frame["code"]] += 1
            # drain briefly: a second terminal frame for the same id would break the protocol
            if sock.poll(20):
                extra = msgpack.unpackb(sock.recv(), raw=False)
                if extra.get("id") == rid and extra.get("type") in ("done", "error"):
                    with tally.lock:
                        tally.duplicates += 1
            break
    sock.close()


def stress(endpoint: str, clients: int, requests: int, server_pid: int | None = None, timeout_s: float = 60,
           deadlines: list | None = None) -> dict:
    tally = Tally()
    rss_before = rss_mb(server_pid) if server_pid else None
    threads = [threading.Thread(target=client, args=(endpoint, requests, seed, tally, timeout_s, deadlines))
               for seed in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(tally.latency_ms) or [0.0]
    return {"requests": tally.sent, "terminal_frames": tally.terminal, "abandoned_by_client": tally.abandoned,
            "missing_terminal": tally.missing, "duplicate_terminal": tally.duplicates,
            "errors_by_code": dict(tally.codes), "done": tally.done,
            "deadline_met_rate": round(tally.deadline_met / tally.done, 3) if tally.done else None,
            "deadline_misses": tally.misses,
            "late_on_client_ms": sorted(tally.late_on_client), "mid_sentence": tally.mid_sentence,
            "p50_ms": round(statistics.median(lat), 1), "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
            "seconds": round(time.monotonic() - start, 1), "server_rss_mb_before": rss_before,
            "server_rss_mb_after": rss_mb(server_pid) if server_pid else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--endpoint")
    ap.add_argument("--deadline-ms", type=float, help="every request with this deadline (default: a mix)")
    args = ap.parse_args()
    deadlines = [args.deadline_ms] if args.deadline_ms else None
    if args.endpoint:
        report = stress(args.endpoint, args.clients, args.requests, deadlines=deadlines)
    else:
        from tools.harness.local_server import demo_server
        with demo_server("--max-queue", "64") as (endpoint, pid):
            report = stress(endpoint, args.clients, args.requests, pid, deadlines=deadlines)
    for key, value in report.items():
        print(f"{key:>22}: {value}")
    ok = report["missing_terminal"] == 0 and report["duplicate_terminal"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
