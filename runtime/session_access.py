"""Who may touch a session: the client that holds its token, or the allow-listed key that made it.

A session is made by the first reply that names it, or by import_session. Its token is the one that
request brought (a client may make up its own, so it can send several requests before the first
answer), or else a random one from the server; every `done` of the session says it (`session_token`).
A later request that names the session must bring the token, or come from the CurveZMQ key that made
the session when the server checks client keys. Anything else is refused `forbidden` and changes
nothing: another client cannot read (export), overwrite (import), reset or continue a session it does
not hold.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from runtime.errors import Forbidden

TOKEN_BYTES = 16  # 128 bits: not guessable, 32 hex characters on the wire


@dataclass(frozen=True)
class Owner:
    token: str
    client_key: str | None = None  # the allow-listed key that made the session, if any

    @classmethod
    def new(cls, client_key: str | None, token: str | None = None) -> "Owner":
        """A new session's owner: the token its first request brought, or a random one."""
        return cls(token if isinstance(token, str) and token else secrets.token_hex(TOKEN_BYTES), client_key)

    def allows(self, token: str | None, client_key: str | None) -> bool:
        if client_key is not None and client_key == self.client_key:
            return True
        return token is not None and hmac.compare_digest(token.encode(), self.token.encode())


# What the engine's Python API passes for `token`: the game's own process may touch any session.
TRUSTED = object()


def check(owner: Owner | None, npc: str, session_id: str, token, client_key: str | None) -> None:
    """Forbidden unless the caller holds the session (a session that does not exist is anyone's)."""
    if owner is None or token is TRUSTED or owner.allows(token, client_key):
        return
    what = "a wrong session_token" if token else "no session_token"
    raise Forbidden(f"session {session_id!r} of {npc!r} belongs to another client: this request brought {what}. "
                    "Send the session_token the session's replies and import_session returned (keep it in the "
                    "save with the session blob)")
