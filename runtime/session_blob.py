"""The opaque blob a game keeps in its save file so an NPC remembers the player after loading.

It holds the conversation as harmony keeps it (player lines and final answers), not KV
caches: those are rebuilt on the next reply, so a blob survives model and driver updates.
"""
from __future__ import annotations

import msgpack

from runtime.harmony import Turn
from runtime.protocol import BAD_MESSAGE, MAX_BLOB_BYTES, TOO_LARGE, shown

FORMAT = "parley-session"
VERSION = 1
# A conversation keeps at most this many turns (the oldest go first); a blob with more is refused, so
# a forged save cannot make the engine render thousands of turns.
MAX_TURNS = 256


class BlobError(ValueError):
    def __init__(self, message: str, code: str = BAD_MESSAGE):
        super().__init__(message)
        self.code = code  # the protocol's error code for it


def dump(npc: str, session_id: str, history: list[Turn]) -> bytes:
    blob = msgpack.packb({"format": FORMAT, "v": VERSION, "npc": npc, "session": session_id,
                          "history": [[t.user, t.reply] for t in history]}, use_bin_type=True)
    while len(blob) > MAX_BLOB_BYTES and history:  # oldest turns go first, as in the context rule
        history = history[1:]
        blob = dump(npc, session_id, history)
    return blob


def load(blob: bytes, npc: str) -> list[Turn]:
    try:
        data = msgpack.unpackb(blob, raw=False)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the same answer
        raise BlobError("the session blob is not one export_session produced (cannot decode it)") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BlobError("the session blob is not one export_session produced")
    if type(data.get("v")) is not int or data.get("v") != VERSION:  # not true, not 1.0: the integer
        raise BlobError(f"session blob version {shown(data.get('v'))} is not supported (this server reads {VERSION})")
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
