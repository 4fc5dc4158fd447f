"""Whether a client socket has a connection made (its handshake done), read from the socket's monitor.

The client sends a request only on a made connection, never queuing one for a connection to come (a server
restarting would get it late, beside the client's own resend). ZeroMQ's ZMQ_IMMEDIATE does that, but with it
a dropped connection throws away the frames that had arrived and were not yet read: a reply's last frame,
sent just before the server stopped, was lost (one run in a few of a stop test, under load). The monitor
loses none. One race is left: a request sent as the connection drops waits in ZeroMQ's queue and goes to
the next connection (with ZMQ_IMMEDIATE it was dropped); the window is the microseconds between the check
and the send.
"""
from __future__ import annotations

import itertools
import os
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

UP = zmq.EVENT_HANDSHAKE_SUCCEEDED
# libzmq sends DISCONNECTED for every connection that ends or fails its handshake; a refused connect (a
# server that is down) sends none of these two, so a client left alone collects no events
DOWN = zmq.EVENT_DISCONNECTED
# libzmq 4.3 has the handshake event in every build; with an older one, ZMQ_IMMEDIATE does the job
HAS_HANDSHAKE_EVENT = zmq.zmq_version_info() >= (4, 3)
_names = itertools.count()


class ClientLink:
    """Watches one socket (call before it connects); close() before the socket is closed."""

    def __init__(self, sock: zmq.Socket):
        self._sock = sock
        self._up = False
        self._monitor: zmq.Socket | None = None
        if not HAS_HANDSHAKE_EVENT:
            sock.setsockopt(zmq.IMMEDIATE, 1)
            return
        address = f"inproc://parley-client-link-{os.getpid()}-{next(_names)}"
        sock.monitor(address, UP | DOWN)
        self._monitor = sock.context.socket(zmq.PAIR)
        # no limit on our end: libzmq's monitor blocks its I/O thread when the queue is full (every socket of
        # the context stalls, and disable_monitor() hangs the process), it never drops an event
        self._monitor.setsockopt(zmq.RCVHWM, 0)
        self._monitor.setsockopt(zmq.LINGER, 0)
        self._monitor.connect(address)

    def up_within(self, timeout_s: float) -> bool:
        """Whether a connection is made, waiting for one up to timeout_s."""
        if self._monitor is None:
            return True  # ZMQ_IMMEDIATE: the send itself waits for a connection
        deadline = time.perf_counter() + timeout_s
        while True:
            self.read_events()
            left = deadline - time.perf_counter()
            if self._up or left <= 0:
                return self._up
            # slices of 200 ms: on Windows Ctrl-C does not interrupt libzmq's poll, only Python between calls
            self._monitor.poll(min(int(left * 1000) + 1, 200))

    def read_events(self) -> None:
        """Take in what the monitor said (the client calls this as it reads, so the queue stays short)."""
        if self._monitor is None:
            return
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            if event & UP:
                self._up = True
            elif event & DOWN:
                self._up = False

    def close(self) -> None:
        if self._monitor is None:
            return
        self.read_events()
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self._monitor.close(0)
        self._monitor = None
