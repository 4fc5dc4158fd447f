"""Frames to clients, with a bounded backlog for each client that does not read.

ZeroMQ queues up to SNDHWM frames per connection; a client that stops reading while it keeps asking
(for 48 KiB session blobs, say) would otherwise make the server hold frames without end. Past the
socket's queue, frames wait here, counted in bytes. Once a client's backlog passes `limit_bytes`, or
all backlogs together pass `total_limit_bytes`, its work is stopped (`on_overflow`) and its new
requests are dropped (`not_reading`), further deltas and actions for it are dropped, and terminal
frames still wait while its backlog is under twice the limit, so a client that reads again gets
exactly one terminal frame per request. Beyond that, everything for it is dropped and counted.

Main thread only: the server's loop calls `flush` whenever it wakes.
"""
from __future__ import annotations

import collections
import logging
from typing import Callable

import zmq

log = logging.getLogger(__name__)


class _Backlog:
    def __init__(self) -> None:
        self.frames: collections.deque[bytes] = collections.deque()
        self.bytes = 0
        self.overflowed = False


class Outbox:
    def __init__(self, sock: zmq.Socket, limit_bytes: int, total_limit_bytes: int,
                 on_overflow: Callable[[bytes], None], counters, on_gone: Callable[[bytes], None] | None = None):
        self.sock, self.limit, self.total_limit = sock, limit_bytes, total_limit_bytes
        self.on_overflow, self.counters = on_overflow, counters
        self.on_gone = on_gone  # a frame found the connection closed: its other work can stop
        self._backlogs: dict[bytes, _Backlog] = {}
        self._total = 0

    @property
    def waiting(self) -> bool:
        return bool(self._backlogs)

    def holding(self) -> set[bytes]:
        """The connections whose answers wait here to be sent."""
        return set(self._backlogs)

    def not_reading(self, identity: bytes) -> bool:
        """True while the client's backlog is over its limit: new work for it would be wasted."""
        backlog = self._backlogs.get(identity)
        return backlog is not None and backlog.overflowed

    def send(self, identity: bytes, payload: bytes, terminal: bool = True) -> None:
        backlog = self._backlogs.get(identity)
        if backlog is None:
            sent = self._try(identity, payload)
            if sent is not None:
                return
            backlog = self._backlogs[identity] = _Backlog()
        over_own = backlog.bytes + len(payload) > (2 if terminal else 1) * self.limit
        if over_own or self._total + len(payload) > self.total_limit:
            self.counters.add("frames_dropped.not_reading")
            if not backlog.overflowed:
                backlog.overflowed = True
                log.warning("a client is not reading its replies (%d bytes waiting for it, %d for all); "
                            "stopping its work", backlog.bytes, self._total)
                self.on_overflow(identity)
            return
        backlog.frames.append(payload)
        backlog.bytes += len(payload)
        self._total += len(payload)

    def flush(self) -> None:
        """Send what the clients' queues take now; forget clients that are gone."""
        for identity in list(self._backlogs):
            backlog = self._backlogs[identity]
            while backlog.frames:
                sent = self._try(identity, backlog.frames[0])
                if sent is None:
                    break
                payload = backlog.frames.popleft()
                backlog.bytes -= len(payload)
                self._total -= len(payload)
                if not sent:  # the client is gone: nothing more reaches it
                    self._total -= backlog.bytes
                    backlog.frames.clear()
                    backlog.bytes = 0
            if not backlog.frames:
                del self._backlogs[identity]

    def _try(self, identity: bytes, payload: bytes) -> bool | None:
        """True: sent; False: the client is gone (dropped, as ZeroMQ drops frames to vanished peers);
        None: its queue is full."""
        try:
            self.sock.send_multipart([identity, payload], zmq.NOBLOCK)
            return True
        except zmq.Again:
            return None
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:  # libzmq's own number: Windows' errno.EHOSTUNREACH is WSA's 10065
                self.counters.add("frames_dropped.client_gone")
                if self.on_gone is not None:
                    self.on_gone(identity)
            else:  # whatever else ZeroMQ says, this frame is lost, and the server goes on
                self.counters.add("frames_dropped.send_error")
                log.warning("could not send a frame to a client: %s", exc)
            return False
