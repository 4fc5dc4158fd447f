"""Through a real socket, at deadlines from 5 ms up: every reply the game hears is whole sentences (or
the NPC's fallback or unsure line), never half of one, and the deltas add up to the done text."""
from __future__ import annotations

import re

import pytest

from runtime import protocol as p
from runtime.client import ParleyError

SENTENCE_END = re.compile(r"""[.!?…]+["'”’»)\]]*\s*$""")
DEADLINES_MS = [5, 10, 20, 50, 100, 200, 400, 800, 1600]


@pytest.mark.parametrize("npc", ["talker", "brenna"])
def test_at_every_deadline_a_reply_is_whole_sentences_or_the_fallback_line(make_server, npc):
    server = make_server(rate_per_s=float("inf"))
    fallbacks = {n.id: set(n.fallback_lines) for n in server.engine.npcs.values()}
    unsure = {n.id: set(n.unsure_lines) for n in server.engine.npcs.values()}
    with server.client(timeout_s=60.0) as c:
        for deadline in DEADLINES_MS:
            try:
                frames = list(c.reply(npc, "Tell me about the road north.", deadline_ms=deadline))
            except ParleyError as exc:  # a few ms spent in the queue can leave too little even for a fallback
                assert deadline <= 20 and exc.code == p.DEADLINE_IMPOSSIBLE, (deadline, exc)
                continue
            done, deltas = frames[-1], [f["text"] for f in frames if f["type"] == "delta"]
            st = done["stats"]
            assert done["type"] == "done" and "".join(deltas).strip() == done["text"], (deadline, frames)
            if st["fallback_used"]:
                assert done["text"] in fallbacks[npc] and deltas == [done["text"]]
                continue
            if st["finish_reason"] == "unsure":  # a deadline that left no time to reason: nothing to judge
                assert done["text"] in unsure[npc] and deltas == [done["text"]], (deadline, frames)
                continue
            natural = st["finish_reason"] in ("return", "end", "endoftext")
            # every delta is a whole sentence; only an answer the model ended itself may end otherwise
            for delta in deltas[:-1] if natural else deltas:
                assert SENTENCE_END.search(delta) or delta.endswith("\n"), (deadline, delta)
            assert natural or st["finish_reason"] in ("deadline", "length")


def test_token_units_stream_as_decoded(live):
    with live.client() as c:
        frames = list(c.reply("talker", "Tell me a long story.", stream_unit="token"))
    deltas = [f for f in frames if f["type"] == "delta"]
    assert len(deltas) > 10 and frames[-1]["stats"]["unspoken_chars"] == 0
