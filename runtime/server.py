"""The Parley server: a ZeroMQ ROUTER socket in front of the engine.

The main thread owns the socket and answers health, stats, cancel and the like at once;
a worker thread runs the engine and hands its frames back over an inproc socket (ZeroMQ
sockets are not shared between threads). A slow reply never blocks the socket.

The worker decodes up to `max_batch` replies at once (runtime/decode_batch.py): between two
steps of the graph it admits queued replies, earliest deadline first; the replies and session
operations of one conversation keep their arrival order.
"""
from __future__ import annotations

import collections
import logging
import os
import secrets
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from runtime import protocol as p
from runtime import session_blob
from runtime.connection_guard import ConnectionGuard
from runtime.decode_batch import DecodeBatch
from runtime.engine import FINISH_MARGIN_MS, Engine, EngineError, FinalDelta, NpcAction, ReplyRequest, ReplyResult
from runtime.outbox import Outbox
from runtime.profile_registry import ProfileRegistry
from runtime.sampler import SamplingParams

log = logging.getLogger(__name__)

LOCAL_PREFIXES = ("tcp://127.", "tcp://localhost:", "tcp://[::1]:", "ipc://", "inproc://")
INTERNAL_MESSAGE = "internal error; the server log has the details"
TERMINAL, NOT_TERMINAL = b"1", b"0"  # how the worker marks its frames for the outbox
# A joining reply's prompt is one new turn after a cached prefix: this many tokens besides its text.
JOIN_PAUSE_TOKENS = 64


def emit(push: zmq.Socket, identity: bytes, request_id: str, payload: bytes, terminal: bool = True) -> None:
    """A frame from the worker to the main thread, which sends it to the client (and, for a terminal
    frame, first forgets the request: a cancel read after the client saw `done` finds nothing)."""
    push.send_multipart([identity, TERMINAL if terminal else NOT_TERMINAL, request_id.encode(), payload])


def is_local(endpoint: str) -> bool:
    return endpoint.startswith(LOCAL_PREFIXES)


# While the server stops, questions about it are still answered (health says `stopping`); new work is
# refused with `shutting_down`.
ANSWERED_WHILE_STOPPING = frozenset({"health", "stats", "list_npcs", "cancel"})
CLIENT_KEYS_WITHOUT_KEYS = ("--client-keys needs --keys: an allow-list of client keys means nothing without "
                            "CurveZMQ, and every plaintext client would get in. Pass --keys DIR (from `parley keys "
                            "DIR`) as well")


class InsecureBind(ValueError):
    pass


# Per client connection: frames ZeroMQ queues to it, and kernel socket buffers both ways (fixed sizes,
# so that neither a client that never reads nor one that floods makes them grow).
SEND_HWM_FRAMES = 16
RECEIVE_HWM_MESSAGES = 2  # per connection; past it ZeroMQ stops reading that connection until we catch up
MAX_REQUEST_FRAMES = 2  # a request frame, after a REQ socket's empty delimiter
MAX_FRAMES_BEFORE_CUT = 64  # a longer message is an attack on memory: its connection is closed
SOCKET_BUFFER_BYTES = 128 * 1024
# How often connections are checked for unfinished input (runtime/connection_guard.py).
GUARD_INTERVAL_S = 0.02


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
    max_queue: int = 32  # replies waiting to start; more get `busy`
    max_batch: int = 8  # replies decoded together in one run of the graph
    rate_per_s: float = 20.0  # per client
    burst: int = 40
    curve_secret_file: Path | None = None  # server's secret certificate (from `parley keys`)
    client_keys_dir: Path | None = None  # only these client public keys may connect
    insecure: bool = False  # explicit opt-out for non-loopback binds without keys
    debug_reasoning: bool = False  # log the hidden reasoning (designers only)
    # signs session blobs (runtime/blob_key.py; `parley serve` keeps it in a file). None: a random key
    # for this server's lifetime, so its blobs load only into it
    blob_key: bytes | None = None
    profile_poll_s: float = 1.0


@dataclass
class _Job:
    identity: bytes
    request: p.Request
    received_at: float
    cancel: threading.Event = field(default_factory=threading.Event)
    started: bool = False

    @property
    def conversation(self) -> tuple[str, str | None]:
        return self.request.body.get("npc"), self.request.body.get("session")

    def due(self, default_deadline_ms: float) -> float:
        """When its deadline passes (monotonic seconds); session operations are due at once."""
        if self.request.type != "reply":
            return self.received_at
        return self.received_at + self.request.body.get("deadline_ms", default_deadline_ms) / 1000


class _RateLimiter:
    """A token bucket per client. Buckets are kept in the order their clients were last seen, and only
    the least recently seen are forgotten: a client that keeps sending is never reset to a full burst."""

    MAX_CLIENTS = 10_000

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.buckets: collections.OrderedDict[bytes, tuple[float, float]] = collections.OrderedDict()

    def allow(self, who: bytes) -> bool:
        if self.rate == float("inf"):
            return True
        now = time.monotonic()
        tokens, last = self.buckets.get(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1
        self.buckets[who] = (tokens - 1 if allowed else tokens, now)
        self.buckets.move_to_end(who)
        while len(self.buckets) > self.MAX_CLIENTS:
            self.buckets.popitem(last=False)  # the client seen longest ago
        return allowed


class Server:
    def __init__(self, engine: Engine, registry: ProfileRegistry, options: ServerOptions = ServerOptions(),
                 context: zmq.Context | None = None):
        self.engine, self.registry, self.opts = engine, registry, options
        if registry.fit is None:  # reloads must refuse NPCs that can never fit this model's context
            registry.check_against(engine.fit)
            engine.set_npcs(registry.npcs)
        self.ctx = context or zmq.Context.instance()
        self.started_at = time.monotonic()
        self.stopping = threading.Event()
        self._stopped = threading.Event()
        self._queue: collections.deque[_Job] = collections.deque()
        self._queue_cv = threading.Condition()
        self._jobs: dict[tuple[bytes, str], _Job] = {}
        self._jobs_lock = threading.Lock()
        self._limiter = _RateLimiter(options.rate_per_s, options.burst)
        self._blob_key = options.blob_key or secrets.token_bytes(32)
        self.counters: collections.Counter[str] = collections.Counter()
        self._inproc = f"inproc://parley-worker-{id(self)}"
        self._pending_shutdown: list[_Job] = []
        self.batch: DecodeBatch | None = None  # the worker's, once it runs
        self.worker_state = "starting"  # running, stopped, or failed (health reports it)
        self._auth = None
        self.socket = self._bind()
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.outbox = Outbox(self.socket, options.max_backlog_bytes, options.max_backlog_total, self._stop_client,
                             self.counters)
        self._next_guard_check = 0.0
        self.guard = ConnectionGuard(self.socket, options.max_connections, options.max_unfinished_bytes,
                                     options.max_unfinished_total, self.counters,
                                     curve=options.curve_secret_file is not None)

    # ---- setup ------------------------------------------------------------------------------

    def _bind(self) -> zmq.Socket:
        o = self.opts
        if o.client_keys_dir is not None and o.curve_secret_file is None:
            raise ValueError(CLIENT_KEYS_WITHOUT_KEYS)
        if not is_local(o.bind) and o.curve_secret_file is None and not o.insecure:
            raise InsecureBind(f"refusing to bind {o.bind} without CurveZMQ keys: anyone on the network could drive "
                               "your NPCs. Make keys with `parley keys DIR` and pass --keys DIR, or pass --insecure")
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.MAXMSGSIZE, p.MAX_FRAME_BYTES)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full queue is an error the outbox handles, not a silent drop
        sock.setsockopt(zmq.SNDHWM, SEND_HWM_FRAMES)
        sock.setsockopt(zmq.RCVHWM, RECEIVE_HWM_MESSAGES)
        sock.setsockopt(zmq.SNDBUF, SOCKET_BUFFER_BYTES)
        sock.setsockopt(zmq.RCVBUF, SOCKET_BUFFER_BYTES)
        sock.setsockopt(zmq.LINGER, 1000)
        if o.curve_secret_file is not None:
            from zmq.auth import load_certificate
            public, secret = load_certificate(str(o.curve_secret_file))
            if secret is None:
                raise ValueError(f"{o.curve_secret_file}: not a secret certificate (use the .key_secret file)")
            if o.client_keys_dir is not None:
                from zmq.auth.thread import ThreadAuthenticator
                self._auth = ThreadAuthenticator(self.ctx)
                self._auth.start()
                self._auth.configure_curve(domain="*", location=str(o.client_keys_dir))
            sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True
        sock.bind(o.bind)
        return sock

    # ---- main loop --------------------------------------------------------------------------

    def serve_forever(self) -> None:
        worker = threading.Thread(target=self._worker, name="parley-engine", daemon=True)
        pull = self.ctx.socket(zmq.PULL)
        pull.bind(self._inproc)
        worker.start()
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        poller.register(self.guard.monitor, zmq.POLLIN)
        next_profile_check = time.monotonic() + self.opts.profile_poll_s
        log.info("serving %d NPCs on %s%s", len(self.engine.npcs), self.endpoint,
                 " (CurveZMQ)" if self.opts.curve_secret_file else "")
        try:
            while not (self.stopping.is_set() and (self._idle() or not worker.is_alive())):
                # wake often while connections need watching or frames wait for a client's queue
                busy = self.outbox.waiting or len(self.guard)
                events = dict(poller.poll(GUARD_INTERVAL_S * 1000 if busy else 100))
                if self.guard.monitor in events:
                    self._periodically(self.guard.on_monitor, "connection monitor")
                if pull in events:
                    self._forward(pull)
                if self.socket in events:
                    self._receive()
                self.outbox.flush()
                self._guard_tick()  # after reading the socket: the bytes of what was read are counted
                now = time.monotonic()
                if now >= next_profile_check:
                    next_profile_check = now + self.opts.profile_poll_s
                    self._periodically(self._check_profiles, "profile scan")
        finally:
            with self._queue_cv:
                self._queue_cv.notify_all()
            worker.join(timeout=5)
            self._forward(pull)  # the last terminal frames
            self.outbox.flush()
            pull.close(0)
            self.guard.close()
            self.socket.close()
            if self._auth:
                self._auth.stop()
            self._stopped.set()
            log.info("server stopped")

    def stop(self, wait: bool = True) -> None:
        """Stop taking work: queued replies get `shutting_down`, the running one is cancelled."""
        with self._queue_cv:
            self._pending_shutdown = list(self._queue)
            self._queue.clear()
            self.stopping.set()
            self._queue_cv.notify_all()
        with self._jobs_lock:
            for job in self._jobs.values():
                job.cancel.set()
        if wait:
            self._stopped.wait(10)

    def _idle(self) -> bool:
        with self._jobs_lock:
            return not self._jobs

    # ---- requests ---------------------------------------------------------------------------

    def _forward(self, pull: zmq.Socket) -> None:
        """Frames the worker produced: [identity, terminal flag, request id, payload]."""
        while True:
            try:
                identity, terminal, request_id, payload = pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if terminal == TERMINAL:
                with self._jobs_lock:
                    self._jobs.pop((identity, request_id.decode()), None)
            self.outbox.send(identity, payload, terminal == TERMINAL)

    def _receive(self) -> None:
        # bounded in messages and time, so worker frames are forwarded and connections checked promptly
        stop = time.monotonic() + GUARD_INTERVAL_S
        for _ in range(256):
            if time.monotonic() > stop:
                return
            try:
                identity = self.socket.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            # Frame by frame: a request has one (two after a REQ socket's delimiter); the rest of a longer
            # message is read and dropped without being kept, however many parts it has.
            kept, sizes, fd = [], [], None
            more = identity.more
            while more:
                frame = self.socket.recv(copy=False)
                more, fd = frame.more, frame.get(zmq.SRCFD)
                sizes.append(len(frame))
                if len(kept) < MAX_REQUEST_FRAMES:
                    kept.append(frame.bytes)
                elif len(sizes) % 4096 == 0:  # a message of a million parts takes a while to drop:
                    self._guard_tick()          # meanwhile the other connections are still watched
            if fd is not None:
                self.guard.delivered(fd, sizes)
                if len(sizes) > MAX_FRAMES_BEFORE_CUT:
                    self.guard.cut(fd, f"a message of {len(sizes)} frames (a request has one)")
            self._on_frames_safely(identity.bytes, kept, len(sizes))

    def _send(self, identity: bytes, payload: bytes) -> None:
        self.outbox.send(identity, payload)

    def _stop_client(self, identity: bytes) -> None:
        """A client stopped reading: its queued replies end now and the running ones stop at their next
        step (their terminal frames wait in its backlog)."""
        with self._jobs_lock:
            jobs = [job for (who, _), job in self._jobs.items() if who == identity]
            for job in jobs:
                with self._queue_cv:
                    queued = job in self._queue
                    if queued:
                        self._queue.remove(job)
                if queued:
                    del self._jobs[(identity, job.request.id)]
                    self._error(identity, job.request.id, p.CANCELLED, "cancelled: the client is not reading "
                                                                         "its replies")
                else:
                    job.cancel.set()

    def _error(self, identity: bytes, rid: str | None, code: str, message: str) -> None:
        self.counters[f"error.{code}"] += 1
        self._send(identity, p.error_frame(rid, code, message))

    def _on_frames_safely(self, identity: bytes, frames: list[bytes], parts: int) -> None:
        """Whatever a frame does to the handler (a bug, a resource running out), the loop goes on."""
        try:
            self._on_frames(identity, frames, parts)
        except Exception:  # noqa: BLE001
            log.error("a request could not be handled:\n%s", traceback.format_exc())
            self.counters[f"error.{p.INTERNAL}"] += 1
            try:
                self._send(identity, p.error_frame(None, p.INTERNAL, INTERNAL_MESSAGE))
            except Exception:  # noqa: BLE001 - nothing more to do for this client
                pass

    def _guard_tick(self) -> None:
        """Check the connections if GUARD_INTERVAL_S has passed since the last check."""
        now = time.monotonic()
        if now >= self._next_guard_check:
            self._next_guard_check = now + GUARD_INTERVAL_S
            self._periodically(self.guard.check, "connection check")

    def _periodically(self, task, name: str) -> None:
        """A housekeeping task of the main loop: a failure (no file descriptors left, a vanished folder)
        is logged and the task runs again next time; it never ends the server."""
        try:
            task()
        except Exception as exc:  # noqa: BLE001
            self.counters[f"error.{name.replace(' ', '_')}"] += 1
            log.warning("%s failed (%s: %s); trying again", name, type(exc).__name__, exc)

    def _check_profiles(self) -> None:
        if self.registry.has_changes():
            self._reload()

    def _on_frames(self, identity: bytes, frames: list[bytes], parts: int) -> None:
        """One message: its first frames (at most MAX_REQUEST_FRAMES) and how many it had."""
        body = [f for f in frames if f]  # tolerate REQ-style empty delimiter frames
        self.counters["frames"] += 1
        if len(body) != 1 or parts > MAX_REQUEST_FRAMES:
            self._error(identity, None, p.BAD_MESSAGE, "expected one msgpack frame per request (after a REQ "
                                                       f"socket's empty delimiter), got {parts} frames")
            return
        if self.outbox.not_reading(identity):
            self.counters["requests_dropped.not_reading"] += 1  # its answer could not reach it anyway
            return
        allowed = self._limiter.allow(identity)
        limited = f"more than {self.opts.rate_per_s:g} requests/s; slow down"
        try:
            req = p.decode(body[0])  # first, so that even a rate_limited answer carries the id it waits on
        except p.ProtocolError as exc:
            self._error(identity, exc.request_id, *((exc.code, exc.message) if allowed else (p.RATE_LIMITED, limited)))
            return
        if not allowed:
            self._error(identity, req.id, p.RATE_LIMITED, limited)
            return
        self.counters[f"request.{req.type}"] += 1
        if self.stopping.is_set() and req.type not in ANSWERED_WHILE_STOPPING:
            self._error(identity, req.id, p.SHUTTING_DOWN, "the server is shutting down")
            return
        handler = getattr(self, f"_handle_{req.type}")
        try:
            handler(identity, req)
        except EngineError as exc:
            self._error(identity, req.id, exc.code, str(exc))
        except Exception:  # noqa: BLE001 - one bad request must not take the server down
            log.error("request %s (%s) failed:\n%s", p.loggable(req.id), req.type, traceback.format_exc())
            self._error(identity, req.id, p.INTERNAL, INTERNAL_MESSAGE)

    def _handle_reply(self, identity: bytes, req: p.Request) -> None:
        self.engine.npc(req.body["npc"])  # UnknownNpc is answered by _on_frames
        key = (identity, req.id)
        with self._jobs_lock:
            if key in self._jobs:
                self._error(identity, req.id, p.BAD_MESSAGE, f"request id {req.id!r} is already in flight")
                return
            with self._queue_cv:
                if len(self._queue) >= self.opts.max_queue:
                    self._error(identity, req.id, p.BUSY, f"{len(self._queue)} replies are queued (the limit); "
                                                          "retry shortly or use the NPC's fallback line")
                    return
                job = _Job(identity, req, time.monotonic())
                self._jobs[key] = job
                self._queue.append(job)
                self._queue_cv.notify()

    def _handle_cancel(self, identity: bytes, req: p.Request) -> None:
        target = req.body["target"]
        with self._jobs_lock:
            job = self._jobs.get((identity, target))
            if job is not None:
                with self._queue_cv:
                    queued = job in self._queue
                    if queued:
                        self._queue.remove(job)
                if queued:
                    del self._jobs[(identity, target)]
                    self._error(identity, target, p.CANCELLED, "cancelled by the client before it started")
                else:
                    job.cancel.set()  # the worker ends it with a `cancelled` error frame
        self._send(identity, p.frame(req.id, "done", found=job is not None))

    def _handle_health(self, identity: bytes, req: p.Request) -> None:
        status = "stopping" if self.stopping.is_set() else "failed" if self.worker_state == "failed" else "ok"
        self._send(identity, p.frame(req.id, "done", status=status, worker=self.worker_state,
                                     uptime_s=round(time.monotonic() - self.started_at, 1), queue=len(self._queue),
                                     npcs=len(self.engine.npcs)))

    def _handle_stats(self, identity: bytes, req: p.Request) -> None:
        e = self.engine
        with e.lock:  # the worker changes the store between steps
            sessions, cache_bytes = len(e.store), e.store.bytes_used()
        self._send(identity, p.frame(
            req.id, "done", uptime_s=round(time.monotonic() - self.started_at, 1), queue=len(self._queue),
            counters=dict(self.counters), batch=self._batch_stats(), sessions=sessions, cache_bytes=cache_bytes,
            cost_model={"prefill_ms_per_token": round(e.cost.prefill_ms_per_token, 4),
                        "decode_ms_per_token": round(e.cost.decode_ms_per_token, 4)},
            model={"folder": e.session.folder.name, "provider": e.session.session.get_providers()[0],
                   "op_set": e.session.manifest.op_set, "dtype": e.session.manifest.dtype}))

    def _batch_stats(self) -> dict:
        b = self.batch
        if b is None:
            return {"live": 0, "max": self.opts.max_batch, "steps": 0, "mean_size": 0.0}
        return {"live": len(b), "max": b.max_batch, "steps": b.steps_run,
                "mean_size": round(b.rows_stepped / b.steps_run, 2) if b.steps_run else 0.0}

    def _handle_list_npcs(self, identity: bytes, req: p.Request) -> None:
        npcs = [{"id": n.id, "name": n.name, "reasoning_effort": n.reasoning_effort, "deadline_ms": n.deadline_ms,
                 "actions": [a.name for a in n.actions]} for n in sorted(self.engine.npcs.values(), key=lambda n: n.id)]
        self._send(identity, p.frame(req.id, "done", npcs=npcs))

    def _reload(self):
        result = self.registry.reload()
        if result.changed:
            self.engine.set_npcs(self.registry.npcs)
            log.info("profiles reloaded: loaded %s, removed %s", result.loaded or "-", result.removed or "-")
        return result

    def _handle_reload_profiles(self, identity: bytes, req: p.Request) -> None:
        result = self._reload()
        self._send(identity, p.frame(req.id, "done", loaded=result.loaded, kept=result.kept, removed=result.removed,
                                     npcs=sorted(self.engine.npcs),
                                     errors=[self._without_server_paths(x.to_dict()) for x in result.problems]))

    def _without_server_paths(self, problem: dict) -> dict:
        """A profile problem as a client sees it: files named relative to the profiles folder, so the
        answer does not reveal where the server keeps its files."""
        folders = sorted({str(self.registry.folder.resolve()), str(self.registry.folder)}, key=len, reverse=True)

        def shown(text: str) -> str:
            for folder in folders:
                text = text.replace(folder + os.sep, "").replace(folder, "the profiles folder")
            return text
        return {**problem, "file": shown(str(Path(problem["file"]).resolve())), "message": shown(problem["message"])}

    # session operations run on the worker, in order with the replies of the same sessions
    _handle_reset_session = _handle_export_session = _handle_import_session = _handle_reply

    # ---- worker -----------------------------------------------------------------------------

    def _worker(self) -> None:
        push = self.ctx.socket(zmq.PUSH)
        push.connect(self._inproc)
        batch = self.batch = DecodeBatch(self.engine, self.opts.max_batch)
        self.worker_state = "running"
        try:
            while True:
                job = None
                try:
                    with self._queue_cv:
                        while not self._queue and not len(batch) and not self.stopping.is_set():
                            self._queue_cv.wait(0.5)
                        if not self._queue and not len(batch):
                            break
                        job = self._next_job(batch)
                        if job is not None:
                            self._queue.remove(job)
                            job.started = True
                    self._work(job, batch, push)
                except Exception as exc:  # noqa: BLE001 - one failure must not stop every NPC
                    batch.fail_all(exc)  # the live replies end with `internal`
                    if job is not None and self._forget(job):  # it failed before reaching the batch
                        self.counters[f"error.{p.INTERNAL}"] += 1
                        emit(push, job.identity, job.request.id, p.error_frame(job.request.id, p.INTERNAL, INTERNAL_MESSAGE))
                    time.sleep(0.01)  # a failure that repeats must not spin a core
            for job in self._pending_shutdown:
                emit(push, job.identity, job.request.id, p.error_frame(job.request.id, p.SHUTTING_DOWN,
                                                                      "the server is shutting down"))
                self._forget(job)
            self.worker_state = "stopped"
        except BaseException:
            self.worker_state = "failed"
            log.critical("the engine worker stopped:\n%s", traceback.format_exc())
            raise
        finally:
            push.close(linger=1000)

    def _work(self, job: _Job | None, batch: DecodeBatch, push: zmq.Socket) -> None:
        """One turn of the worker: start a job, or run one decode step."""
        if job is None:
            batch.step()
        elif job.request.type == "reply":
            self._start_reply(job, batch, push)
        else:
            try:
                self._run_job(job, push)
            finally:
                self._forget(job)

    def _next_job(self, batch: DecodeBatch) -> _Job | None:
        """What to start before the next decode step (call with the queue's lock held): the first
        session operation that can run, else the reply with the earliest deadline; None when nothing
        can start (the batch is full, or only jobs of conversations still replying wait)."""
        blocked: set[tuple[str, str | None]] = set()
        replies = []
        for job in self._queue:
            conv = job.conversation
            if conv in blocked or batch.busy_with(*conv):
                if conv[1] is not None:  # a later job of this conversation must wait for the earlier
                    blocked.add(conv)
                continue
            if job.request.type != "reply":
                return job
            if conv[1] is not None:
                blocked.add(conv)
            replies.append(job)
        if not replies or not batch.has_room():
            return None
        npcs = self.engine.npcs
        job = min(replies, key=lambda j: j.due(npcs[j.conversation[0]].deadline_ms
                                                if j.conversation[0] in npcs else 0.0))
        return None if self._join_would_be_late(batch, job) else job

    def _join_would_be_late(self, batch: DecodeBatch, job: _Job) -> bool:
        """A reply's prompt runs between two decode steps and holds every live row meanwhile: don't
        start one when a live reply's deadline is closer than that pause and two more steps (the
        live reply ends by its deadline, so the new one waits at most that long)."""
        if not len(batch):
            return False
        cost = self.engine.cost
        # the new turn's tokens: a template's worth plus the text (about 3 characters a token; counted as
        # 2, so the pause errs long)
        pause = cost.prefill_ms(JOIN_PAUSE_TOKENS + len(job.request.body.get("text") or "") // 2)
        return batch.min_slack_ms() < pause + 2 * cost.decode_ms_per_token

    def _forget(self, job: _Job) -> bool:
        """Drop the job's record; False if it was already gone (its terminal frame went out)."""
        key = (job.identity, job.request.id)
        with self._jobs_lock:
            if self._jobs.get(key) is not job:  # gone, or a later request that reuses the id
                return False
            del self._jobs[key]
            return True

    def _run_job(self, job: _Job, push: zmq.Socket) -> None:
        """A session operation, run at once between two decode steps."""
        req, out = job.request, lambda payload: emit(push, job.identity, job.request.id, payload)
        try:
            if req.type == "reset_session":
                existed = self.engine.reset_session(req.body["npc"], req.body["session"])
                out(p.frame(req.id, "done", existed=existed))
            elif req.type == "export_session":
                history = self.engine.export_session(req.body["npc"], req.body["session"])
                out(p.frame(req.id, "done", blob=session_blob.dump(req.body["npc"], req.body["session"], history,
                                                               self._blob_key),
                            turns=len(history)))
            elif req.type == "import_session":
                history = session_blob.load(req.body["blob"], req.body["npc"], self._blob_key)
                self.engine.import_session(req.body["npc"], req.body["session"], history)
                out(p.frame(req.id, "done", turns=len(history)))
        except (EngineError, session_blob.BlobError) as exc:  # both carry their protocol error code
            self.counters[f"error.{exc.code}"] += 1
            out(p.error_frame(req.id, exc.code, str(exc)))
        except Exception:  # noqa: BLE001
            log.error("request %s (%s) failed:\n%s", p.loggable(req.id), req.type, traceback.format_exc())
            self.counters[f"error.{p.INTERNAL}"] += 1
            out(p.error_frame(req.id, p.INTERNAL, INTERNAL_MESSAGE))

    def _start_reply(self, job: _Job, batch: DecodeBatch, push: zmq.Socket) -> None:
        body, rid = job.request.body, job.request.id

        def out(payload: bytes, terminal: bool = True) -> None:
            emit(push, job.identity, rid, payload, terminal)

        def fail(code: str, message: str) -> None:
            self.counters[f"error.{code}"] += 1
            out(p.error_frame(rid, code, message))
            self._forget(job)

        stream = body.get("stream", True)

        def sink(event) -> None:
            if isinstance(event, FinalDelta):
                if stream:
                    out(p.frame(rid, "delta", text=event.text), terminal=False)
            elif isinstance(event, NpcAction):
                out(p.frame(rid, "action", name=event.name, args=event.arguments), terminal=False)
            elif isinstance(event, ReplyResult):
                self._finish_reply(job, event, out)
                self._forget(job)
            elif isinstance(event, EngineError):
                fail(event.code, str(event))
            elif isinstance(event, BaseException):
                log.error("request %s (reply) failed:\n%s", p.loggable(rid),
                          "".join(traceback.format_exception(type(event), event, event.__traceback__)))
                fail(p.INTERNAL, INTERNAL_MESSAGE)

        try:
            npc = self.engine.npc(body["npc"])  # it may have been removed by a profile reload while queued
        except EngineError as exc:
            sink(exc)
            return
        deadline = body.get("deadline_ms", npc.deadline_ms)
        waited = (time.monotonic() - job.received_at) * 1000
        if waited + FINISH_MARGIN_MS >= deadline:  # not even the fallback line would make it now
            fail(p.DEADLINE_IMPOSSIBLE, f"the {deadline:.0f} ms deadline ran out while the request "
                                        f"waited {waited:.0f} ms in the queue")
            return
        sampling = None
        if body.get("sampling"):
            base = npc.sampling
            sampling = SamplingParams(**{**{"temperature": base.temperature, "top_k": base.top_k,
                                            "top_p": base.top_p, "seed": base.seed}, **body["sampling"]})
        request = ReplyRequest(npc=body["npc"], text=body["text"], session_id=body.get("session"),
                               speaker=body.get("speaker") or "Player", game_state=body.get("state") or {},
                               deadline_ms=deadline, sampling=sampling, request_id=rid, received_at=job.received_at)
        batch.start(request, job.cancel, sink)

    def _finish_reply(self, job: _Job, result: ReplyResult, out) -> None:
        st, rid = result.stats, job.request.id
        if st.finish_reason == "cancelled":
            code = p.SHUTTING_DOWN if self.stopping.is_set() else p.CANCELLED
            self.counters[f"error.{code}"] += 1
            out(p.error_frame(rid, code, "the server is shutting down" if code == p.SHUTTING_DOWN
                              else "cancelled by the client"))
        else:
            self.counters["replies"] += 1
            self.counters["deadline_met"] += st.deadline_met
            out(p.frame(rid, "done", text=result.text, stats=st.to_dict(),
                        actions=[{"name": a.name, "args": a.arguments} for a in result.actions]))
        log.info("reply id=%s npc=%s session=%s ttft=%s total=%.0fms prompt=%d reused=%d reasoning=%d final=%d "
                 "cut=%s fallback=%s finish=%s deadline=%s", p.loggable(rid), st.npc,
                 p.loggable(job.request.body.get("session")),
                 "-" if st.ttft_ms is None else f"{st.ttft_ms:.0f}ms", st.total_ms, st.prompt_tokens, st.reused_tokens, st.reasoning_tokens, st.final_tokens,
                 st.reasoning_cut, st.fallback_used, st.finish_reason, "met" if st.deadline_met else "MISSED")
        if self.opts.debug_reasoning and result.reasoning:
            log.info("reasoning id=%s npc=%s: %s", p.loggable(rid), st.npc, result.reasoning)
