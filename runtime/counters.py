"""The server's event counters (`stats.counters`): counted from the main thread and the worker at once,
so each addition takes a lock (a plain Counter's `+=` can lose one of two at the same moment)."""
from __future__ import annotations

import collections
import threading


class Counters(collections.Counter):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self)
