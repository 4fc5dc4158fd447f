"""The server decodes concurrent replies together: same answers as one at a time, deadline order, session order."""
from __future__ import annotations

import time

GREEDY = {"temperature": 0.0}
LINES = ["How much for a sword?", "Hello there", "Any rumours from the north road?", "Goodbye", "Open the gate!",
         "What is for dinner tonight, and how much is a room?"]
NPCS = ["brenna", "marta", "aldric"]


def finish(client, rid: str) -> dict:
    """Read one request's frames to its terminal frame; returns that frame with the deltas joined in."""
    deltas = []
    while True:
        frame = client.receive(rid)
        assert frame is not None, f"no frame for {rid}"
        if frame["type"] == "delta":
            deltas.append(frame["text"])
        elif frame["type"] in ("done", "error"):
            return {**frame, "deltas": "".join(deltas)}


def send_all(client, lines, **fields) -> list[str]:
    return [client.send("reply", npc=NPCS[i % 3], text=line, session=f"b{i}", sampling=GREEDY, deadline_ms=60000,
                        **fields) for i, line in enumerate(lines)]


def test_concurrent_replies_run_in_one_batch_and_equal_replies_run_one_at_a_time(make_server):
    one_at_a_time = make_server(max_batch=1)
    together = make_server(max_batch=8)
    with one_at_a_time.client() as c:
        expected = [finish(c, c.send("reply", npc=NPCS[i % 3], text=line, session=f"b{i}", sampling=GREEDY,
                                     deadline_ms=60000)) for i, line in enumerate(LINES)]
        alone = c.stats()["batch"]
        assert alone["mean_size"] == 1.0 and alone["rows"] == alone["steps"] > 0
    with together.client() as c:
        got = [finish(c, rid) for rid in send_all(c, LINES)]
        batch = c.stats()["batch"]
    assert [g["type"] for g in got] == ["done"] * len(LINES)
    # a random test model sometimes says nothing, or reasons unsurely, and the NPC's (randomly chosen)
    # fallback or unsure line stands in
    def said(frame):
        st = frame["stats"]
        return "fallback" if st["fallback_used"] else "unsure" if st["finish_reason"] == "unsure" else frame["text"]
    assert [said(g) for g in got] == [said(e) for e in expected]
    assert [g["stats"]["final_tokens"] + g["stats"]["reasoning_tokens"] for g in got] == \
        [e["stats"]["final_tokens"] + e["stats"]["reasoning_tokens"] for e in expected]
    assert batch["mean_size"] > 1.0 and batch["live"] == 0 and batch["max"] == 8
    assert batch["mean_size"] == round(batch["rows"] / batch["steps"], 2)  # what a bench takes differences of


def wait_until(condition) -> None:
    for _ in range(1000):
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError("the server never got there")


def test_queued_replies_start_earliest_deadline_first(make_server):
    server = make_server(max_batch=1)
    queued = lambda: [job.id for job in server.server.scheduler.queued()]  # noqa: E731
    with server.client() as c:
        # The worker takes the first reply and then waits on the engine's lock, so the other two are both
        # queued (sent in deadline order reversed) before the single batch row frees up.
        with server.engine.lock:
            first = c.send("reply", npc="talker", text="Tell me a long story.", deadline_ms=60000)
            wait_until(lambda: not server.server.scheduler.idle() and not queued())  # taken by the worker
            late = c.send("reply", npc="brenna", text="Hello", deadline_ms=50000, sampling=GREEDY)
            urgent = c.send("reply", npc="marta", text="Hello", deadline_ms=40000, sampling=GREEDY)
            wait_until(lambda: queued() == [late, urgent])
        done = {rid: finish(c, rid) for rid in (first, late, urgent)}
    assert all(d["type"] == "done" for d in done.values())
    # both waited behind the first, and the urgent one ran before the late one
    assert done[urgent]["stats"]["total_ms"] < done[late]["stats"]["total_ms"]


def test_requests_of_one_session_keep_their_order(live):
    with live.client() as c:
        rids = [c.send("reply", npc="marta", text=t, session="ordered", sampling=GREEDY, deadline_ms=60000)
                for t in ("A room, please.", "And a meal?")]
        export = c.send("export_session", npc="marta", session="ordered")
        done = [finish(c, rid) for rid in rids]
        exported = finish(c, export)
    assert [d["type"] for d in done] == ["done", "done"]
    assert done[1]["stats"]["reused_tokens"] > 0  # the second turn reused the first turn's KV
    assert exported["type"] == "done" and exported["turns"] == 2
