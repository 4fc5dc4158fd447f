"""KV caches worth keeping: each NPC's fixed prefix, and each (NPC, session) conversation.

Reuse is exact: a cache holds the KV of exactly `tokens`, and a new prompt reuses the
longest common prefix and prefills only the rest. Memory is bounded (by count and bytes: least recently
used first, from the client that holds the most sessions).
"""
from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from runtime.harmony import Turn
from runtime.session import KvCache
from runtime.session_access import Owner


@dataclass
class WindowSnapshot:
    """A window cache's sliding layers as they were after `tokens` (a prompt's end), in a one-row cache: what
    a later turn goes back to, since those layers no longer hold the positions before their window."""
    cache: KvCache
    tokens: list[int]


# A conversation keeps its last two prompts' ends: a turn that is cancelled (the player spoke again) is not
# kept, so the next prompt passes through the end of the turn before it, not its own.
WINDOW_SNAPSHOTS = 2


@dataclass
class Conversation:
    npc: str
    session_id: str | None  # None: a one-off reply's, never stored
    cache: KvCache | None = None
    tokens: list[int] = field(default_factory=list)  # what the cache's rows hold
    history: list[Turn] = field(default_factory=list)
    owner: Owner | None = None  # who may touch it (runtime/session_access.py); None for a one-off
    holder: bytes | None = None  # the client that last used it, whose share of the session limit it counts in
    window_snapshots: list[WindowSnapshot] = field(default_factory=list)  # newest first
    busy: bool = False  # a reply is using its cache (from the moment it sets it up to its end)

    def drop_kv(self) -> None:
        """Let go of its caches and keep its history: its next turn prefills from the NPC's prefix."""
        self.cache, self.tokens, self.window_snapshots = None, [], []

    @property
    def nbytes(self) -> int:
        """Device memory its caches take."""
        return sum(c.nbytes for c in [self.cache] + [snap.cache for snap in self.window_snapshots] if c)

    def held_snapshots(self) -> list[WindowSnapshot]:
        """Its window snapshots taken after tokens its cache still holds (not a cancelled turn's prompt)."""
        return [snap for snap in self.window_snapshots if self.tokens[:len(snap.tokens)] == snap.tokens]

    def snapshot_at(self, tokens: int) -> WindowSnapshot | None:
        """The held window snapshot taken after this conversation's first `tokens` tokens, if it keeps one."""
        return next((snap for snap in self.held_snapshots() if len(snap.tokens) == tokens), None)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


# How many evicted sessions are remembered (to answer `session_evicted` rather than `unknown_session`),
# per session the store holds; older evictions are forgotten and answered `unknown_session`.
EVICTED_RECORD_PER_SESSION = 16


class RecentKeys:
    """A bounded map of evicted sessions to their owners, so that only an owner may import its session
    back or reset it. When full it forgets the oldest entry of the client (holder) with the most entries:
    a client that makes and loses sessions by the thousand forgets its own, not another player's (an
    outside probe took over a session name by pushing its owner out of a first-in-first-out record)."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self._keys: dict[tuple[str, str], tuple[Owner | None, bytes | None]] = {}
        self._by_holder: dict[bytes | None, OrderedDict[tuple[str, str], None]] = {}

    def add(self, key: tuple[str, str], owner: Owner | None = None, holder: bytes | None = None) -> None:
        self.discard(key)
        self._keys[key] = (owner, holder)
        self._by_holder.setdefault(holder, OrderedDict())[key] = None
        while len(self._keys) > self.limit:
            holder, keys = max(self._by_holder.items(), key=lambda hk: len(hk[1]))
            oldest, _ = keys.popitem(last=False)  # always progress, whatever the two maps say
            self._keys.pop(oldest, None)
            if not keys:
                del self._by_holder[holder]

    def discard(self, key: tuple[str, str]) -> None:
        entry = self._keys.pop(key, None)
        if entry is not None:
            keys = self._by_holder.get(entry[1], {})
            keys.pop(key, None)
            if not keys:
                self._by_holder.pop(entry[1], None)

    def owner(self, key: tuple[str, str]) -> Owner | None:
        entry = self._keys.get(key)
        return entry[0] if entry else None

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)


class ConversationStore:
    """Changed by the thread that runs replies; read by others too (the server's stats): a lock keeps
    a reader from seeing it mid-change."""

    def __init__(self, max_sessions: int = 256, max_bytes: int = 1 << 30):
        self._lock = threading.RLock()
        self.max_sessions = max_sessions
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], Conversation] = OrderedDict()
        # so a game can be told why a session is gone: the most recent evictions, a bounded record
        self.evicted = RecentKeys(EVICTED_RECORD_PER_SESSION * max_sessions)

    def get(self, npc: str, session_id: str) -> Conversation | None:
        key = (npc, session_id)
        with self._lock:
            conv = self._items.get(key)
            if conv is not None:
                self._items.move_to_end(key)
            return conv

    def put(self, conv: Conversation) -> None:
        key = (conv.npc, conv.session_id)
        with self._lock:
            self._items[key] = conv
            self._items.move_to_end(key)
            self.evicted.discard(key)
            self._evict(keep=key)

    def owner(self, npc: str, session_id: str) -> Owner | None:
        """Who holds the session, live or recently evicted (None: nobody, anyone may make it)."""
        with self._lock:
            conv = self._items.get((npc, session_id))
            return conv.owner if conv is not None else self.evicted.owner((npc, session_id))

    def forget_eviction(self, npc: str, session_id: str) -> None:
        """The session is made or reset anew: no longer answered `session_evicted`."""
        with self._lock:
            self.evicted.discard((npc, session_id))

    def drop(self, npc: str, session_id: str) -> bool:
        with self._lock:
            return self._items.pop((npc, session_id), None) is not None

    def __len__(self) -> int:
        return len(self._items)

    def bytes_used(self) -> int:
        with self._lock:
            return sum(c.nbytes for c in self._items.values())

    def _evict(self, keep: tuple[str, str]) -> None:
        # Over the byte cap, the least recently used conversations first let go of their KV (not one a reply is
        # using): a session is only lost, history and all, to the cap on sessions, or if that is not enough.
        for key, conv in list(self._items.items()):
            if self.bytes_used() <= self.max_bytes:
                break
            if key != keep and not conv.busy:
                conv.drop_kv()
        while len(self._items) > self.max_sessions or (self.bytes_used() > self.max_bytes and len(self._items) > 1):
            victim = self._victim(keep)
            conv = self._items.pop(victim)
            self.evicted.add(victim, conv.owner, conv.holder)

    def _victim(self, keep: tuple[str, str]) -> tuple[str, str]:
        """The least recently used session of the client holding the most: one client's flood of new
        sessions evicts its own before anyone else's (with one client, plain least recently used)."""
        counts = Counter(conv.holder for key, conv in self._items.items() if key != keep)
        most = max(counts.values())
        top = {holder for holder, n in counts.items() if n == most}
        newcomer = self._items[keep].holder if keep in self._items else None
        if keep in self._items and newcomer in top:  # a tie: the client making a session gives up its own
            top = {newcomer}
        return next(key for key, conv in self._items.items() if key != keep and conv.holder in top)
