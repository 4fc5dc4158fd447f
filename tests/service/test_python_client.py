"""The Python client (runtime/client.py) against a real server: a slow server is waited for, never sent the same
request twice; a reply is sent when asked for, so it can be cancelled at once; a reply whose reader goes away
is cancelled; an id still in flight is refused before it reaches the server. From an outside review of the
client against docs/protocol.md."""
from __future__ import annotations

import threading
import time

import pytest


def turns(server, npc: str, session: str) -> int:
    conv = server.engine.store.get(npc, session)
    return 0 if conv is None else len(conv.history)


def wait_idle(server, limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while not server.server.scheduler.idle():
        assert time.monotonic() < deadline, "the server must finish its work"
        time.sleep(0.02)


def test_a_slow_server_is_waited_for_and_never_sent_the_request_twice(make_server):
    """The client resent a reply after timeout_s of silence on a fresh socket; the server, slow but up, ran
    both copies, and the player's line entered the session twice."""
    server = make_server()
    held = threading.Event()

    def hold_the_model():
        with server.engine.lock:
            held.set()
            time.sleep(1.5)  # five of the client's timeouts

    with server.client(timeout_s=0.3, retries=2) as c:
        holder = threading.Thread(target=hold_the_model)
        holder.start()
        held.wait(5)
        done = c.say("talker", "Hello there.", session="slow", deadline_ms=20000)
        holder.join()
    assert done["type"] == "done" and done["text"]
    wait_idle(server)
    assert turns(server, "talker", "slow") == 1


def test_a_reply_is_sent_when_asked_for_so_it_can_be_cancelled_before_it_is_read(make_server):
    server = make_server()
    with server.client() as c:
        with server.engine.lock:  # it cannot finish before the cancel
            frames = c.reply("talker", "Tell me a long story.", session="early", request_id="early-1",
                             deadline_ms=20000)
            assert c.cancel("early-1")["found"] is True
        with pytest.raises(Exception) as ended:
            list(frames)
        assert getattr(ended.value, "code", None) == "cancelled"
    wait_idle(server)
    assert turns(server, "talker", "early") == 0  # a cancelled reply adds no turn


def test_a_reply_whose_reader_goes_away_is_cancelled(make_server):
    server = make_server()
    with server.client() as c:
        c.say("talker", "Hello.", session="gone", deadline_ms=20000)
        frames = c.reply("talker", "Tell me a long story.", session="gone", stream_unit="token", deadline_ms=20000)
        first = next(frames)
        assert first["type"] == "delta"
        with server.engine.lock:  # the reply cannot end by itself before the cancel arrives
            frames.close()  # the game stopped reading: the client cancels it
            assert c.health()["status"] == "ok"  # read after the cancel, on the same connection
        wait_idle(server)
        assert turns(server, "talker", "gone") == 1  # only the first line: the abandoned one added none
        assert c.say("talker", "Still there?", session="gone", deadline_ms=20000)["type"] == "done"


def test_an_id_still_in_flight_is_refused_by_the_client(make_server):
    server = make_server()
    with server.client() as c:
        with server.engine.lock:
            first = c.reply("talker", "Hello.", request_id="same", deadline_ms=20000)
            with pytest.raises(ValueError, match="still in flight"):
                c.reply("talker", "Again.", request_id="same", deadline_ms=20000)
        assert list(first)[-1]["type"] == "done"
        assert list(c.reply("talker", "Now again.", request_id="same", deadline_ms=20000))[-1]["type"] == "done"


def test_a_request_the_server_would_refuse_without_its_id_is_refused_before_it_is_sent(make_server):
    """With replies sent at once, an error the server cannot tie to an id (a request over 64 KiB) would be
    taken by whichever request was read next: the client refuses such a request itself."""
    from runtime.client import ParleyError

    server = make_server()
    with server.client() as c:
        ok = c.reply("talker", "Hello.", deadline_ms=20000)
        with pytest.raises(ParleyError) as refused:
            c.reply("talker", "x" * 70_000, deadline_ms=20000)
        assert refused.value.code == "too_large"
        assert list(ok)[-1]["type"] == "done"  # the other reply is untouched
    assert server.server.counters["request.reply"] == 1  # the big one never left the client


def test_a_reply_dropped_before_it_is_read_is_cancelled(make_server):
    server = make_server()
    with server.client() as c:
        with server.engine.lock:
            frames = c.reply("talker", "Tell me a long story.", session="dropped", deadline_ms=20000)
            del frames  # never iterated: closing it cancels the reply
            assert c.health()["status"] == "ok"
        wait_idle(server)
        assert turns(server, "talker", "dropped") == 0


def test_ids_are_free_again_once_their_end_was_read_even_from_the_inbox(make_server):
    """A reply's end read from the inbox (it arrived while another request was read) left its id marked in
    flight, and a reused id could be handed the earlier request's leftover frames."""
    server = make_server()
    with server.client() as c:
        first = c.reply("talker", "Hello.", request_id="a", deadline_ms=20000)
        assert list(c.reply("talker", "And you?", request_id="b", deadline_ms=20000))[-1]["type"] == "done"
        time.sleep(0.5)
        assert c.health()["status"] == "ok"  # a's frames, if not yet in, arrive while this is read
        done = list(first)[-1]
        again = list(c.reply("talker", "Once more.", request_id="a", deadline_ms=20000))
        assert again[-1]["type"] == "done" and again[-1]["stats"]["request_id"] == "a"
        assert again[-1] is not done and again[-1]["text"] == "".join(
            f["text"] for f in again if f["type"] == "delta").strip()


def test_ipv6_loopback_is_served_and_reached(make_server):
    """Loopback counts as local in both families (docs/protocol.md); libzmq binds and connects to an IPv6
    address only with ZMQ_IPV6 set, and said "No such device" without it."""
    server = make_server(bind="tcp://[::1]:0")
    assert server.endpoint.startswith("tcp://[::1]:")
    with server.client() as c:
        assert c.health()["status"] == "ok"
        assert c.say("brenna", "Hello.", deadline_ms=20000)["type"] == "done"


def test_a_frame_that_arrived_before_the_server_stopped_is_read_after_it_stopped(make_server):
    """The client sent requests only on a made connection with ZMQ_IMMEDIATE, which throws away the frames
    that had arrived and were not yet read when the connection drops: a reply's `shutting_down` frame, sent
    just before the server stopped, was lost (one run in a few of a stop test, under load)."""
    server = make_server()
    with server.client() as c:
        with server.engine.lock:  # the reply cannot end before the server stops
            running = c.send("reply", npc="talker", text="Tell me a long story.", deadline_ms=60000)
            deadline = time.monotonic() + 10
            while server.server.scheduler.idle() or server.server.scheduler.queued():  # until the worker took it
                assert time.monotonic() < deadline, "the reply must start"
                time.sleep(0.01)
            server.server.stop(wait=False)
        assert server.server._stopped.wait(10), "the server must stop"
        time.sleep(0.3)  # the connection is gone before the client reads
        frame = c.receive(running, 5)
        while frame is not None and frame["type"] not in ("done", "error"):
            frame = c.receive(running, 5)
    assert frame is not None and frame["type"] == "error" and frame["code"] == "shutting_down", frame
