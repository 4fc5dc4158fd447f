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
from runtime.client_link import ClientLink


SESSION_REQUESTS = ("reply", "reset_session", "export_session", "import_session")
ANSWERED_AT_ONCE = ("health", "stats", "list_npcs", "cancel")
# reload_profiles is answered when the server has read its changed files (seconds for a thousand): while the
# server answers health, it is waited for up to this long, not resent after the client's timeout
RELOAD_WAIT_S = 120.0
PROFILE_DEADLINE_S = 60.0  # a profile's deadline_ms is at most 60000: a reply sent without one ends by then
REQUEST_DEADLINE_S = 600.0  # a reply's deadline_ms is at most 600000: a session request waits behind such ones
PROBE_EVERY_S = 1.0  # at most this often a silent request asks for health (it counts toward the rate limit)
MAX_INBOX_IDS = 1024


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
    """One DEALER connection. `timeout_s` is how long the client waits in silence before it asks the server
    whether it is there (a `health` request): a server that answers is slow, not gone, and the client goes
    on waiting, up to the request's deadline; one that does not answer is reconnected to and the request
    sent again, `retries` times (the lazy pirate pattern), so a restarted server gets it. A request is sent
    again only then: on a server that is up, nothing runs twice."""

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
        self._inbox: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self._open: set[str] = set()  # reply and session requests sent on this socket, their end not yet read
        self._abandoned: set[str] = set()  # of those, ones nobody reads any more: their frames are dropped
        self._generation = 0  # counts connections: a request sent on an earlier one can no longer be answered
        self._tokens: dict[tuple[str, str], str] = {}  # (npc, session) -> the session's token
        self._parked = False  # no connection took a request: the socket is gone until the next request
        self._connect()

    def _connect(self) -> None:
        self.close()
        # what was sent on the old connection can no longer be answered or cancelled (what already arrived, in
        # the inbox, still counts)
        self._open.clear()
        self._abandoned.clear()
        self._generation += 1
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        # a server that is down is tried again ever more slowly, up to once a second (a refused handshake is
        # tried again every 100 ms whatever this says: see _park)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        # a request goes only to a connection made (client_link.py): send waits while there is none (a refused
        # handshake, a server restarting), never longer than the client's timeout
        self._link = ClientLink(sock)
        if self.endpoint.startswith("tcp://["):  # an IPv6 address: libzmq connects to one only when asked
            sock.setsockopt(zmq.IPV6, 1)
        sock.setsockopt(zmq.SNDTIMEO, max(1, int(self.timeout_s * 1000)))
        # receive() polls first; a caller reading `socket` itself gets zmq.Again after the timeout, never a hang
        sock.setsockopt(zmq.RCVTIMEO, max(1, int(self.timeout_s * 1000)))
        if self.server_public_key is not None:
            public, secret = self.client_keys or zmq.curve_keypair()
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self.server_public_key, public, secret
        sock.connect(self.endpoint)
        self.socket = sock

    def close(self) -> None:
        if self.socket is not None:
            self._link.close()
            self.socket.close(linger=0)
            self.socket = None
        self._parked = False

    def _park(self) -> None:
        """No connection took a request: the socket goes until the next request. A server that refuses our
        handshake (a wrong key) is otherwise tried ten times a second for as long as the client sits idle, each
        try an event queued on the connection's monitor (client_link.py), unread until the next call."""
        self.close()
        self._parked = True

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
        unavailable = ServerUnavailable(f"no connection to {self.endpoint} took the request within "
                                        f"{self.timeout_s:g} s")
        if self.socket is None and self._parked:
            self._connect()
        if not self._link.up_within(self.timeout_s):
            raise unavailable
        try:
            self.socket.send(p.pack({"id": rid, "type": kind, **{k: v for k, v in fields.items() if v is not None}}))
        except zmq.Again as exc:
            raise unavailable from exc
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
            if _ends(frame):
                self._open.discard(request_id)
            return frame
        deadline = time.perf_counter() + (self.timeout_s if timeout_s is None else timeout_s)
        if self.socket is None:  # parked, or closed: nothing can arrive
            time.sleep(max(0.0, deadline - time.perf_counter()))
            return None
        while True:
            self._link.read_events()
            left = deadline - time.perf_counter()
            # slices of 200 ms: on Windows Ctrl-C does not interrupt libzmq's poll, only Python between calls
            if left <= 0 or not self.socket.poll(min(int(left * 1000) + 1, 200), zmq.POLLIN):
                if time.perf_counter() >= deadline:
                    return None
                continue
            try:
                frame = msgpack.unpackb(self.socket.recv(), raw=False)
            except (ValueError, msgpack.UnpackException):
                continue  # not a frame of this protocol
            if not isinstance(frame, dict) or not isinstance(frame.get("id"), (str, type(None))):
                continue
            rid = frame.get("id")
            if rid == request_id:
                if _ends(frame):
                    self._open.discard(rid)
                return frame
            if rid is None and frame.get("type") == "error":
                return frame  # the server could not read our request's id: this is about the one we sent
            if rid is None:
                continue
            if rid in self._abandoned:  # nobody reads it: its frames go, its end frees its id
                if _ends(frame):
                    self._abandoned.discard(rid)
                    self._open.discard(rid)
                continue
            if rid not in self._inbox and len(self._inbox) >= MAX_INBOX_IDS:
                self._inbox.popitem(last=False)  # the longest unread: most likely forgotten by its caller
            # a request's deltas past 4096 unread drop its oldest; its terminal frame, the newest, stays
            self._inbox.setdefault(rid, collections.deque(maxlen=4096)).append(frame)

    def _still_holds(self, sent_at: float) -> bool:
        """Whether the server answers a `health` request on this connection within the timeout and has been
        up since `sent_at` (monotonic), so that it still holds a request sent then: a server that restarted
        since has lost it, although ZeroMQ reconnected the socket to the new one by itself. Frames of other
        requests that arrive meanwhile wait in the inbox; a late answer is dropped."""
        hid = self.new_id()
        if not self._try_send("health", hid):
            return False
        frame = self.receive(hid)
        if frame is None:
            self._abandoned.add(hid)
            return False
        uptime = frame.get("uptime_s")
        # uptime_s is rounded to 0.1 s; the answer's way back makes our side of the comparison a little longer
        return not isinstance(uptime, (int, float)) or uptime >= time.perf_counter() - sent_at - 0.2

    def _refused_here(self, kind: str, rid: str, fields: dict) -> None:
        """Raise the error the server would answer for this request, before it is sent: an error the server
        could not tie to its id (a request over 64 KiB, say) would name no request, and be taken for another's."""
        if kind in SESSION_REQUESTS:
            try:
                p.decode(p.pack({"id": rid, "type": kind, **{k: v for k, v in fields.items() if v is not None}}))
            except p.ProtocolError as exc:
                raise ParleyError(exc.code, str(exc), rid) from None

    def _send_first(self, kind: str, rid: str, fields: dict) -> int:
        """Send a request, reconnecting while no connection takes it; the tries left for resending."""
        self._inbox.pop(rid, None)  # frames of an earlier request under this id (it ended) are not this one's
        tries = self.retries
        while not self._try_send(kind, rid, **fields):
            if tries == 0:
                self._park()
                raise ServerUnavailable(f"no connection to {self.endpoint} took the request after "
                                        f"{self.retries + 1} tries of {self.timeout_s:g} s")
            tries -= 1
            self._connect()
        if kind not in ANSWERED_AT_ONCE:
            self._open.add(rid)
        return tries

    def _frames(self, kind: str, rid: str, fields: dict, limit_s: float, tries: int) -> Iterator[dict[str, Any]]:
        """The frames of a request just sent (`tries`: resends left), up to its terminal one (an error frame
        raises ParleyError). Silence asks the server whether it is there: if so the request is slow and still
        waited for (up to limit_s); if not, it is sent again on a fresh connection, while it has not sent a
        frame yet."""
        sent_at, generation = time.perf_counter(), self._generation
        give_up, heard, wait_s = sent_at + limit_s, False, self.timeout_s
        finished = False
        try:
            yield None  # primed by the caller: from here on, closing this generator runs the `finally` below
            while True:
                frame = self.receive(rid, wait_s)
                if frame is None:
                    replaced = generation != self._generation  # another request reconnected meanwhile
                    if not replaced and kind not in ANSWERED_AT_ONCE and self._still_holds(sent_at):
                        if time.perf_counter() < give_up:
                            wait_s = max(self.timeout_s, PROBE_EVERY_S)
                            continue  # queued or reasoning: the server answers by the deadline
                        raise ServerUnavailable(f"{kind} {rid!r} got no answer from {self.endpoint} within "
                                                f"{limit_s:g} s, although the server answers")
                    if heard:
                        raise ServerUnavailable(f"the {kind} stream from {self.endpoint} stopped (the server "
                                                "went silent, restarted, or the connection was replaced)")
                    if tries == 0:
                        raise ServerUnavailable(f"no answer from {self.endpoint} after {self.retries + 1} tries")
                    tries -= 1
                    if not replaced:
                        self._connect()  # lazy pirate: the old socket may hold a dead connection
                    tries = min(tries, self._send_first(kind, rid, fields))
                    sent_at, generation = time.perf_counter(), self._generation
                    give_up, wait_s = sent_at + limit_s, self.timeout_s
                    continue
                heard = True
                if _ends(frame):
                    finished = True
                    yield _terminal(frame)
                    return
                yield frame
        finally:
            if not finished and rid in self._open:
                self._abandon(rid)

    def _abandon(self, rid: str) -> None:
        """Nobody reads this request any more: cancel it (a reply stops, adding no turn) and drop its frames."""
        queued = self._inbox.pop(rid, None)
        if queued and _ends(queued[-1]):
            self._open.discard(rid)  # it had ended: nothing to cancel
            return
        if self.socket is None:  # the client was closed: nothing can be cancelled or read any more
            return
        self._abandoned.add(rid)
        cid = self.new_id()
        if not self._link.up_within(0):  # never waits: a connection that is down has nothing to cancel
            return
        try:
            self.socket.send(p.pack({"id": cid, "type": "cancel", "target": rid}), zmq.NOBLOCK)
        except zmq.ZMQError:
            return
        self._abandoned.add(cid)
        self._open.add(cid)

    def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        """One request, one terminal frame (an error frame raises ParleyError). A session request waits for
        the session's earlier replies (up to the longest deadline); see the class for retries."""
        if kind == "reply":
            raise ValueError("a reply streams several frames: use reply() or say()")
        rid = self.new_id()
        self._refused_here(kind, rid, fields)
        limit_s = (self.timeout_s if kind in ANSWERED_AT_ONCE else
                   RELOAD_WAIT_S + self.timeout_s if kind == "reload_profiles" else REQUEST_DEADLINE_S + self.timeout_s)
        frames = self._frames(kind, rid, fields, limit_s, self._send_first(kind, rid, fields))
        next(frames)  # primed
        return next(frames)

    # ---- requests ---------------------------------------------------------------------------

    def reply(self, npc: str, text: str, session: str | None = None, speaker: str | None = None,
              state: dict[str, Any] | None = None, deadline_ms: float | None = None, stream: bool = True,
              sampling: dict[str, Any] | None = None, request_id: str | None = None,
              stream_unit: str | None = None) -> Iterator[dict[str, Any]]:
        """Frames of one reply: `delta` and `action` frames, then the `done` frame. Error frames raise
        ParleyError. Deltas are whole sentences (or whitespace between them), or tokens as decoded with
        stream_unit="token". The request is sent now, before the first frame is read, so it can be cancelled
        at once; dropping the iterator before its end cancels the reply. A request_id still in flight on
        this client is refused (ValueError): the server would refuse it too, under the same id."""
        rid = request_id or self.new_id()
        if rid in self._open:
            raise ValueError(f"request id {rid!r} is still in flight on this connection")
        fields = dict(npc=npc, text=text, session=session, speaker=speaker, state=state, deadline_ms=deadline_ms,
                      stream=stream, sampling=sampling, stream_unit=stream_unit)
        self._refused_here("reply", rid, fields)
        limit_s = (deadline_ms / 1000 if deadline_ms else PROFILE_DEADLINE_S) + self.timeout_s
        frames = self._frames("reply", rid, fields, limit_s, self._send_first("reply", rid, fields))
        next(frames)  # primed: dropped unread, it is closed and cancels the reply
        return frames

    def say(self, npc: str, text: str, **kw: Any) -> dict[str, Any]:
        """The whole reply at once: the `done` frame (text, stats, actions)."""
        frames = list(self.reply(npc, text, **kw))
        return frames[-1]

    def cancel(self, request_id: str) -> dict[str, Any]:
        """Cancel a request in flight on this connection: `found` true, and its stream ends with a `cancelled`
        error (`shutting_down` while the server stops), perhaps after a few more frames; false, and it had
        already ended (its terminal frame is on its way) or the id is unknown. Call from the reading thread."""
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


def _ends(frame: dict[str, Any]) -> bool:
    """Whether the frame is its request's last (docs/protocol.md: exactly one `done` or `error`)."""
    return frame.get("type") in ("done", "error")


def _terminal(frame: dict[str, Any]) -> dict[str, Any]:
    if frame.get("type") == "error":
        raise ParleyError(frame.get("code", "internal"), frame.get("message", ""), frame.get("id"))
    return frame
