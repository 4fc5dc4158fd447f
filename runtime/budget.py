"""Latency budgets: how many reasoning tokens fit before the NPC must start answering.

deadline = prefill(new tokens) + reasoning + forcing the final channel + the expected answer.
If even an answer without reasoning cannot make it, the NPC's fallback line is the reply.
"""
from __future__ import annotations

from dataclasses import dataclass

from runtime.cost_model import CostModel

MIN_FINAL_TOKENS = 4  # an answer shorter than this is not worth starting


@dataclass(frozen=True)
class Plan:
    reasoning_tokens: int
    fallback: bool
    estimated_prefill_ms: float
    reason: str


def answer_cost_ms(cost: CostModel, force_tokens: int, final_tokens: int, force_per_step: bool = False) -> float:
    """Forcing the final channel, then the answer. On its own a reply runs the forced tokens as one
    prompt step; in a decode batch they are fed one per step, each costing a whole batch step."""
    force = cost.decode_ms(force_tokens) if force_per_step else cost.prefill_ms(force_tokens)
    return force + cost.decode_ms(final_tokens)


def plan(cost: CostModel, remaining_ms: float, new_tokens: int, force_tokens: int,
         expected_final_tokens: int, max_reasoning_tokens: int, force_per_step: bool = False,
         margin_ms: float = 0.0) -> Plan:
    """`margin_ms` is kept in hand for steps slower than average and for wrapping the reply up."""
    prefill = cost.prefill_ms(new_tokens)
    left = remaining_ms - prefill - margin_ms
    if left < answer_cost_ms(cost, force_tokens, MIN_FINAL_TOKENS, force_per_step):
        return Plan(0, True, prefill, f"{remaining_ms:.0f} ms left cannot cover the prompt "
                                       f"({prefill:.0f} ms) and a minimal answer")
    spare = left - answer_cost_ms(cost, force_tokens, expected_final_tokens, force_per_step)
    reasoning = int(max(spare, 0.0) // max(cost.decode_ms_per_token, 1e-6))
    reasoning = min(reasoning, max_reasoning_tokens)
    return Plan(reasoning, False, prefill, f"{reasoning} reasoning tokens fit")
