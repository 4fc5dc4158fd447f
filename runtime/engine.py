"""The engine: the model, the tokenizer, the NPCs and their conversations' KV caches.

    engine = Engine("models/demo", {"brenna": npc})
    for event in engine.reply(ReplyRequest(npc="brenna", text="How much for a sword?", session_id="p1")):
        ...  # FinalDelta (stream to the game), NpcAction, then one ReplyResult

A reply is a runtime/reply.py Reply, driven by a runtime/decode_batch.py DecodeBatch; `reply()` here
runs one on its own (a batch of one), the server's scheduler runs many in one batch.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from runtime import session_access
from runtime.actions import NpcAction  # noqa: F401 - part of the engine's API
from runtime.cancel_flag import CancelFlag
from runtime.context_fit import ContextFit
from runtime.conversations import WINDOW_SNAPSHOTS, Conversation, ConversationStore, WindowSnapshot
from runtime.cost_model import CostModel
from runtime.decode_batch import DecodeBatch
from runtime.errors import (BadRequest, EngineError, PromptTooLong, SessionEvicted,  # noqa: F401
                            UnknownNpc, UnknownSession)
from runtime.harmony import Turn
from runtime.npc import Npc
from runtime.prefix_caches import PrefixCaches, PrefixKey
from runtime.prompt import fit_tokens, user_content  # noqa: F401
from runtime.reply import FinalDelta, Reply, ReplyResult, ReplyStats, Sink  # noqa: F401
from runtime.requests import ReplyRequest
from runtime.session import KvCache, ModelSession, SessionOptions, StepOutput
from runtime.session_blob import MAX_TURNS
from runtime.tokenizer import HarmonyTokenizer

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class EngineOptions:
    session: SessionOptions = SessionOptions()
    max_sessions: int = 256
    max_cache_bytes: int = 1 << 30
    min_cache_length: int = 256
    # None: sample from the graph's top-K candidates on a GPU (the full logits never leave it), and
    # from the full logits on the CPU (no copy to save). True/False force one way.
    sample_from_candidates: bool | None = None


class Engine:
    def __init__(self, model_folder: Path | str, npcs: Mapping[str, Npc], options: EngineOptions = EngineOptions(),
                 cost_model: CostModel | None = None):
        self.options = options
        self.session = ModelSession(model_folder, options.session)
        self.tok = HarmonyTokenizer(self.session.folder, self.session.manifest)
        self.npcs: dict[str, Npc] = dict(npcs)
        self.cost = cost_model or CostModel.measure(self.session)
        self.store = ConversationStore(options.max_sessions, options.max_cache_bytes)
        # through the attribute, so that a run_model replaced on the engine (tests, tools) runs prefixes too
        self.prefixes = PrefixCaches(self.session, self.tok, lambda *args, **kw: self.run_model(*args, **kw))
        self.fit = ContextFit(self.tok, self.session.max_context)
        self.lock = threading.Lock()  # held while the model runs
        self._solo_lock = threading.Lock()  # reply() runs one reply at a time
        log.info("engine ready: %d NPCs; cost model %.2f ms/prompt token, %.2f ms/decode token",
                 len(self.npcs), self.cost.prefill_ms_per_token, self.cost.decode_ms_per_token)

    # ---- NPCs -------------------------------------------------------------------------------------

    def set_npcs(self, npcs: Mapping[str, Npc]) -> None:
        """Swap in new profiles without waiting for a reply in flight (it keeps the profile it started
        with). Conversations keep their history; caches re-prefill only what the new persona changed.
        A prefix that could not be run ahead is tried again."""
        self.prefixes.forget_failures()  # first: the worker may look for prefixes to run between the two
        self.npcs = dict(npcs)

    def npc(self, name: str) -> Npc:
        """The NPC's current profile, or UnknownNpc naming the known ones."""
        npc = self.npcs.get(name)
        if npc is None:
            raise UnknownNpc(f"unknown NPC {name!r}; known: {', '.join(sorted(self.npcs)) or 'none'}")
        return npc

    # ---- replies ----------------------------------------------------------------------------------

    def new_reply(self, req: ReplyRequest, cancel: threading.Event, sink: Sink) -> Reply:
        """A reply for a DecodeBatch to drive (UnknownNpc, BadRequest if it cannot be one)."""
        npc = self.npc(req.npc)  # even for a resolved request: the NPC may be gone since (a reload)
        return Reply(self, req if req.resolved else req.with_npc_defaults(npc), cancel, sink)

    def reply(self, req: ReplyRequest, cancel: threading.Event | None = None) -> Iterator[Any]:
        """Events: FinalDelta*, NpcAction*, then exactly one ReplyResult. One reply on its own: a batch
        of one (it decodes in its own cache); replies asked for from several threads take turns. A
        caller that stops reading early cancels the reply (`cancel` is set)."""
        cancel = cancel or CancelFlag()
        events: list[Any] = []
        with self._solo_lock:
            batch = DecodeBatch(self, max_batch=1)
            try:
                batch.start(req, cancel, events.append)
                while True:
                    while events:
                        event = events.pop(0)
                        if isinstance(event, BaseException):
                            raise event
                        yield event
                    if not len(batch):
                        # with no server to run it when idle: an NPC prefix this reply asked for (it fell
                        # back for want of it) runs now, after its result
                        while self.warm_next_prefix(1 << 30, asked_only=True):
                            pass
                        return
                    batch.step()
            finally:
                if len(batch):  # abandoned mid-reply: it ends at its next step, its turn not kept
                    cancel.set()
                    batch.run_all()

    # ---- the model ------------------------------------------------------------------------------

    def run_model(self, ids: np.ndarray, cache: KvCache, prefill: bool = False, first_row: int = 0,
                  waited_ms: float = 0.0) -> StepOutput:
        """Append `ids` (rows x tokens) to `cache`'s rows from `first_row` on and return the logits after
        them, keeping the cost model current (a decode step counts `waited_ms` its rows spent on runs just
        before it, as they saw it)."""
        with self.lock:
            start = time.perf_counter()
            out = self.session.step(ids, cache, first_row)
            ms = (time.perf_counter() - start) * 1000
        if prefill:
            self.cost.observe_prefill(ids.shape[1], ms)
        else:
            self.cost.observe_decode(ms + waited_ms)
        return out

    # ---- KV caches --------------------------------------------------------------------------------

    def prepare_cache(self, conv: Conversation, prompt: list[int], prefix: PrefixKey, reserve: int,
                      reuse: int) -> int:
        """Give `conv` a cache big enough for the prompt and `reserve` more rows, holding the longest
        reusable start of `prompt`: `reuse` tokens of its own KV, or at least the NPC's prefix when that is
        kept. Returns how many prompt tokens it holds."""
        need = len(prompt) + reserve
        cache = conv.cache
        if cache is not None and reuse and not cache.can_truncate(0, reuse):  # reusable() chose a snapshot
            cache.copy_window_from(conv.snapshot_at(reuse).cache)
        if cache is None or cache.length < need:
            bigger = self.cache_for(need)
            if cache is not None and reuse:
                bigger.copy_rows_from(cache, reuse)
            cache = bigger
        kept = self.prefixes.kept(prefix) if reuse < len(prefix) else None
        if kept is not None:
            cache.copy_rows_from(kept, len(prefix))
            reuse = len(prefix)
        # else a cold prefix runs with the rest of the prompt, a chunk at a time between decode steps, and is
        # kept when it has run (PrefixCaches.keep_from): run whole here, it paused every live reply for all of it
        cache.lengths[:] = reuse
        conv.cache = cache
        return reuse

    @staticmethod
    def reusable(conv: Conversation, reuse: int) -> int:
        """How many of a prompt's first tokens `conv`'s cache can start from, `reuse` being those it holds in
        common with it: all of them, unless its sliding layers have evicted positions they would need (a window
        cache); then the latest kept prompt's end the prompt passes through (a window snapshot), else none
        (the NPC's prefix then)."""
        cache = conv.cache
        if cache is None or cache.can_truncate(0, reuse):
            return reuse
        return max((len(snap.tokens) for snap in conv.held_snapshots() if len(snap.tokens) <= reuse), default=0)

    def snapshot_window(self, conv: Conversation) -> None:
        """Keep `conv`'s sliding layers as they are now, after conv.tokens (its prompt), for a later turn. Of its
        older snapshots it keeps those its prompt passes through (not a cancelled turn's), up to
        WINDOW_SNAPSHOTS in all; the first one let go gives its buffer."""
        cache = conv.cache
        if conv.session_id is None or cache is None or not cache.window or cache.lengths[0] != len(conv.tokens):
            return
        keep = [snap for snap in conv.held_snapshots() if snap.tokens != conv.tokens]
        spare = [snap for snap in conv.window_snapshots if snap not in keep] + keep[WINDOW_SNAPSHOTS - 1:]
        buffer = spare[0].cache if spare else self.session.new_cache(length=1)
        buffer.copy_window_from(cache)
        conv.window_snapshots = [WindowSnapshot(buffer, list(conv.tokens))] + keep[:WINDOW_SNAPSHOTS - 1]

    def prefix_key(self, npc: Npc) -> PrefixKey:
        return self.prefixes.key(npc)

    def prefix_ids(self, npc: Npc) -> list[int]:
        """The NPC's prefix, tokenized once per profile version."""
        return list(self.prefixes.key(npc))

    def prefix_cache(self, ids: list[int]) -> KvCache:
        """A prefix's KV: the kept one, or run now, whole, and kept (tests and tools)."""
        return self.prefixes.run_whole(ids)

    def cold_prefix_tokens(self, npc: Npc | str) -> int:
        """The tokens of the NPC's prefix when its KV is not kept (its next reply runs them as part of its
        prompt), else 0; 0 for an unknown NPC (its reply is refused before anything runs)."""
        npc = self.npcs.get(npc) if isinstance(npc, str) else npc
        return 0 if npc is None else self.prefixes.cold_tokens(npc)

    def warm_prefixes(self) -> int:
        """Run every NPC's fixed prefix not yet run, now, whole (tests and tools; a server runs them a piece
        at a time when its worker is idle: warm_next_prefix). Returns how many it ran or tried."""
        tried = 0
        while self.warm_next_prefix(1 << 30):  # one prefix a call: all of it, or the rest of one begun in pieces
            tried += 1
        return tried

    def warm_next_prefix(self, max_tokens: int, asked_only: bool = False) -> int:
        """Run up to `max_tokens` of the next NPC prefix not kept (PrefixCaches.warm_next): the server's idle
        work, and, `asked_only`, what a decode batch's chunks leave between steps. Returns the tokens run."""
        return self.prefixes.warm_next(self.npcs, max_tokens, asked_only)

    def new_pool(self, rows: int) -> KvCache:
        """A decode batch's pool: `rows` rows of the full context."""
        return self.session.new_cache(batch=rows)

    def cache_for(self, need: int) -> KvCache:
        length = self.options.min_cache_length
        while length < need:
            length *= 2
        return self.session.new_cache(length=min(length, self.session.max_context))

    # ---- sessions -------------------------------------------------------------------------------

    # Session operations: `token` and `client_key` are a client's (session_access.py); the default is
    # the game's own process, which may touch any session.
    def reset_session(self, npc: str, session_id: str, token=session_access.TRUSTED,
                      client_key: str | None = None) -> bool:
        session_access.check(self.store.owner(npc, session_id), npc, session_id, token, client_key)
        self.store.forget_eviction(npc, session_id)
        return self.store.drop(npc, session_id)

    def export_session(self, npc: str, session_id: str, token=session_access.TRUSTED,
                       client_key: str | None = None) -> list[Turn]:
        session_access.check(self.store.owner(npc, session_id), npc, session_id, token, client_key)
        conv = self.store.get(npc, session_id)
        if conv is None:
            if (npc, session_id) in self.store.evicted:
                raise SessionEvicted(f"session {session_id!r} of {npc!r} was evicted (too many sessions); "
                                     "export sessions you want to keep before the limit is reached")
            raise UnknownSession(f"no session {session_id!r} with NPC {npc!r}")
        return list(conv.history)

    def import_session(self, npc: str, session_id: str, history: list[Turn], token=session_access.TRUSTED,
                       client_key: str | None = None, holder: bytes | None = None) -> str:
        """Replace the session with `history`; returns its token (the one it had, for its holder)."""
        self.npc(npc)
        if len(history) > MAX_TURNS:
            raise BadRequest(f"a session keeps at most {MAX_TURNS} turns; got {len(history)}")
        owner = self.store.owner(npc, session_id)
        session_access.check(owner, npc, session_id, token, client_key)
        owner = owner or session_access.Owner.new(client_key, token if isinstance(token, str) else None)
        self.store.drop(npc, session_id)
        self.store.put(Conversation(npc, session_id, history=list(history), owner=owner, holder=holder))
        return owner.token

