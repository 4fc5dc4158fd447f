"""Unsure replies (runtime/confidence.py), on the shipped demo model (it reasons in its analysis channel and
answers by itself): the lowest probability it gave a token of its analysis, checked against transformers,
and an NPC whose reasoning fell below its min_confidence saying one of its unsure lines instead of the
answer, before a word of that answer reaches the game."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from runtime import harmony
from runtime.decode_batch import DecodeBatch, run_to_end
from runtime.engine import Engine, FinalDelta, ReplyRequest, ReplyResult
from runtime.profiles import parse_profile
from runtime.sampler import GREEDY
from tests.helpers.checkpoints import load_hf

ROOT = Path(__file__).resolve().parents[2]
LINES = ("Couldn't tell you, traveller.", "No idea.")
ASK = "What does a steel sword cost?"


def brenna(**kw):
    """The shipped Brenna, greedy, unsure replies off unless asked."""
    return replace(parse_profile(ROOT / "npc_profiles" / "brenna.toml"),
                   **{"sampling": GREEDY, "min_confidence": 0.0, "unsure_lines": (), **kw})


def collect(engine: Engine, req: ReplyRequest):
    events = list(engine.reply(req))
    assert isinstance(events[-1], ReplyResult)
    return [e.text for e in events if isinstance(e, FinalDelta)], events[-1]


def ask(**kw) -> ReplyRequest:
    return ReplyRequest(npc="brenna", text=ASK, deadline_ms=60_000, **kw)


@pytest.fixture(scope="module")
def sure(demo_model):
    """The reply with the check off, and the engine that gave it."""
    engine = Engine(demo_model, {"brenna": brenna()})
    return engine, collect(engine, ask(session_id="sure"))[1]


def test_confidence_is_the_lowest_probability_among_the_analysis_tokens_it_chose(sure):
    engine, result = sure
    st = result.stats
    assert not st.reasoning_cut and st.final_tokens > 0  # the model reasoned and answered by itself
    prompt = engine.store.get("brenna", "sure").tokens[: st.prompt_tokens]
    # which generated tokens were written inside the analysis message, as the reply's own parser saw them
    parser, analysis = harmony.HarmonyParser(engine.tok, in_header=True), []
    for i, token in enumerate(result.tokens):
        if parser.channel == harmony.ANALYSIS:
            analysis.append(i)
        parser.feed(token)
    assert len(analysis) > 3
    with torch.no_grad():
        model = load_hf(ROOT / "tools" / "demo" / "checkpoint")
        logits = model(torch.tensor([prompt + list(result.tokens)])).logits[0].double()
    rows = logits[[len(prompt) - 1 + i for i in analysis]]  # what chose each analysis token
    chosen = torch.tensor([result.tokens[i] for i in analysis])[:, None]
    own = rows.gather(1, chosen)[:, 0]
    # the runtime's figure comes from the graph's 64 candidates, so over those; it can only overstate the
    # probability over the whole vocabulary
    over_candidates = (own - torch.logsumexp(rows.topk(64).values, -1)).exp().min().item()
    over_vocabulary = (own - torch.logsumexp(rows, -1)).exp().min().item()
    assert st.confidence == pytest.approx(over_candidates, abs=2e-4)
    assert over_vocabulary - 2e-4 <= st.confidence < 1


def test_below_its_floor_the_npc_says_an_unsure_line_and_never_the_answer(demo_model, sure):
    _, reference = sure
    floor = reference.stats.confidence + 1e-3
    engine = Engine(demo_model, {"brenna": brenna(min_confidence=floor, unsure_lines=LINES)})
    deltas, result = collect(engine, ask(session_id="unsure"))
    st = result.stats
    assert deltas == [result.text] == [LINES[0]]  # greedy: the first line, every time
    assert st.finish_reason == "unsure" and st.final_tokens == 0 and not st.fallback_used
    assert st.confidence == reference.stats.confidence and st.ttft_ms is not None
    assert result.reasoning == reference.reasoning  # the same hidden reasoning, for the designers' logs
    # the session remembers what the NPC said, so a follow-up sees the unsure line
    assert engine.store.get("brenna", "unsure").history[-1].reply == result.text
    # at exactly the floor it is sure enough: the reply is the unchecked one
    at_floor = Engine(demo_model, {"brenna": brenna(min_confidence=reference.stats.confidence, unsure_lines=LINES)})
    _, kept = collect(at_floor, ask())
    assert kept.tokens == reference.tokens and kept.text == reference.text and kept.stats.finish_reason != "unsure"


def test_without_unsure_lines_a_fallback_line_is_said_and_flagged(demo_model, sure):
    _, reference = sure
    engine = Engine(demo_model, {"brenna": brenna(min_confidence=reference.stats.confidence + 1e-3)})
    deltas, result = collect(engine, ask())
    assert deltas == [engine.npcs["brenna"].fallback_lines[0]] and result.stats.fallback_used
    assert result.stats.finish_reason == "unsure"


def test_a_reply_with_no_reasoning_to_judge_is_unsure(demo_model):
    """A deadline that leaves no time to reason (here: no reasoning allowed) gives nothing to judge."""
    engine = Engine(demo_model, {"brenna": brenna(max_reasoning_tokens=0, min_confidence=0.5, unsure_lines=LINES)})
    deltas, result = collect(engine, ask())
    assert result.stats.confidence is None and result.stats.finish_reason == "unsure" and deltas == [result.text]
    engine = Engine(demo_model, {"brenna": brenna(max_reasoning_tokens=0)})
    _, answered = collect(engine, ask())
    assert answered.stats.confidence is None and answered.stats.final_tokens > 0  # off: it answers


def test_a_batched_reply_is_judged_as_one_alone(demo_model, sure):
    """The decode batch feeds the same check: an unsure row leaves the pool with its unsure line while
    the others go on, token for token as they run alone."""
    _, reference = sure
    npcs = {"brenna": brenna(min_confidence=reference.stats.confidence + 1e-3, unsure_lines=LINES),
            "tomas": replace(brenna(), id="tomas")}
    engine = Engine(demo_model, npcs)
    asks = [ask(request_id="b"), replace(ask(request_id="t"), npc="tomas"),
            replace(ask(request_id="n"), npc="tomas", text="Any news?")]
    alone = {r.request_id: collect(engine, r)[1] for r in asks}
    got = {rid: evs[-1] for rid, evs in run_to_end(DecodeBatch(engine, max_batch=3), asks).items()}
    assert got["b"].stats.finish_reason == alone["b"].stats.finish_reason == "unsure" and got["b"].text == LINES[0]
    for rid in ("t", "n"):
        assert got[rid].tokens == alone[rid].tokens and got[rid].stats.finish_reason != "unsure"


def test_profile_lines_reach_the_game_as_any_reply_text_does(demo_model, sure):
    """From a review of docs/protocol.md against the code: unsure and fallback lines went out as written, control
    characters and surrounding whitespace included, and a fallback line after a reply stopped early left
    ttft_ms null although the line was the first final text the game got. (Profiles refuse such lines; an Npc
    made in code is not checked.)"""
    _, reference = sure
    engine = Engine(demo_model, {"brenna": brenna(min_confidence=reference.stats.confidence + 1e-3,
                                                  unsure_lines=(" \tCouldn't\x07 tell you.\r\n",))})
    deltas, result = collect(engine, ask())
    assert deltas == [result.text] == ["Couldn't tell you."] and result.stats.finish_reason == "unsure"
    engine = Engine(demo_model, {"brenna": brenna(max_final_tokens=1, fallback_lines=("Hm.\x00 \x1b",))})
    deltas, result = collect(engine, ask())  # one token of answer finishes no sentence: the fallback line
    assert result.stats.finish_reason == "length" and result.stats.fallback_used
    assert deltas == [result.text] == ["Hm."]
    assert result.stats.ttft_ms is not None and result.stats.ttft_ms <= result.stats.total_ms
