"""The connection guard on a real ROUTER socket, driven step by step: the order in which the server's loop
reads a request and handles its connection's accept event is the test's to choose."""
from __future__ import annotations

import time

import zmq

from runtime.connection_guard import ConnectionGuard
from runtime.counters import Counters
from tools.harness import attacks


def pump(guard: ConnectionGuard, until) -> None:
    """Handle the guard's connection events until `until()` holds (or 10 s pass)."""
    deadline = time.monotonic() + 10
    while not until() and time.monotonic() < deadline:
        if guard.monitor.poll(50):
            guard.on_monitor()


def test_a_request_read_before_its_accept_event_still_keeps_its_connection_open_at_the_cap():
    """A review found the guard learnt a connection's routing id only from a record made at its accept
    event: a request read first left the connection unknown, so at the cap it could be closed mid-reply."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind("tcp://127.0.0.1:0")
    endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
    waiting: set[bytes] = set()
    counters = Counters()
    guard = ConnectionGuard(router, max_connections=2, max_unfinished_bytes=1 << 20,
                            max_unfinished_total=1 << 22, counters=counters, waiting=lambda: set(waiting))
    cuts = lambda: counters["connections_cut.connection_limit"]  # noqa: E731
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(endpoint)
    idle = []
    try:
        dealer.send(b"a request")
        assert router.poll(5000)
        identity = router.recv(copy=False)
        frame = router.recv(copy=False)
        fd = frame.get(zmq.SRCFD)
        guard.delivered(fd, [len(frame)], identity.bytes)  # read before the guard saw it accepted
        waiting.add(identity.bytes)  # its reply is running
        pump(guard, lambda: fd in guard._conns)
        idle = [attacks.zmtp_connect(endpoint) for _ in range(3)]  # newer, and quiet: over the cap of 2
        pump(guard, lambda: cuts() >= 2)
        assert cuts() == 2
        assert fd in guard._conns and not guard._conns[fd].cut  # the oldest and quietest, but waiting
        dealer.send(b"still here")
        assert router.poll(5000)  # and its connection still carries its messages
    finally:
        for c in idle:
            c.close()
        guard.close()
        dealer.close(0)
        router.close(0)
        ctx.term()
