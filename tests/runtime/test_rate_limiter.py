"""The server's per-client rate limiter forgets the clients seen longest ago, never an active one."""
from __future__ import annotations

from runtime.rate_limit import RateLimiter


def test_a_client_that_keeps_flooding_stays_limited_however_many_others_come_and_go():
    limiter = RateLimiter(rate=1e-6, burst=5)  # practically no refill within the test
    flooder = b"first-seen-long-ago"
    assert sum(limiter.allow(flooder) for _ in range(20)) == 5
    for i in range(3 * RateLimiter.MAX_CLIENTS):  # many other clients, one request each
        limiter.allow(f"client-{i}".encode())
        if i % 100 == 0:
            assert not limiter.allow(flooder)  # still sending: never forgotten, never a fresh burst
    assert len(limiter.buckets) == RateLimiter.MAX_CLIENTS
    assert not limiter.allow(flooder)


def test_a_client_gone_quiet_is_the_one_forgotten():
    limiter = RateLimiter(rate=1e-6, burst=1)
    limiter.allow(b"quiet")
    for i in range(RateLimiter.MAX_CLIENTS):
        limiter.allow(f"client-{i}".encode())
    assert b"quiet" not in limiter.buckets and len(limiter.buckets) == RateLimiter.MAX_CLIENTS
