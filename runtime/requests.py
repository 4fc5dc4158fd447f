"""Requests as typed values: what `protocol.decode` makes of a wire map, and what the engine takes.

Past the wire edge nothing sees a raw dict. A reply request's NPC defaults (its deadline, its
sampling) are filled in once, by `with_npc_defaults`, when the request is admitted.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from runtime import deadlines

if TYPE_CHECKING:  # the wire edge (and the Python client through it) needs neither
    from runtime.npc import Npc
    from runtime.sampler import SamplingParams


@dataclass(frozen=True)
class ReplyRequest:
    npc: str
    text: str
    session_id: str | None = None  # None or "": a one-off reply, with no memory of earlier turns
    speaker: str = "Player"
    game_state: Mapping[str, Any] = field(default_factory=dict)
    deadline_ms: float | None = None  # None: the NPC's default
    sampling: "SamplingParams | None" = None  # None: the NPC's, with `sampling_overrides` applied
    request_id: str = ""
    received_at: float | None = None  # time.perf_counter() at arrival; the deadline counts from here
    stream: bool = True  # send the final channel as deltas (else only the done frame's text)
    stream_unit: str = "sentence"  # deltas of whole sentences, or "token" (runtime/speech.py)
    sampling_overrides: Mapping[str, float | int] = field(default_factory=dict)  # from the wire
    session_token: str | None = None  # proves the right to an existing session (runtime/session_access.py)
    client_key: str | None = None  # the caller's allow-listed CurveZMQ key, set by the server
    from_wire: bool = False  # a client's (checked for session ownership); the engine's Python API is the game's own
    # who sent it (the server's client: its key, address or connection), so that the session limit evicts the
    # sessions of whoever holds the most first; None: the game's own process (the engine's Python API)
    holder: bytes | None = None
    type: ClassVar[str] = "reply"

    @property
    def conversation(self) -> tuple[str, str | None]:
        """Which conversation it continues; a one-off reply belongs to none (None)."""
        return self.npc, self.session_id or None

    def with_npc_defaults(self, npc: "Npc") -> "ReplyRequest":
        """The request with everything it left to its NPC filled in, and its arrival time set: the one
        place an NPC's defaults are resolved, so the queue, the budget and the reply agree. (A request
        that brings its own `sampling` keeps it whole: overrides apply to the NPC's.)"""
        sampling = self.sampling or dataclasses.replace(npc.sampling, **self.sampling_overrides)
        return dataclasses.replace(
            self, deadline_ms=float(self.deadline_ms if self.deadline_ms is not None else npc.deadline_ms),
            sampling=sampling, sampling_overrides={},
            received_at=self.received_at if self.received_at is not None else time.perf_counter())

    @property
    def due(self) -> float:
        """When its deadline passes, in time.perf_counter() seconds (resolved requests only)."""
        return deadlines.due_at(self.received_at, self.deadline_ms)

    @property
    def resolved(self) -> bool:
        return self.deadline_ms is not None and self.sampling is not None and self.received_at is not None


@dataclass(frozen=True)
class SessionRequest:
    """reset_session, export_session or import_session: run in order with the session's replies."""
    type: str
    npc: str
    session_id: str
    request_id: str = ""
    blob: bytes | None = None  # import_session's
    session_token: str | None = None
    client_key: str | None = None
    from_wire: bool = False
    holder: bytes | None = None  # as a ReplyRequest's

    @property
    def conversation(self) -> tuple[str, str | None]:
        return self.npc, self.session_id


@dataclass(frozen=True)
class CancelRequest:
    target: str  # the id of the reply to cancel
    request_id: str = ""
    type: ClassVar[str] = "cancel"


@dataclass(frozen=True)
class QueryRequest:
    """health, stats, list_npcs, reload_profiles: answered at once by the server."""
    type: str
    request_id: str = ""


Request = ReplyRequest | SessionRequest | CancelRequest | QueryRequest
