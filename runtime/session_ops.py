"""The session operations a game sends (reset, export, import), run by the scheduler in order with
the replies of the same session. Exported sessions are signed blobs (runtime/session_blob.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime import session_access, session_blob
from runtime.requests import SessionRequest

if TYPE_CHECKING:
    from runtime.engine import Engine


class SessionOps:
    def __init__(self, engine: "Engine", blob_key: bytes):
        self.engine, self.blob_key = engine, blob_key

    def __call__(self, req: SessionRequest) -> dict[str, Any]:
        """The fields of the operation's `done` frame; EngineError or BlobError (each with its protocol
        error code) when it cannot be done."""
        if req.type == "import_session" or self.engine.store.get(req.npc, req.session_id) is None:
            # unknown_npc first, as for a reply (an outside client got unknown_session, existed: false or a
            # blob error for an NPC that does not exist); a session of an NPC a reload removed can still be
            # exported or reset
            self.engine.npc(req.npc)
        who = dict(token=req.session_token if req.from_wire else session_access.TRUSTED, client_key=req.client_key)
        if req.type == "reset_session":
            return {"existed": self.engine.reset_session(req.npc, req.session_id, **who)}
        if req.type == "export_session":
            history = self.engine.export_session(req.npc, req.session_id, **who)
            return {"blob": session_blob.dump(req.npc, req.session_id, history, self.blob_key),
                    "turns": len(history)}
        if req.type == "import_session":
            history = session_blob.load(req.blob, req.npc, self.blob_key)
            token = self.engine.import_session(req.npc, req.session_id, history, **who, holder=req.holder)
            return {"turns": len(history), "session_token": token}
        raise ValueError(f"not a session operation: {req.type}")
