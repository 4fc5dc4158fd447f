"""The scheduler: which request runs next, and the worker loop that runs it.

The server's main thread submits jobs and cancels them; one worker thread calls `step()` until it
returns False. One step, in the manner of vLLM's EngineCore.step:

  1. schedule: pick what may start before the next decode step, under the lock:
       - a session operation whose conversation has nothing running or queued before it, at once;
       - else a reply, if the batch has room: per client its earliest-deadline reply whose
         conversation is free; among clients, the one with the fewest replies in the batch, then the
         one whose last reply started longest ago (round robin: fairness between clients comes
         before deadlines between them); and not if its prompt's pause would make a live reply miss
         its deadline (deadlines.join_would_be_late);
  2. run: start it (a session operation runs to its end; a reply is prefilled, in chunks between decode
     steps when replies are live or wait in the queue, and joins the batch),
     or, with nothing to start, run one decode step of the batch;
  3. update: the batch reports each reply's events to its job's sink; the last event of a job
     (its result, a refusal, an error) marks it finished.

A queued reply that can no longer start in time for a minimal answer (the batch full, or its
conversation busy) is answered at once, before the step: its fallback line, or `deadline_impossible`
when an earlier job of its session still runs or waits (its turn comes first); not late, when a place frees.
While a reply waits, no step runs more than `prefill_chunk` prompt tokens (a cold prompt into an empty
batch too), so the worker looks at the queue again soon enough to do that.
Replies and session operations of one conversation keep their arrival order. A client may hold at
most `max_queued_per_client` queued jobs, so one flooding client cannot fill the queue for all, and a
full queue takes a newcomer by refusing the newest job of a client holding at least two more places.
Jobs are forgotten when the server has sent their last frame (`forget`), not before (the id stays in
flight until then); a cancel finds a job only until it ends.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from runtime import deadlines, protocol
from runtime.cancel_flag import CancelFlag
from runtime.cost_model import CostModel
from runtime.reply import ReplyResult
from runtime.requests import ReplyRequest, SessionRequest

log = logging.getLogger(__name__)

MAX_CLIENTS_REMEMBERED = 10_000  # for the round robin
IDLE_WAIT_S = 0.5  # how long the worker sleeps when there is nothing to do (a submit wakes it)


@dataclass(frozen=True)
class Refusal:
    """The scheduler ended a job itself, before the engine had it: a protocol error code and why."""
    code: str
    message: str


@dataclass(frozen=True)
class SessionDone:
    """A session operation's answer: the fields of its `done` frame."""
    fields: dict[str, Any]


def is_terminal(event: Any) -> bool:
    """Whether an event is a job's last."""
    return isinstance(event, (ReplyResult, SessionDone, Refusal, BaseException))


@dataclass(eq=False)
class Job:
    identity: bytes  # the connection it came on: its answers go there; request ids are unique per connection
    request: ReplyRequest | SessionRequest  # a reply's NPC defaults already resolved
    sink: Callable[[Any], None]  # gets the job's events, on the worker thread
    client: bytes = b""  # who asked, for fairness and the per-client cap (default: the connection)
    cancel: CancelFlag = field(default_factory=CancelFlag)
    started: bool = False
    finished: bool = False  # its last event went to the sink

    def __post_init__(self) -> None:
        self.client = self.client or self.identity

    @property
    def id(self) -> str:
        return self.request.request_id

    @property
    def conversation(self) -> tuple[str, str | None]:
        return self.request.conversation

    @property
    def is_reply(self) -> bool:
        return isinstance(self.request, ReplyRequest)

    @property
    def due(self) -> float:
        """When its deadline passes (monotonic seconds); a session operation's never does."""
        return self.request.due if self.is_reply else float("-inf")


class Batch(Protocol):
    """What the scheduler needs of a decode batch (runtime/decode_batch.py, or a fake in tests)."""

    prefill_chunk: int  # the most prompt tokens run between two decode steps

    def __len__(self) -> int: ...
    def has_room(self) -> bool: ...
    def min_slack_ms(self) -> float: ...
    def prefill_left(self) -> int: ...
    def cold_tokens(self, req: ReplyRequest) -> int: ...
    def start(self, req: ReplyRequest, cancel: threading.Event, sink: Callable[[Any], None],
              someone_waits: bool = False) -> None: ...
    def fall_back(self, req: ReplyRequest, cancel: threading.Event, sink: Callable[[Any], None], why: str) -> None: ...
    def step(self, someone_waits: bool = False) -> None: ...
    def fail_all(self, exc: BaseException) -> None: ...


class Scheduler:
    def __init__(self, batch: Batch, cost: CostModel, run_session_op: Callable[[SessionRequest], dict],
                 max_queue: int = 32, max_queued_per_client: int = 16, idle_work: Callable[[], bool] | None = None):
        """`idle_work`: run when nothing is queued or live, one short piece a call (the engine runs an NPC's
        prefix that a profile change left unrun); True when it did something."""
        self.batch, self.cost, self.run_session_op, self.idle_work = batch, cost, run_session_op, idle_work
        self.max_queue, self.max_queued_per_client = max_queue, max_queued_per_client
        self._cv = threading.Condition()
        self._queue: list[Job] = []  # arrival order
        self._jobs: dict[tuple[bytes, str], Job] = {}  # queued and started, until forgotten
        self._stopping = False
        self._starts = 0  # replies started so far; a client's last start orders the round robin
        self._last_start: collections.OrderedDict[bytes, int] = collections.OrderedDict()

    # ---- the server's side ------------------------------------------------------------------------

    def submit(self, job: Job, displaced: list[Job] | None = None) -> Refusal | None:
        """Queue a job; a Refusal (answer it, nothing was queued) when it cannot be. When the queue is full
        and another client holds at least two more of it than this one, that client's newest queued job
        makes room: it is appended to `displaced` (answer it `busy`), so a few flooding connections cannot
        keep a quiet client out (an outside probe's four connections got a player `busy` 31% of the time)."""
        with self._cv:
            if self._stopping:
                return Refusal(protocol.SHUTTING_DOWN, "the server is shutting down")
            if (job.identity, job.id) in self._jobs:
                return Refusal(protocol.DUPLICATE_ID, f"request id {job.id!r} is already in flight on this connection: "
                                                      "this request was refused, the earlier one goes on")
            mine = sum(1 for queued in self._queue if queued.client == job.client)
            if mine >= self.max_queued_per_client:
                return Refusal(protocol.BUSY, f"this client has {mine} requests queued (the most one client may "
                                              "have); wait for their answers or cancel some")
            if len(self._queue) >= self.max_queue:
                held = collections.Counter(queued.client for queued in self._queue)
                most = max(held.values(), default=0)
                if displaced is None or most < mine + 2:
                    return Refusal(protocol.BUSY, f"{len(self._queue)} requests are queued (the limit); retry "
                                                  "shortly or use the NPC's fallback line")
                # of the clients holding the most, the one that queued last gives up its newest
                newest = next(queued for queued in reversed(self._queue) if held[queued.client] == most)
                self._queue.remove(newest)
                del self._jobs[(newest.identity, newest.id)]
                displaced.append(newest)
            self._jobs[(job.identity, job.id)] = job
            self._queue.append(job)
            self._cv.notify()
        return None

    def cancel(self, identity: bytes, request_id: str) -> tuple[bool, Job | None]:
        """Whether the connection's job was found still to end, and the job if it was still queued: it is
        gone now, and the caller answers it `cancelled`. A running one stops at its next step and answers
        itself `cancelled`. One that has ended is not found: its answer (`done`, say) is on its way, and a
        client told `found: true` must see `cancelled` (an outside client saw `found: true`, then `done`)."""
        with self._cv:
            job = self._jobs.get((identity, request_id))
            if job is None or job.finished:
                return False, None
            if not job.started:
                self._queue.remove(job)
                del self._jobs[(identity, request_id)]
                return True, job
            if not isinstance(job.request, ReplyRequest):  # a running session operation ends as it is
                return False, None
            return job.cancel.request(), None  # False: the reply has just ended, `done` on its way

    def drop_connection(self, identity: bytes) -> list[Job]:
        """A connection stopped reading: its queued jobs are removed and returned (answer them); its
        running replies stop at their next step."""
        with self._cv:
            removed = [job for job in self._queue if job.identity == identity]
            for job in removed:
                self._queue.remove(job)
                del self._jobs[(identity, job.id)]
            for (who, _), job in self._jobs.items():
                if who == identity:
                    job.cancel.set()
            return removed

    def waiting(self) -> set[bytes]:
        """The connections with a request queued, running, or ended and its last frame not yet handed on."""
        with self._cv:
            return {who for who, _ in self._jobs}

    def forget(self, identity: bytes, request_id: str) -> None:
        """The job's last frame went out: a later cancel of its id finds nothing, and the id may be reused."""
        with self._cv:
            job = self._jobs.get((identity, request_id))
            if job is not None and job.finished:
                del self._jobs[(identity, request_id)]

    def stop(self) -> None:
        """Take no more jobs: queued ones are refused `shutting_down` by the worker, running ones cancelled."""
        with self._cv:
            self._stopping = True
            for job in self._jobs.values():
                job.cancel.set()
            self._cv.notify_all()

    def queued(self) -> list[Job]:
        with self._cv:
            return list(self._queue)

    def idle(self) -> bool:
        """Nothing queued, running, or waiting for its last frame to go out."""
        with self._cv:
            return not self._jobs

    # ---- the worker's side ----------------------------------------------------------------------

    def run(self) -> None:
        while self.step():
            pass

    def step(self) -> bool:
        """Schedule, run one thing, report; False once stopped and nothing is left to run."""
        if self.idle_work is not None and self._nothing_to_do() and self._idle_work_done():
            return True  # then a look at the queue: a request that came meanwhile waited for one piece
        job, refused, late = self._schedule()
        for queued in refused:
            self._deliver(queued, Refusal(protocol.SHUTTING_DOWN, "the server is shutting down"))
        for queued, behind in late:  # first: they cost no model time, and their deadlines are closest
            self._answer_late(queued, behind)
        if job is None and not len(self.batch):
            return not self._stopping
        try:
            self._run(job)
        except Exception as exc:  # noqa: BLE001 - one failure must not stop every NPC
            self.batch.fail_all(exc)  # the live replies end with it
            if job is not None:
                self._deliver(job, exc)
            time.sleep(0.01)  # a failure that repeats must not spin a core
        return True

    def _nothing_to_do(self) -> bool:
        with self._cv:
            return not self._queue and not len(self.batch) and not self._stopping

    def _idle_work_done(self) -> bool:
        try:
            return bool(self.idle_work())
        except Exception:  # noqa: BLE001 - only a head start; the worker goes on serving
            log.exception("idle work failed")
            self.idle_work = None
            return False

    def _schedule(self) -> tuple[Job | None, list[Job], list[tuple[Job, bool]]]:
        with self._cv:
            if not self._queue and not len(self.batch) and not self._stopping:
                self._cv.wait(IDLE_WAIT_S)
            if self._stopping:
                refused, self._queue = self._queue, []
                return None, refused, []
            job = self._pick()
            if job is not None:
                self._queue.remove(job)
                job.started = True
                if job.is_reply:
                    self._starts += 1
                    self._last_start[job.client] = self._starts
                    self._last_start.move_to_end(job.client)
                    if len(self._last_start) > MAX_CLIENTS_REMEMBERED:
                        self._last_start.popitem(last=False)  # served longest ago: first in line anyway
            return job, [], self._running_out(job)

    def _running_out(self, starting: Job | None) -> list[tuple[Job, bool]]:
        """The queued replies that must be answered now to be answered in time (deadlines.answer_from_queue_now),
        taken out of the queue (under the lock), each with whether an earlier job of its conversation is
        still running or stays queued (then it may not end with a turn of its own before that job's; one
        answered late just before it, in this order, is no obstacle). Before the next look this step runs
        at most a chunk of prompts: of those being prefilled, and the first of `starting`'s."""
        now = time.perf_counter()
        chunk = self.batch.prefill_chunk
        pause = min(chunk, self.batch.prefill_left() + (chunk if starting is not None and starting.is_reply else 0))
        ahead = {job.conversation for job in self._running()}
        out = []
        for job in list(self._queue):
            conv = job.conversation
            if job.is_reply:
                req = job.request
                remaining = req.deadline_ms - (now - req.received_at) * 1000
                if deadlines.answer_from_queue_now(self.cost, remaining, len(req.text), pause,
                                                   self.batch.cold_tokens(req), chunk if len(self.batch) else None):
                    self._queue.remove(job)
                    job.started = True
                    out.append((job, conv[1] is not None and conv in ahead))
                    continue  # answered in this order, before the step: a later one of its session is not behind it
            if conv[1] is not None:
                ahead.add(conv)
        return out

    def _answer_late(self, job: Job, behind: bool) -> None:
        """A queued reply out of time: its fallback line now, or, behind an earlier job of its conversation
        (whose turn must come first), deadline_impossible now; either on time, not when a place frees."""
        req = job.request
        waited = (time.perf_counter() - req.received_at) * 1000
        if behind:
            self._deliver(job, Refusal(protocol.DEADLINE_IMPOSSIBLE, f"the {req.deadline_ms:.0f} ms deadline runs out: "
                                                                     f"the request waited {waited:.0f} ms behind an "
                                                                     "earlier request of its session, running or "
                                                                     "queued"))
            return
        if self._refused_as_expired(job):  # a step ran long
            return
        try:
            self.batch.fall_back(req, job.cancel, lambda event: self._deliver(job, event),
                                 f"waited {waited:.0f} ms in the queue; only the fallback line is still in time")
        except Exception as exc:  # noqa: BLE001 - its sink answers it
            self._deliver(job, exc)

    def _refused_as_expired(self, job: Job) -> bool:
        """Refuse a queued reply whose deadline ran out while it waited (not even its fallback line is in time)."""
        req = job.request
        waited = deadlines.expired_in_queue(req.received_at, req.deadline_ms)
        if waited is None:
            return False
        self._deliver(job, Refusal(protocol.DEADLINE_IMPOSSIBLE, f"the {req.deadline_ms:.0f} ms deadline ran out "
                                                                 f"while the request waited {waited:.0f} ms in the queue"))
        return True

    def _running(self) -> list[Job]:
        """Jobs started and not ended (under the lock)."""
        return [job for job in self._jobs.values() if job.started and not job.finished]

    def _pick(self) -> Job | None:
        """What to start before the next decode step (under the lock); None when nothing can."""
        running = self._running()
        busy = {job.conversation for job in running}
        in_batch = collections.Counter(job.client for job in running if job.is_reply)
        blocked: set[tuple[str, str | None]] = set()
        earliest: dict[bytes, Job] = {}  # per client, its earliest-deadline reply that may start
        for job in self._queue:
            conv = job.conversation
            one_off = conv[1] is None
            if not one_off and (conv in blocked or conv in busy):
                blocked.add(conv)  # a later job of this conversation waits for the earlier
                continue
            if not job.is_reply:
                return job
            if not one_off:
                blocked.add(conv)
            best = earliest.get(job.client)
            if best is None or job.due < best.due:
                earliest[job.client] = job
        if not earliest or not self.batch.has_room():
            return None
        job = min(earliest.values(), key=lambda j: (in_batch[j.client], self._last_start.get(j.client, -1), j.due))
        if deadlines.join_would_be_late(self.cost, len(self.batch), self.batch.min_slack_ms(), len(job.request.text),
                                        self.batch.prefill_chunk, self.batch.cold_tokens(job.request)):
            return None
        return job

    def _run(self, job: Job | None) -> None:
        with self._cv:  # then the step runs a prompt a chunk at a time, and the next look comes soon
            someone_waits = any(queued.is_reply for queued in self._queue)
        if job is None:
            self.batch.step(someone_waits)
        elif not job.is_reply:
            try:
                answer: Any = SessionDone(self.run_session_op(job.request))
            except Exception as exc:  # noqa: BLE001 - its sink answers it (with its code, or `internal`)
                answer = exc
            self._deliver(job, answer)
        else:
            if not self._refused_as_expired(job):
                self.batch.start(job.request, job.cancel, lambda event: self._deliver(job, event), someone_waits)

    def _deliver(self, job: Job, event: Any) -> None:
        """Pass an event to the job's sink; after its last, nothing more. If the sink fails on the last
        one, the job is forgotten here (its frame will never be sent, so nobody else would)."""
        if job.finished:
            return
        terminal = is_terminal(event)
        if terminal and isinstance(job.request, ReplyRequest) and not isinstance(event, ReplyResult) \
                and not job.cancel.close():
            # a reply refused or failed after a cancel was taken for it: the client was told `found`, so it
            # hears `cancelled` (a reply's own result closes the flag itself, in Reply._report)
            log.info("request %s: cancelled as it ended with %r", protocol.loggable(job.id), event)
            event = Refusal(protocol.SHUTTING_DOWN if self._stopping else protocol.CANCELLED,
                            "the server is shutting down" if self._stopping else "cancelled by the client")
        if terminal:
            with self._cv:
                job.finished = True
        try:
            job.sink(event)
        except Exception:  # noqa: BLE001 - the worker goes on; the job must not stay in flight for ever
            log.exception("request %s: its answer could not be passed on", protocol.loggable(job.id))
            if terminal:
                self.forget(job.identity, job.id)
