"""The NPCs' prefixes: each NPC's fixed prompt (system and developer messages: persona, knowledge, style,
actions), run once and kept, so that a reply runs only its own turn.

Up to MAX_PREFIX_CACHES are kept, the one used longest ago forgotten first. A prefix not kept runs
  - ahead, a piece at a time, while the server's worker has nothing else to do (`warm_next`): after the
    server starts, and when a profile changes;
  - as the start of a reply's prompt, in the batch's chunks between decode steps, kept where it ends
    (`keep_from`);
  - or, for a reply that could not wait for it (it said its fallback line, or ran out of time half way),
    asked for (`ask`): the batch runs it in what its chunks leave between decode steps, before any warm-up,
    so that the NPC's next reply finds it even on a server that is never idle.
Never whole in one run while replies are live: that paused every one of them for all of it.

Only the server's worker thread touches this, except `forget_failures` (a profile reload).
"""
from __future__ import annotations

import collections
import logging
from typing import Callable, Mapping

import numpy as np

from runtime.context_fit import npc_prefix
from runtime.npc import Npc
from runtime.session import KvCache, ModelSession
from runtime.tokenizer import HarmonyTokenizer

log = logging.getLogger(__name__)

MAX_PREFIX_CACHES = 64  # NPC prefixes whose KV is kept (one per NPC and persona version)
MAX_ASKED = 8  # prefixes asked for and not yet run: past this the oldest ask is dropped (its NPC asks again)


class PrefixKey(tuple):
    """A prefix's ids as a dict key that hashes them once: the scheduler asks whether each queued reply's
    NPC prefix is kept, every step (hashing 2,000 ids took 15 us a time). One object per profile version,
    so a lookup finds its own key and compares no ids either."""

    def __new__(cls, ids):
        key = super().__new__(cls, ids)
        key._hash = tuple.__hash__(key)  # equal to a plain tuple's: either finds the other's entry
        return key

    def __hash__(self) -> int:
        return self._hash


def as_key(ids) -> PrefixKey:
    return ids if isinstance(ids, PrefixKey) else PrefixKey(ids)


class PrefixCaches:
    def __init__(self, session: ModelSession, tok: HarmonyTokenizer, run_model: Callable[..., object]):
        self.session, self.tok, self.run_model = session, tok, run_model
        self._kept: collections.OrderedDict[PrefixKey, KvCache] = collections.OrderedDict()  # oldest use first
        self._keys: dict[int, tuple[Npc, PrefixKey]] = {}  # id(npc) -> (npc, its prefix)
        self._unwarmable: set[PrefixKey] = set()  # prefixes whose run ahead failed
        self._all_warm: Mapping[str, Npc] | None = None  # the NPCs whose prefixes all ran ahead (or failed)
        self._asked: collections.OrderedDict[PrefixKey, None] = collections.OrderedDict()
        self._running: tuple[PrefixKey, KvCache, int] | None = None  # a prefix run in pieces: key, KV, done

    # ---- what is kept ---------------------------------------------------------------------------

    def key(self, npc: Npc) -> PrefixKey:
        """The NPC's prefix, tokenized once per profile version."""
        kept = self._keys.get(id(npc))
        if kept is None or kept[0] is not npc:
            if len(self._keys) >= 4 * MAX_PREFIX_CACHES:
                self._keys.clear()
            kept = self._keys[id(npc)] = (npc, PrefixKey(npc_prefix(self.tok, npc)))
        return kept[1]

    def cold_tokens(self, npc: Npc) -> int:
        """The NPC prefix's tokens when it is not kept, else 0."""
        key = self.key(npc)
        return 0 if key in self._kept else len(key)

    def kept(self, ids) -> KvCache | None:
        """The KV of a prefix when it is kept (then it becomes the most recently used), else None."""
        cache = self._kept.get(ids)
        if cache is not None:
            self._kept.move_to_end(ids)  # the entry keeps its own key object
        return cache

    def __contains__(self, ids) -> bool:
        return ids in self._kept

    def __len__(self) -> int:
        return len(self._kept)

    def _keep(self, key: PrefixKey, cache: KvCache) -> None:
        if key in self._kept:
            self._kept.move_to_end(key)
            return
        if len(self._kept) >= MAX_PREFIX_CACHES:
            self._kept.popitem(last=False)  # the one used longest ago
            self._all_warm = None  # the idle worker looks again
        self._kept[key] = cache
        self._asked.pop(key, None)

    def keep_from(self, ids, cache: KvCache) -> None:
        """A reply's prompt ran the prefix `ids` as its start, and `cache` holds exactly that now: keep a copy
        for the NPC's next replies (unless another reply kept it meanwhile)."""
        key = as_key(ids)
        if key in self._kept:
            return
        kept = self.session.new_cache(length=len(key))
        kept.copy_rows_from(cache, len(key))
        self._keep(key, kept)

    def run_whole(self, ids) -> KvCache:
        """A prefix's KV: the kept one, or run now, in one run, and kept (tests and tools: a server never runs
        one whole while replies are live)."""
        key = as_key(ids)
        cache = self.kept(key)
        if cache is None:
            cache = self.session.new_cache(length=len(key))
            self.run_model(np.array([list(key)]), cache, prefill=True)
            self._keep(key, cache)
        return cache

    # ---- what is still to run -------------------------------------------------------------------

    def ask(self, ids, cache: KvCache | None = None, done: int = 0) -> None:
        """A reply needed this prefix and could not keep it: run it soon, between decode steps. `cache`
        holding its first `done` tokens (a reply stopped half way) is taken as a start when nothing else
        is being run."""
        key = as_key(ids)
        if key in self._kept:
            return
        self._asked[key] = None
        self._asked.move_to_end(key)
        while len(self._asked) > MAX_ASKED:
            self._asked.popitem(last=False)
        if cache is not None and done and (self._running is None or self._running[0] not in self._asked):
            start = self.session.new_cache(length=len(key))
            start.copy_rows_from(cache, done)
            self._running = (key, start, done)

    def asked(self) -> bool:
        return bool(self._asked)

    def warm_next(self, npcs: Mapping[str, Npc], max_tokens: int, asked_only: bool = False) -> int:
        """Run up to `max_tokens` of the next prefix not kept: one asked for first; else (unless `asked_only`)
        the one begun, or the next of `npcs`' not yet run. Returns the tokens it ran (or tried: a prefix
        whose run fails is logged and left to its NPC's next reply), 0 with nothing to do."""
        key = self._next(npcs, asked_only)
        if key is None:
            return 0
        if self._running is None or self._running[0] != key:
            self._running = (key, self.session.new_cache(length=len(key)), 0)
        _, cache, done = self._running
        n = min(max_tokens, len(key) - done)
        try:
            self.run_model(np.array([list(key[done:done + n])]), cache, prefill=True)
        except Exception:  # noqa: BLE001 - only a head start: its next reply runs it, or says what fails
            self._running = None
            self._asked.pop(key, None)
            self._unwarmable.add(key)
            log.warning("an NPC prefix (%d tokens) could not be run ahead", len(key), exc_info=True)
            return n
        if done + n < len(key):
            self._running = (key, cache, done + n)
        else:
            self._running = None
            self._keep(key, cache)
        return n

    def _next(self, npcs: Mapping[str, Npc], asked_only: bool) -> PrefixKey | None:
        for key in list(self._asked):
            if key in self._kept or key in self._unwarmable:
                del self._asked[key]
        if self._asked:  # the one begun, if it is one of them, else the oldest ask
            running = self._running[0] if self._running is not None else None
            return running if running in self._asked else next(iter(self._asked))
        if asked_only:
            return None
        if self._running is not None and self._running[0] not in self._kept:
            return self._running[0]
        if self._all_warm is npcs:  # a profile reload swaps in a new mapping: this one is all warm or not
            return None
        for npc in list(npcs.values())[:MAX_PREFIX_CACHES]:
            key = self.key(npc)
            if key not in self._kept and key not in self._unwarmable:
                return key
        self._all_warm = npcs
        return None

    def forget_failures(self) -> None:
        """Profiles changed: prefixes whose run failed are tried again (the set would otherwise only grow)."""
        self._unwarmable = set()
        self._all_warm = None
