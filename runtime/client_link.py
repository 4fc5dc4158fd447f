"""Whether a client socket has a connection made (its handshake done), read from the socket's monitor.

The client sends a request only on a made connection, never queuing one for a connection to come (a server
restarting would get it late, beside the client's own resend). ZeroMQ's ZMQ_IMMEDIATE does that, but with it
a dropped connection throws away the frames that had arrived and were not yet read: a reply's last frame,
sent just before the server stopped, was lost (one run in a few of a stop test, under load). The monitor says
the same thing and loses nothing.
"""
from __future__ import annotations

import time

import zmq
from zmq.utils.monitor import recv_monitor_message

# Only the events that change the answer: a server that is down makes a retry event every 100 ms, which
# would fill the monitor's queue and drop the one that matters
UP = zmq.EVENT_HANDSHAKE_SUCCEEDED
DOWN = (zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


class ClientLink:
    """Watches one socket (call before it connects); close() before the socket is closed."""

    def __init__(self, sock: zmq.Socket):
        self._sock = sock
        self._monitor = sock.get_monitor_socket(UP | DOWN)
        self._up = False

    def up_within(self, timeout_s: float) -> bool:
        """Whether a connection is made, waiting for one up to timeout_s."""
        deadline = time.perf_counter() + timeout_s
        while True:
            self._read_events()
            left = deadline - time.perf_counter()
            if self._up or left <= 0:
                return self._up
            # slices of 200 ms: on Windows Ctrl-C does not interrupt libzmq's poll, only Python between calls
            self._monitor.poll(min(int(left * 1000) + 1, 200))

    def _read_events(self) -> None:
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            if event & UP:
                self._up = True
            elif event & DOWN:
                self._up = False

    def close(self) -> None:
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self._monitor.close(0)
