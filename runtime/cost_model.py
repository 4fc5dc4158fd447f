"""What a prompt token and a decode step cost on this machine, measured at load and kept current."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class CostModel:
    prefill_ms_per_token: float
    decode_ms_per_token: float
    call_overhead_ms: float = 0.0  # fixed cost of one graph run
    frozen: bool = False  # an injected model (tests, tools) is never updated
    smoothing: float = 0.2  # weight of a new observation
    # recent decode steps: how much slower than the average a step can run (other work on the
    # machine, a batch that just grew) is what a reply keeps in hand before its deadline
    _recent: deque = field(default_factory=lambda: deque(maxlen=64), repr=False)
    decode_overrun_ms: float = 0.0  # 95th percentile of recent steps minus the average

    def prefill_ms(self, tokens: int) -> float:
        return self.call_overhead_ms + tokens * self.prefill_ms_per_token

    def decode_ms(self, tokens: int) -> float:
        return tokens * self.decode_ms_per_token

    def observe_prefill(self, tokens: int, ms: float) -> None:
        if self.frozen or tokens < 8:
            return
        per_token = max(ms - self.call_overhead_ms, 0.0) / tokens
        self.prefill_ms_per_token += self.smoothing * (per_token - self.prefill_ms_per_token)

    def observe_decode(self, ms: float) -> None:
        if self.frozen:
            return
        self.decode_ms_per_token += self.smoothing * (ms - self.decode_ms_per_token)
        self._recent.append(ms)
        if len(self._recent) >= 8:
            slow = sorted(self._recent)[int(0.95 * (len(self._recent) - 1))]
            self.decode_overrun_ms = max(slow - self.decode_ms_per_token, 0.0)

    @classmethod
    def measure(cls, session, repeats: int = 2) -> "CostModel":
        """Time short and long prompt steps and a few decode steps on the real session."""
        vocab = session.config.vocab_size
        rng = np.random.default_rng(0)
        short, long_ = 8, min(64, session.max_context - 16)

        def prompt_ms(n: int) -> float:
            best = float("inf")
            for _ in range(repeats):
                cache = session.new_cache(length=min(session.max_context, n + 16))
                start = time.perf_counter()
                session.run(rng.integers(0, vocab, size=(1, n)), cache)
                best = min(best, (time.perf_counter() - start) * 1000)
            return best

        prompt_ms(short)  # first run allocates; not representative
        t_short, t_long = prompt_ms(short), prompt_ms(long_)
        per_token = max((t_long - t_short) / (long_ - short), 1e-4)
        overhead = max(t_short - short * per_token, 0.0)
        cache = session.new_cache(length=min(session.max_context, 32))
        session.run(rng.integers(0, vocab, size=(1, 4)), cache)
        steps = []
        for _ in range(6):
            start = time.perf_counter()
            session.run(rng.integers(0, vocab, size=(1, 1)), cache)
            steps.append((time.perf_counter() - start) * 1000)
        return cls(prefill_ms_per_token=per_token, decode_ms_per_token=float(np.median(steps)),
                   call_overhead_ms=overhead)
