"""Continuous batching: replies decoded together in one graph run equal the same replies run alone."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

import torch

from runtime import deadlines, harmony
from runtime.cost_model import CostModel
from runtime.decode_batch import DecodeBatch, run_to_end
from runtime.engine import Engine, FinalDelta, ReplyRequest, ReplyResult, UnknownNpc
from runtime.npc import Npc
from runtime.sampler import GREEDY, SamplingParams
from tests.helpers.checkpoints import load_hf
from tests.helpers.prefix_kv import kept_prefix_error

BUDGETS = dict(deadline_ms=1e9, max_reasoning_tokens=60, max_final_tokens=40)
QUESTIONS = ["How much for a sword?", "Hi", "Tell me everything you know about the wolves on the north road, please.",
             "Any rumours?", "What's your name?", "Goodbye!", "Is the forge open late?", "Shield price?"]


def npcs() -> dict[str, Npc]:
    base = dict(persona="The blacksmith of Ashford.", knowledge=("A sword costs 40 silver.",),
                fallback_lines=("Busy.",), sampling=GREEDY, **BUDGETS)
    return {"brenna": Npc(id="brenna", name="Brenna", **base),
            "tomas": Npc(id="tomas", name="Tomas", reasoning_effort="high", **base)}


def requests(engine: Engine) -> list[ReplyRequest]:
    """Different NPCs, prompt lengths and reply lengths, so rows join and leave at different steps;
    one never ends its reasoning by itself (the engine injects the final channel, run ahead on the
    reply's row), one samples with a seed."""
    no_specials = {i: float("-inf") for i in engine.tok.special_ids}
    out = [ReplyRequest(npc="brenna" if i % 2 else "tomas", text=q, session_id=f"s{i}", request_id=f"r{i}")
           for i, q in enumerate(QUESTIONS)]
    out[2] = ReplyRequest(npc="brenna", text=QUESTIONS[2], session_id="s2", request_id="r2",
                          sampling=SamplingParams(temperature=0.0, top_k=0, top_p=1.0, logit_bias=no_specials))
    out[5] = ReplyRequest(npc="tomas", text=QUESTIONS[5], session_id="s5", request_id="r5",
                          sampling=SamplingParams(temperature=0.9, top_k=40, top_p=0.95, seed=7))
    return out


def alone(engine: Engine, req: ReplyRequest) -> tuple[str, ReplyResult]:
    events = list(engine.reply(req))
    return "".join(e.text for e in events if isinstance(e, FinalDelta)), events[-1]


def batched(batch: DecodeBatch, reqs: list[ReplyRequest], join_every: int = 0):
    """Start the requests (all at once, or one every `join_every` steps) and run them to the end."""
    events = run_to_end(batch, reqs, join_every)
    return {rid: ("".join(e.text for e in evs if isinstance(e, FinalDelta)), evs[-1]) for rid, evs in events.items()}


@pytest.fixture(scope="module")
def single(tiny_model):
    engine = Engine(tiny_model, npcs())
    return engine, {r.request_id: alone(engine, r) for r in requests(engine)}


@pytest.mark.parametrize("max_batch,join_every,chunk", [(8, 0, 128), (3, 0, 128), (4, 5, 128), (4, 3, 7)])
def test_batched_replies_equal_unbatched_ones(tiny_model, single, max_batch, join_every, chunk):
    """Also with prompts prefilled 7 tokens at a time between the live replies' decode steps."""
    _, expected = single
    engine = Engine(tiny_model, npcs())
    batch = DecodeBatch(engine, max_batch=max_batch, prefill_chunk=chunk)
    got = batched(batch, requests(engine), join_every)
    for rid, (text, result) in expected.items():
        btext, bresult = got[rid]
        assert isinstance(bresult, ReplyResult)
        assert bresult.tokens == result.tokens, rid
        assert (btext, bresult.text) == (text, result.text)
        assert bresult.stats.reasoning_cut == result.stats.reasoning_cut
    assert got["r2"][1].stats.reasoning_cut  # the injected tokens went through the batch too
    assert batch.rows_stepped > batch.steps_run  # steps really ran several replies at once
    assert len(batch) == 0


def test_tokens_a_reply_appends_without_choosing_them_run_in_one_go(tiny_model, single):
    """The final channel's header, injected when a reply's reasoning is cut, takes no decode step a token:
    all but its last token run at once on the reply's row of the pool, the last with the batch; the reply
    stays what it is alone."""
    _, expected = single
    engine = _recording_engine(tiny_model)
    batch = DecodeBatch(engine, max_batch=4)
    got = batched(batch, requests(engine)[:4])  # r2 is cut
    ahead = [i for i, r in enumerate(engine.runs) if r[0] == "ahead"]
    assert ahead and all(engine.runs[i][1] == 1 and engine.runs[i][2] >= 2 for i in ahead)
    # the step after them counts the time its rows waited, so the cost model's margins cover such pauses
    after = [next(j for j in range(i, len(engine.runs)) if engine.runs[j][0] == "decode") for i in ahead]
    assert all(engine.waited[j] > 0 for j in after)
    for rid in ("r0", "r1", "r2", "r3"):
        assert got[rid][1].tokens == expected[rid][1].tokens, rid
    assert got["r2"][1].stats.reasoning_cut


def test_without_running_ahead_every_token_takes_a_decode_step_and_replies_are_the_same(tiny_model, single):
    _, expected = single
    engine = _recording_engine(tiny_model)
    batch = DecodeBatch(engine, max_batch=4, run_ahead=False)
    got = batched(batch, requests(engine)[:4])
    assert not [r for r in engine.runs if r[0] == "ahead"]
    assert all(r[2] == 1 for r in engine.runs if r[0] == "decode")
    for rid in ("r0", "r1", "r2", "r3"):
        assert got[rid][1].tokens == expected[rid][1].tokens, rid


def test_a_reply_without_reasoning_runs_the_final_channels_header_with_its_prompt(tiny_model, tiny_checkpoint):
    """With no reasoning planned, the tokens that open the final channel are known before the model runs:
    they run in the prompt's own run, not in a run of their own on the pool while the other rows wait.
    The replies still equal transformers' greedy continuation, and the next turn starts from the header's
    end (the sliding layers' window snapshot is taken there)."""
    engine = _recording_engine(tiny_model, profiles=_quiet())
    reqs = requests(engine)[:4]
    got = batched(DecodeBatch(engine, max_batch=4), reqs)
    header = harmony.force_final(engine.tok, in_message=False, at_message_start=True)
    assert not [r for r in engine.runs if r[0] == "ahead"]
    prompts = [r[2] for r in engine.runs if r[0] == "prefill"]
    assert sorted(prompts) == sorted(got[r.request_id][1].stats.prompt_tokens - got[r.request_id][1].stats.reused_tokens
                                     + len(header) for r in reqs)  # the shortest runs first
    hf = load_hf(tiny_checkpoint)
    for req in reqs:
        result = got[req.request_id][1]
        assert list(result.tokens[:len(header)]) == header and result.stats.reasoning_tokens == 0
        ran = engine.store.get(req.npc, req.session_id).tokens[:result.stats.prompt_tokens + len(header)]
        with torch.no_grad():
            want = hf.generate(torch.tensor([ran]), max_new_tokens=len(result.tokens) - len(header),
                               do_sample=False, attention_mask=torch.ones(1, len(ran)))
        assert list(result.tokens[len(header):]) == want[0, len(ran):].tolist(), req.request_id
    first = got["r1"][1]
    assert engine.session.manifest.kv_cache.window < first.stats.prompt_tokens
    _, second = alone(engine, ReplyRequest(npc="brenna", text="And a shield?", session_id="s1"))
    assert second.stats.reused_tokens >= first.stats.prompt_tokens + len(header)


def test_the_next_turn_reuses_the_kv_a_batched_reply_left(tiny_model, single):
    """The batch copies each row back to its conversation: turn two reuses it and equals the unbatched run."""
    engine_alone, _ = single
    engine = Engine(tiny_model, npcs())
    batched(DecodeBatch(engine, max_batch=4), requests(engine))
    follow_up = ReplyRequest(npc="brenna", text="And a shield?", session_id="s1")
    text, result = alone(engine, follow_up)
    ref_text, ref = alone(engine_alone, follow_up)
    assert result.stats.reused_tokens == ref.stats.reused_tokens > 0
    assert (result.tokens, text) == (ref.tokens, ref_text)


def test_batched_step_logits_equal_single_row_logits(tiny_model):
    """The graph on a pool of rows with different lengths equals each row run on its own (1e-4)."""
    engine = Engine(tiny_model, npcs())
    s, rng = engine.session, np.random.default_rng(0)
    prompts = [rng.integers(0, 200, n).tolist() for n in (3, 17, 9)]
    pool = s.new_cache(batch=3, length=64)
    singles = []
    for row, prompt in enumerate(prompts):
        own = s.new_cache(length=64)
        s.run(np.array([prompt]), own)
        pool.copy_rows_from(own, len(prompt), dst_row=row)
        singles.append(own)
    for step in range(4):
        ids = rng.integers(0, 200, (3, 1))
        together = s.run(ids, pool)
        apart = np.concatenate([s.run(ids[row:row + 1], own) for row, own in enumerate(singles)])
        assert np.abs(together - apart).max() <= 1e-4, step
    assert pool.lengths.tolist() == [len(p) + 4 for p in prompts]


def test_a_failing_reply_is_reported_and_the_others_go_on(tiny_model, single):
    _, expected = single
    engine = Engine(tiny_model, npcs())
    batch = DecodeBatch(engine, max_batch=4)
    errors: list = []
    batch.start(ReplyRequest(npc="ghost", text="hi"), threading.Event(), errors.append)
    assert len(errors) == 1 and isinstance(errors[0], UnknownNpc) and len(batch) == 0
    reqs = requests(engine)[:2]
    got = batched(batch, reqs)
    assert all(got[r.request_id][1].tokens == expected[r.request_id][1].tokens for r in reqs)


def test_cancel_ends_one_row_and_leaves_the_others_intact(tiny_model, single):
    _, expected = single
    engine = Engine(tiny_model, npcs())
    batch = DecodeBatch(engine, max_batch=4)
    reqs = requests(engine)[:3]
    events: dict[str, list] = {r.request_id: [] for r in reqs}
    cancels = {r.request_id: threading.Event() for r in reqs}
    for r in reqs:
        batch.start(r, cancels[r.request_id], events[r.request_id].append)
    batch.step()
    cancels["r0"].set()
    batch.run_all()
    assert events["r0"][-1].stats.finish_reason == "cancelled"
    for rid in ("r1", "r2"):
        assert events[rid][-1].tokens == expected[rid][1].tokens


def _kind(cache, prefill: bool) -> str:
    """A run's kind: a prompt's (on its reply's own one-row cache), a decode step, or the tokens a reply
    appends without choosing them, run ahead on its row of the pool."""
    return ("prefill" if cache.batch == 1 else "ahead") if prefill else "decode"


def test_a_prompt_that_arrives_during_decoding_runs_a_chunk_between_steps(tiny_model):
    """Chunked prefill: while replies are live, a new prompt runs at most `prefill_chunk` tokens between two
    decode steps, so the live rows keep decoding; with no live reply it runs in one go."""
    engine = Engine(tiny_model, npcs())
    engine.warm_prefixes()  # the NPCs' prefixes are kept: the prompts are their turns only
    runs: list[tuple[str, int, int]] = []  # (prefill or decode, rows, tokens)
    real = engine.run_model

    def recording(ids, cache, prefill=False, first_row=0, waited_ms=0.0):
        runs.append((_kind(cache, prefill), ids.shape[0], ids.shape[1]))
        return real(ids, cache, prefill, first_row, waited_ms)
    engine.run_model = recording
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=5)
    events: dict[str, list] = {"a": [], "b": []}
    endless = SamplingParams(temperature=0.0, top_k=0, top_p=1.0,  # never ends by itself: runs to its budgets
                             logit_bias={i: float("-inf") for i in engine.tok.special_ids})
    batch.start(ReplyRequest(npc="brenna", text="Hi", request_id="a", sampling=endless), threading.Event(),
                events["a"].append)
    prompt_a = [r for r in runs if r[0] == "prefill"][-1]
    assert prompt_a[2] > 5  # alone: the whole prompt at once
    batch.step()
    before = len(runs)
    batch.start(ReplyRequest(npc="tomas", text=QUESTIONS[2], request_id="b", sampling=GREEDY), threading.Event(),
                events["b"].append)
    batch.run_all()
    later = runs[before:]
    prefills = [r for r in later if r[0] == "prefill"]
    assert len(prefills) > 3 and all(tokens <= 5 for _, _, tokens in prefills)
    last_chunk = max(i for i, r in enumerate(later) if r[0] == "prefill")
    assert [r for r in later[:last_chunk] if r[0] == "decode"]  # the live reply kept decoding meanwhile
    assert batch.chunks_run == len(prefills) - 1
    assert all(isinstance(evs[-1], ReplyResult) for evs in events.values())
    assert len(batch) == 0


def test_a_prompt_into_an_empty_batch_runs_a_chunk_a_step_while_a_reply_waits_in_the_queue(tiny_model, single):
    """With a reply waiting in the scheduler's queue, not even a first prompt runs whole: the worker must
    look at the queue between its chunks (to answer the waiting reply by its deadline). Same reply."""
    _, expected = single
    engine = Engine(tiny_model, npcs())
    list(engine.reply(ReplyRequest(npc="brenna", text="Hello", sampling=GREEDY)))  # its NPC prefix is cached
    runs = _prompt_runs(engine)
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=7)
    req = requests(engine)[2]
    events: list = []
    batch.start(req, threading.Event(), events.append, someone_waits=True)
    assert runs == [7] and batch.prefill_left() > 0
    while batch.prefill_left():
        batch.step(someone_waits=True)
    assert len(runs) > 3 and all(tokens <= 7 for tokens in runs)
    batch.run_all()
    text = "".join(e.text for e in events if isinstance(e, FinalDelta))
    assert (text, events[-1].tokens) == (expected["r2"][0], expected["r2"][1].tokens)


def _prompt_runs(engine: Engine) -> list[int]:
    """The token counts of the prompt runs on a reply's own cache, recorded from now on."""
    runs: list[int] = []
    real = engine.run_model

    def recording(ids, cache, prefill=False, first_row=0, waited_ms=0.0):
        if prefill and cache.batch == 1:
            runs.append(ids.shape[1])
        return real(ids, cache, prefill, first_row, waited_ms)
    engine.run_model = recording
    return runs


def test_with_no_reply_live_or_waiting_a_prompt_runs_in_pieces_the_cost_model_says_last_solo_run_ms(tiny_model):
    """A reply arriving while a long cold prompt runs into an idle batch waits for the piece that runs, not for
    the whole prompt (the worker looks at its queue between pieces)."""
    from runtime.decode_batch import SOLO_RUN_MS
    cost = CostModel(prefill_ms_per_token=SOLO_RUN_MS / 12, decode_ms_per_token=1.0, frozen=True)  # 12 a piece
    engine = Engine(tiny_model, npcs(), cost_model=cost)
    engine.warm_prefixes()
    runs = _prompt_runs(engine)
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=5)
    events: list = []
    batch.start(ReplyRequest(npc="brenna", text=QUESTIONS[2], request_id="r", sampling=GREEDY), threading.Event(),
                events.append)
    assert runs == [12]
    batch.run_all()
    assert len(runs) > 2 and all(tokens <= 12 for tokens in runs)
    assert isinstance(events[-1], ReplyResult)


def test_a_prompt_whose_rest_and_a_minimal_answer_no_longer_fit_stops_before_its_next_chunk(tiny_model):
    """A reply whose prompt is prefilled a chunk at a time says its fallback line as soon as the rest of its
    prompt and a minimal answer no longer fit its deadline, not one chunk (or several) later."""
    cost = CostModel(prefill_ms_per_token=1.0, decode_ms_per_token=1.0, frozen=True)
    engine = Engine(tiny_model, npcs(), cost_model=cost)
    engine.warm_prefixes()
    runs = _prompt_runs(engine)
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=7)
    events: list = []
    batch.start(ReplyRequest(npc="brenna", text=QUESTIONS[2], request_id="r", sampling=GREEDY, deadline_ms=10_000),
                threading.Event(), events.append, someone_waits=True)
    assert runs == [7]
    clock, rest = batch._prefills[0].reply.clock, batch.prefill_left()
    minimal = deadlines.finish_margin_ms(cost) + deadlines.answer_cost_ms(cost, clock.force_tokens,
                                                                          deadlines.MIN_FINAL_TOKENS)
    # time passes (a slower device than the cost model thought): a minimal answer still fits, the rest too not
    clock.started_at -= (clock.deadline_ms - minimal - rest / 2 - clock.elapsed_ms()) / 1000
    batch.step(someone_waits=True)
    assert runs == [7] and len(batch) == 0
    result = events[-1]
    assert isinstance(result, ReplyResult) and result.stats.finish_reason == "deadline" and result.stats.fallback_used


def test_a_reply_planned_to_answer_at_once_still_answers_when_its_prompt_waits_to_run(tiny_model):
    # a review: its final channel's header, part of the prompt still to run, was counted twice (as prompt
    # and as forced tokens), so every such reply that joined a live batch ended with its fallback line
    cost = CostModel(prefill_ms_per_token=1.0, decode_ms_per_token=10.0, frozen=True)
    engine = Engine(tiny_model, npcs(), cost_model=cost)
    engine.warm_prefixes()
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=128)
    endless = SamplingParams(temperature=0.0, top_k=0, top_p=1.0,
                             logit_bias={i: float("-inf") for i in engine.tok.special_ids})
    live: list = []
    batch.start(ReplyRequest(npc="tomas", text="Hi", request_id="a", sampling=endless, deadline_ms=5000),
                threading.Event(), live.append)
    batch.step()
    events: list = []
    batch.start(ReplyRequest(npc="brenna", text=QUESTIONS[2], request_id="b", sampling=GREEDY, deadline_ms=160),
                threading.Event(), events.append)
    assert batch._prefills[0].reply.header_with_prompt  # no reasoning fits: the answer at once
    while not events or not isinstance(events[-1], (ReplyResult, Exception)):
        batch.step()
    assert events[-1].stats.finish_reason != "deadline" and not events[-1].stats.fallback_used


def test_a_join_that_fails_after_a_prompt_ran_in_chunks_ends_that_reply_with_the_error(tiny_model):
    # a review: the first join (its pool allocated) failing inside step() reached nobody: the reply hung,
    # and its session stayed busy for good
    engine = Engine(tiny_model, npcs())
    new_pool = engine.new_pool

    def no_memory(rows):
        raise RuntimeError("out of device memory allocating the batch pool")
    engine.new_pool = no_memory
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=7)
    events: list = []
    batch.start(ReplyRequest(npc="brenna", text=QUESTIONS[2], session_id="s", request_id="r", sampling=GREEDY),
                threading.Event(), events.append, someone_waits=True)
    for _ in range(100):
        if events:
            break
        batch.step(someone_waits=True)
    assert len(events) == 1 and isinstance(events[0], RuntimeError) and len(batch) == 0
    engine.new_pool = new_pool  # the session's next line runs
    later: list = []
    batch.start(ReplyRequest(npc="brenna", text="Hi", session_id="s", request_id="r2", sampling=GREEDY),
                threading.Event(), later.append)
    batch.run_all()
    assert isinstance(later[-1], ReplyResult)


def _recording_engine(tiny_model, fail_on_prefill: int | None = None, profiles: dict[str, Npc] | None = None):
    """An engine whose model runs are recorded (and whose n-th prefill run fails, if asked)."""
    engine = Engine(tiny_model, profiles or npcs())
    for name in engine.npcs:  # the NPCs' prefixes cached
        list(engine.reply(ReplyRequest(npc=name, text="Hello", sampling=GREEDY)))
    engine.runs, engine.waited = [], []
    real = engine.run_model

    def recording(ids, cache, prefill=False, first_row=0, waited_ms=0.0):
        engine.runs.append((_kind(cache, prefill), ids.shape[0], ids.shape[1]))
        engine.waited.append(waited_ms)
        if engine.runs[-1][0] == "prefill" and fail_on_prefill is not None \
                and sum(r[0] == "prefill" for r in engine.runs) == fail_on_prefill:
            raise RuntimeError("injected prefill failure")
        return real(ids, cache, prefill, first_row, waited_ms)
    engine.run_model = recording
    return engine


def _live_and_pending(engine, batch, cancel_b=None, deadline_a=None):
    """Reply a decoding (it never ends by itself), then reply b's long prompt waiting to be prefilled."""
    endless = SamplingParams(temperature=0.0, top_k=0, top_p=1.0, logit_bias={i: float("-inf") for i in engine.tok.special_ids})
    events = {"a": [], "b": []}
    extra = {"deadline_ms": deadline_a} if deadline_a else {}
    batch.start(ReplyRequest(npc="brenna", text="Hi", request_id="a", sampling=endless, **extra), threading.Event(),
                events["a"].append)
    batch.step()
    batch.start(ReplyRequest(npc="tomas", text=QUESTIONS[2], request_id="b", sampling=GREEDY),
                cancel_b or threading.Event(), events["b"].append)
    return events


def test_a_prompt_waiting_for_its_chunks_counts_against_the_batchs_room(tiny_model):
    engine = _recording_engine(tiny_model)
    batch = DecodeBatch(engine, max_batch=2, prefill_chunk=5)
    _live_and_pending(engine, batch)
    assert len(batch) == 2 and not batch.has_room()
    batch.run_all()
    assert len(batch) == 0 and batch.has_room()


def _quiet() -> dict[str, Npc]:
    """The NPCs with no reasoning budget: their final channel's header runs with the prompt."""
    return {name: Npc(**{**npc.__dict__, "max_reasoning_tokens": 0}) for name, npc in npcs().items()}


@pytest.mark.parametrize("reasoning", [True, False])
def test_a_reply_cancelled_while_its_prompt_is_prefilled_stops_there(tiny_model, reasoning):
    """Also one whose final channel's header was to run with its prompt: it said and ran nothing of it."""
    engine = _recording_engine(tiny_model, profiles=None if reasoning else _quiet())
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=5)
    cancel = threading.Event()
    events = _live_and_pending(engine, batch, cancel_b=cancel)
    batch.step()
    batch.step()  # two of b's chunks ran
    assert sum(r == ("prefill", 1, 5) for r in engine.runs) == 2
    cancel.set()
    at_cancel = len(engine.runs)
    batch.run_all()
    assert not [r for r in engine.runs[at_cancel:] if r[0] == "prefill"]  # none of b's prompt ran after it
    assert events["b"][-1].stats.finish_reason == "cancelled" and events["b"][-1].text == ""
    assert events["b"][-1].tokens == () and not events["b"][-1].stats.reasoning_cut
    assert isinstance(events["a"][-1], ReplyResult) and events["a"][-1].stats.finish_reason != "cancelled"


def test_a_prefill_that_fails_half_way_ends_only_its_reply(tiny_model):
    engine = _recording_engine(tiny_model, fail_on_prefill=3)  # a's prompt, then b's first chunk, then this
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=5)
    events = _live_and_pending(engine, batch)
    batch.run_all()
    assert isinstance(events["b"][-1], RuntimeError)
    assert isinstance(events["a"][-1], ReplyResult)
    assert len(batch) == 0


def test_a_failed_decode_step_ends_the_decoding_replies_and_the_prefilling_one_goes_on(tiny_model):
    engine = _recording_engine(tiny_model)
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=5)
    events = _live_and_pending(engine, batch)
    batch.fail_all(RuntimeError("the device failed"))
    batch.run_all()
    assert isinstance(events["a"][-1], RuntimeError)
    assert isinstance(events["b"][-1], ReplyResult) and events["b"][-1].stats.finish_reason != "cancelled"


def test_a_chunk_waits_while_it_would_make_a_live_reply_late(tiny_model):
    """With prefill priced at 100 s a token, a 5-token chunk would cost a live reply with a 60 s deadline
    its deadline: b's prompt waits until a is done, then runs with no reply live (in pieces the cost model
    puts at SOLO_RUN_MS, here a chunk: not even one token fits 50 ms)."""
    engine = _recording_engine(tiny_model)
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=5)
    events = _live_and_pending(engine, batch, deadline_a=60_000)
    engine.cost.frozen, engine.cost.prefill_ms_per_token = True, 100_000.0  # a is decoding by now
    batch.run_all()
    b_prefills = [i for i, r in enumerate(engine.runs) if r[0] == "prefill"][1:]
    assert all(r[0] == "prefill" for r in engine.runs[b_prefills[0]:b_prefills[-1] + 1])  # no reply was live
    assert sum(r[0] == "decode" for r in engine.runs[:b_prefills[0]]) > 10  # a decoded meanwhile
    assert all(isinstance(e[-1], ReplyResult) for e in events.values())


def test_a_short_prompt_is_priced_by_its_own_tokens_not_a_whole_chunk(tiny_model):
    """With prefill at 100 ms a token, a 1,000-token chunk would cost a live reply with a 60 s deadline its
    deadline, but b's prompt is far shorter than that: it runs at once and decodes beside a."""
    engine = _recording_engine(tiny_model)
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=1000)
    events = _live_and_pending(engine, batch, deadline_a=60_000)
    engine.cost.frozen, engine.cost.prefill_ms_per_token = True, 100.0
    batch.run_all()
    b_prefill = [i for i, r in enumerate(engine.runs) if r[0] == "prefill"][1]
    assert engine.runs[b_prefill][2] < 200  # a short prompt, in one go
    assert ("decode", 2, 1) in engine.runs[b_prefill:]  # then a and b decoded together
    assert all(isinstance(e[-1], ReplyResult) for e in events.values())


@pytest.mark.parametrize("share", [True, False])
def test_short_prompts_waiting_together_share_one_pause_between_steps(tiny_model, share):
    """Two short prompts (turns after a cached prefix) arrive while a reply decodes: with the chunk shared
    both run between the same two decode steps, within one chunk's worth of tokens; one a step before."""
    engine = _recording_engine(tiny_model)
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=64, share_chunk=share)
    endless = SamplingParams(temperature=0.0, top_k=0, top_p=1.0, logit_bias={i: float("-inf") for i in engine.tok.special_ids})
    events = {"a": [], "b": [], "c": []}
    batch.start(ReplyRequest(npc="brenna", text="Hi", request_id="a", sampling=endless), threading.Event(),
                events["a"].append)
    batch.step()
    start = len(engine.runs)
    for rid, npc in (("b", "tomas"), ("c", "brenna")):
        batch.start(ReplyRequest(npc=npc, text="Hi there", request_id=rid, sampling=GREEDY), threading.Event(),
                    events[rid].append)
    batch.step()
    batch.step()
    kinds = [r[0] for r in engine.runs[start:]]
    prompts = [r for r in engine.runs[start:] if r[0] == "prefill"]
    assert len(prompts) == 2 and sum(tokens for _, _, tokens in prompts) <= 64
    between = kinds[kinds.index("prefill"):len(kinds) - kinds[::-1].index("prefill")]  # first to last prompt run
    assert ("decode" in between) is not share
    batch.run_all()
    assert all(isinstance(e[-1], ReplyResult) for e in events.values())


def test_a_reply_the_scheduler_gives_up_on_says_its_fallback_line_without_the_model_and_keeps_the_turn(tiny_model):
    engine = Engine(tiny_model, npcs())
    batch = DecodeBatch(engine, max_batch=1)
    batch.start(ReplyRequest(npc="brenna", text=QUESTIONS[2], session_id="busy", request_id="busy"),
                threading.Event(), lambda event: None)  # the batch is full
    events: list = []
    batch.fall_back(ReplyRequest(npc="tomas", text="Any work?", session_id="late", request_id="late"),
                    threading.Event(), events.append, "waited too long in the queue")
    result = events[-1]
    assert isinstance(result, ReplyResult) and [e.text for e in events[:-1]] == ["Busy."]
    assert result.text == "Busy." and result.stats.finish_reason == "fallback" and result.stats.fallback_used
    assert result.stats.reasoning_tokens == result.stats.final_tokens == 0 and len(batch) == 1
    assert [(t.user, t.reply) for t in engine.store.get("tomas", "late").history] == [("Player: Any work?", "Busy.")]
    events.clear()
    batch.fall_back(ReplyRequest(npc="nobody", text="Hi", request_id="x"), threading.Event(), events.append, "late")
    assert len(events) == 1 and isinstance(events[0], UnknownNpc)


def test_an_npc_prefix_not_kept_runs_a_chunk_at_a_time_with_its_prompt_and_is_kept_where_it_ends(tiny_model,
                                                                                                single):
    # an outside probe: a line to an NPC whose prefix was not kept (past the 64 kept) ran that prefix whole as
    # its reply started, holding every live reply for all of it (1,800 tokens: 153 ms late at 300 ms deadlines)
    from runtime.context_fit import npc_prefix
    engine = Engine(tiny_model, npcs())
    engine.prefix_cache(engine.prefix_ids(engine.npcs["tomas"]))  # tomas's is kept, brenna's is not
    prefix = npc_prefix(engine.tok, engine.npcs["brenna"])
    assert engine.cold_prefix_tokens("brenna") == len(prefix) > 3 * 5
    endless = SamplingParams(temperature=0.0, top_k=0, top_p=1.0,
                             logit_bias={i: float("-inf") for i in engine.tok.special_ids})
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=5)
    live: list = []
    batch.start(ReplyRequest(npc="tomas", text="Hi", request_id="live", sampling=endless), threading.Event(),
                live.append)
    batch.step()
    runs = _prompt_runs(engine)
    kept_after: list[int] = []  # the prompt tokens run when the prefix became kept
    real_keep = engine.prefixes.keep_from
    engine.prefixes.keep_from = lambda ids, cache: (kept_after.append(sum(runs)), real_keep(ids, cache))
    req = next(r for r in requests(engine) if r.request_id == "r1")  # brenna, greedy
    events: list = []
    batch.start(req, threading.Event(), events.append)
    batch.run_all()
    assert runs and all(tokens <= 5 for tokens in runs)  # the prefix too, between the live reply's steps
    assert kept_after == [len(prefix)] and engine.cold_prefix_tokens("brenna") == 0
    assert ("".join(e.text for e in events if isinstance(e, FinalDelta)), events[-1].text) == \
        (single[1]["r1"][0], single[1]["r1"][1].text)  # the reply it gives with its prefix kept beforehand
    # the kept prefix (its sliding layers hold only their window of it) is the prefix's own KV
    assert kept_prefix_error(engine, prefix) <= 1e-5


def _one_cold_npc(tiny_model, cost: CostModel | None = None, chunk: int = 5):
    """An engine whose tomas has his prefix kept and brenna not, and a batch with an endless tomas reply live."""
    engine = Engine(tiny_model, npcs(), cost_model=cost)
    engine.prefix_cache(engine.prefix_ids(engine.npcs["tomas"]))
    endless = SamplingParams(temperature=0.0, top_k=0, top_p=1.0,
                             logit_bias={i: float("-inf") for i in engine.tok.special_ids})
    batch = DecodeBatch(engine, max_batch=4, prefill_chunk=chunk)
    batch.start(ReplyRequest(npc="tomas", text="Hi", request_id="live", sampling=endless), threading.Event(),
                lambda event: None)
    batch.step()
    return engine, batch


def test_a_reply_that_falls_back_for_want_of_its_npc_prefix_leaves_it_to_run_a_chunk_at_a_time(tiny_model):
    # a review: that prefix then ran whole at once, pausing every live reply for all of it
    cost = CostModel(prefill_ms_per_token=1.0, decode_ms_per_token=1.0, frozen=True)
    engine, batch = _one_cold_npc(tiny_model, cost)
    prefix = engine.cold_prefix_tokens("brenna")
    runs = _prompt_runs(engine)
    events: list = []
    batch.start(ReplyRequest(npc="brenna", text="Hi", request_id="b", sampling=GREEDY, deadline_ms=prefix * 0.8),
                threading.Event(), events.append)
    assert events[-1].stats.finish_reason == "fallback" and runs == []
    for _ in range(prefix):  # the live reply decodes meanwhile; the prefix runs in what each step's chunk leaves
        if not engine.cold_prefix_tokens("brenna"):
            break
        batch.step()
    assert engine.cold_prefix_tokens("brenna") == 0
    assert sum(runs) == prefix and all(n <= 5 for n in runs) and len(batch) == 1


def test_a_reply_stopped_half_way_through_its_npc_prefix_leaves_the_rest_to_run_from_there(tiny_model):
    # a review: the part of the prefix that had run was thrown away, and under steady load (never idle) an
    # NPC whose replies run out of time half way through its prefix would fall back on every line
    from runtime.context_fit import npc_prefix
    engine, batch = _one_cold_npc(tiny_model)
    prefix = npc_prefix(engine.tok, engine.npcs["brenna"])
    runs = _prompt_runs(engine)
    cancel, events = threading.Event(), []
    batch.start(ReplyRequest(npc="brenna", text="Hi", request_id="b", sampling=GREEDY), cancel, events.append)
    batch.step()
    batch.step()
    assert runs == [5, 5]
    cancel.set()
    for _ in range(len(prefix)):
        if not engine.cold_prefix_tokens("brenna"):
            break
        batch.step()
    assert events[-1].stats.finish_reason == "cancelled" and engine.cold_prefix_tokens("brenna") == 0
    assert sum(runs) == len(prefix)  # the rest, from where the reply stopped
    assert kept_prefix_error(engine, prefix) <= 1e-5


def test_a_short_prompt_does_not_wait_behind_a_long_prompts_chunks(tiny_model):
    # a review: the oldest prompt took every chunk, so a turn of tens of tokens to an NPC whose prefix is kept
    # waited behind a cold NPC's prefix of up to a couple of thousand (917 ms against 134 ms)
    engine, batch = _one_cold_npc(tiny_model, chunk=32)
    batch.start(ReplyRequest(npc="brenna", text="Hi", request_id="long", sampling=GREEDY), threading.Event(),
                lambda event: None)
    batch.start(ReplyRequest(npc="tomas", text="Hi", request_id="short", sampling=GREEDY), threading.Event(),
                lambda event: None)
    waiting = lambda: sorted(p.reply.req.request_id for p in batch._prefills)  # noqa: E731
    assert waiting() == ["long", "short"] and len(batch._prefills[1].ids) <= 32 < len(batch._prefills[0].ids)
    batch.step()
    assert waiting() == ["long"]  # the short one ran whole and joined; the long one's chunks come next
    batch.run_all()


def test_a_prompt_joining_live_replies_plans_with_the_decode_steps_between_its_chunks(tiny_model):
    # a review: a long prompt run a chunk after each live decode step was planned as if it ran at once, so the
    # reply reasoned as if that time were free and then fell back, out of time, half way through its prompt
    cost = CostModel(prefill_ms_per_token=1.0, decode_ms_per_token=2.0, frozen=True)
    engine, batch = _one_cold_npc(tiny_model, cost)
    engine.npcs["brenna"] = dataclasses.replace(engine.npcs["brenna"], max_reasoning_tokens=2000)
    prompt = engine.cold_prefix_tokens("brenna")  # and the turn: the whole prompt runs
    events: list = []
    batch.start(ReplyRequest(npc="brenna", text="Hi", request_id="b", sampling=GREEDY, deadline_ms=3000),
                threading.Event(), events.append)
    plan = batch._prefills[0].reply.plan.reasoning_tokens
    alone = Engine(tiny_model, {"brenna": engine.npcs["brenna"]}, cost_model=cost)
    solo = [e for e in alone.reply(ReplyRequest(npc="brenna", text="Hi", sampling=GREEDY, deadline_ms=3000))][-1]
    chunks = -(-len(batch._prefills[0].ids) // 5)
    assert len(batch._prefills[0].ids) > prompt > 20
    # a decode step (2 ms: one reasoning token's worth) between every two chunks: that many fewer reasoning
    # tokens, give or take the few ms each reply spent before it planned
    assert chunks - 1 - 5 <= solo.stats.reasoning_budget - plan <= chunks - 1 + 2
    batch.run_all()
