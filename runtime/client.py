"""The Python client: talk to a Parley server from a game, a tool or a test. No dependencies beyond pyzmq/msgpack.

    client = ParleyClient("tcp://127.0.0.1:5555")
    for frame in client.reply("brenna", "How much for a sword?", session="player-1"):
        if frame["type"] == "delta": print(frame["text"], end="")

A session belongs to whoever holds its token (docs/protocol.md, "Sessions"). The client makes one up
for each session it names and sends it with every request on that session; keep
`session_token(npc, session)` in the save beside the exported blob, and give it back with
`set_session_token` after loading.
"""
from __future__ import annotations

import collections
import itertools
import os
import secrets
import time
from typing import Any, Iterator

import msgpack
import zmq

from runtime import protocol as p


SESSION_REQUESTS = ("reply", "reset_session", "export_session", "import_session")


class ParleyError(Exception):
    """The server answered with an error frame."""

    def __init__(self, code: str, message: str, request_id: str | None = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.request_id = code, message, request_id


class ServerUnavailable(ParleyError):
    """No answer within the timeout, after the retries."""

    def __init__(self, message: str):
        super().__init__("timeout", message)


class ParleyClient:
    def __init__(self, endpoint: str = "tcp://127.0.0.1:5555", timeout_s: float = 10.0, retries: int = 2,
                 server_public_key: bytes | None = None, client_keys: tuple[bytes, bytes] | None = None,
                 context: zmq.Context | None = None):
        self.endpoint, self.timeout_s, self.retries = endpoint, timeout_s, retries
        self.server_public_key, self.client_keys = server_public_key, client_keys
        self.ctx = context or zmq.Context.instance()
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}-{int(time.time() * 1000) % 10**8:x}"
        self.socket: zmq.Socket | None = None
        # frames that arrived for another request than the one being read (e.g. a reply's frames
        # while waiting for its cancel's answer), kept until that request is read
        self._inbox: dict[str, collections.deque] = {}
        self._tokens: dict[tuple[str, str], str] = {}  # (npc, session) -> the session's token
        self._connect()

    def _connect(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        # a DEALER's send blocks while it has no connection (a refused handshake, a server restarting):
        # never longer than the client's timeout
        sock.setsockopt(zmq.SNDTIMEO, max(1, int(self.timeout_s * 1000)))
        if self.server_public_key is not None:
            public, secret = self.client_keys or zmq.curve_keypair()
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self.server_public_key, public, secret
        sock.connect(self.endpoint)
        self.socket = sock

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None

    def __enter__(self) -> "ParleyClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    # ---- low level ----------------------------------------------------------------------------

    def session_token(self, npc: str, session: str) -> str:
        """The token this client sends for the session (made up on first use): keep it in the save."""
        return self._tokens.setdefault((npc, session), secrets.token_hex(16))

    def set_session_token(self, npc: str, session: str, token: str) -> None:
        """Use a saved token for the session (after loading a save, for a server that still has it)."""
        self._tokens[(npc, session)] = token

    def send(self, kind: str, request_id: str | None = None, **fields: Any) -> str:
        """Send one request; ServerUnavailable if no connection took it within the timeout. A request
        naming a session carries the session's token unless `session_token` is given."""
        rid = request_id or self.new_id()
        if (kind in SESSION_REQUESTS and isinstance(fields.get("session"), str) and fields["session"]
                and isinstance(fields.get("npc"), str) and "session_token" not in fields):
            fields["session_token"] = self.session_token(fields["npc"], fields["session"])
        try:
            self.socket.send(p.pack({"id": rid, "type": kind, **{k: v for k, v in fields.items() if v is not None}}))
        except zmq.Again as exc:
            raise ServerUnavailable(f"no connection to {self.endpoint} took the request within "
                                    f"{self.timeout_s:g} s") from exc
        return rid

    def _try_send(self, kind: str, rid: str, **fields: Any) -> bool:
        try:
            self.send(kind, rid, **fields)
            return True
        except ServerUnavailable:
            return False

    def receive(self, request_id: str, timeout_s: float | None = None) -> dict[str, Any] | None:
        """The next frame for request_id, or None after the timeout; other requests' frames wait in the inbox."""
        queued = self._inbox.get(request_id)
        if queued:
            frame = queued.popleft()
            if not queued:
                del self._inbox[request_id]
            return frame
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.socket.poll(int(left * 1000) + 1, zmq.POLLIN):
                if time.monotonic() >= deadline:
                    return None
                continue
            frame = msgpack.unpackb(self.socket.recv(), raw=False)
            if not isinstance(frame, dict):
                continue
            if frame.get("id") == request_id:
                return frame
            if frame.get("id") is None and frame.get("type") == "error":
                return frame  # the server could not read our request's id: this is about the one we sent
            if frame.get("id") is not None and len(self._inbox) < 64:
                self._inbox.setdefault(frame["id"], collections.deque(maxlen=4096)).append(frame)

    def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        """One request, one terminal frame; resent on a fresh socket when the server does not answer."""
        rid = self.new_id()
        for attempt in range(self.retries + 1):
            frame = self.receive(rid) if self._try_send(kind, rid, **fields) else None
            if frame is not None:
                return _terminal(frame)
            self._connect()  # lazy pirate: the old socket may hold a dead connection
        raise ServerUnavailable(f"no answer from {self.endpoint} after {self.retries + 1} tries of "
                                f"{self.timeout_s:g} s")

    # ---- requests ---------------------------------------------------------------------------

    def reply(self, npc: str, text: str, session: str | None = None, speaker: str | None = None,
              state: dict[str, Any] | None = None, deadline_ms: float | None = None, stream: bool = True,
              sampling: dict[str, Any] | None = None, request_id: str | None = None,
              stream_unit: str | None = None) -> Iterator[dict[str, Any]]:
        """Frames of one reply: `delta` and `action` frames, then the `done` frame. Error frames raise
        ParleyError. Deltas are whole sentences, or tokens as decoded with stream_unit="token"."""
        rid = request_id or self.new_id()
        fields = dict(npc=npc, text=text, session=session, speaker=speaker, state=state, deadline_ms=deadline_ms,
                      stream=stream, sampling=sampling, stream_unit=stream_unit)
        got_any = False
        for attempt in range(self.retries + 1):
            if not self._try_send("reply", rid, **fields):
                self._connect()
                continue
            while True:
                frame = self.receive(rid)
                if frame is None:
                    break
                got_any = True
                if frame.get("type") in ("done", "error"):
                    yield _terminal(frame)
                    return
                yield frame
            if got_any:
                raise ServerUnavailable(f"the reply stream from {self.endpoint} stopped for {self.timeout_s:g} s")
            self._connect()
        raise ServerUnavailable(f"no answer from {self.endpoint} after {self.retries + 1} tries")

    def say(self, npc: str, text: str, **kw: Any) -> dict[str, Any]:
        """The whole reply at once: the `done` frame (text, stats, actions)."""
        frames = list(self.reply(npc, text, **kw))
        return frames[-1]

    def cancel(self, request_id: str) -> dict[str, Any]:
        """Cancel a reply in flight: `found` true, and its stream ends with a `cancelled` error; false, and it
        had already ended (its `done` is on its way). Call from the reading thread."""
        rid = self.send("cancel", target=request_id)
        return _terminal(self._wait(rid))

    def _wait(self, rid: str) -> dict[str, Any]:
        frame = self.receive(rid)
        if frame is None:
            raise ServerUnavailable(f"no answer from {self.endpoint} within {self.timeout_s:g} s")
        return frame

    def health(self) -> dict[str, Any]:
        return self.call("health")

    def stats(self) -> dict[str, Any]:
        return self.call("stats")

    def list_npcs(self) -> list[dict[str, Any]]:
        return self.call("list_npcs")["npcs"]

    def reload_profiles(self) -> dict[str, Any]:
        return self.call("reload_profiles")

    def reset_session(self, npc: str, session: str) -> bool:
        return self.call("reset_session", npc=npc, session=session)["existed"]

    def export_session(self, npc: str, session: str) -> bytes:
        return self.call("export_session", npc=npc, session=session)["blob"]

    def import_session(self, npc: str, session: str, blob: bytes) -> int:
        return self.call("import_session", npc=npc, session=session, blob=blob)["turns"]


def _terminal(frame: dict[str, Any]) -> dict[str, Any]:
    if frame.get("type") == "error":
        raise ParleyError(frame.get("code", "internal"), frame.get("message", ""), frame.get("id"))
    return frame
