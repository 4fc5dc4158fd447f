"""Limits on client connections that ZeroMQ itself does not offer: how many, and how much unfinished input.

ZeroMQ delivers a multipart message only once its last part has arrived, and bounds the size of each
part (MAXMSGSIZE) but not their number: a peer that sends one endless message of empty parts makes the
server hold every part (64 bytes each, for 2 bytes on the wire) where the application cannot see them.
So the guard watches each TCP connection from outside: the bytes the kernel has received on it
(TCP_INFO) against the bytes of the messages the server was handed from it (ZMQ_SRCFD). A connection
whose difference, its unfinished input, grows past a limit is shut down; ZeroMQ then drops the
unfinished message and frees what it held. The same mechanism closes connections beyond the cap.

Shutting a connection down uses its file descriptor, which the socket monitor reports: shutdown(2)
ends the TCP connection without closing the descriptor, which stays ZeroMQ's to close.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger(__name__)

# struct tcp_info's tcpi_bytes_received (Linux 4.1+): a u64 at byte 128.
_TCPI_BYTES_RECEIVED = 128
HAS_TCP_INFO = sys.platform.startswith("linux") and hasattr(socket, "TCP_INFO")
# Windows' libzmq asserts (aborts the process) when a socket it reads or writes was shut down under it: its
# tcp_read/tcp_write accept WSAECONNRESET and the like but not WSAESHUTDOWN. There a connection is never cut.
CAN_SHUT_DOWN = sys.platform != "win32"
# What the wire carries besides the frames of delivered messages: the handshake (a ZeroMQ DEALER's NULL
# handshake is 107 bytes, a CurveZMQ one about 600 with its metadata). Nothing else is allowed for: a
# client's ZMTP heartbeats (off unless it enables them) count as unfinished input.
HANDSHAKE_ALLOWANCE = 1024
# CurveZMQ wraps each frame in a MESSAGE command: its name, an 8-byte nonce, a flags byte and a 16-byte MAC.
CURVE_FRAME_OVERHEAD = 8 + 8 + 1 + 16


# Hand freed memory back to the system after a connection that held this much unfinished input closes.
TRIM_AFTER_BYTES = 16 * 1024


def wire_bytes(size: int, curve: bool) -> int:
    """Bytes a frame of `size` bytes takes on the wire (ZMTP 3: a flags byte and a 1- or 8-byte size)."""
    body = size + (CURVE_FRAME_OVERHEAD if curve else 0)
    return body + (2 if body < 256 else 9)


# File descriptors kept free beyond client connections: profiles, the model's files, ZeroMQ's own.
FD_RESERVE = 128


def open_file_limit(raise_soft: bool = False) -> int | None:
    """The process's soft limit on open files (None where the platform has none to read), first raised
    to the hard limit when asked and allowed: each client connection holds one."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to read or raise
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if raise_soft and hard != soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        # macOS reports no hard limit yet refuses more than OPEN_MAX (10240) a process: try that next
        for attempt in dict.fromkeys((target, max(soft, min(target, 10240)))):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (attempt, hard))
                soft = attempt
                break
            except (ValueError, OSError) as exc:
                failure = exc
        else:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, failure)
    return None if soft == resource.RLIM_INFINITY else soft


def _libc_trim():
    """glibc's malloc_trim, to hand a cut connection's freed buffers back to the system (None elsewhere)."""
    name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_malloc_trim = _libc_trim()


def _borrow(fd: int) -> socket.socket | None:
    """A socket object over ZeroMQ's descriptor (detach it after use: the descriptor stays ZeroMQ's)."""
    try:
        return socket.socket(fileno=fd)
    except OSError:
        return None  # closed since the monitor reported it


def _addresses(fd: int) -> tuple | None:
    """Both ends of the connection: who the descriptor belongs to now. A descriptor number is reused
    once closed, maybe for another connection (or, with the server inside a game, the game's own)."""
    sock = _borrow(fd)
    if sock is None:
        return None
    try:
        return sock.getsockname(), sock.getpeername()
    except OSError:
        return None
    finally:
        sock.detach()


def _tcp_bytes_received(fd: int) -> int | None:
    sock = _borrow(fd)
    if sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except OSError:
        return None  # not TCP (ipc://), or already gone
    finally:
        sock.detach()
    return struct.unpack_from("<Q", info, _TCPI_BYTES_RECEIVED)[0] if len(info) >= _TCPI_BYTES_RECEIVED + 8 else None


def _shutdown(fd: int) -> None:
    sock = _borrow(fd)
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer
    finally:
        sock.detach()


@dataclass
class _Connection:
    addresses: tuple | None
    last_active: float = field(default_factory=time.perf_counter)  # accepted, or its last message
    delivered: int = 0  # wire bytes of the messages delivered from it
    cut: bool = False
    held: int = 0  # its unfinished input at the last check
    trim: bool = False  # hand memory back to the system once it has closed

    def unfinished(self, received: int) -> int:
        """Bytes received that neither the handshake nor a delivered message accounts for."""
        return received - self.delivered - HANDSHAKE_ALLOWANCE


class ConnectionGuard:
    """Owned by the server's main thread: it polls `monitor`, calls `on_monitor`, `delivered` for each
    message received and `check` every few milliseconds."""

    def __init__(self, sock: zmq.Socket, max_connections: int, max_unfinished_bytes: int,
                 max_unfinished_total: int, counters, curve: bool = False,
                 waiting: Callable[[], set[bytes]] = set, can_shut_down: bool = CAN_SHUT_DOWN):
        limit = open_file_limit()
        if limit is not None and max_connections > limit - FD_RESERVE:
            log.warning("serving at most %d connections, not %d: the open-file limit is %d (raise it with "
                        "`ulimit -n`)", max(limit - FD_RESERVE, 1), max_connections, limit)
            max_connections = max(limit - FD_RESERVE, 1)
        self.max_connections = max_connections
        self.max_unfinished_bytes, self.max_unfinished_total = max_unfinished_bytes, max_unfinished_total
        self.counters, self.curve = counters, curve
        self.waiting = waiting  # the routing ids of connections waiting for an answer: not closed for room
        self.can_shut_down = can_shut_down
        # the routing id of each socket's last message, kept apart from the connection records: a request can
        # be read before its connection's accept event, or while a reused fd's old record awaits its close
        self._identity_on_fd: dict[int, bytes] = {}
        self.monitor = sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED)
        self._sock = sock
        self._conns: dict[int, _Connection] = {}

    def __len__(self) -> int:
        return len(self._conns)

    def close(self) -> None:
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(0)

    def on_monitor(self) -> None:
        """Connections opened and closed since the last call."""
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            fd = int(event["value"])
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._conns[fd] = _Connection(_addresses(fd))
                if sum(not c.cut for c in self._conns.values()) > self.max_connections:
                    # make room by closing the connection that has been quiet longest: idle connections
                    # held open cannot lock out a game that keeps talking. Not one waiting for an answer:
                    # its answer would be lost (an outside probe's quiet client lost replies this way)
                    open_ = [(f, c) for f, c in self._conns.items() if not c.cut]
                    waiting = self.waiting()
                    idle = [(f, c) for f, c in open_ if self._identity_on_fd.get(f) not in waiting]
                    quiet_fd, quiet = min(idle or open_,
                                          key=lambda fc: fc[1].last_active)
                    self._cut(quiet_fd, quiet, "connection_limit",
                              f"{self.max_connections} connections are open (the limit); closing the quietest")
            else:
                conn = self._conns.pop(fd, None)
                if conn is not None and (conn.trim or conn.held > TRIM_AFTER_BYTES) and _malloc_trim:
                    _malloc_trim(0)  # what a closed connection's unfinished message held was just freed

    def delivered(self, fd: int, frame_sizes: list[int], identity: bytes | None = None) -> None:
        """A message arrived from the connection on fd (routing id `identity`): its frames' bytes are
        accounted for."""
        if identity is not None:
            self._identity_on_fd[fd] = identity
        conn = self._conns.get(fd)
        if conn is not None:
            conn.delivered += sum(wire_bytes(size, self.curve) for size in frame_sizes)
            conn.last_active = time.perf_counter()

    def cut(self, fd: int, why: str) -> None:
        """Close the connection on fd now (a client that broke the protocol in a way that costs memory)."""
        conn = self._conns.get(fd)
        if conn is not None and not conn.cut:
            self._cut(fd, conn, "protocol", why)

    def check(self) -> None:
        """Shut down connections whose unfinished input is past the limits (TCP on Linux only)."""
        if not HAS_TCP_INFO or not self._conns:
            return
        unfinished = []
        for fd, conn in list(self._conns.items()):
            if conn.cut:
                continue
            received = _tcp_bytes_received(fd)
            if received is None:
                continue
            excess = conn.held = conn.unfinished(received)
            if excess > self.max_unfinished_bytes:
                self._cut(fd, conn, "unfinished_input", f"{excess} bytes of unfinished input")
            elif excess > 0:
                unfinished.append((excess, fd, conn))
        total = sum(e for e, _, _ in unfinished)
        for excess, fd, conn in sorted(unfinished, reverse=True, key=lambda x: x[0]):
            if total <= self.max_unfinished_total:
                break
            self._cut(fd, conn, "unfinished_input", f"{excess} bytes of unfinished input "
                                                    f"({total} on all connections)")
            total -= excess

    def _cut(self, fd: int, conn: _Connection, reason: str, why: str) -> None:
        if _addresses(fd) != conn.addresses:  # closed, maybe reused: not the connection we knew
            self._conns.pop(fd, None)
            return
        conn.cut = True
        conn.trim = reason != "connection_limit"
        if not self.can_shut_down:
            self.counters.add(f"connections_not_cut.{reason}")
            log.warning("a client connection should close (%s), but this platform's libzmq cannot have it "
                        "closed from outside; it stays open", why)
            return
        self.counters.add(f"connections_cut.{reason}")
        log.warning("closing a client connection: %s", why)
        _shutdown(fd)
