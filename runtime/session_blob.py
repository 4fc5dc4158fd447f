"""The opaque blob a game keeps in its save file so an NPC remembers the player after loading.

It holds the conversation as harmony keeps it (player lines and final answers), not KV
caches: those are rebuilt on the next reply, so a blob survives model and driver updates.
"""
from __future__ import annotations

import msgpack

from runtime.harmony import Turn
from runtime.protocol import MAX_BLOB_BYTES

FORMAT = "parley-session"
VERSION = 1


class BlobError(ValueError):
    pass


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
    if data.get("v") != VERSION:
        raise BlobError(f"session blob version {data.get('v')!r} is not supported (this server reads {VERSION})")
    if data.get("npc") != npc:
        raise BlobError(f"the session blob belongs to NPC {data.get('npc')!r}, not {npc!r}")
    history = data.get("history")
    if not isinstance(history, list) or not all(
            isinstance(t, list) and len(t) == 2 and all(isinstance(x, str) for x in t) for t in history):
        raise BlobError("the session blob's history is malformed")
    return [Turn(user, reply) for user, reply in history]
