"""Every export proves itself: the written graph, run by the runtime, against the torch model.

A prompt longer than the sliding window, then decode steps fed the graph's greedy tokens: at every
position the logits must agree with the torch model's within the tolerance and the greedy choice must
be the same, so both models write the same continuation.

Where the torch model's router came within rounding of choosing another expert (a near-tie between its
k-th and (k+1)-th logits), the graph may have chosen it, and the two models are no longer comparable on
that prompt: seen at gpt-oss-20b's size, a gap of 2.4e-7 between logits of about 4 took one float32
export 3.4 from the reference. A failure with such a tie is checked again on another conversation, up to
TIE_RETRIES times; the report lists the ties. A failure without one fails at once.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from export.reference import layered_logits
from runtime.model_config import ModelConfig
from runtime.session import ModelSession, SessionOptions

log = logging.getLogger(__name__)

# Relative to the largest |logit| (at least 1): float32 error grows with the size of the activations,
# and real models' logits span tens (an 8-layer model with hidden 256 and logits up to 7.6 differs by
# 1.8e-4 in float32). float32's greedy choices must be identical; float16's may differ on a near-tie.
TOLERANCE = {"float32": 1e-4, "float16": 3e-2}
NEAR_TIES = {"float32": False, "float16": True}
SAMPLE_TEXTS = (
    "<|start|>system<|message|>You are Brenna, the blacksmith of Ashford. Reasoning: low"
    "<|end|><|start|>user<|message|>Hello there! What can you forge for a traveller heading "
    "north past the old watchtower, and how much would a good sword cost me?<|end|>"
    "<|start|>assistant",
    # the conversations a check falls back to after a routing tie (see the module's docstring)
    "<|start|>system<|message|>You are Marta, who keeps the Crooked Lantern inn. Reasoning: medium"
    "<|end|><|start|>user<|message|>Evening. Is there a dry room left for two nights, and does the "
    "stew come with bread? We rode in from the marsh road.<|end|><|start|>assistant",
    "<|start|>system<|message|>You are Aldric, captain of the gate. Reasoning: high<|end|><|start|>user"
    "<|message|>Captain, the wolves took three sheep by the mill last night. Who pays for a pelt, and "
    "may I carry a bow inside the walls?<|end|><|start|>assistant",
)
SAMPLE_TEXT = SAMPLE_TEXTS[0]
TIE_RETRIES = len(SAMPLE_TEXTS) - 1
# A router gap this close (relative to the router logits' size, at least 1) counts as a near-tie: far
# above the float32 rounding that flips a choice (2.4e-7 at gpt-oss-20b's size), far below a real gap.
NEAR_TIE_GAP = 1e-5


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
    # prompts set aside because the torch model's routing was within rounding of a tie there (see above)
    routing_ties: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def distance(self) -> dict:
        """How far the graph is from the reference, for a manifest entry that informs rather than gates."""
        return {"max_abs_diff_prompt": self.max_abs_diff_prompt, "max_abs_diff_decode": self.max_abs_diff_decode,
                "greedy_match": self.greedy_match, "decode_steps": self.decode_steps}

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        n = len(self.routing_ties)
        ties = ("" if not n else f"; after {n} prompt{'s' if n > 1 else ''} set aside for a routing near-tie"
                if self.passed else f"; the torch model's routing nearly tied on {n} of the prompts tried")
        return (f"verification {verdict}: prompt {self.prompt_tokens} tokens + {self.decode_steps} decode steps, "
                f"max |logit diff| {max(self.max_abs_diff_prompt, self.max_abs_diff_decode):.2e} "
                f"(tolerance {self.tolerance:.0e}), greedy continuation "
                f"{'identical' if self.greedy_match else 'DIFFERS'}{ties}")


def prompt_ids(tokenizer_file: Path, min_tokens: int, vocab_size: int, variant: int = 0) -> list[int]:
    """Real tokens: a harmony conversation (SAMPLE_TEXTS[variant]), repeated until it is longer than min_tokens."""
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(tokenizer_file)).encode(SAMPLE_TEXTS[variant], add_special_tokens=False).ids
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


def verify(folder: Path, cfg: ModelConfig, tensors: Mapping[str, torch.Tensor], tokenizer_file: Path, dtype: str,
           decode_steps: int = DECODE_STEPS, progress: bool = False) -> VerificationReport:
    """verify_prompt on the first sample conversation, and on the next ones while a failure comes with a
    routing near-tie (the module's docstring)."""
    report, _ = retry_on_ties(lambda variant, routing: (verify_prompt(
        folder, cfg, tensors, tokenizer_file, dtype, decode_steps, progress, variant, routing), None))
    return report


def retry_on_ties(attempt):
    """attempt(variant, routing) -> (report, anything) for SAMPLE_TEXTS[variant], filling `routing` with the
    reference's closest routing per layer; again on the next variant while a failed report comes with a
    near-tie. Returns the last attempt's (report, anything), the report listing the ties met."""
    ties: list[dict] = []
    for variant in range(TIE_RETRIES + 1):
        routing: list[dict] = []
        report, other = attempt(variant, routing)
        tie = near_tie(routing)
        if report.passed or tie is None:
            break
        ties.append({"prompt": variant, **tie})
        if variant < TIE_RETRIES:
            log.warning("%s, but the torch model's router nearly tied there (layer %d, position %d: gap %.2g between "
                        "logits up to %.3g), so the graph may have chosen the other expert: checking again on "
                        "another conversation", report.summary(), tie["layer"], tie["position"], tie["gap"], tie["scale"])
    report.routing_ties = ties
    return report, other


def near_tie(routing: list[dict]) -> dict | None:
    """The closest routing decision of a reference run, if it was within NEAR_TIE_GAP of a tie."""
    closest = min(routing, key=lambda r: r["gap"] / max(1.0, r["scale"]), default=None)
    if closest is None or closest["gap"] > NEAR_TIE_GAP * max(1.0, closest["scale"]):
        return None
    return closest


def verify_prompt(folder: Path, cfg: ModelConfig, tensors: Mapping[str, torch.Tensor], tokenizer_file: Path,
                  dtype: str, decode_steps: int = DECODE_STEPS, progress: bool = False, variant: int = 0,
                  routing: list[dict] | None = None) -> VerificationReport:
    """The graph first (greedy, token by token through the runtime's session and KV cache), then the
    torch reference over the same tokens one layer at a time; the graph's session is gone by then, so
    the two never share memory. `routing` gets the reference's closest routing decision per layer."""
    start = time.perf_counter()
    ids = prompt_ids(tokenizer_file, prompt_length(cfg), cfg.vocab_size, variant)
    session = ModelSession(folder, SessionOptions(provider="cpu"))
    provider = session.session.get_providers()[0]
    cache = session.new_cache(batch=1, length=min(session.max_context, len(ids) + decode_steps + 1))
    ours = [session.run(np.array([ids]), cache)[0]]
    greedy: list[int] = []
    for _ in tqdm(range(decode_steps), desc="verify: graph decode steps", unit="step", disable=not progress):
        greedy.append(int(ours[-1].argmax()))
        ours.append(session.run(np.array([[greedy[-1]]]), cache)[0])
    del session, cache

    with tqdm(total=cfg.num_hidden_layers, desc="verify: torch reference", unit="layer",
              disable=not progress) as bar:
        ref = layered_logits(cfg, tensors, ids + greedy, decode_steps + 1, bar, routing=routing)
    return compare(ours, ref, dtype, len(ids), greedy, provider, start)


def compare(ours: list[np.ndarray], ref: np.ndarray, dtype: str, prompt_tokens: int, greedy: list[int],
            provider: str, start: float) -> VerificationReport:
    """The graph's logits at the prompt's last position and each decode step against the reference's."""
    diff_prompt = float(np.abs(ours[0] - ref[0]).max())
    diff_decode = max((float(np.abs(o - r).max()) for o, r in zip(ours[1:], ref[1:])), default=0.0)

    tol = TOLERANCE[dtype] * max(1.0, float(np.abs(ref[0]).max()))

    def same_choice(o: np.ndarray, r: np.ndarray) -> bool:
        if int(o.argmax()) == int(r.argmax()):
            return True
        return NEAR_TIES[dtype] and r.max() - r[int(o.argmax())] <= tol

    match = all(same_choice(o, r) for o, r in zip(ours, ref))
    return VerificationReport(
        passed=bool(match and max(diff_prompt, diff_decode) <= tol), prompt_tokens=prompt_tokens,
        decode_steps=len(ours) - 1, max_abs_diff_prompt=diff_prompt, max_abs_diff_decode=diff_decode,
        tolerance=tol, greedy_match=bool(match), greedy_tokens=greedy,
        provider=provider, seconds=round(time.perf_counter() - start, 3))
