"""A reply never writes past the context it was admitted to, whatever the model does.

The model here is scripted (tests/helpers/checkpoints.make_scripted_checkpoint): it reasons with "a"
forever and answers every final channel with an empty message, then keeps going, which is what a
fine-tune gone wrong does. Exported with a 256-token context, so the budgets matter.
"""
from __future__ import annotations

import threading

import pytest

from runtime import harmony
from runtime.context_fit import npc_prefix, reply_reserve
from runtime.decode_batch import DecodeBatch
from runtime.engine import Engine, PromptTooLong, ReplyRequest, ReplyResult, user_content
from runtime.npc import Npc
from runtime.sampler import GREEDY
from tests.helpers.checkpoints import make_scripted_checkpoint

CONTEXT = 256


@pytest.fixture(scope="module")
def runaway_model(tmp_path_factory):
    from export.exporter import ExportOptions, export_model

    ckpt = make_scripted_checkpoint(tmp_path_factory.mktemp("runaway-ckpt"),
                                    {"assistant": "a", "a": "a", "<|message|>": "<|end|>", "<|end|>": "a"})
    out = tmp_path_factory.mktemp("runaway") / "model"
    export_model(ckpt, out, ExportOptions(max_context=CONTEXT))
    return out


def npc_with_room(engine: Engine, spare: int) -> Npc:
    """An NPC whose prompt plus budgets leave `spare` rows of the context (negative: over it)."""
    base = Npc(id="n", name="N", persona="Talks.", fallback_lines=("...",), sampling=GREEDY, deadline_ms=60_000,
               max_reasoning_tokens=1, max_final_tokens=1, expected_final_tokens=1)
    tok = engine.tok
    prompt = (len(npc_prefix(tok, base)) + len(harmony.message(tok, "user", user_content(ReplyRequest("n", "hi"), "hi")))
              + len(harmony.assistant_open(tok)))
    budget = CONTEXT - prompt - reply_reserve(base, engine.fit.force_len) + 2 - spare
    reasoning = budget // 2
    return Npc(**{**base.__dict__, "max_reasoning_tokens": reasoning, "max_final_tokens": budget - reasoning,
                  "expected_final_tokens": 1})


def test_budgets_that_could_overrun_the_context_are_refused_at_admission(runaway_model):
    engine = Engine(runaway_model, {})
    npc = npc_with_room(engine, spare=-40)  # within what admission used to reserve, past what decode can use
    engine.set_npcs({"n": npc})
    assert engine.fit.problem(npc) is not None  # lint and reload refuse such a profile too
    with pytest.raises(PromptTooLong, match="exceed the model's context"):
        list(engine.reply(ReplyRequest("n", "hi")))


def test_a_runaway_reply_ends_at_its_reserve_alone_and_in_a_batch(runaway_model):
    engine = Engine(runaway_model, {})
    engine.set_npcs({"n": npc_with_room(engine, spare=0)})
    alone = list(engine.reply(ReplyRequest("n", "hi", session_id="alone")))[-1]
    assert isinstance(alone, ReplyResult) and alone.stats.finish_reason == "length"
    assert alone.stats.prompt_tokens + len(alone.tokens) <= CONTEXT

    batch, results = DecodeBatch(engine, max_batch=4), []
    for i in range(3):
        batch.start(ReplyRequest("n", "hi", session_id=f"b{i}"), threading.Event(), results.append)
    batch.run_all()
    finals = [r for r in results if isinstance(r, ReplyResult)]
    assert len(finals) == 3 and not [r for r in results if isinstance(r, BaseException)]
    for r in finals:
        assert r.stats.finish_reason == "length" and r.stats.prompt_tokens + len(r.tokens) <= CONTEXT
