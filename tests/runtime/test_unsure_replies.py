"""Unsure replies (runtime/confidence.py): the lowest probability the hidden reasoning gave a token it chose,
checked against transformers, and an NPC whose reasoning fell below its min_confidence saying one of its
unsure lines instead of the answer, before a word of that answer reaches the game."""
from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import torch

from runtime.decode_batch import DecodeBatch
from runtime.engine import Engine, FinalDelta, ReplyRequest, ReplyResult
from runtime.npc import Npc
from runtime.sampler import GREEDY, SamplingParams
from tests.helpers.checkpoints import load_hf

# a random tiny model rarely opens its answer by itself: the reasoning is cut at 24 tokens and the engine
# opens the final channel, as it does for a reply out of time
BUDGET = dict(deadline_ms=1e9, max_reasoning_tokens=24, max_final_tokens=12)
LINES = ("Couldn't tell you, traveller.", "No idea.")
ASK = "How much for a sword?"


def npc(**kw) -> Npc:
    base = dict(id="brenna", name="Brenna", persona="The blacksmith of Ashford.",
                knowledge=("A sword costs 40 silver.",), fallback_lines=("Busy. Come back later.",),
                sampling=GREEDY, **BUDGET)
    return Npc(**{**base, **kw})


def ask(engine: Engine, **kw) -> ReplyRequest:
    """Greedy, and never a special token the model could end the reply with before it answers."""
    banned = {i: float("-inf") for i in engine.tok.special_ids}
    return ReplyRequest(npc="brenna", text=ASK, sampling=SamplingParams(temperature=0.0, top_k=0, top_p=1.0,
                                                                        logit_bias=banned), **kw)


def collect(engine: Engine, req: ReplyRequest):
    events = list(engine.reply(req))
    assert isinstance(events[-1], ReplyResult)
    return [e.text for e in events if isinstance(e, FinalDelta)], events[-1]


@pytest.fixture(scope="module")
def sure(tiny_model):
    """The reply with the check off, and the engine that gave it."""
    engine = Engine(tiny_model, {"brenna": npc()})
    return engine, collect(engine, ask(engine, session_id="sure"))[1]


def test_confidence_is_the_lowest_probability_among_the_reasoning_tokens_it_chose(sure, tiny_checkpoint):
    engine, result = sure
    st = result.stats
    assert st.reasoning_cut and st.reasoning_tokens == 24  # sampled; the engine's own tokens come after them
    prompt = engine.store.get("brenna", "sure").tokens[: st.prompt_tokens]
    with torch.no_grad():
        logits = load_hf(tiny_checkpoint)(torch.tensor([prompt + list(result.tokens)])).logits[0].double()
    rows = logits[len(prompt) - 1: len(prompt) - 1 + st.reasoning_tokens]  # what chose each reasoning token
    chosen = torch.tensor(result.tokens[: st.reasoning_tokens])[:, None]
    own = rows.gather(1, chosen)[:, 0]
    # the runtime's figure comes from the graph's 64 candidates, so over those; it can only overstate the
    # probability over the whole vocabulary
    over_candidates = (own - torch.logsumexp(rows.topk(64).values, -1)).exp().min().item()
    over_vocabulary = (own - torch.logsumexp(rows, -1)).exp().min().item()
    assert st.confidence == pytest.approx(over_candidates, abs=2e-4)
    assert over_vocabulary - 2e-4 <= st.confidence < 1


def test_below_its_floor_the_npc_says_an_unsure_line_and_never_the_answer(tiny_model, sure):
    _, reference = sure
    floor = reference.stats.confidence + 1e-3
    engine = Engine(tiny_model, {"brenna": npc(min_confidence=floor, unsure_lines=LINES)})
    deltas, result = collect(engine, ask(engine, session_id="unsure"))
    st = result.stats
    assert len(deltas) == 1 and deltas[0] == result.text and result.text in LINES
    assert st.finish_reason == "unsure" and st.final_tokens == 0 and not st.fallback_used
    assert st.confidence == reference.stats.confidence
    assert result.reasoning == reference.reasoning  # the same hidden reasoning, for the designers' logs
    # the session remembers what the NPC said, so a follow-up sees the unsure line
    assert engine.store.get("brenna", "unsure").history[-1].reply == result.text
    # at exactly the floor it is sure enough: the reply is the unchecked one
    at_floor = Engine(tiny_model, {"brenna": npc(min_confidence=reference.stats.confidence, unsure_lines=LINES)})
    _, kept = collect(at_floor, ask(at_floor))
    assert kept.tokens == reference.tokens and kept.text == reference.text and kept.stats.finish_reason != "unsure"


def test_without_unsure_lines_a_fallback_line_is_said_and_flagged(tiny_model, sure):
    _, reference = sure
    engine = Engine(tiny_model, {"brenna": npc(min_confidence=reference.stats.confidence + 1e-3)})
    deltas, result = collect(engine, ask(engine))
    assert deltas == ["Busy. Come back later."] and result.stats.fallback_used
    assert result.stats.finish_reason == "unsure"


def test_a_batched_reply_is_judged_as_one_alone(tiny_model, sure):
    """The decode batch feeds the same check: an unsure row leaves the pool with its unsure line while
    the others go on, token for token as they run alone."""
    _, reference = sure
    npcs = {"brenna": npc(min_confidence=reference.stats.confidence + 1e-3, unsure_lines=LINES),
            "tomas": npc(id="tomas", name="Tomas")}
    engine = Engine(tiny_model, npcs)
    asks = [ask(engine, request_id="b"), replace(ask(engine, request_id="t"), npc="tomas"),
            replace(ask(engine, request_id="n"), npc="tomas", text="Any news?")]
    alone = {r.request_id: collect(engine, r)[1] for r in asks}
    batch, events = DecodeBatch(engine, max_batch=3), {r.request_id: [] for r in asks}
    for r in asks:
        batch.start(r, threading.Event(), events[r.request_id].append)
    while len(batch):
        batch.step()
    got = {rid: evs[-1] for rid, evs in events.items()}
    assert got["b"].stats.finish_reason == alone["b"].stats.finish_reason == "unsure" and got["b"].text in LINES
    for rid in ("t", "n"):
        assert got[rid].tokens == alone[rid].tokens and got[rid].stats.finish_reason != "unsure"
