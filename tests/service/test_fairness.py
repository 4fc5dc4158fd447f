"""Clients share the server fairly: a flooding client holds at most its share of the queue and does not
keep another's replies out of the batch; connections of one allow-listed key count as one client."""
from __future__ import annotations

import time

import msgpack
import zmq
import zmq.auth

from runtime import protocol as p


def terminal_frames_in_order(clients: dict, expected: int) -> list[tuple[str, dict]]:
    """(client name, frame) for every terminal frame, in the order they arrive across the sockets."""
    poller = zmq.Poller()
    for client in clients.values():
        poller.register(client.socket, zmq.POLLIN)
    names = {client.socket: name for name, client in clients.items()}
    order: list[tuple[str, dict]] = []
    while len(order) < expected:
        events = dict(poller.poll(60_000))
        assert events, "every request gets its last frame"
        for sock in events:
            frame = msgpack.unpackb(sock.recv(), raw=False)
            if frame["type"] in ("done", "error"):
                order.append((names[sock], frame))
    return order


def test_a_flooding_client_gets_busy_for_its_excess_and_another_client_takes_turns_with_it(make_server):
    server = make_server(max_batch=1, max_queue=32, max_queued_per_client=8, rate_per_s=float("inf"))
    with server.client() as flood, server.client() as player:
        for _ in range(20):
            flood.send("reply", npc="talker", text="Tell me a long story.", deadline_ms=120_000)
        busy = []
        while len(busy) < 20 - 8 - 1:  # past one running and its 8 queued, `busy` comes at once
            assert flood.socket.poll(10_000)
            frame = msgpack.unpackb(flood.socket.recv(), raw=False)
            if frame.get("code") == p.BUSY:
                busy.append(frame)
        assert all("this client" in a["message"] for a in busy)
        for _ in range(3):
            player.send("reply", npc="brenna", text="Hello", deadline_ms=120_000)
        order = terminal_frames_in_order({"flood": flood, "player": player}, expected=20 - len(busy) + 3)
    late_busy = [f for who, f in order if who == "flood" and f.get("code") == p.BUSY]  # if none had started yet
    order = [(who, f) for who, f in order if f.get("code") != p.BUSY]
    assert len(busy) + len(late_busy) <= 12 and len(order) >= 11
    assert all(f["type"] == "done" for _, f in order)  # none of the player's was refused
    # round robin: the player's replies took turns with the flood's queue instead of waiting behind it
    last_player = max(i for i, (who, _) in enumerate(order) if who == "player")
    assert sum(who == "player" for who, _ in order) == 3
    assert sum(who == "flood" for who, _ in order[last_player:]) >= 4


def test_connections_with_one_allow_listed_key_share_one_rate_limit(make_server, allow_listed_keys):
    keys, allowed, other_secret = allow_listed_keys
    server = make_server(curve_secret_file=keys / "server.key_secret", client_keys_dir=allowed, rate_per_s=1e-6,
                         burst=3)
    server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))
    same_key = zmq.auth.load_certificate(str(keys / "client.key_secret"))
    other_key = zmq.auth.load_certificate(str(other_secret))

    def connect(keypair):
        return server.client(server_public_key=server_public, client_keys=keypair)

    with connect(same_key) as first:
        assert all(first.health()["status"] == "ok" for _ in range(3))  # the key's burst, spent
    with connect(same_key) as second:  # a new connection, the same key: no fresh burst
        rid = second.send("health")
        answer = msgpack.unpackb(second.socket.recv(), raw=False)
        assert answer["id"] == rid and answer["code"] == p.RATE_LIMITED
    with connect(other_key) as stranger:  # another key has its own
        assert stranger.health()["status"] == "ok"


def test_a_full_queue_makes_room_for_a_quiet_client_by_refusing_the_floods_newest(make_server):
    """An outside probe's few flooding connections kept the queue full, and a player asking now and then
    got `busy` a third of the time. A full queue now refuses the newest request of a client holding two
    or more places than the newcomer."""
    server = make_server(max_batch=1, max_queue=8, max_queued_per_client=8, rate_per_s=float("inf"))
    with server.client() as flood, server.client() as player:
        with server.engine.lock:  # nothing finishes meanwhile: one taken by the worker, eight queued
            scheduler = server.server.scheduler

            def send_and_wait(queued: int) -> str:
                rid = flood.send("reply", npc="talker", text="Tell me a long story.", deadline_ms=120_000)
                deadline = time.monotonic() + 10
                while (scheduler.idle() or len(scheduler.queued()) != queued) and time.monotonic() < deadline:
                    time.sleep(0.005)
                return rid
            # the worker takes the first before the others come (under load it could lag behind them, and the
            # ninth was refused as over the limit, not for the player)
            sent = [send_and_wait(0)] + [send_and_wait(n) for n in range(1, 9)]
            mine = player.send("reply", npc="brenna", text="Hello", deadline_ms=120_000)
            refused = msgpack.unpackb(flood.socket.recv(), raw=False)  # arrives while the lock is held
            assert refused["id"] == sent[-1] and refused["code"] == p.BUSY and "holds more" in refused["message"]
        order = terminal_frames_in_order({"flood": flood, "player": player}, expected=9)
    assert ("player", "done") in [(who, f["type"]) for who, f in order if f.get("id") == mine]
    assert all(f["type"] == "done" for _, f in order)


def test_a_slow_rate_limit_still_lets_a_request_through(make_server, tmp_path):
    """An outside review: `--rate-limit 0.3` made a burst of int(0.6) = 0, and every request was refused."""
    import subprocess
    import sys

    from runtime.cli_service import rate_burst

    assert rate_burst(0.3) == 1 and rate_burst(20) == 40 and rate_burst(0) > 10**6
    server = make_server(rate_per_s=0.3, burst=rate_burst(0.3))
    with server.client() as c:
        assert c.health()["status"] == "ok"  # the one request the burst allows
        rid = c.send("health")
        answer = msgpack.unpackb(c.socket.recv(), raw=False)
        assert answer["id"] == rid and answer["code"] == p.RATE_LIMITED
    result = subprocess.run([sys.executable, "-m", "runtime.cli", "serve", "--model", str(tmp_path), "--rate-limit",
                             "-1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "--rate-limit -1" in result.stderr and "Traceback" not in result.stderr
