"""Continuous batching: the decode steps of many replies run as one batched run of the graph.

A reply starts on its own: rendered and prefilled on its conversation's cache (one row). Then it
joins the batch: its KV is copied into a free row of a pool cache, and from there every step of the
graph appends one token to every live row (GroupQueryAttention takes each row's own length). Tokens
the engine injects (closing the reasoning, acknowledging an action) are fed one per step, so every
row always takes exactly one token. When a reply is done its row goes back to its conversation's
cache (so the next turn reuses it) and the last row moves into the hole: live rows stay 0..k-1, a
contiguous block the graph runs on.

Single-threaded by design: the server's worker owns it; the engine's lock is held per call.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator

import numpy as np

from runtime.engine import Engine, ReplyRequest, ReplyResult, Release, Step
from runtime.session import KvCache

log = logging.getLogger(__name__)

# What a reply reports to whoever asked for it: FinalDelta, NpcAction, ReplyResult, or the exception
# that ended it.
Sink = Callable[[Any], None]


@dataclass(eq=False)
class _Live:
    reply: Any  # engine._Reply
    steps: Generator
    sink: Sink
    row: int | None = None  # pool row while in the batch
    feed: list[int] = field(default_factory=list)  # tokens still to append before the reply's Step is answered
    done: bool = False


class DecodeBatch:
    def __init__(self, engine: Engine, max_batch: int = 8):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.engine, self.max_batch = engine, max_batch
        self._pool: KvCache | None = None  # allocated on first use: max_batch rows of the full context
        self._rows: list[_Live] = []  # index == pool row
        self.steps_run = 0
        self.rows_stepped = 0  # sum of batch sizes, for the mean batch size in stats

    # ---- the driver's API ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def has_room(self) -> bool:
        return len(self._rows) < self.max_batch

    def min_slack_ms(self) -> float:
        """The least time any live reply could give up before its deadline (inf when none): a reply
        can stop at any step, except while it is being fed tokens it must take (the final channel
        it was forced into), which cost a step each."""
        step = self.engine.cost.decode_ms_per_token
        return min((live.reply.slack_ms() - len(live.feed) * step for live in self._rows), default=float("inf"))

    def busy_with(self, npc: str, session_id: str | None) -> bool:
        """True while a live reply uses this conversation (replies of one session run in order)."""
        return session_id is not None and any(
            live.reply.req.npc == npc and live.reply.req.session_id == session_id for live in self._rows)

    def start(self, req: ReplyRequest, cancel: threading.Event, sink: Sink) -> None:
        """Render and prefill the reply now; it joins the batch for its decode steps.

        A reply that ends without decoding (fallback, an error) is reported to `sink` right away.
        """
        if not self.has_room():
            raise RuntimeError("the decode batch is full; check has_room() first")
        with self.engine.lock:
            try:
                reply = self.engine.new_reply(req, cancel)
            except Exception as exc:  # noqa: BLE001 - unknown NPC, bad request: the sink answers it
                sink(exc)
                return
            live = _Live(reply, reply.run(), sink)
            self._advance(live, None)

    def step(self) -> None:
        """One run of the graph: one token for every live reply; then each reply continues."""
        if not self._rows:
            return
        e = self.engine
        with e.lock:
            batch = list(self._rows)  # rows as they are at this step
            ids = np.array([[live.feed.pop(0)] for live in batch], dtype=np.int64)
            start = time.monotonic()
            try:
                out = e.session.step(ids, self._pool)
            except Exception as exc:  # noqa: BLE001 - a failed run (device out of memory, a driver error)
                self.fail_all(exc)
                return
            e.cost.observe_decode((time.monotonic() - start) * 1000)
            self.steps_run += 1
            self.rows_stepped += len(batch)
            for row, live in enumerate(batch):
                if not live.feed and not live.done:
                    self._advance(live, (out, row))

    def fail_all(self, exc: BaseException) -> None:
        """End every live reply with `exc` and start over with an empty batch: the pool's rows may hold
        garbage after a failed run, so no conversation keeps KV that came through it."""
        log.error("a decode step failed; ending %d live replies", len(self._rows), exc_info=exc)
        rows, self._rows, self._pool = self._rows, [], None  # a fresh pool on the next join
        for live in rows:
            live.done = True
            live.row = None
            live.reply.conv.cache, live.reply.conv.tokens = None, []
            live.steps.close()
            live.sink(exc)

    def run_all(self) -> None:
        """Step until every live reply is done (for callers without a queue of their own)."""
        while self._rows:
            self.step()

    # ---- internals ------------------------------------------------------------------------------

    def _advance(self, live: _Live, answer) -> None:
        """Run one reply's code until it needs the model again, passing its events to its sink."""
        try:
            while True:
                event = live.steps.send(answer)
                answer = None
                if isinstance(event, Step):
                    if live.row is None:
                        self._join(live)
                    live.feed = list(event.ids)
                    return
                if isinstance(event, Release):
                    self._leave(live)
                else:
                    live.sink(event)
                    if isinstance(event, ReplyResult):
                        live.done = True
        except StopIteration:
            live.done = True
        except Exception as exc:  # noqa: BLE001 - one reply's failure must not end the others
            live.done = True
            self._leave(live, copy_back=False)
            live.sink(exc)

    def _join(self, live: _Live) -> None:
        conv = live.reply.conv
        if self._pool is None:
            self._pool = self.engine.session.new_cache(batch=self.max_batch)
        row = len(self._rows)
        self._pool.copy_rows_from(conv.cache, len(live.reply.tokens), src_row=0, dst_row=row)
        live.row = row
        self._rows.append(live)

    def _leave(self, live: _Live, copy_back: bool = True) -> None:
        """Give the row back: its KV to the conversation, the last live row into the hole."""
        row = live.row
        if row is None:
            return
        conv, n = live.reply.conv, len(live.reply.tokens)
        if copy_back:
            if conv.cache is None or conv.cache.length < n:
                conv.cache = self.engine.cache_for(n)
            conv.cache.copy_rows_from(self._pool, n, src_row=row, dst_row=0)
        last = self._rows.pop()
        if last is not live:
            self._pool.copy_rows_from(self._pool, int(self._pool.lengths[last.row]), src_row=last.row, dst_row=row)
            last.row = row
            self._rows[row] = last
        self._pool.lengths[len(self._rows)] = 0
        live.row = None
