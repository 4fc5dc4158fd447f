"""The opaque blob a game keeps in its save file so an NPC remembers the player after loading.

It holds the conversation as harmony keeps it (player lines and final answers), not KV
caches: those are rebuilt on the next reply, so a blob survives model and driver updates.
"""
from __future__ import annotations

import hashlib
import hmac

import msgpack

from runtime.harmony import Turn
from runtime.protocol import BAD_MESSAGE, MAX_BLOB_BYTES, TOO_LARGE, shown

FORMAT = "parley-session"
VERSION = 2  # 2: signed with the server's blob key (runtime/blob_key.py); 1 was unsigned
# A conversation keeps at most this many turns (the oldest go first); a blob with more is refused, so
# a forged save cannot make the engine render thousands of turns.
MAX_TURNS = 256


class BlobError(ValueError):
    def __init__(self, message: str, code: str = BAD_MESSAGE):
        super().__init__(message)
        self.code = code  # the protocol's error code for it


def dump(npc: str, session_id: str, history: list[Turn], key: bytes) -> bytes:
    """The blob: the conversation, signed (HMAC-SHA256) with the server's key."""
    body = msgpack.packb({"npc": npc, "session": session_id, "history": [[t.user, t.reply] for t in history]},
                         use_bin_type=True)
    blob = msgpack.packb({"format": FORMAT, "v": VERSION, "body": body, "mac": _mac(key, body)}, use_bin_type=True)
    while len(blob) > MAX_BLOB_BYTES and history:  # oldest turns go first, as in the context rule
        history = history[1:]
        blob = dump(npc, session_id, history, key)
    return blob


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, f"{FORMAT}/{VERSION}\0".encode() + body, hashlib.sha256).digest()


def load(blob: bytes, npc: str, key: bytes) -> list[Turn]:
    """The conversation a blob holds, if this server's key signed it; BlobError (with its protocol code)
    for anything else: a changed byte, a forged history, another server's save, an unsigned old one."""
    try:
        outer = msgpack.unpackb(blob, raw=False)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the same answer
        raise BlobError("the session blob is not one export_session produced (cannot decode it)") from exc
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise BlobError("the session blob is not one export_session produced")
    version = outer.get("v")
    if type(version) is not int or version != VERSION:  # not true, not 1.0: the integer
        if type(version) is int and version == 1:
            raise BlobError("the session blob is unsigned (from a Parley before 2026-11): this server loads only "
                            "blobs it signed; start the conversation afresh (reset_session)")
        raise BlobError(f"session blob version {shown(version)} is not supported (this server reads {VERSION})")
    body, mac = outer.get("body"), outer.get("mac")
    if not isinstance(body, bytes) or not isinstance(mac, bytes) or not hmac.compare_digest(mac, _mac(key, body)):
        raise BlobError("the session blob's signature does not match: the save was changed, or another server "
                        "(with another blob key) wrote it")
    data = msgpack.unpackb(body, raw=False)  # signed by this server's key: written by dump()
    if not isinstance(data, dict):
        raise BlobError("the session blob is not one export_session produced")
    if data.get("npc") != npc:
        raise BlobError(f"the session blob belongs to NPC {shown(data.get('npc'))}, not {npc!r}")
    history = data.get("history")
    if isinstance(history, list) and len(history) > MAX_TURNS:
        raise BlobError(f"the session blob holds {len(history)} turns; a session keeps at most {MAX_TURNS}",
                        TOO_LARGE)
    if not isinstance(history, list) or not all(
            isinstance(t, list) and len(t) == 2 and all(isinstance(x, str) for x in t) for t in history):
        raise BlobError("the session blob's history is malformed")
    return [Turn(user, reply) for user, reply in history]
