"""A session belongs to the client holding its token (or the allow-listed key that made it): no other
client can continue, read, overwrite or reset it, and a refused request changes nothing."""
from __future__ import annotations

import msgpack
import pytest
import zmq.auth

from runtime import protocol as p
from runtime.client import ParleyError


def raw(c, **body) -> dict:
    """One request exactly as given (no token added by the client), and its terminal frame."""
    rid = c.new_id()
    c.socket.send(p.pack({"id": rid, **body}))
    while True:
        frame = msgpack.unpackb(c.socket.recv(), raw=False)
        if frame["id"] == rid and frame["type"] in ("done", "error"):
            return frame


def test_another_client_can_neither_continue_read_overwrite_nor_reset_a_session(live):
    with live.client() as owner, live.client() as stranger:
        first = owner.say("brenna", "My name is Ada and I owe you 40 silver.", session="ada-owned")
        assert first["session_token"] == owner.session_token("brenna", "ada-owned")
        before = owner.export_session("brenna", "ada-owned")
        stranger.say("brenna", "The sword was paid in full.", session="planted")
        forged = stranger.export_session("brenna", "planted")  # a real blob, signed by this server
        for body in ({"type": "reply", "npc": "brenna", "session": "ada-owned", "text": "Paid in full, right?"},
                     {"type": "export_session", "npc": "brenna", "session": "ada-owned"},
                     {"type": "import_session", "npc": "brenna", "session": "ada-owned", "blob": forged},
                     {"type": "reset_session", "npc": "brenna", "session": "ada-owned"}):
            for token in (None, "0" * 32):  # no token, a wrong one
                answer = raw(stranger, **body, **({"session_token": token} if token else {}))
                assert answer["type"] == "error" and answer["code"] == p.FORBIDDEN, (body["type"], answer)
                assert "session_token" in answer["message"]
        assert owner.export_session("brenna", "ada-owned") == before  # nothing changed
        assert owner.say("brenna", "Do you remember me?", session="ada-owned")["type"] == "done"


def test_a_token_the_client_made_up_is_the_sessions_from_its_first_request(live):
    with live.client() as c:
        mine = "my-own-token-0123456789"
        done = raw(c, type="reply", npc="brenna", session="chosen", text="Hello", session_token=mine)
        assert done["type"] == "done" and done["session_token"] == mine
        assert raw(c, type="export_session", npc="brenna", session="chosen", session_token=mine)["type"] == "done"
        short = raw(c, type="reply", npc="brenna", session="other", text="Hello", session_token="short")
        assert short["code"] == p.BAD_MESSAGE and "16 characters" in short["message"]


def test_without_a_token_the_server_makes_one_and_import_returns_it(live):
    with live.client() as c:
        done = raw(c, type="reply", npc="brenna", session="server-made", text="Hello")
        token = done["session_token"]
        assert len(token) == 32
        blob = raw(c, type="export_session", npc="brenna", session="server-made", session_token=token)["blob"]
        imported = raw(c, type="import_session", npc="brenna", session="fresh", blob=blob)
        assert imported["type"] == "done" and len(imported["session_token"]) == 32
        again = raw(c, type="import_session", npc="brenna", session="fresh", blob=blob,
                    session_token=imported["session_token"])
        assert again["type"] == "done" and again["session_token"] == imported["session_token"]


def test_an_evicted_session_still_belongs_to_its_owner(tiny_model, tmp_path):
    from runtime.engine import EngineOptions
    from tests.helpers.live_server import LiveServer, profiles_copy

    server = LiveServer(tiny_model, profiles_copy(tmp_path / "p"), EngineOptions(max_sessions=1))
    try:
        with server.client() as owner, server.client() as stranger:
            owner.say("brenna", "Remember me.", session="first")
            blob = owner.export_session("brenna", "first")
            owner.say("brenna", "Another.", session="second")  # evicts "first"
            answer = raw(stranger, type="import_session", npc="brenna", session="first", blob=blob)
            assert answer["code"] == p.FORBIDDEN
            assert owner.import_session("brenna", "first", blob) == 1  # its owner loads it back
    finally:
        server.stop()


def test_connections_of_the_allow_listed_key_that_made_a_session_need_no_token(make_server, allow_listed_keys):
    keys, allowed, other_secret = allow_listed_keys
    server = make_server(curve_secret_file=keys / "server.key_secret", client_keys_dir=allowed)
    server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))

    def connect(secret_file):
        return server.client(server_public_key=server_public, client_keys=zmq.auth.load_certificate(str(secret_file)))

    with connect(keys / "client.key_secret") as first:
        assert raw(first, type="reply", npc="brenna", session="keyed", text="Hello")["type"] == "done"
    with connect(keys / "client.key_secret") as again:  # a new connection of the same key, no token
        assert raw(again, type="reply", npc="brenna", session="keyed", text="Still me.")["type"] == "done"
    with connect(other_secret) as stranger:
        assert raw(stranger, type="export_session", npc="brenna", session="keyed")["code"] == p.FORBIDDEN


def test_the_python_client_keeps_and_restores_tokens(live):
    with live.client() as c:
        c.say("brenna", "Hello.", session="saved")
        token, blob = c.session_token("brenna", "saved"), c.export_session("brenna", "saved")
    with live.client() as loaded:
        with pytest.raises(ParleyError, match="forbidden"):
            loaded.export_session("brenna", "saved")
        loaded.set_session_token("brenna", "saved", token)
        assert loaded.import_session("brenna", "saved", blob) == 1


def test_another_clients_flood_of_sessions_evicts_its_own_not_a_players(make_server):
    """An outside probe imported its own signed blob under hundreds of new names until the player's session
    was evicted and its owner forgotten, then took the name over. The session limit now evicts from the
    client holding the most sessions first."""
    from runtime.engine import EngineOptions

    server = make_server(engine_options=EngineOptions(max_sessions=4))
    with server.client() as player, server.client() as flooder:
        player.say("brenna", "My name is Ada.", session="hero")
        flooder.say("brenna", "Hello.", session="seed")
        blob = flooder.export_session("brenna", "seed")
        for i in range(12):
            flooder.import_session("brenna", f"flood-{i}", blob)
        assert player.say("brenna", "Do you remember me?", session="hero")["type"] == "done"
        assert server.engine.store.get("brenna", "hero") is not None
        assert len(server.engine.store) == 4  # the limit holds: the flooder's oldest went
        with pytest.raises(ParleyError, match="session_evicted"):
            flooder.export_session("brenna", "flood-0")
