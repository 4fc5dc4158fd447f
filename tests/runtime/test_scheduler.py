"""The scheduler on its own, with a fake batch and no model: order, fairness, the per-client cap,
session order, join pauses, failures, deadlines in the queue, cancels and shutdown."""
from __future__ import annotations

import time

import pytest

from runtime import protocol as p
from runtime.cost_model import CostModel
from runtime.reply import ReplyResult, ReplyStats
from runtime.requests import ReplyRequest, SessionRequest
from runtime.sampler import GREEDY
from runtime.scheduler import Job, Refusal, Scheduler, SessionDone

FREE = CostModel(prefill_ms_per_token=0.0, decode_ms_per_token=0.0, frozen=True)


def result(req: ReplyRequest) -> ReplyResult:
    stats = ReplyStats(req.request_id, req.npc, 1, 0, 0, 1, 1.0, 1.0, 0.0, 0.0, 0, False, False,
                       req.deadline_ms, True, "return", False, 0)
    return ReplyResult("ok", stats, "")


class FakeBatch:
    """Rows that finish after a set number of steps; records what started, in order."""
    prefill_chunk = 10_000  # a prompt runs whole

    def __init__(self, max_batch: int = 2, steps: int = 2):
        self.max_batch, self.steps = max_batch, steps
        self.rows: list[list] = []  # [request, sink, steps left]
        self.started: list[str] = []
        self.fell_back: list[str] = []
        self.slack_ms = float("inf")
        self.fail_next_step: Exception | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def has_room(self) -> bool:
        return len(self.rows) < self.max_batch

    def min_slack_ms(self) -> float:
        return self.slack_ms if self.rows else float("inf")

    def prefill_left(self) -> int:
        return 0

    def cold_tokens(self, req) -> int:
        return 0

    def start(self, req, cancel, sink, someone_waits: bool = False) -> None:
        self.started.append(req.request_id)
        self.rows.append([req, sink, self.steps, cancel])

    def fall_back(self, req, cancel, sink, why) -> None:
        self.fell_back.append(req.request_id)
        sink(result(req))

    def step(self, someone_waits: bool = False) -> None:
        if self.fail_next_step is not None:
            exc, self.fail_next_step = self.fail_next_step, None
            raise exc
        for row in list(self.rows):
            row[2] -= 1
            if row[2] == 0 or row[3].is_set():
                self.rows.remove(row)
                row[1](result(row[0]))

    def fail_all(self, exc: BaseException) -> None:
        rows, self.rows = self.rows, []
        for row in rows:
            row[1](exc)


class Client:
    """Submits jobs under one client name and keeps every event its jobs get."""

    def __init__(self, scheduler: Scheduler, name: bytes):
        self.scheduler, self.name, self.events = scheduler, name, {}

    def reply(self, rid: str, deadline_ms: float = 60_000, session: str | None = None, waited_ms: float = 0.0):
        req = ReplyRequest(npc="brenna", text="hi", session_id=session, request_id=rid, deadline_ms=deadline_ms,
                           sampling=GREEDY, received_at=time.perf_counter() - waited_ms / 1000)
        return self._submit(req)

    def session_op(self, rid: str, kind: str, session: str):
        return self._submit(SessionRequest(kind, "brenna", session, rid))

    def _submit(self, req):
        self.events[req.request_id] = []
        job = Job(self.name, req, sink=self.events[req.request_id].append)
        return self.scheduler.submit(job)

    def last(self, rid: str):
        return self.events[rid][-1] if self.events[rid] else None


def scheduler(batch: FakeBatch, **kw) -> Scheduler:
    ops = []

    def run_op(req: SessionRequest) -> dict:
        ops.append(req.request_id)
        return {"existed": True}
    s = Scheduler(batch, FREE, run_op, **kw)
    s.ops_run = ops
    return s


def run_until_idle(s: Scheduler, limit: int = 200) -> None:
    for _ in range(limit):
        if not s.queued() and not len(s.batch):
            return
        s.step()
    raise AssertionError("the scheduler never got through its queue")


def test_replies_start_earliest_deadline_first():
    batch = FakeBatch(max_batch=1)
    s = scheduler(batch)
    c = Client(s, b"game")
    for rid, deadline in (("late", 50_000), ("urgent", 40_000), ("latest", 60_000)):
        assert c.reply(rid, deadline) is None
    run_until_idle(s)
    assert batch.started == ["urgent", "late", "latest"]
    assert all(isinstance(c.last(rid), ReplyResult) for rid in c.events)


def test_a_flooding_client_does_not_keep_the_batch_from_another():
    """Client A queued many replies with earlier deadlines; B's one reply gets the next free row, because
    A already has one in the batch and B none."""
    batch = FakeBatch(max_batch=2, steps=50)
    s = scheduler(batch)
    a, b = Client(s, b"a"), Client(s, b"b")
    for i in range(6):
        a.reply(f"a{i}", deadline_ms=10_000 + i)
    b.reply("b0", deadline_ms=60_000)
    s.step()
    s.step()
    assert batch.started == ["a0", "b0"]


def test_a_client_may_hold_only_its_share_of_the_queue():
    s = scheduler(FakeBatch(), max_queue=8, max_queued_per_client=3)
    a, b = Client(s, b"a"), Client(s, b"b")
    assert [a.reply(f"a{i}") for i in range(3)] == [None] * 3
    refusal = a.reply("a3")
    assert isinstance(refusal, Refusal) and refusal.code == p.BUSY and "this client" in refusal.message
    assert b.reply("b0") is None  # another client still gets in
    assert [j.id for j in s.queued()] == ["a0", "a1", "a2", "b0"]


def test_the_whole_queue_has_a_limit_too_and_ids_in_flight_are_refused():
    s = scheduler(FakeBatch(), max_queue=2, max_queued_per_client=2)
    a, b = Client(s, b"a"), Client(s, b"b")
    assert a.reply("x") is None
    assert a.reply("x").code == p.DUPLICATE_ID  # the same id, still in flight
    assert b.reply("x") is None  # another client's ids are its own
    assert b.reply("y").code == p.BUSY


def test_jobs_of_one_session_keep_their_order_and_one_offs_never_wait():
    batch = FakeBatch(max_batch=4, steps=3)
    s = scheduler(batch)
    c = Client(s, b"game")
    c.reply("first", session="s1", deadline_ms=40_000)
    c.session_op("reset", "reset_session", "s1")
    c.reply("second", session="s1", deadline_ms=1_000)  # earlier deadline, but after the reset
    c.reply("one-off", deadline_ms=50_000)
    s.step()  # "first" starts
    s.step()  # the reset must wait for it; the one-off does not
    assert batch.started == ["first", "one-off"] and s.ops_run == []
    run_until_idle(s)
    assert batch.started == ["first", "one-off", "second"]
    assert s.ops_run == ["reset"] and isinstance(c.last("reset"), SessionDone)
    assert c.events["reset"][-1].fields == {"existed": True}


def test_no_reply_joins_while_its_prompt_would_make_a_live_reply_late():
    batch = FakeBatch(max_batch=4, steps=3)
    slow = CostModel(prefill_ms_per_token=1.0, decode_ms_per_token=10.0, frozen=True)
    s = Scheduler(batch, slow, lambda req: {})
    c = Client(s, b"game")
    c.reply("live")
    s.step()
    batch.slack_ms = 50.0  # the live reply has 50 ms left; a join would pause it ~65 ms + 2 steps
    c.reply("waiting")
    s.step()
    assert batch.started == ["live"]  # a decode step ran instead
    run_until_idle(s)
    assert batch.started == ["live", "waiting"]  # it joined once the live reply was done


def test_a_reply_whose_npc_prefix_is_not_kept_joins_as_soon_as_a_chunk_of_its_prompt_fits():
    # an outside probe: one-off lines to 80 NPCs of 1,800-token prefixes (more than the 64 kept) made a
    # victim's live 300 ms replies miss their deadlines by up to 153 ms: each cold prefix ran whole mid-serving.
    # Held back until the live replies could spare the whole prefix, such a reply then blocked every client's
    # replies behind it; now the prefix is the start of its prompt, run a chunk at a time
    batch = FakeBatch(max_batch=4, steps=3)
    batch.prefill_chunk = 128
    batch.cold_tokens = lambda req: 1800 if req.npc == "cold" else 0
    s = Scheduler(batch, CostModel(prefill_ms_per_token=0.1, decode_ms_per_token=1.0, frozen=True), lambda req: {})
    c = Client(s, b"game")
    c.reply("live")
    s.step()
    batch.slack_ms = 150.0  # a 180 ms prefix would make it late; a 128-token chunk (13 ms) would not
    s.submit(Job(b"other", ReplyRequest(npc="cold", text="hi", request_id="to-cold", sampling=GREEDY,
                                       deadline_ms=60_000, received_at=time.perf_counter()), sink=lambda e: None))
    s.step()
    assert batch.started == ["live", "to-cold"]
    batch.slack_ms = 10.0  # but not when not even a chunk can be spared
    s.submit(Job(b"third", ReplyRequest(npc="cold", text="hi", request_id="waits", sampling=GREEDY,
                                       deadline_ms=60_000, received_at=time.perf_counter()), sink=lambda e: None))
    s.step()
    assert batch.started == ["live", "to-cold"]
    run_until_idle(s)
    assert batch.started == ["live", "to-cold", "waits"]


def test_a_reply_whose_npc_prefix_is_kept_joins_beside_a_live_reply_with_the_same_slack():
    batch = FakeBatch(max_batch=4, steps=3)
    s = Scheduler(batch, CostModel(prefill_ms_per_token=0.1, decode_ms_per_token=1.0, frozen=True), lambda req: {})
    c = Client(s, b"game")
    c.reply("live")
    s.step()
    batch.slack_ms = 150.0
    Client(s, b"other").reply("to-warm")
    s.step()
    assert batch.started == ["live", "to-warm"]


def test_a_failed_step_ends_the_live_replies_and_the_next_job_still_runs():
    batch = FakeBatch(max_batch=2, steps=5)
    s = scheduler(batch)
    c = Client(s, b"game")
    c.reply("r0")
    c.reply("r1")
    s.step()
    s.step()
    batch.fail_next_step = RuntimeError("device lost")
    c.reply("r2")
    s.step()  # the batch is full: a decode step runs, and fails
    assert [type(c.last(r)) for r in ("r0", "r1")] == [RuntimeError, RuntimeError]
    run_until_idle(s)
    assert isinstance(c.last("r2"), ReplyResult)


def test_a_reply_whose_deadline_ran_out_in_the_queue_is_refused_not_started():
    batch = FakeBatch()
    s = scheduler(batch)
    c = Client(s, b"game")
    c.reply("stale", deadline_ms=100, waited_ms=150)
    s.step()
    assert batch.started == []
    refusal = c.last("stale")
    assert isinstance(refusal, Refusal) and refusal.code == p.DEADLINE_IMPOSSIBLE and "waited" in refusal.message


def test_a_queued_reply_running_out_of_time_is_answered_now_not_when_a_place_frees():
    # an outside probe: behind a full batch, 300 ms replies were refused up to 475 ms after their deadlines
    batch = FakeBatch(max_batch=1, steps=1000)
    s = scheduler(batch)
    flood, c = Client(s, b"flood"), Client(s, b"game")
    flood.reply("long")
    c.reply("held", session="s")
    s.step()
    s.step()  # "long" fills the batch; "held" waits for a place
    c.reply("soon", deadline_ms=300, waited_ms=295)  # a one-off: its fallback line, now
    c.reply("behind", deadline_ms=300, waited_ms=295, session="s")  # after "held", still queued: its turn first
    c.reply("fresh", deadline_ms=300)
    s.step()
    assert batch.started == ["long"] and batch.fell_back == ["soon"]
    assert isinstance(c.last("soon"), ReplyResult)
    refusal = c.last("behind")
    assert isinstance(refusal, Refusal) and refusal.code == p.DEADLINE_IMPOSSIBLE
    assert "behind an earlier request of its session, running or queued" in refusal.message
    assert [job.id for job in s.queued()] == ["held", "fresh"] and c.last("fresh") is None


def full(rows_last: int = 1000) -> tuple[FakeBatch, Scheduler]:
    """A batch of one place, taken by another client's long reply."""
    batch = FakeBatch(max_batch=1, steps=rows_last)
    s = scheduler(batch)
    Client(s, b"flood").reply("long")
    s.step()
    return batch, s


def test_a_session_reply_out_of_time_with_its_conversation_free_falls_back_and_keeps_its_place_in_order():
    batch, s = full()
    c = Client(s, b"game")
    c.reply("first", deadline_ms=300, waited_ms=295, session="s")
    c.reply("second", session="s")
    s.step()
    assert batch.fell_back == ["first"] and isinstance(c.last("first"), ReplyResult)
    assert [job.id for job in s.queued()] == ["second"]


def test_two_replies_of_one_session_out_of_time_together_both_fall_back_in_order():
    # a review: the second was refused as "behind" the first, though the first was answered just before it
    batch, s = full()
    c = Client(s, b"game")
    c.reply("r1", deadline_ms=300, waited_ms=295, session="s")
    c.reply("r2", deadline_ms=300, waited_ms=295, session="s")
    s.step()
    assert batch.fell_back == ["r1", "r2"] and all(isinstance(c.last(r), ReplyResult) for r in ("r1", "r2"))


class SlowPromptBatch(FakeBatch):
    """One place; each prompt takes 1 ms a token to prefill, as DecodeBatch runs it: whole into an empty
    batch, or a chunk a step while a reply waits in the queue. Then the reply decodes for ever."""
    prefill_chunk = 50

    def __init__(self, prompt_tokens: int):
        super().__init__(max_batch=1, steps=100_000)
        self.prompt_tokens = prompt_tokens
        self.left: dict[str, int] = {}  # prompt tokens still to run, per reply

    def prefill_left(self) -> int:
        return sum(self.left.values())

    def start(self, req, cancel, sink, someone_waits: bool = False) -> None:
        super().start(req, cancel, sink)
        self.left[req.request_id] = self.prompt_tokens
        self._prefill(someone_waits)

    def step(self, someone_waits: bool = False) -> None:
        if self.prefill_left():
            self._prefill(someone_waits)
        else:
            super().step()

    def _prefill(self, someone_waits: bool) -> None:
        rid = next(r for r, n in self.left.items() if n)
        run = min(self.left[rid], self.prefill_chunk) if someone_waits else self.left[rid]
        time.sleep(run / 1000)
        self.left[rid] -= run


def test_a_queued_reply_is_answered_in_time_while_a_cold_prompt_is_still_being_prefilled():
    # a review: a 300 ms reply queued behind a cold prompt prefilled whole into an empty batch (350 ms, one
    # step the worker could not interrupt) was refused deadline_impossible when that step ended, 50 ms late
    batch = SlowPromptBatch(prompt_tokens=350)
    s = Scheduler(batch, CostModel(prefill_ms_per_token=1.0, decode_ms_per_token=1.0, frozen=True),
                  lambda req: {})
    Client(s, b"cold").reply("cold", deadline_ms=250)  # due first: it starts first
    quick = ReplyRequest(npc="brenna", text="hi", request_id="quick", deadline_ms=300, sampling=GREEDY,
                         received_at=time.perf_counter())
    answered = {}
    s.submit(Job(b"game", quick, sink=lambda event: answered.update(event=event, at=time.perf_counter(),
                                                                    cold_left=batch.left["cold"])))
    for _ in range(100):
        if answered:
            break
        s.step()
    assert batch.started == ["cold"] and batch.fell_back == ["quick"]
    assert isinstance(answered["event"], ReplyResult)  # its fallback line, not deadline_impossible
    assert answered["cold_left"] > 0  # while the cold prompt still ran, a chunk at a time
    assert (answered["at"] - quick.received_at) * 1000 <= 300


@pytest.mark.parametrize("prompt_tokens_pending", [0, 400])
def test_the_next_look_at_the_queue_is_priced_by_the_prompt_tokens_that_run_before_it(prompt_tokens_pending):
    """A full batch whose next step also runs 400 tokens of someone's prompt (400 ms here) leaves a queued
    reply with 450 ms too little for a short answer after it: its fallback line now. With no prompt pending,
    the next look comes after a decode step, and the reply may still wait for a place."""
    batch = FakeBatch(max_batch=1, steps=1000)
    batch.prefill_chunk = 1000
    batch.prefill_left = lambda: prompt_tokens_pending
    s = Scheduler(batch, CostModel(prefill_ms_per_token=1.0, decode_ms_per_token=1.0, frozen=True),
                  lambda req: {})
    Client(s, b"flood").reply("long")
    s.step()
    c = Client(s, b"game")
    c.reply("waits", deadline_ms=450)
    s.step()
    assert batch.fell_back == (["waits"] if prompt_tokens_pending else [])


def test_cancel_removes_a_queued_job_and_stops_a_running_one_and_once_it_ended_finds_nothing():
    batch = FakeBatch(max_batch=1, steps=100)
    s = scheduler(batch)
    c = Client(s, b"game")
    c.reply("running")
    c.reply("queued")
    s.step()
    found, job = s.cancel(b"game", "queued")
    assert found and job.id == "queued" and [j.id for j in s.queued()] == []
    assert s.cancel(b"other", "running") == (False, None)  # another client cannot touch it
    assert s.cancel(b"game", "running") == (True, None)
    s.step()
    assert isinstance(c.last("running"), ReplyResult)  # stopped at its next step
    # ended, its last frame not sent yet: not found, since it will not end `cancelled` (an outside client
    # was told found, then got `done`)
    assert s.cancel(b"game", "running") == (False, None)
    assert not s.idle()  # its record waits until the server sent its last frame
    s.forget(b"game", "running")
    assert s.idle() and s.cancel(b"game", "running") == (False, None)  # sent: nothing to find


def test_stop_refuses_queued_jobs_lets_running_ones_end_and_then_the_worker_ends():
    batch = FakeBatch(max_batch=1, steps=100)
    s = scheduler(batch)
    c = Client(s, b"game")
    c.reply("running")
    c.reply("queued")
    s.step()
    s.stop()
    assert c.reply("late").code == p.SHUTTING_DOWN
    assert s.step()  # refuses the queued one, runs the running one's step (it was cancelled)
    assert c.last("queued").code == p.SHUTTING_DOWN
    assert isinstance(c.last("running"), ReplyResult)
    assert s.step() is False


class ChattyBatch(FakeBatch):
    """A batch with a bug: it reports more after a reply's result."""

    def step(self, someone_waits: bool = False) -> None:
        for row in list(self.rows):
            self.rows.remove(row)
            row[1](result(row[0]))
            row[1](RuntimeError("late"))


def test_nothing_reaches_a_job_after_its_last_event():
    s = scheduler(ChattyBatch(max_batch=1))
    c = Client(s, b"game")
    c.reply("r")
    s.step()
    s.step()
    assert len(c.events["r"]) == 1 and isinstance(c.last("r"), ReplyResult)


def test_clients_with_equal_places_in_the_batch_take_turns_by_their_last_start():
    batch = FakeBatch(max_batch=1, steps=1)
    s = scheduler(batch)
    a, b = Client(s, b"a"), Client(s, b"b")
    for i in range(3):
        a.reply(f"a{i}", deadline_ms=10_000 + i)  # a's are all more urgent than b's
        b.reply(f"b{i}", deadline_ms=50_000 + i)
    run_until_idle(s)
    assert batch.started == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_a_failing_session_operation_answers_its_error_and_the_next_job_runs():
    batch = FakeBatch()

    def run_op(req):
        raise KeyError("no such thing")
    s = Scheduler(batch, FREE, run_op)
    c = Client(s, b"game")
    c.session_op("export", "export_session", "s1")
    c.reply("after", session="s1")
    run_until_idle(s)
    assert isinstance(c.last("export"), KeyError) and isinstance(c.last("after"), ReplyResult)


def test_a_connection_that_stopped_reading_loses_its_queued_jobs_and_its_running_ones_stop():
    batch = FakeBatch(max_batch=1, steps=100)
    s = scheduler(batch)
    gone, other = Client(s, b"gone"), Client(s, b"other")
    gone.reply("running")
    gone.reply("queued")
    other.reply("theirs")
    s.step()
    removed = s.drop_connection(b"gone")
    assert [j.id for j in removed] == ["queued"] and [j.id for j in s.queued()] == ["theirs"]
    s.step()
    assert isinstance(gone.last("running"), ReplyResult)  # cancelled: it ended at its next step
    run_until_idle(s)
    assert isinstance(other.last("theirs"), ReplyResult)


def test_a_job_submitted_from_another_thread_wakes_an_idle_worker():
    import threading

    batch = FakeBatch(max_batch=1, steps=1)
    s = scheduler(batch)
    worker = threading.Thread(target=s.run, daemon=True)
    worker.start()
    time.sleep(0.05)  # the worker waits for work
    c = Client(s, b"game")
    c.reply("r")
    for _ in range(400):
        if c.events["r"]:
            break
        time.sleep(0.005)
    s.stop()
    worker.join(5)
    assert isinstance(c.last("r"), ReplyResult) and not worker.is_alive()


def test_a_sink_that_fails_on_the_last_event_does_not_leave_the_job_in_flight():
    batch = FakeBatch(max_batch=1, steps=1)
    s = scheduler(batch)

    def broken(event):
        raise OSError("the socket is gone")
    req = ReplyRequest(npc="brenna", text="hi", request_id="r", deadline_ms=60_000, sampling=GREEDY,
                       received_at=time.perf_counter())
    assert s.submit(Job(b"game", req, sink=broken)) is None
    s.step()
    s.step()
    assert s.idle()  # forgotten: the id is free, nothing waits for a frame that will never come


class RefusedAsItStarts(FakeBatch):
    """A reply refused while it is set up (its session evicted, say), with the client's cancel landing just
    before: the client was told `found`."""

    def start(self, req, cancel, sink, someone_waits: bool = False) -> None:
        assert cancel.request()
        sink(ValueError("refused while it started"))


def test_a_reply_refused_after_its_cancel_was_taken_ends_cancelled():
    """A review found found: true followed by another error than `cancelled` (a reply refused or failed
    after the cancel was taken, before its end closed the flag)."""
    s = scheduler(RefusedAsItStarts())
    c = Client(s, b"game")
    c.reply("r")
    s.step()
    last = c.last("r")
    assert isinstance(last, Refusal) and last.code == p.CANCELLED


def test_a_full_queue_takes_the_newest_of_the_heaviest_client_that_queued_last():
    s = scheduler(FakeBatch(max_batch=1, steps=100), max_queue=6, max_queued_per_client=6)
    early, flood, quiet = Client(s, b"early"), Client(s, b"flood"), Client(s, b"quiet")
    for i in range(3):
        early.reply(f"e{i}")
    for i in range(3):
        flood.reply(f"f{i}")
    displaced = []
    job = Job(b"quiet", ReplyRequest(npc="brenna", text="hi", request_id="q", deadline_ms=60_000, sampling=GREEDY,
                                     received_at=time.perf_counter()), sink=quiet.events.setdefault("q", []).append)
    assert s.submit(job, displaced) is None
    assert [j.id for j in displaced] == ["f2"]  # the flood's newest: it reached three last, not `early`
    assert [j.id for j in s.queued()] == ["e0", "e1", "e2", "f0", "f1", "q"]
    again = []
    assert s.submit(Job(b"quiet", ReplyRequest(npc="brenna", text="hi", request_id="q2"), sink=print), again) is None
    assert [j.id for j in again] == ["e2"]  # `early` holds three against quiet's one: its newest goes
    refused = s.submit(Job(b"quiet", ReplyRequest(npc="brenna", text="hi", request_id="q3"), sink=print), [])
    assert refused is not None and refused.code == p.BUSY  # two each: nobody holds two more than quiet


def test_idle_work_runs_only_when_nothing_is_queued_or_live_and_a_failing_one_is_dropped():
    done: list[str] = []

    def work() -> bool:
        done.append("piece")
        if len(done) == 3:
            raise RuntimeError("a bug in the idle work")
        return True
    batch = FakeBatch(max_batch=1, steps=2)
    s = Scheduler(batch, FREE, lambda req: {}, idle_work=work)
    c = Client(s, b"game")
    c.reply("r")
    run_until_idle(s)  # a reply queued, then live: no idle work meanwhile
    assert done == [] and isinstance(c.last("r"), ReplyResult)
    s.step()
    s.step()
    assert done == ["piece", "piece"]
    s.step()  # fails: logged, and never called again
    assert s.idle_work is None
    c.reply("after")
    run_until_idle(s)
    assert isinstance(c.last("after"), ReplyResult) and len(done) == 3
