"""The Python client's view of its connection (runtime/client_link.py), on real sockets.

An outside review found that libzmq's socket monitor, whose queue it never lets overflow, blocks the
context's I/O thread once that queue is full: a client whose handshakes kept failing (a wrong server key)
filled it in minutes, then every socket of the process stalled and closing the client hung for ever."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import zmq

from runtime.client_link import ClientLink

ROOT = Path(__file__).resolve().parents[2]

FAILING_HANDSHAKES = textwrap.dedent("""
    import time, zmq
    from zmq.utils.monitor import recv_monitor_message
    from runtime.client_link import ClientLink
    ctx = zmq.Context()
    server = ctx.socket(zmq.ROUTER)
    server.curve_server = True
    server.curve_publickey, server.curve_secretkey = zmq.curve_keypair()
    failures = server.get_monitor_socket(zmq.EVENT_ACCEPTED)  # each try of the client, read as they come
    port = server.bind_to_random_port("tcp://127.0.0.1")
    client = ctx.socket(zmq.DEALER)
    client.setsockopt(zmq.LINGER, 0)
    client.setsockopt(zmq.RECONNECT_IVL, 1)  # tried again at once
    client.curve_serverkey = zmq.curve_keypair()[0]  # the wrong server key: every handshake fails
    client.curve_publickey, client.curve_secretkey = zmq.curve_keypair()
    link = ClientLink(client)
    client.connect(f"tcp://127.0.0.1:{port}")
    seen, give_up = 0, time.monotonic() + 40
    while seen < 2500 and time.monotonic() < give_up:  # more than the monitor's queue held (2000)
        if failures.poll(100):
            recv_monitor_message(failures)
            seen += 1
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("tcp://127.0.0.1:*")
    b.connect(a.getsockopt_string(zmq.LAST_ENDPOINT))
    b.send(b"still carried")
    assert a.poll(5000) and a.recv() == b"still carried", f"the context stalled after {seen} failed handshakes"
    assert not link.up_within(0)
    link.close()
    print("closed", seen)
""")


def test_a_client_whose_handshakes_keep_failing_never_stalls_the_process():
    try:
        done = subprocess.run([sys.executable, "-c", FAILING_HANDSHAKES], cwd=ROOT, capture_output=True, text=True,
                              timeout=90)
    except subprocess.TimeoutExpired:
        raise AssertionError("closing the client hung") from None
    assert done.returncode == 0 and done.stdout.split()[:1] == ["closed"], done.stderr[-2000:]
    assert int(done.stdout.split()[1]) >= 2500


def test_the_link_is_up_once_a_handshake_succeeds_and_down_when_the_server_goes():
    ctx = zmq.Context.instance()
    server = ctx.socket(zmq.ROUTER)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    client = ctx.socket(zmq.DEALER)
    client.setsockopt(zmq.LINGER, 0)
    link = ClientLink(client)
    try:
        assert not link.up_within(0)
        client.connect(f"tcp://127.0.0.1:{port}")
        assert link.up_within(5)
        server.close(0)
        deadline = time.monotonic() + 5
        while link.up_within(0) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not link.up_within(0)
    finally:
        link.close()
        client.close(0)


def test_a_client_no_connection_took_stops_trying_until_its_next_request():
    """libzmq tries a refused handshake again every 100 ms, whatever its back-off says: an idle client with
    the wrong server key kept trying ten times a second, each try an event queued for its next call (an
    outside review measured some 125 MB a day)."""
    from runtime.client import ParleyClient, ServerUnavailable

    ctx = zmq.Context.instance()
    server = ctx.socket(zmq.ROUTER)
    server.curve_server = True
    public, secret = zmq.curve_keypair()
    server.curve_publickey, server.curve_secretkey = public, secret
    tries = server.get_monitor_socket(zmq.EVENT_ACCEPTED)
    port = server.bind_to_random_port("tcp://127.0.0.1")

    def tries_within(seconds: float) -> int:
        seen, until = 0, time.monotonic() + seconds
        while time.monotonic() < until:
            if tries.poll(50):
                tries.recv_multipart()
                seen += 1
        return seen

    client = ParleyClient(f"tcp://127.0.0.1:{port}", timeout_s=0.5, retries=0,
                          server_public_key=zmq.curve_keypair()[0])  # the wrong key
    try:
        try:
            client.health()
            raise AssertionError("no handshake can succeed")
        except ServerUnavailable:
            pass
        tries_within(0.3)  # those of the request itself
        assert tries_within(1.5) == 0  # idle: no more
        client.server_public_key = public  # the next request connects again, with the right key now
        rid = client.send("health")
        assert server.poll(5000), "the next request must reach the server"
        frames = server.recv_multipart()
        assert rid.encode() in frames[-1]
    finally:
        client.close()
        server.disable_monitor()
        tries.close(0)
        server.close(0)
