"""A token bucket per client, for the server's request rate limit."""
from __future__ import annotations

import collections
import time


class RateLimiter:
    """Buckets are kept in the order their clients were last seen, and only the least recently seen are
    forgotten: a client that keeps sending is never reset to a full burst."""

    MAX_CLIENTS = 10_000

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.buckets: collections.OrderedDict[bytes, tuple[float, float]] = collections.OrderedDict()

    def allow(self, who: bytes) -> bool:
        if self.rate == float("inf"):
            return True
        now = time.perf_counter()
        tokens, last = self.buckets.get(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1
        self.buckets[who] = (tokens - 1 if allowed else tokens, now)
        self.buckets.move_to_end(who)
        while len(self.buckets) > self.MAX_CLIENTS:
            self.buckets.popitem(last=False)  # the client seen longest ago
        return allowed
