"""Choosing the next token from logits: greedy, temperature, top-k, top-p, logit bias, seeded."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7  # 0 means greedy
    top_k: int = 40  # 0 means no limit
    top_p: float = 0.95  # 1 means no limit
    seed: int | None = None  # same seed, same prompt, same model: same reply
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> added logit (-inf bans)

    def validate(self) -> None:
        if not 0 <= self.temperature <= 5:
            raise ValueError(f"temperature must be in 0..5, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


GREEDY = SamplingParams(temperature=0.0, top_k=0, top_p=1.0)


class Sampler:
    def __init__(self, params: SamplingParams):
        params.validate()
        self.params = params
        self.rng = np.random.default_rng(params.seed)
        bias = params.logit_bias
        self._bias_ids = np.fromiter(bias.keys(), dtype=np.int64, count=len(bias))
        self._bias_vals = np.fromiter(bias.values(), dtype=np.float32, count=len(bias))

    def from_step(self, out, row: int = 0, prefer_candidates: bool = False) -> int:
        """Sample from a StepOutput; uses its top-K candidates when that gives the same answer."""
        if prefer_candidates:
            values, ids = out.candidates()
            token = self.from_candidates(values[row], ids[row])
            if token is not None:
                return token
        return self(out.logits()[row])

    def from_candidates(self, values: np.ndarray, ids: np.ndarray) -> int | None:
        """The same choice as __call__ on the full logits, or None when K candidates cannot decide it.

        Exact when sampling only ever looks at the best top_k (greedy, or top_k <= K) and the
        bias only bans tokens: the best remaining candidates are then the best of the vocabulary.
        """
        p = self.params
        need = 1 if p.temperature == 0 else p.top_k
        if need == 0 or (len(self._bias_vals) and (self._bias_vals > -np.inf).any()):
            return None
        if len(self._bias_ids):
            keep = ~np.isin(ids, self._bias_ids)
            values, ids = values[keep], ids[keep]
        if len(ids) < need:
            return None
        if p.temperature == 0:
            return int(ids[0])
        full = np.full(int(ids.max()) + 1, -np.inf, dtype=np.float32)
        full[ids] = values
        return self._sample(full, ids[:need])

    def __call__(self, logits: np.ndarray) -> int:
        p = self.params
        if len(self._bias_ids):
            logits = logits.copy()
            logits[self._bias_ids] += self._bias_vals
        if p.temperature == 0:
            return int(np.argmax(logits))
        k = p.top_k if 0 < p.top_k < logits.shape[-1] else logits.shape[-1]
        # partition first: sorting the whole vocabulary (200k) each step would dominate the step
        top = np.argpartition(-logits, k - 1)[:k] if k < logits.shape[-1] else np.arange(logits.shape[-1])
        return self._sample(logits, top)

    def _sample(self, logits: np.ndarray, top: np.ndarray) -> int:
        """Temperature and top-p over the candidate ids `top` (any order)."""
        p = self.params
        top = top[np.argsort(-logits[top], kind="stable")]
        chosen = logits[top].astype(np.float64)
        # the best one's distance first: logits divided by a temperature near 0 (1e-308) overflow to inf,
        # and inf minus inf would make the probabilities NaN
        with np.errstate(over="ignore"):  # the others' distances become -inf: probability 0, as meant
            probs = np.exp((chosen - chosen.max()) / p.temperature)
        probs /= probs.sum()
        if p.top_p < 1:
            keep = int(np.searchsorted(np.cumsum(probs), p.top_p) + 1)
            probs = probs[:keep] / probs[:keep].sum()
            top = top[:keep]
        return int(top[self.rng.choice(len(top), p=probs)])
