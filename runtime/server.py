"""The Parley server: a ZeroMQ ROUTER socket in front of the scheduler.

The main thread owns the socket: it reads requests, checks them at the edge (runtime/protocol.py
makes typed requests of them), answers health, stats, cancel and the like at once, and queues replies
and session operations with the scheduler (runtime/scheduler.py). A worker thread runs the scheduler
and hands each job's frames back over an inproc socket (ZeroMQ sockets are not shared between
threads), so a slow reply never blocks the socket. docs/design.md follows one request through.
"""
from __future__ import annotations

import dataclasses
import logging
import queue
import secrets
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from runtime import protocol as p
from runtime import queries
from runtime.answers import INTERNAL_MESSAGE, Answers
from runtime.connection_guard import HAS_TCP_INFO, ConnectionGuard
from runtime.counters import Counters
from runtime.decode_batch import DecodeBatch, solo_run_tokens
from runtime.profile_watcher import ProfileWatcher
from runtime.engine import Engine, EngineError, ReplyResult
from runtime.outbox import Outbox
from runtime.profile_registry import ProfileRegistry
from runtime.rate_limit import RateLimiter
from runtime.requests import CancelRequest, ReplyRequest, Request, SessionRequest
from runtime.scheduler import Job, Scheduler, is_terminal
from runtime.server_socket import bind_router, is_local
from runtime.session_ops import SessionOps

log = logging.getLogger(__name__)

TERMINAL, NOT_TERMINAL = b"1", b"0"  # how the worker marks its frames for the main thread
MAX_REQUEST_FRAMES = 2  # a request frame, after a REQ socket's empty delimiter
MAX_FRAMES_BEFORE_CUT = 64  # a longer message is an attack on memory: its connection is closed
GUARD_INTERVAL_S = 0.02  # how often connections are checked for unfinished input (connection_guard.py)
# While the server stops, questions about it are still answered (health says `stopping`); new work is
# refused with `shutting_down`.
ANSWERED_WHILE_STOPPING = frozenset({"health", "stats", "list_npcs", "cancel"})


def request_frames_problem(frames: list[bytes], parts: int) -> str | None:
    """What is wrong with a message's frame layout, or None: a request is one frame, or two when the first
    is a REQ socket's empty delimiter; nothing else (a trailing empty frame included) is a request."""
    delimited = parts == 2 and not frames[0]
    if parts != 1 and not delimited:
        return (f"a request is one frame (after a REQ socket's empty delimiter, if any); this message had {parts} "
                "frames")
    if not frames[-1]:
        return "an empty frame is no request: a request is one frame holding a msgpack map"
    return None


@dataclass(frozen=True)
class ServerOptions:
    bind: str = "tcp://127.0.0.1:5555"
    max_connections: int = 512  # client connections; more are closed as they open
    max_backlog_bytes: int = 512 * 1024  # unread frames waiting for one client beyond ZeroMQ's queue
    max_backlog_total: int = 32 << 20  # ... for all clients together
    # Input received on one connection and not yet read by the server, and on all of them together. Small,
    # because ZeroMQ may keep a part of 33 bytes or more by reference into its 8 KiB read buffer: in
    # memory, unfinished input can cost up to ~250 times its bytes on the wire.
    max_unfinished_bytes: int = 160 * 1024
    max_unfinished_total: int = 1 << 20
    max_queue: int = 32  # requests waiting to start; more get `busy`
    max_queued_per_client: int | None = None  # ... of them from one client (None: half of max_queue)
    max_batch: int = 8  # replies decoded together in one run of the graph
    rate_per_s: float = 20.0  # per client
    burst: int = 40
    curve_secret_file: Path | None = None  # server's secret certificate (from `parley keys`)
    client_keys_dir: Path | None = None  # only these client public keys may connect
    insecure: bool = False  # explicit opt-out for non-loopback binds without keys
    debug_reasoning: bool = False  # log the hidden reasoning (designers only)
    keep_reasoning: int = 0  # keep the last N replies' reasoning for a tool in this process (Parley Studio)
    # signs session blobs (runtime/blob_key.py; `parley serve` keeps it in a file). None: a random key
    # for this server's lifetime, so its blobs load only into it
    blob_key: bytes | None = None
    profile_poll_s: float = 1.0


class Server:
    def __init__(self, engine: Engine, registry: ProfileRegistry, options: ServerOptions = ServerOptions(),
                 context: zmq.Context | None = None):
        self.engine, self.registry, self.opts = engine, registry, options
        if registry.fit is None:  # reloads must refuse NPCs that can never fit this model's context
            registry.check_against(engine.fit)
            engine.set_npcs(registry.npcs)
        # A context of its own: libzmq asks whatever ZAP handler its context holds about every connection of a
        # socket with a ZAP domain, so two servers of one process sharing one checked each other's clients (one
        # server's allow-list refused the other's keys), and a handler just stopped could leave a new connection
        # waiting for ever on its closing socket (a test's client, one run in eight)
        self._own_context = context is None
        self.ctx = context or zmq.Context()
        self.started_at = time.perf_counter()
        self.stopping = threading.Event()
        self._stopped = threading.Event()
        self.counters = Counters()
        self.answers = Answers(self.counters, options.debug_reasoning, options.keep_reasoning)
        self._limiter = RateLimiter(options.rate_per_s, options.burst)
        self.batch = DecodeBatch(engine, options.max_batch)
        self.scheduler = Scheduler(self.batch, engine.cost, SessionOps(engine, options.blob_key or secrets.token_bytes(32)),
                                   options.max_queue, options.max_queued_per_client
                                   if options.max_queued_per_client is not None else max(1, options.max_queue // 2),
                                   idle_work=self._idle_work)
        self._inproc = f"inproc://parley-worker-{id(self)}"
        self._push: zmq.Socket | None = None  # the worker's end of the inproc socket
        self.worker_state = "starting"  # running, stopped, or failed (health reports it)
        self.socket, self._auth = bind_router(self.ctx, options.bind, options.curve_secret_file,
                                              options.client_keys_dir, options.insecure)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.outbox = Outbox(self.socket, options.max_backlog_bytes, options.max_backlog_total, self._stop_client,
                             self.counters, on_gone=self._client_gone)
        self._next_guard_check = 0.0
        self.profiles = ProfileWatcher(lambda: queries.reload_report(self), registry.has_changes,
                                       options.profile_poll_s, self._profile_scan_failed)
        self.guard = ConnectionGuard(self.socket, options.max_connections, options.max_unfinished_bytes,
                                     options.max_unfinished_total, self.counters,
                                     curve=options.curve_secret_file is not None,
                                     waiting=lambda: self.scheduler.waiting() | self.outbox.holding())

    # ---- main loop --------------------------------------------------------------------------

    def _idle_work(self) -> bool:
        """With nothing queued or live: a piece of an NPC's prefix not yet run (after the start, or a profile
        change), no longer than a solo prompt run, so a request arriving meanwhile waits no longer than that."""
        return self.engine.warm_next_prefix(solo_run_tokens(self.engine.cost, self.batch.prefill_chunk))

    def serve_forever(self) -> None:
        worker = threading.Thread(target=self._worker, name="parley-engine", daemon=True)
        pull = self.ctx.socket(zmq.PULL)
        pull.bind(self._inproc)
        worker.start()
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        poller.register(self.guard.monitor, zmq.POLLIN)
        next_profile_check = time.perf_counter() + self.opts.profile_poll_s
        self.profiles.start()
        log.info("serving %d NPCs on %s%s", len(self.engine.npcs), self.endpoint,
                 " (CurveZMQ)" if self.opts.curve_secret_file else "")
        try:
            while not (self.stopping.is_set() and (self.scheduler.idle() or not worker.is_alive())):
                # wake often while connections need watching or frames wait for a client's queue
                busy = self.outbox.waiting or (HAS_TCP_INFO and len(self.guard))  # the guard reads TCP_INFO
                events = dict(poller.poll(GUARD_INTERVAL_S * 1000 if busy else 100))
                if self.guard.monitor in events:
                    self._periodically(self.guard.on_monitor, "connection monitor")
                if pull in events:
                    self._forward(pull)
                if self.socket in events:
                    self._receive()
                self._send_reload_answers()
                self.outbox.flush()
                self._guard_tick()  # after reading the socket: the bytes of what was read are counted
                now = time.perf_counter()
                if now >= next_profile_check:
                    next_profile_check = now + self.opts.profile_poll_s
                    if self._auth is not None:
                        self._periodically(self._auth.allow_list.refresh, "client keys scan")
        finally:
            self.scheduler.stop()
            unanswered = self.profiles.close()
            worker.join(timeout=5)
            self._forward(pull)  # the last terminal frames
            self._send_reload_answers()
            for client, request_id in unanswered:
                self._fail(client, request_id, p.SHUTTING_DOWN, "the server is shutting down")
            self.outbox.flush()
            pull.close(0)
            self.guard.close()
            self.socket.close()
            if self._auth:
                self._auth.stop()
            self._stopped.set()
            if self._own_context:  # its sockets are closed; the worker's closes as the worker ends
                threading.Thread(target=self.ctx.term, name="parley-context-end", daemon=True).start()
            log.info("server stopped")

    def stop(self, wait: bool = True) -> None:
        """Stop taking work: queued requests get `shutting_down`, running replies are cancelled."""
        self.stopping.set()
        self.scheduler.stop()
        if wait:
            self._stopped.wait(10)

    # ---- the worker -----------------------------------------------------------------------------

    def _worker(self) -> None:
        self._push = self.ctx.socket(zmq.PUSH)
        self._push.connect(self._inproc)
        self.worker_state = "running"
        try:
            self.scheduler.run()
            self.worker_state = "stopped"
        except BaseException:
            self.worker_state = "failed"
            log.critical("the engine worker stopped:\n%s", traceback.format_exc())
            raise
        finally:
            self._push.close(linger=1000)

    def _job_event(self, job: Job, event: Any) -> None:
        """A job's event (on the worker thread): its frame goes to the main thread, which sends it."""
        payload = self.answers.for_event(job, event, self.stopping.is_set())
        if payload is not None:
            terminal = is_terminal(event)
            self._push.send_multipart([job.identity, TERMINAL if terminal else NOT_TERMINAL, job.id.encode(), payload])
        if isinstance(event, ReplyResult):
            self.answers.log_result(job, event)

    def _forward(self, pull: zmq.Socket) -> None:
        """Frames the worker produced: [client, terminal flag, request id, payload]. A terminal frame's
        job is forgotten first: a cancel read after the client saw `done` finds nothing."""
        while True:
            try:
                client, terminal, request_id, payload = pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if terminal == TERMINAL:
                self.scheduler.forget(client, request_id.decode())
            self.outbox.send(client, payload, terminal == TERMINAL)

    # ---- reading requests ---------------------------------------------------------------------

    def _receive(self) -> None:
        # bounded in messages and time, so worker frames are forwarded and connections checked promptly
        stop = time.perf_counter() + GUARD_INTERVAL_S
        for _ in range(256):
            if time.perf_counter() > stop:
                return
            try:
                identity = self.socket.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            # Frame by frame: a request has one (two after a REQ socket's delimiter); the rest of a longer
            # message is read and dropped without being kept, however many parts it has.
            kept, sizes, fd, frame = [], [], None, None
            more = identity.more
            while more:
                frame = self.socket.recv(copy=False)
                more, fd = frame.more, _source_fd(frame)
                sizes.append(len(frame))
                if len(kept) < MAX_REQUEST_FRAMES:
                    kept.append(frame.bytes)
                elif len(sizes) % 4096 == 0:  # a message of a million parts takes a while to drop:
                    self._guard_tick()          # meanwhile the other connections are still watched
            if fd is not None:
                self.guard.delivered(fd, sizes, identity.bytes)
                if len(sizes) > MAX_FRAMES_BEFORE_CUT:
                    self.guard.cut(fd, f"a message of {len(sizes)} frames (a request has one)")
            who = self._client_of(frame, identity.bytes) if frame is not None else identity.bytes
            if self._auth is not None and who.startswith(b"key:") and \
                    not self._auth.allow_list.allows(who[4:].decode()):
                self.counters.add("requests_dropped.key_removed")  # taken off the allow-list since it connected
                if fd is not None:
                    self.guard.cut(fd, "its client key was taken off the allow-list")
                continue
            self._on_frames_safely(identity.bytes, who, kept, len(sizes))

    def _client_of(self, frame: zmq.Frame, identity: bytes) -> bytes:
        """Who sent a message, for rate limits, fairness and the per-client queue share: the client's
        public key where --client-keys checks it (however many connections it opens), else the peer's
        address for a remote plaintext connection, else the connection itself (on loopback, each
        connection counts as a client: processes on the game's machine are trusted as far as the
        machine is; docs/reliability.md)."""
        for prop, prefix, usable in (("User-Id", b"key:", self._auth is not None),
                                     ("Peer-Address", b"ip:", not is_local(self.opts.bind))):
            if not usable:
                continue
            try:
                value = frame.get(prop)
            except zmq.ZMQError:  # not known for this transport
                continue
            if value and not (prefix == b"ip:" and value.startswith(("127.", "::1"))):
                return prefix + value.encode()
        return identity

    def _on_frames_safely(self, client: bytes, who: bytes, frames: list[bytes], parts: int) -> None:
        """Whatever a frame does to the handler (a bug, a resource running out), the loop goes on."""
        try:
            self._on_frames(client, who, frames, parts)
        except Exception:  # noqa: BLE001
            log.error("a request could not be handled:\n%s", traceback.format_exc())
            try:
                self._fail(client, None, p.INTERNAL, INTERNAL_MESSAGE)
            except Exception:  # noqa: BLE001 - nothing more to do for this client
                pass

    def _on_frames(self, client: bytes, who: bytes, frames: list[bytes], parts: int) -> None:
        """One message from connection `client` sent by `who` (_client_of): its first frames (at most
        MAX_REQUEST_FRAMES) and how many it had."""
        self.counters.add("frames")
        problem = request_frames_problem(frames, parts)
        if problem:
            self._fail(client, None, p.BAD_MESSAGE, problem)
            return
        body = frames[-1:]
        if self.outbox.not_reading(client):
            self.counters.add("requests_dropped.not_reading")  # its answer could not reach it anyway
            return
        allowed = self._limiter.allow(who)
        limited = (p.RATE_LIMITED, f"more than {self.opts.rate_per_s:g} requests/s; slow down")
        try:
            req = p.decode(body[0])  # first, so that even a rate_limited answer carries the id it waits on
        except p.ProtocolError as exc:
            self._fail(client, exc.request_id, *((exc.code, exc.message) if allowed else limited))
            return
        if not allowed:
            self._fail(client, req.request_id, *limited)
            return
        self.counters.add(f"request.{req.type}")
        if self.stopping.is_set() and req.type not in ANSWERED_WHILE_STOPPING:
            self._fail(client, req.request_id, p.SHUTTING_DOWN, "the server is shutting down")
            return
        try:
            self._handle(client, who, req)
        except EngineError as exc:
            self._fail(client, req.request_id, exc.code, str(exc))
        except Exception:  # noqa: BLE001 - one bad request must not take the server down
            log.error("request %s (%s) failed:\n%s", p.loggable(req.request_id), req.type, traceback.format_exc())
            self._fail(client, req.request_id, p.INTERNAL, INTERNAL_MESSAGE)

    def _handle(self, client: bytes, who: bytes, req: Request) -> None:
        if isinstance(req, (ReplyRequest, SessionRequest)):
            req = dataclasses.replace(req, holder=who)  # whose share of the session limit it uses
            if who.startswith(b"key:"):
                req = dataclasses.replace(req, client_key=who.decode())  # its sessions are this key's
        if isinstance(req, ReplyRequest):
            # the NPC's defaults are resolved once, here; UnknownNpc is answered by _on_frames
            self._queue(client, who, req.with_npc_defaults(self.engine.npc(req.npc)))
        elif isinstance(req, SessionRequest):
            self._queue(client, who, req)
        elif req.type == "reload_profiles":  # read on the watcher's thread: the loop goes on serving
            self.profiles.ask(client, req.request_id)
        elif isinstance(req, CancelRequest):
            found, queued = self.scheduler.cancel(client, req.target)
            if queued is not None:
                self._send(client, self.answers.cancelled(queued.id, self.stopping.is_set(),
                                                          "cancelled by the client before it started"))
            self._send(client, p.frame(req.request_id, "done", found=found))
        else:
            self._send(client, p.frame(req.request_id, "done", **queries.answer(self, req.type)))

    def _queue(self, client: bytes, who: bytes, request: ReplyRequest | SessionRequest) -> None:
        job = Job(client, request, sink=lambda event: self._job_event(job, event), client=who)
        displaced: list[Job] = []
        refusal = self.scheduler.submit(job, displaced)
        for old in displaced:
            self._fail(old.identity, old.id, p.BUSY, "the queue is full and the client that sent this holds more "
                                                     "of it than another, which took this place; retry shortly "
                                                     "or use the NPC's fallback line")
        if refusal is not None:
            self._fail(client, job.id, refusal.code, refusal.message)

    # ---- answering ----------------------------------------------------------------------------

    def _send(self, client: bytes, payload: bytes) -> None:
        self.outbox.send(client, payload)

    def _fail(self, client: bytes, request_id: str | None, code: str, message: str) -> None:
        """Every error the main thread answers goes through here (counted, then sent)."""
        self._send(client, self.answers.error(request_id, code, message))

    def _stop_client(self, client: bytes) -> None:
        """A client stopped reading: its queued requests end now and its running replies stop at their
        next step (their terminal frames wait in its backlog)."""
        for job in self.scheduler.drop_connection(client):
            self._fail(client, job.id, p.CANCELLED, "cancelled: the client is not reading its replies")

    def _client_gone(self, client: bytes) -> None:
        """A frame for this connection found it closed (ZeroMQ gives a reconnecting client a new one): its
        queued requests are dropped and its running replies stop at their next step, so a game that crashed
        or closed mid-reply does not keep the batch busy for nobody."""
        for _ in self.scheduler.drop_connection(client):
            self.counters.add("requests_dropped.client_gone")

    def _send_reload_answers(self) -> None:
        """The answers of reload_profiles requests the profile watcher has finished."""
        while True:
            try:
                client, request_id, report = self.profiles.answers.get_nowait()
            except queue.Empty:
                return
            if isinstance(report, BaseException):
                self._fail(client, request_id, p.INTERNAL, INTERNAL_MESSAGE)
            else:
                self._send(client, p.frame(request_id, "done", **report))

    def _profile_scan_failed(self, exc: BaseException) -> None:
        """On the watcher's thread: a reload failed (a vanished folder, no file descriptors); it tries again."""
        self.counters.add("error.profile_scan", 1)
        log.warning("profile scan failed (%s: %s); trying again", type(exc).__name__, exc)

    # ---- housekeeping -------------------------------------------------------------------------

    def _guard_tick(self) -> None:
        """Check the connections if GUARD_INTERVAL_S has passed since the last check."""
        now = time.perf_counter()
        if now >= self._next_guard_check:
            self._next_guard_check = now + GUARD_INTERVAL_S
            self._periodically(self.guard.check, "connection check")

    def _periodically(self, task, name: str) -> None:
        """A housekeeping task of the main loop: a failure (no file descriptors left, a vanished folder)
        is logged and the task runs again next time; it never ends the server."""
        try:
            task()
        except Exception as exc:  # noqa: BLE001
            self.counters.add(f"error.{name.replace(' ', '_')}", 1)
            log.warning("%s failed (%s: %s); trying again", name, type(exc).__name__, exc)


def _source_fd(frame: zmq.Frame) -> int | None:
    """The file descriptor of the connection a frame came in on; None where libzmq has none to give (a peer
    of an old ZeroMQ protocol, which the socket's ZAP domain refuses anyway: reading it raised and ended
    the server)."""
    try:
        return frame.get(zmq.SRCFD)
    except zmq.ZMQError:
        return None
