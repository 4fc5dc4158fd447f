"""How sure the hidden reasoning was: the lowest probability among the tokens it chose in its analysis
message (not headers, tool calls or the answer).

A reply whose reasoning picked a token the model itself gave little weight (the steel sword's price, when
"iron" was nearly as likely) is the reply most likely to state a wrong fact. Measured on the demo model's
free-form sets (docs/training.md, "Unsure replies"), the lowest probability in the reasoning separates
its wrong facts from its right ones far better than anything in the answer itself, which follows the
reasoning confidently either way; so the check is made when the answer is about to start, before a word
of it is sent.

Probabilities come from the step's top-K candidates (the graph computes them on the device; the full
logits never leave it): a softmax over K of a vocabulary slightly overstates each one, by the weight of
the tokens outside the K, so a reply is if anything judged a little surer than it was.
"""
from __future__ import annotations

import numpy as np


class Confidence:
    def __init__(self) -> None:
        self._lowest: float | None = None

    def chose(self, out, row: int, token: int) -> None:
        """The reasoning chose `token` from the step output `out` (at `row`)."""
        values, ids = out.candidates()
        values, ids = values[row].astype(np.float64), ids[row]
        weights = np.exp(values - values.max())
        at = np.flatnonzero(ids == token)
        # a token outside the K candidates (sampled from the full logits) had at most the K-th's weight
        p = float(weights[at[0]] if len(at) else weights.min()) / float(weights.sum())
        self._lowest = p if self._lowest is None else min(self._lowest, p)

    def lowest(self) -> float | None:
        return None if self._lowest is None else round(self._lowest, 4)

    def unsure(self, floor: float) -> bool:
        """Whether a reply held to `floor` (0: none) is unsure: its reasoning chose a token below it, or it
        has no reasoning to judge (a deadline that left no time to reason)."""
        if floor <= 0:
            return False
        lowest = self.lowest()  # as the reply's stats report it, so a designer's floor means what it reads
        return lowest is None or lowest < floor
