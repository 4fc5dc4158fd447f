"""What a client hears: every event of a job as a wire frame, every error through one helper.

Called on the worker thread for a job's events (deltas, actions, the result, a refusal, an error), and
on the main thread for what it answers itself; both count errors in the server's counters.
"""
from __future__ import annotations

import collections
import logging
import threading
import traceback
from typing import Any

from runtime import protocol as p
from runtime.actions import NpcAction
from runtime.errors import EngineError
from runtime.reply import FinalDelta, ReplyResult
from runtime.scheduler import Job, Refusal, SessionDone
from runtime.session_blob import BlobError

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error; the server log has the details"


class Answers:
    def __init__(self, counters: collections.Counter, debug_reasoning: bool = False, keep_reasoning: int = 0):
        self.counters, self.debug_reasoning = counters, debug_reasoning
        # the hidden reasoning of the last `keep_reasoning` replies, for a designers' tool in this process
        # (Parley Studio); never sent to clients
        self.keep_reasoning = keep_reasoning
        self._reasoning: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._lock = threading.Lock()

    def reasoning(self, request_id: str) -> str | None:
        """A kept reply's hidden reasoning (by its request id), or None."""
        with self._lock:
            return self._reasoning.get(request_id)

    def error(self, request_id: str | None, code: str, message: str) -> bytes:
        """The one way an error frame is made: counted under `error.<code>`."""
        self.counters.add(f"error.{code}")
        return p.error_frame(request_id, code, message)

    def failure(self, request_id: str | None, what: str, exc: BaseException) -> bytes:
        """An exception that ended a request: its own code if it carries one, else `internal` (logged)."""
        if isinstance(exc, (EngineError, BlobError)):
            return self.error(request_id, exc.code, str(exc))
        log.error("request %s (%s) failed:\n%s", p.loggable(request_id), what,
                  "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return self.error(request_id, p.INTERNAL, INTERNAL_MESSAGE)

    def for_event(self, job: Job, event: Any, stopping: bool) -> bytes | None:
        """The frame for one of a job's events (None: nothing to send, a delta of an unstreamed reply)."""
        rid = job.id
        if isinstance(event, FinalDelta):
            return p.frame(rid, "delta", text=event.text) if job.request.stream else None
        if isinstance(event, NpcAction):  # an unstreamed reply's actions are in its done frame only
            return p.frame(rid, "action", name=event.name, args=event.arguments) if job.request.stream else None
        if isinstance(event, ReplyResult):
            return self._result(job, event, stopping)
        if isinstance(event, SessionDone):
            return p.frame(rid, "done", **event.fields)
        if isinstance(event, Refusal):
            return self.error(rid, event.code, event.message)
        if isinstance(event, BaseException):
            return self.failure(rid, job.request.type, event)
        raise TypeError(f"not a job event: {event!r}")

    def _result(self, job: Job, result: ReplyResult, stopping: bool) -> bytes:
        st, rid = result.stats, job.id
        if st.finish_reason == "cancelled":
            return self.cancelled(rid, stopping)
        self.counters.add("replies")
        if st.deadline_met:  # counters hold only names that happened
            self.counters.add("deadline_met")
        token = {"session_token": result.session_token} if result.session_token else {}
        return p.frame(rid, "done", text=result.text, stats=st.to_dict(),
                       actions=[{"name": a.name, "args": a.arguments} for a in result.actions], **token)

    def cancelled(self, rid: str, stopping: bool, why: str = "cancelled by the client") -> bytes:
        """A cancelled request's last frame: `shutting_down` while the server stops, as the spec says."""
        if stopping:
            return self.error(rid, p.SHUTTING_DOWN, "the server is shutting down")
        return self.error(rid, p.CANCELLED, why)

    def log_result(self, job: Job, result: ReplyResult) -> None:
        """One line per finished reply (after its frame went out), and the hidden reasoning if asked."""
        st, rid = result.stats, job.id
        log.info("reply id=%s npc=%s session=%s ttft=%s total=%.0fms prompt=%d reused=%d reasoning=%d final=%d "
                 "cut=%s fallback=%s finish=%s deadline=%s", p.loggable(rid), st.npc,
                 p.loggable(job.request.session_id), "-" if st.ttft_ms is None else f"{st.ttft_ms:.0f}ms",
                 st.total_ms, st.prompt_tokens, st.reused_tokens, st.reasoning_tokens, st.final_tokens,
                 st.reasoning_cut, st.fallback_used, st.finish_reason, "met" if st.deadline_met else "MISSED")
        if self.debug_reasoning and result.reasoning:
            log.info("reasoning id=%s npc=%s: %s", p.loggable(rid), st.npc, result.reasoning)
        if self.keep_reasoning:
            with self._lock:
                self._reasoning[rid] = result.reasoning
                while len(self._reasoning) > self.keep_reasoning:
                    self._reasoning.popitem(last=False)
