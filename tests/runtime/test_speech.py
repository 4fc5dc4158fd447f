"""A reply says whole sentences: its deltas are complete sentences, and a reply stopped early (by its
deadline or its length budget) ends at a sentence's end, or with the fallback line; in token units it
streams as decoded. Text a model addresses to a tool is never spoken."""
from __future__ import annotations

import re

import pytest

from runtime import harmony
from runtime.engine import Engine, FinalDelta, ReplyRequest, ReplyResult
from runtime.npc import Npc
from runtime.sampler import SamplingParams
from runtime.speech import Speech

FALLBACK = "Busy. Come back later."


def test_sentences_come_out_whole_and_numbers_and_unfinished_ones_wait():
    s = Speech()
    assert s.add("It costs 3.5 silver. That") == ["It costs 3.5 silver. "]
    assert s.add("'s all?” she said. ") == ["That's all?” ", "she said. "]
    assert s.add("A list:\nnails") == ["A list:\n"]
    assert s.cut() == ("", len("nails"))  # stopped early: the unfinished sentence stays unsaid


def test_a_sentence_ended_but_not_yet_followed_by_a_space_is_complete_when_cut():
    s = Speech()
    assert s.add("Forty silver. Take it or leave it!") == ["Forty silver. "]
    assert s.cut() == ("Take it or leave it!", 0)


def test_an_answer_the_model_ended_itself_is_said_in_full_and_tokens_pass_straight_through():
    s = Speech()
    assert s.add("No punctuation at all") == []
    assert s.finished() == "No punctuation at all"
    t = Speech("token")
    assert t.add("Half") == ["Half"] and t.add(" a sent") == [" a sent"] and t.cut() == ("", 0)
    with pytest.raises(ValueError, match="sentence"):
        Speech("clause")


def test_a_message_to_a_tool_is_a_call_even_when_its_header_says_final(tiny_model):
    engine = Engine(tiny_model, {})
    tok = engine.tok
    ids = (tok.text("assistant") + [tok.special("<|channel|>")] + tok.text("final to=functions.book_room")
           + [tok.special("<|message|>")] + tok.text('{"nights": 1}') + [tok.special("<|call|>")])
    parser = harmony.HarmonyParser(tok, in_header=True)
    events = [ev for i in ids for ev in parser.feed(i)]
    assert not any(isinstance(ev, harmony.TextDelta) and ev.channel == harmony.FINAL for ev in events)
    end = [ev for ev in events if isinstance(ev, harmony.MessageEnd)]
    assert len(end) == 1 and end[0].how == "call" and end[0].recipient == "functions.book_room"
    assert end[0].channel == harmony.COMMENTARY and end[0].text == '{"nights": 1}'


def words_and_stops(engine: Engine, seed: int) -> SamplingParams:
    """A model that can only write 'a', '.', ' ' and '!' (its own logits choose among them)."""
    favoured = {i: 40.0 for text in ("a", ".", " ", "!") for i in engine.tok.text(text)}
    return SamplingParams(temperature=1.0, top_k=0, top_p=1.0, seed=seed, logit_bias=favoured)


def run(engine: Engine, unit: str, seed: int):
    events = list(engine.reply(ReplyRequest(npc="n", text="Talk.", sampling=words_and_stops(engine, seed),
                                            stream_unit=unit)))
    result = events[-1]
    assert isinstance(result, ReplyResult)
    return [e.text for e in events if isinstance(e, FinalDelta)], result


SENTENCE_END = re.compile(r"""[.!?…]+["'”’»)\]]*\s*$""")


def test_a_reply_stopped_by_its_length_ends_at_its_last_whole_sentence(tiny_model):
    npc = Npc(id="n", name="N", persona="Talks.", fallback_lines=(FALLBACK,), deadline_ms=1e9,
              max_reasoning_tokens=0, max_final_tokens=16, expected_final_tokens=8)
    engine = Engine(tiny_model, {"n": npc})
    checked = cut_after_a_sentence = 0
    for seed in range(12):
        token_deltas, by_token = run(engine, "token", seed)
        deltas, by_sentence = run(engine, "sentence", seed)
        assert by_sentence.tokens == by_token.tokens  # the same reply, said in other units
        if by_token.stats.finish_reason != "length" or SENTENCE_END.search(by_token.text):
            continue  # ended by the model, or on a sentence's end: nothing to take back
        checked += 1
        full = "".join(token_deltas)
        if by_sentence.stats.fallback_used:  # not one sentence was finished: the fallback line, never half of one
            assert deltas == [FALLBACK] and by_sentence.text == FALLBACK
            assert re.search(r"[.!?]\s", full) is None  # and indeed no sentence had ended
            continue
        said = "".join(deltas)
        assert full.startswith(said) and by_sentence.stats.unspoken_chars == len(full) - len(said) > 0
        assert all(SENTENCE_END.search(d) or d.endswith("\n") for d in deltas)  # every delta a whole sentence
        assert by_sentence.text == said.strip() and SENTENCE_END.search(by_sentence.text)
        cut_after_a_sentence += 1
    assert checked >= 3 and cut_after_a_sentence >= 1  # cut mid-sentence several times, once after a whole one
