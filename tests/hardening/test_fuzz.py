"""Random and mutated frames: every one is answered per the spec and the server keeps serving."""
from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import protocol as p
from tools.harness.fuzz_server import fuzz, rss_mb


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_never_raises_anything_but_protocol_errors_on_bytes(data):
    try:
        p.decode(data)
    except p.ProtocolError as exc:
        assert exc.code in (p.BAD_MESSAGE, p.UNSUPPORTED_VERSION, p.UNKNOWN_TYPE, p.TOO_LARGE, p.DEADLINE_IMPOSSIBLE)


values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20) |
                      st.binary(max_size=20), lambda inner: st.lists(inner, max_size=4) |
                      st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "id", "type", "npc", "text", "session", "state", "deadline_ms",
                                        "stream", "sampling", "target", "blob", "speaker"]), values, max_size=8))
def test_decoder_handles_any_map_of_the_protocols_keys(body):
    try:
        request = p.decode(msgpack.packb(body, use_bin_type=True))
    except p.ProtocolError:
        return
    assert request.type in p.REQUEST_TYPES and isinstance(request.request_id, str)


def test_a_fuzzed_server_answers_every_frame_and_keeps_serving(make_server):
    server = make_server(rate_per_s=float("inf"), max_queue=64)
    before = rss_mb()
    report = fuzz(server.endpoint, frames=1500, seed=1)
    assert report["unanswered"] == 0, report
    assert report["errors"] > 1000 and report["health_checks"] >= 1
    assert rss_mb() - before < 150  # bounded: nothing accumulates per frame
    with server.client() as c:
        assert c.health()["status"] == "ok"
        assert list(c.reply("brenna", "Still alive?"))[-1]["type"] == "done"
