"""A cancel that lands as a reply ends: the reply ends `cancelled` if the cancel was taken, or the cancel is
told it came too late; never both `found` and `done` (an outside client was told found, then got done)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from runtime.cancel_flag import CancelFlag
from runtime.decode_batch import DecodeBatch
from runtime.engine import Engine, FinalDelta, ReplyRequest, ReplyResult
from runtime.profiles import parse_profile
from runtime.sampler import GREEDY

ROOT = Path(__file__).resolve().parents[2]


def test_a_cancel_that_arrives_with_the_last_sentence_ends_the_reply_cancelled_and_makes_no_session(demo_model):
    # the demo model answers a greeting in one sentence, sent as the reply ends: the sink asks to cancel
    # at that delta, after the reply's last look at the flag and before its result
    engine = Engine(demo_model, {"brenna": replace(parse_profile(ROOT / "npc_profiles" / "brenna.toml"),
                                                   sampling=GREEDY, min_confidence=0.0)})
    flag, events, taken = CancelFlag(), [], []

    def sink(event):
        events.append(event)
        if isinstance(event, FinalDelta) and not taken:
            taken.append(flag.request())
    batch = DecodeBatch(engine, max_batch=1)
    batch.start(ReplyRequest(npc="brenna", text="Hello there.", session_id="greeted", sampling=GREEDY,
                             deadline_ms=60_000, request_id="r"), flag, sink)
    while len(batch):
        batch.step()
    result = events[-1]
    assert isinstance(result, ReplyResult) and sum(isinstance(e, FinalDelta) for e in events) == 1
    assert taken == [True] and result.stats.finish_reason == "cancelled"
    assert engine.store.get("brenna", "greeted") is None  # a cancelled reply makes no session


def test_a_flag_closed_by_the_reply_refuses_a_later_cancel_and_one_set_first_refuses_the_close():
    ended, cancelled = CancelFlag(), CancelFlag()
    assert ended.close() and not ended.request() and not ended.is_set()
    assert cancelled.request() and not cancelled.close()
