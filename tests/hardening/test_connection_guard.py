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


def test_where_libzmq_cannot_have_a_connection_shut_down_under_it_none_is_cut():
    """Windows' libzmq aborts the process when it reads a socket shut down from outside (WSAESHUTDOWN is not
    among the errors its tcp_read allows), so there the guard counts what it would cut and leaves it open."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind("tcp://127.0.0.1:0")
    endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
    counters = Counters()
    guard = ConnectionGuard(router, max_connections=1, max_unfinished_bytes=1 << 20,
                            max_unfinished_total=1 << 22, counters=counters, can_shut_down=False)
    would_cut = lambda: counters["connections_not_cut.connection_limit"]  # noqa: E731
    raw = []
    try:
        raw = [attacks.zmtp_connect(endpoint) for _ in range(3)]
        pump(guard, lambda: would_cut() >= 2)
        assert would_cut() == 2 and counters["connections_cut.connection_limit"] == 0
        for sock in raw:  # every connection still open: nothing arrives, not even the end of the stream
            sock.settimeout(0.3)
            try:
                assert sock.recv(1) != b"", "a connection was closed"
            except TimeoutError:
                pass
    finally:
        for sock in raw:
            sock.close()
        guard.close()
        router.close(0)
        ctx.term()
