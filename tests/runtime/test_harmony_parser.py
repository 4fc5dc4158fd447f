"""The streaming harmony parser: never crashes, and only a `final` message can reach a player."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import harmony
from runtime.harmony import Done, HarmonyParser, MessageEnd, TextDelta
from runtime.manifest import Manifest
from runtime.tokenizer import HarmonyTokenizer


@pytest.fixture(scope="module")
def tok(tiny_model):
    return HarmonyTokenizer(tiny_model, Manifest.read(tiny_model))


def feed_all(tok, ids, in_header=True):
    parser = HarmonyParser(tok, in_header=in_header)
    events = []
    for i in ids:
        events.extend(parser.feed(i))
    return parser, events


def test_analysis_then_final_streams_only_the_final(tok):
    ids = ([tok.special("<|channel|>")] + tok.text("analysis") + [tok.special("<|message|>")]
           + tok.text("They want a price.") + [tok.special("<|end|>")]
           + harmony.assistant_open(tok) + [tok.special("<|channel|>")] + tok.text("final")
           + [tok.special("<|message|>")] + tok.text("Forty silver, friend.") + [tok.special("<|return|>")])
    _, events = feed_all(tok, ids)
    finals = "".join(e.text for e in events if isinstance(e, TextDelta) and e.channel == "final")
    hidden = "".join(e.text for e in events if isinstance(e, TextDelta) and e.channel == "analysis")
    assert finals == "Forty silver, friend." and hidden == "They want a price."
    assert isinstance(events[-1], Done) and events[-1].reason == "return"


def test_tool_call_in_commentary_reports_recipient_and_arguments(tok):
    ids = ([tok.special("<|channel|>")] + tok.text("commentary to=functions.give_item ")
           + [tok.special("<|message|>")] + tok.text('{"item": "sword"}') + [tok.special("<|call|>")])
    _, events = feed_all(tok, ids)
    end = [e for e in events if isinstance(e, MessageEnd)][0]
    assert (end.channel, end.recipient, end.how, end.text) == ("commentary", "functions.give_item", "call",
                                                                '{"item": "sword"}')


def test_unknown_channel_is_hidden(tok):
    ids = ([tok.special("<|channel|>")] + tok.text("finale") + [tok.special("<|message|>")]
           + tok.text("secret") + [tok.special("<|end|>")])
    _, events = feed_all(tok, ids)
    assert all(e.channel != "final" for e in events if isinstance(e, TextDelta))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_token_sequence_is_parsed_without_error_into_well_formed_messages(tok, data):
    specials = sorted(tok.special_ids)
    vocab = tok.text("Forty silver analysis final commentary to=functions.x é 🗡")
    token = st.one_of(st.sampled_from(specials), st.sampled_from(vocab), st.integers(0, 380))
    ids = data.draw(st.lists(token, max_size=80))
    in_header = data.draw(st.booleans())
    parser = HarmonyParser(tok, in_header=in_header)
    streamed: list[tuple[str, str]] = []
    seen_done = False
    for i in ids:
        for ev in parser.feed(i):
            assert not seen_done, "no events after Done"
            if isinstance(ev, TextDelta):
                assert ev.text, "no empty deltas"
                streamed.append((ev.channel, ev.text))
            elif isinstance(ev, MessageEnd):
                # a message's text is exactly what was streamed for it, all of it in the message's channel
                assert ev.text == "".join(t for _, t in streamed)
                assert all(channel == ev.channel for channel, _ in streamed)
                streamed.clear()
                assert ev.channel in ("analysis", "commentary", "final")
            elif isinstance(ev, Done):
                seen_done = True
    # text still streaming belongs to the open message, in its channel
    assert all(channel == parser.channel for channel, _ in streamed)
    assert parser.done == seen_done and (not seen_done or parser.feed(tok.special("<|start|>")) == [])
