"""Every export proves itself: the written graph, run by the runtime, against the torch model.

A prompt longer than the sliding window, then decode steps fed the torch model's
greedy tokens: logits must agree within the tolerance and every greedy choice must match.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from runtime.session import ModelSession, SessionOptions

# float32: absolute, and greedy choices must be identical. float16: relative to the largest
# |logit| (real models' logits span tens), and a greedy choice may differ only on a near-tie.
TOLERANCE = {"float32": 1e-4, "float16": 3e-2}
RELATIVE = {"float32": False, "float16": True}
SAMPLE_TEXT = ("<|start|>system<|message|>You are Brenna, the blacksmith of Ashford. Reasoning: low"
               "<|end|><|start|>user<|message|>Hello there! What can you forge for a traveller heading "
               "north past the old watchtower, and how much would a good sword cost me?<|end|>"
               "<|start|>assistant")


@dataclass
class VerificationReport:
    passed: bool
    prompt_tokens: int
    decode_steps: int
    max_abs_diff_prompt: float
    max_abs_diff_decode: float
    tolerance: float
    greedy_match: bool
    greedy_tokens: list[int]
    provider: str
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return (f"verification {verdict}: prompt {self.prompt_tokens} tokens + {self.decode_steps} decode steps, "
                f"max |logit diff| {max(self.max_abs_diff_prompt, self.max_abs_diff_decode):.2e} "
                f"(tolerance {self.tolerance:.0e}), greedy continuation "
                f"{'identical' if self.greedy_match else 'DIFFERS'}")


def prompt_ids(tokenizer_file: Path, min_tokens: int, vocab_size: int) -> list[int]:
    """Real tokens: a harmony conversation, repeated until it is longer than min_tokens."""
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(tokenizer_file)).encode(SAMPLE_TEXT, add_special_tokens=False).ids
    ids = [i for i in ids if i < vocab_size] or [0]
    while len(ids) < min_tokens:
        ids = ids + ids
    return ids[:min_tokens]


DECODE_STEPS = 8


def prompt_length(cfg) -> int:
    """Verification's prompt: longer than the sliding window, so the window's masking is exercised."""
    return max(min(cfg.sliding_window + 16, 2 * cfg.sliding_window + 1, 4096), cfg.sliding_window + 1)


def context_needed(cfg, decode_steps: int = DECODE_STEPS) -> int:
    """The smallest max context an export can be verified with: the prompt, the decode steps, one more."""
    return prompt_length(cfg) + decode_steps + 1


@torch.no_grad()
def verify(folder: Path, reference: torch.nn.Module, tokenizer_file: Path, dtype: str,
           decode_steps: int = DECODE_STEPS, progress: bool = False) -> VerificationReport:
    start = time.perf_counter()
    cfg = reference.cfg
    ids = prompt_ids(tokenizer_file, prompt_length(cfg), cfg.vocab_size)

    session = ModelSession(folder, SessionOptions(provider="cpu"))
    cache = session.new_cache(batch=1, length=min(session.max_context, len(ids) + decode_steps + 1))
    keys, values = reference.empty_cache(1)

    ref_logits, keys, values = reference(torch.tensor([ids]), keys, values)
    ref_last = ref_logits[0, -1].float().numpy()
    got = session.run(np.array([ids]), cache)[0]
    diff_prompt = float(np.abs(got - ref_last).max())

    tol = TOLERANCE[dtype]
    if RELATIVE[dtype]:
        tol *= max(1.0, float(np.abs(ref_last).max()))

    def same_choice(ours: np.ndarray, ref: np.ndarray) -> bool:
        if int(ours.argmax()) == int(ref.argmax()):
            return True
        return RELATIVE[dtype] and ref.max() - ref[int(ours.argmax())] <= tol

    diff_decode, greedy, match = 0.0, [], True
    for _ in tqdm(range(decode_steps), desc="verifying decode steps", unit="step", disable=not progress):
        token = int(ref_last.argmax())
        match &= same_choice(got, ref_last)
        greedy.append(token)
        ref_logits, keys, values = reference(torch.tensor([[token]]), keys, values)
        ref_last = ref_logits[0, -1].float().numpy()
        got = session.run(np.array([[token]]), cache)[0]
        diff_decode = max(diff_decode, float(np.abs(got - ref_last).max()))
    match &= same_choice(got, ref_last)

    return VerificationReport(
        passed=bool(match and max(diff_prompt, diff_decode) <= tol), prompt_tokens=len(ids),
        decode_steps=decode_steps, max_abs_diff_prompt=diff_prompt, max_abs_diff_decode=diff_decode,
        tolerance=tol, greedy_match=bool(match), greedy_tokens=greedy,
        provider=session.session.get_providers()[0], seconds=round(time.perf_counter() - start, 3))
