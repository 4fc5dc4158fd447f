"""Continuous batching: the decode steps of many replies run as one batched run of the graph. It is
the only driver of a Reply (runtime/reply.py); a reply on its own is a batch of one.

A reply starts on its own: rendered and prefilled on its conversation's cache (one row). Then it
joins the batch: its KV is copied into a free row of a pool cache, and from there every step of the
graph appends one token to every live row (GroupQueryAttention takes each row's own length). Tokens
a reply is handed several at a time without choosing them (the final channel's header when its
reasoning is cut, an action's acknowledgement) run ahead at once on its own row, all but the last,
which then takes the step with the others (a ping-pong cache, which must step every row together,
feeds them one a step instead). When a reply is done its row goes back to its
conversation's cache (so the next turn reuses it) and the last row moves into the hole: live rows
stay 0..k-1, a contiguous block the graph runs on.

A batch of one row needs no pool: the reply decodes in its own cache, with nothing to copy.

A prompt that arrives while replies are live is prefilled in chunks: after each decode step up to
`prefill_chunk` tokens of waiting prompts run, the shortest first, so the live replies pause for a chunk's
worth at a time rather than whole prompts (chunked prefill, as vLLM and SGLang do it), several short
prompts (a turn after a cached prefix is tens of tokens) share one pause rather than taking a step each,
and none waits behind a long prompt's chunks (an NPC prefix not kept runs as the start of its reply's
prompt: up to a couple of thousand tokens); a chunk waits while it would make a live reply miss its
deadline. A step with no prompt waiting may run a chunk of an NPC prefix that a reply needed and could
not keep (runtime/prefix_caches.py). With no live reply a prompt runs in pieces of at most SOLO_RUN_MS (by the cost model;
fewer runs, as runs have a fixed cost), or a chunk at a time when a reply waits in the scheduler's queue
(`someone_waits`): the worker looks at its queue between runs, so a reply that waits, or arrives
meanwhile, is still answered by its deadline. A reply cancelled, or out of time (its prompt's rest and a
minimal answer no longer fit), while its prompt is still being prefilled ends there.

Single-threaded by design: one thread (the server's worker) owns a batch.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from runtime import deadlines
from runtime.requests import ReplyRequest
from runtime.session import KvCache

if TYPE_CHECKING:
    from runtime.cost_model import CostModel
    from runtime.prefix_caches import PrefixCaches
    from runtime.reply import Reply, Sink
    from runtime.session import StepOutput


class Model(Protocol):
    """What a batch asks of the engine that hands itself in (runtime/engine.py)."""
    cost: "CostModel"
    prefixes: "PrefixCaches"

    def new_reply(self, req: ReplyRequest, cancel: threading.Event, sink: "Sink") -> "Reply": ...
    def run_model(self, ids: np.ndarray, cache: KvCache, prefill: bool = False, first_row: int = 0,
                  waited_ms: float = 0.0) -> "StepOutput": ...
    def new_pool(self, rows: int) -> KvCache: ...
    def warm_next_prefix(self, max_tokens: int, asked_only: bool = False) -> int: ...

log = logging.getLogger(__name__)


PREFILL_CHUNK = 128  # prompt tokens per run while replies are live: a pause of about 10 decode steps on a CPU
# With no reply live or waiting, a prompt's runs last about this long (by the cost model; at least
# PREFILL_CHUNK tokens, which can take longer on a slow device): a reply arriving meanwhile waits that long
SOLO_RUN_MS = 50.0


@dataclass(eq=False)
class _Row:
    reply: "Reply"
    feed: list[int] = field(default_factory=list)  # ids still to run before the reply is asked again


@dataclass(eq=False)
class _Prefill:
    reply: "Reply"
    ids: list[int]  # prompt ids still to run
    prefix_left: int = 0  # of them, the NPC's prefix (not kept): a run ends where it ends, so it can be kept


class DecodeBatch:
    def __init__(self, engine: Model, max_batch: int = 8, prefill_chunk: int = PREFILL_CHUNK, run_ahead: bool = True,
                 share_chunk: bool = True):
        """run_ahead=False feeds every token a decode step, as before forced tokens ran ahead; share_chunk=False
        runs one prompt's chunk a step, as before waiting prompts shared the chunk (benchmarks compare:
        tools/experiments/batch_trace.py)."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if prefill_chunk < 1:
            raise ValueError("prefill_chunk must be at least 1")
        self.engine, self.max_batch, self.prefill_chunk, self.run_ahead = engine, max_batch, prefill_chunk, run_ahead
        self.share_chunk = share_chunk
        self._pool: KvCache | None = None  # allocated on first use: max_batch rows of the full context
        self._rows: list[_Row] = []  # index == pool row
        self._prefills: list[_Prefill] = []  # prompts being prefilled a chunk at a time, oldest first
        self.steps_run = 0
        self.rows_stepped = 0  # sum of batch sizes, for the mean batch size in stats
        self.chunks_run = 0  # prompt chunks run between decode steps

    def __len__(self) -> int:
        """Replies in the batch: decoding, or still prefilling their prompt."""
        return len(self._rows) + len(self._prefills)

    def has_room(self) -> bool:
        return len(self) < self.max_batch

    def min_slack_ms(self) -> float:
        """The least time any live reply could give up before its deadline (deadlines.batch_slack_ms),
        counting those still being prefilled."""
        return min([self._rows_slack_ms()] + [p.reply.slack_ms() for p in self._prefills])

    def cold_tokens(self, req: ReplyRequest) -> int:
        """Prompt tokens a reply to start would run before its turn: its NPC's prefix when not kept."""
        return self.engine.cold_prefix_tokens(req.npc)

    def prefill_left(self) -> int:
        """Prompt tokens still to run, of replies being prefilled a chunk at a time."""
        return sum(len(p.ids) for p in self._prefills)

    def start(self, req: ReplyRequest, cancel: threading.Event, sink: "Sink", someone_waits: bool = False) -> None:
        """Render the reply and prefill its prompt: now when no other reply is live (its first chunk only
        when `someone_waits` in the queue), else a chunk per step; then it joins the batch for its decode
        steps. A reply that ends without decoding (the fallback line, an error) is reported to `sink` right
        away."""
        if not self.has_room():
            raise RuntimeError("the decode batch is full; check has_room() first")
        try:
            reply = self.engine.new_reply(req, cancel, sink)
            ids = reply.begin(chunk=self.prefill_chunk if self._rows else None)
        except Exception as exc:  # noqa: BLE001 - unknown NPC, prompt too long: the sink answers it
            sink(exc)
            return
        if ids is None:
            return
        pending = _Prefill(reply, list(ids), reply.prefix_to_run)
        idle = not self._rows and not self._prefills
        self._prefills.append(pending)  # its chunks run between decode steps
        if idle:
            self._prefill(pending, min(self._solo_run(someone_waits), len(ids)))

    def fall_back(self, req: ReplyRequest, cancel: threading.Event, sink: "Sink", why: str) -> None:
        """End a reply with its fallback line at once, without the model (so without a place in the batch):
        the scheduler's answer for a queued reply that can no longer say anything else in time. The session
        keeps the turn, as for any fallback."""
        try:
            self.engine.new_reply(req, cancel, sink).begin(give_up=why)
        except Exception as exc:  # noqa: BLE001 - unknown NPC, a session it may not use: the sink answers it
            sink(exc)

    def step(self, someone_waits: bool = False) -> None:
        """One run of the graph: one token for every live row; then each reply whose fed ids all ran
        decides what comes next. Then up to `prefill_chunk` tokens of the prompts still being prefilled,
        the shortest first (a turn of tens of tokens does not wait behind a long cold prompt's chunks):
        whole prompts that fit, or a chunk of the first (with no reply live, a run of at most SOLO_RUN_MS
        unless one waits in the queue), unless that pause would make a live reply late. With no prompt
        waiting, a chunk of an NPC prefix a reply asked for (_run_asked_prefix)."""
        self._decode_step()
        self._drop_stopped()
        budget = self.prefill_chunk  # tokens the live rows pause for after this step
        for pending in sorted(self._prefills, key=lambda p: len(p.ids)):  # stable: the oldest of equals first
            if not self._rows:  # nobody is live: a run of it, which then joins if it was the last
                self._prefill(pending, min(self._solo_run(someone_waits), len(pending.ids)))
                return  # others wait for the next step: after a decode step, if it joined
            spent = self.prefill_chunk - budget
            if spent and len(pending.ids) > budget:
                return  # after the first, only prompts that end within the chunk: a split one costs a run more
            chunk = min(budget, len(pending.ids))  # priced as what runs: a short prompt is cheap
            if deadlines.pause_would_be_late(self.engine.cost, self._rows_slack_ms(), spent + chunk):
                return
            budget -= self._prefill(pending, chunk)
            if not self.share_chunk or budget <= 0:
                return
        self._run_asked_prefix()

    def _drop_stopped(self) -> None:
        """End the prompts being prefilled whose reply was cancelled, or whose rest and a minimal answer no
        longer fit its deadline; an NPC prefix one of them was running is left to the engine to finish."""
        chunk = self.prefill_chunk if self._rows else None
        for pending in list(self._prefills):
            rest_ms = deadlines.prefill_wall_ms(self.engine.cost, len(pending.ids), chunk)
            # an answer planned at once has its final channel's header in the rest: it is not forced again
            fits = pending.reply.clock.minimal_answer_fits(header_ran=pending.reply.header_with_prompt, before_ms=rest_ms)
            if pending.reply.cancel.is_set() or not fits:
                self._prefills.remove(pending)
                if pending.prefix_left:
                    pending.reply.prefix_stopped(pending.prefix_left)
                try:
                    pending.reply.stop_before_decode("cancelled" if pending.reply.cancel.is_set() else "deadline")
                except Exception as exc:  # noqa: BLE001 - like finish() in _continue: only this reply is affected
                    pending.reply.abandon(exc)

    def _run_asked_prefix(self) -> None:
        """A chunk of an NPC prefix that a reply needed and could not keep (it said its fallback line, or
        stopped half way, for want of it), between decode steps when no prompt waits, unless that pause would
        make a live reply late: on a server that is never idle the NPC would otherwise never get it."""
        if self._prefills or not self._rows or not self.engine.prefixes.asked():
            return
        if deadlines.pause_would_be_late(self.engine.cost, self._rows_slack_ms(), self.prefill_chunk):
            return
        self.engine.warm_next_prefix(self.prefill_chunk, asked_only=True)  # its own failures are logged there

    def _solo_run(self, someone_waits: bool) -> int:
        """The most prompt tokens one run takes with no reply live: a chunk while a reply waits in the
        queue, else a solo run's (solo_run_tokens)."""
        return self.prefill_chunk if someone_waits else solo_run_tokens(self.engine.cost, self.prefill_chunk)

    def _rows_slack_ms(self) -> float:
        return deadlines.batch_slack_ms(((row.reply.slack_ms(), len(row.feed)) for row in self._rows),
                                        self.engine.cost.decode_ms_per_token)

    def _prefill(self, pending: _Prefill, tokens: int) -> int:
        """Run the next `tokens` of a prompt on its reply's own cache; after the last, the reply decides
        what comes next (and joins the batch). A run stops where the NPC's prefix ends, if it has not run yet:
        the reply's cache then holds exactly the prefix, which the engine keeps for the NPC's next replies.
        Returns the tokens it ran."""
        if pending.prefix_left:
            tokens = min(tokens, pending.prefix_left)
        chunk, pending.ids = pending.ids[:tokens], pending.ids[tokens:]
        try:
            out = self.engine.run_model(np.array([chunk]), pending.reply.cache, prefill=True)
        except Exception as exc:  # noqa: BLE001 - the prefill failed: only this reply is affected
            if pending in self._prefills:
                self._prefills.remove(pending)
            pending.reply.abandon(exc)
            return len(chunk)
        if pending.prefix_left:
            pending.prefix_left -= len(chunk)
            if not pending.prefix_left:
                pending.reply.prefix_ran()
        if pending.ids:
            self.chunks_run += 1
            return len(chunk)
        if pending in self._prefills:
            self._prefills.remove(pending)
        self._continue(_Row(pending.reply), out, 0)
        return len(chunk)

    def _decode_step(self) -> None:
        if not self._rows:
            return
        waited_ms = self._run_ahead()
        if waited_ms is None:
            return
        rows = list(self._rows)  # as they are at this step
        if len(rows) == 1 and self.run_ahead:  # alone, a row runs all it was handed at once
            ids = np.array([rows[0].feed], dtype=np.int64)
            rows[0].feed = []
        else:
            ids = np.array([[row.feed.pop(0)] for row in rows], dtype=np.int64)
        try:
            # the rows waited for the tokens run ahead: the step as they saw it is what the cost model
            # learns, so deadline margins (decode_overrun_ms) cover such pauses
            out = self.engine.run_model(ids, self._pool, prefill=ids.shape[1] > 1, waited_ms=waited_ms)
        except Exception as exc:  # noqa: BLE001 - a failed run (device out of memory, a driver error)
            self.fail_all(exc)
            return
        self.steps_run += 1
        self.rows_stepped += len(rows)
        for index, row in enumerate(rows):
            if not row.feed:
                self._continue(row, out, index)

    def _run_ahead(self) -> float | None:
        """Tokens a reply appends without choosing them (the final channel's header when its reasoning is
        cut, up to 6; an action's acknowledgement) need no decode step each: all but the last run at once
        on the reply's own row, the last with the batch. A ping-pong cache (standard op set) must step
        every row together, so there they go one a step. Returns the milliseconds the other rows waited,
        or None when a run failed (the batch is then empty)."""
        if len(self._rows) == 1 or not self._pool.in_place or not self.run_ahead:
            return 0.0
        start = time.perf_counter()
        for index, row in enumerate(self._rows):
            if len(row.feed) < 2:
                continue
            ahead, row.feed = row.feed[:-1], row.feed[-1:]
            try:
                self.engine.run_model(np.array([ahead], dtype=np.int64), self._pool, prefill=True, first_row=index)
            except Exception as exc:  # noqa: BLE001 - as a failed decode step: the pool may hold garbage
                self.fail_all(exc)
                return None
        return (time.perf_counter() - start) * 1000

    def run_all(self) -> None:
        """Step until every live reply is done (for callers without a queue of their own)."""
        while len(self):
            self.step()

    def fail_all(self, exc: BaseException) -> None:
        """End every decoding reply with `exc` and start over with an empty pool: its rows may hold
        garbage after a failed run, so no conversation keeps KV that came through it. Prompts still
        being prefilled are in their own caches and go on."""
        if self._rows:
            log.error("a decode step failed; ending %d live replies", len(self._rows), exc_info=exc)
        rows, self._rows, self._pool = self._rows, [], None  # a fresh pool on the next join
        for row in rows:
            row.reply.abandon(exc)

    # ---- internals ------------------------------------------------------------------------------

    def _continue(self, row: _Row, out, index: int) -> None:
        """Ask the reply what to run next: join (or stay), or leave and finish."""
        reply = row.reply
        try:
            row.feed = reply.next_ids(out, index)
        except Exception as exc:  # noqa: BLE001 - one reply's failure must not end the others
            self._leave(row, copy_back=False)
            reply.abandon(exc)
            return
        if row.feed:
            if row not in self._rows:
                try:
                    self._join(row)
                except Exception as exc:  # noqa: BLE001 - no pool (device memory): only this reply is affected
                    reply.abandon(exc)
            return
        self._leave(row)
        try:
            reply.finish()
        except Exception as exc:  # noqa: BLE001
            reply.abandon(exc)

    def _join(self, row: _Row) -> None:
        if self.max_batch == 1:
            self._pool = row.reply.cache  # its own KV, in place
        else:
            if self._pool is None:
                self._pool = self.engine.new_pool(self.max_batch)
            self._pool.copy_rows_from(row.reply.cache, row.reply.kv_tokens, src_row=0, dst_row=len(self._rows))
        self._rows.append(row)

    def _leave(self, row: _Row, copy_back: bool = True) -> None:
        """Give the row back: its KV to the conversation, the last live row into the hole. A reply that
        never joined (it ended right after its prefill) has its KV in its own cache already."""
        if row not in self._rows:
            return
        if self.max_batch == 1:  # it decoded in its own cache: nothing to copy
            self._rows, self._pool = [], None
            return
        index = self._rows.index(row)
        if copy_back:
            row.reply.keep_kv(self._pool, index)
        last = self._rows.pop()
        if last is not row:
            self._pool.copy_rows_from(self._pool, int(self._pool.lengths[len(self._rows)]),
                                      src_row=len(self._rows), dst_row=index)
            self._rows[index] = last
        self._pool.lengths[len(self._rows)] = 0


def solo_run_tokens(cost: "CostModel", chunk: int) -> int:
    """The prompt tokens SOLO_RUN_MS holds by the cost model, at least `chunk` (all, for a free model)."""
    if cost.prefill_ms_per_token <= 0:
        return 1 << 30
    return max(chunk, int((SOLO_RUN_MS - cost.call_overhead_ms) / cost.prefill_ms_per_token))


def run_to_end(batch: DecodeBatch, requests: list[ReplyRequest], join_every: int = 0) -> dict[str, list]:
    """Drive a batch without a server (benchmarks, GPU checks, tests): start the requests in order, all at
    once or one every `join_every` steps while there is room, and step until every one has ended. Returns
    each request id's events, its ReplyResult (or exception) last."""
    events: dict[str, list] = {r.request_id: [] for r in requests}
    waiting = list(requests)
    while waiting or len(batch):
        if waiting and batch.has_room() and (join_every == 0 or batch.steps_run % join_every == 0):
            req = waiting.pop(0)
            batch.start(req, threading.Event(), events[req.request_id].append)
            continue
        batch.step()
    return events
