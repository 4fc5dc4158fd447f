"""What can go wrong with a request past the wire checks, each carrying the protocol error code it is
answered with (docs/protocol.md lists them)."""
from __future__ import annotations

from runtime import protocol


class EngineError(Exception):
    code = protocol.INTERNAL


class UnknownNpc(EngineError):
    code = protocol.UNKNOWN_NPC


class BadRequest(EngineError):
    code = protocol.BAD_MESSAGE


class PromptTooLong(EngineError):
    code = protocol.PROMPT_TOO_LONG


class SessionEvicted(EngineError):
    code = protocol.SESSION_EVICTED


class UnknownSession(EngineError):
    code = protocol.UNKNOWN_SESSION


class Forbidden(EngineError):
    code = protocol.FORBIDDEN
