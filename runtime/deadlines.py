"""Every decision a deadline drives, in one place: how much a reply may reason, when it must answer,
when it gives up for its fallback line, whether a queued reply may still start, and whether starting
one now would make a live reply late.

The arithmetic of a reply (see docs/design.md):

    deadline = prefill(new prompt tokens) + reasoning + forcing the final channel + the answer + margin

Every step of a reply, whether it runs alone or beside others, is one row of a decode-batch step. The
tokens that force the final channel are counted as a step each: an upper bound, since the batch runs them
ahead in one run (runtime/decode_batch.py), and that run's pause is counted into the next step's observed
cost, so the margin (decode_overrun_ms) covers it for the other rows.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # the wire edge reads this module's limits without the engine's modules
    from runtime.cost_model import CostModel

# Below this not even a fallback line gets through the queue, the engine and the socket in time, so
# such a deadline is refused as impossible at once (protocol.py) instead of answered late.
MIN_DEADLINE_MS = 5
MIN_FINAL_TOKENS = 4  # an answer shorter than this is not worth starting
FINISH_MARGIN_MS = 2.0  # time to wrap a reply up after its last step: leaving the batch, the result
# The last frame's way to the game: the worker hands it to the main thread, which sends it. Measured
# 1-5 ms late on the game's clock with 8 players at once before this margin existed.
TRANSPORT_MARGIN_MS = 6.0
# A joining reply's prompt is one new turn after a cached prefix: this many tokens besides its text.
JOIN_PAUSE_TOKENS = 64


@dataclass(frozen=True)
class Plan:
    reasoning_tokens: int
    fallback: bool
    reason: str


def due_at(received_at: float, deadline_ms: float) -> float:
    """When a request's deadline passes, in time.perf_counter() seconds."""
    return received_at + deadline_ms / 1000


def met(elapsed_ms: float, deadline_ms: float) -> bool:
    return elapsed_ms <= deadline_ms


def finish_margin_ms(cost: "CostModel") -> float:
    """Time kept in hand before the deadline: a step can run longer than the average (other rows, the
    machine), ending a reply takes a moment, and its last frame must still reach the game."""
    return FINISH_MARGIN_MS + TRANSPORT_MARGIN_MS + max(0.5 * cost.decode_ms_per_token, cost.decode_overrun_ms)


def answer_cost_ms(cost: "CostModel", force_tokens: int, final_tokens: int) -> float:
    """Forcing the final channel (at most a step per token), then the answer."""
    return cost.decode_ms(force_tokens + final_tokens)


def prefill_wall_ms(cost: "CostModel", tokens: int, chunk: int | None = None) -> float:
    """How long `tokens` of a prompt take to run: at once, or, `chunk` at a time between the decode steps of
    live replies (runtime/decode_batch.py), with a step (and a run's fixed cost) after each chunk but the last."""
    if tokens <= 0:
        return 0.0
    between = -(-tokens // chunk) - 1 if chunk else 0
    return cost.prefill_ms(tokens) + between * (cost.call_overhead_ms + cost.decode_ms_per_token)


def plan(cost: "CostModel", remaining_ms: float, new_tokens: int, force_tokens: int,
         expected_final_tokens: int, max_reasoning_tokens: int, chunk: int | None = None) -> Plan:
    """How many reasoning tokens fit in `remaining_ms`, or the fallback when not even a minimal answer does;
    `chunk`: the prompt runs that many tokens at a time between live replies' decode steps."""
    prefill = prefill_wall_ms(cost, new_tokens, chunk)
    left = remaining_ms - prefill - finish_margin_ms(cost)
    if left < answer_cost_ms(cost, force_tokens, MIN_FINAL_TOKENS):
        # answering at once, the final channel's header runs with the prompt (runtime/reply.py), at a prompt's price
        header = prefill_wall_ms(cost, new_tokens + force_tokens, chunk) - prefill
        if left - header >= answer_cost_ms(cost, 0, MIN_FINAL_TOKENS):
            return Plan(0, False, "no reasoning fits: the answer at once, its header run with the prompt")
        return Plan(0, True, f"{remaining_ms:.0f} ms left cannot cover the prompt ({prefill:.0f} ms) and a "
                             "minimal answer")
    spare = left - answer_cost_ms(cost, force_tokens, expected_final_tokens)
    reasoning = min(int(max(spare, 0.0) // max(cost.decode_ms_per_token, 1e-6)), max_reasoning_tokens)
    return Plan(reasoning, False, f"{reasoning} reasoning tokens fit")


class ReplyClock:
    """One reply's deadline as its decode loop consults it before every step."""

    def __init__(self, cost: "CostModel", deadline_ms: float, started_at: float, force_tokens: int,
                 expected_final_tokens: int):
        self.cost, self.deadline_ms, self.started_at = cost, deadline_ms, started_at
        self.force_tokens, self.expected_final_tokens = force_tokens, expected_final_tokens

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started_at) * 1000

    def slack_ms(self) -> float:
        return self.deadline_ms - self.elapsed_ms()

    def _would_end_by(self, ms: float) -> bool:
        return self.elapsed_ms() + ms + finish_margin_ms(self.cost) <= self.deadline_ms

    def another_final_step_fits(self) -> bool:
        """In the final channel: one more token still ends in time."""
        return self._would_end_by(self.cost.decode_ms_per_token)

    def minimal_answer_fits(self, header_ran: bool = False, before_ms: float = 0.0) -> bool:
        """Forcing the final channel (unless its header already ran, with the prompt) and a minimal answer,
        after `before_ms` of work still ahead of them (the rest of its prompt), would end in time. When not
        (the steps ran slower than planned), stop now and send the fallback line in time, rather than force
        an answer that cannot finish."""
        force = 0 if header_ran else self.force_tokens
        return self._would_end_by(before_ms + answer_cost_ms(self.cost, force, MIN_FINAL_TOKENS))

    def must_answer_now(self) -> bool:
        """Still reasoning: one more reasoning step would leave too little for the expected answer."""
        cost = self.cost
        return not self._would_end_by(answer_cost_ms(cost, self.force_tokens, self.expected_final_tokens)
                                      + cost.decode_ms_per_token)


def expired_in_queue(received_at: float, deadline_ms: float, now: float | None = None) -> float | None:
    """How long a queued reply waited, if its deadline ran out meanwhile (not even the fallback line
    would make it now); None if it may still start. Only the wrap-up margin counts here: a reply that
    starts late ends with its fallback line at once, with no decode step to keep time for."""
    waited = ((time.perf_counter() if now is None else now) - received_at) * 1000
    return waited if waited + FINISH_MARGIN_MS >= deadline_ms else None


def answer_from_queue_now(cost: "CostModel", remaining_ms: float, text_chars: int, pause_tokens: int,
                          prefix_tokens: int = 0, chunk: int | None = None) -> bool:
    """Whether a reply still waiting in the queue (the batch full, or its conversation busy) must be
    answered now: by the time the worker looks at the queue again (after a decode step and up to
    `pause_tokens` of prompts, a chunk at most while replies wait) it could no longer start and say a
    minimal answer by its deadline, so all it can still say is its fallback line, and said now that line
    arrives in time. Left queued, it would leave late, whenever a place in the batch freed. `prefix_tokens`:
    its NPC's prefix, when its KV is not kept (its prompt runs it first); `chunk`: with replies live, its
    prompt would run that many tokens at a time between their decode steps."""
    tokens = JOIN_PAUSE_TOKENS + text_chars // 2 + prefix_tokens  # as join_would_be_late counts a turn: errs long
    next_look = 2 * cost.decode_ms_per_token + cost.decode_overrun_ms + (cost.prefill_ms(pause_tokens) if pause_tokens else 0.0)
    minimal = prefill_wall_ms(cost, tokens, chunk) + answer_cost_ms(cost, 0, MIN_FINAL_TOKENS)
    return remaining_ms - next_look - finish_margin_ms(cost) < minimal


def batch_slack_ms(rows: Iterable[tuple[float, int]], step_ms: float) -> float:
    """The least time any live reply could give up before its deadline (inf when none), from each row's
    (slack, tokens it must still be fed): a reply can stop at any step, except while it is fed tokens
    it must take (the final channel it was forced into), counted as a step each (at most what they cost)."""
    return min((slack - feed * step_ms for slack, feed in rows), default=float("inf"))


def join_would_be_late(cost: "CostModel", live_rows: int, min_slack_ms: float, text_chars: int,
                       prefill_chunk: int | None = None, prefix_tokens: int = 0) -> bool:
    """A reply's prompt runs between two decode steps and holds every live row meanwhile (a chunk of it
    at a time, when the batch prefills in chunks; its NPC's prefix, `prefix_tokens` when its KV is not
    kept, is part of it): don't start one when a live reply's deadline is closer than that pause and two
    more steps (the live reply ends by its deadline, so the new one waits at most that long)."""
    if not live_rows:
        return False
    # the new turn's tokens: a template's worth plus the text (about 3 characters a token; counted as 2,
    # so the pause errs long)
    tokens = JOIN_PAUSE_TOKENS + text_chars // 2 + prefix_tokens
    return pause_would_be_late(cost, min_slack_ms, min(tokens, prefill_chunk) if prefill_chunk else tokens)


def pause_would_be_late(cost: "CostModel", min_slack_ms: float, prompt_tokens: int) -> bool:
    """Whether running `prompt_tokens` of someone's prompt now, and two more decode steps, would take longer
    than the live reply closest to its deadline can give up."""
    return min_slack_ms < cost.prefill_ms(prompt_tokens) + 2 * cost.decode_ms_per_token
