"""Every export proves itself: the written graph, run by the runtime, against the torch model.

A prompt longer than the sliding window, then decode steps fed the graph's greedy tokens: at every
position the logits must agree with the torch model's within the tolerance and the greedy choice must
be the same, so both models write the same continuation.

Where the torch model's router came within rounding of choosing another expert (a near-tie between its
k-th and (k+1)-th logits), the graph may have chosen it, and the two models are no longer comparable on
that prompt: seen at gpt-oss-20b's size, a gap of 2.4e-7 between logits of about 4 took one float32
export 3.4 from the reference. So a failure where the reference's closest routing decision was within
NEAR_TIE_GAP of a tie is judged once more, against the reference with that one choice the other way (its
(k+1)-th expert in place of its k-th). It passes only if the graph then agrees within the tolerance, so the
tie, and nothing else, explained the difference; the report lists the tie and both distances. A failure
without a near-tie, or one the other choice does not explain, fails.

Float32 itself can stray where a model is ill-conditioned: a LoRA adapter merged into a base it was not
trained on gave a position where torch's own float32 logits were 8.8e-4 from float64 arithmetic, the
graph's 1.5e-3, and the two 5.8e-4 apart, against a tolerance of 3e-4; over its nine positions the graph
strayed from float64 0.5 to 2.4 times as far as torch did (onnxruntime's float32 kernels round
differently, not worse by much). So a float32 failure that is small (at
most EXACT_CAP times the tolerance, greedy identical) at no routing near-tie is judged once more against
the reference in float64: at each position the graph may stray from float64 up to EXACT_SLACK times as
far as torch's float32 does there (never less than the tolerance, never more than EXACT_CAP times it),
and the float64 reference must route every position to the experts the float32 one did (else the two
compute different things and their distance says nothing about rounding). Where float32 is accurate the
tolerance stays as it was. What this gives up, said plainly: at a position where float32 itself strays,
a fault whose effect is no larger than that cannot be told from rounding (no float32 check can), so a
pass that needed float64 is logged as such and the report keeps the figures (`float64_check`).
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
SAMPLE_TEXT = ("<|start|>system<|message|>You are Brenna, the blacksmith of Ashford. Reasoning: low"
               "<|end|><|start|>user<|message|>Hello there! What can you forge for a traveller heading "
               "north past the old watchtower, and how much would a good sword cost me?<|end|>"
               "<|start|>assistant")
# A router gap this close (relative to the router logits' size, at least 1) counts as a near-tie: above
# the float32 rounding that flips a choice (2.4e-7 at gpt-oss-20b's size). Generous on purpose: a near-tie
# only earns a failure a second look, and the other choice must then explain the whole difference.
NEAR_TIE_GAP = 1e-5
# A failure within EXACT_CAP tolerances gets the float64 look above; the graph may then be EXACT_SLACK times
# as far from float64 as torch's float32 is, at that position.
EXACT_CAP = 10.0
EXACT_SLACK = 4.0


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
    # the near-tie judged the other way, with the distances both ways (see above); empty where none was
    routing_ties: list[dict] = field(default_factory=list)
    # the judgment against float64 arithmetic, where one was made (see above): its closest position
    float64_check: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def distance(self) -> dict:
        """How far the graph is from the reference, for a manifest entry that informs rather than gates."""
        return {"max_abs_diff_prompt": self.max_abs_diff_prompt, "max_abs_diff_decode": self.max_abs_diff_decode,
                "greedy_match": self.greedy_match, "decode_steps": self.decode_steps}

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        ties = ""
        for t in self.routing_ties:
            where = f"layer {t['layer']}, position {t['position']}"
            ties += (f"; against the torch model with its other expert at a routing near-tie ({where}; "
                     f"{t['max_abs_diff_as_chosen']:.2e} as it chose)" if self.passed else
                     f"; the other expert at a routing near-tie ({where}) does not explain it "
                     f"({t['max_abs_diff_swapped']:.2e} with it)")
        c = self.float64_check
        if c is not None and "reason" in c:
            ties += f"; no judgment against float64: {c['reason']}"
        elif c is not None:
            ties += (f"; {'passed only' if self.passed else 'also failed'} against float64 arithmetic: at "
                     f"{position_name(c['position'])} the graph is {c['graph_vs_float64']:.2e} from it where torch's "
                     f"float32 is {c['torch_float32_vs_float64']:.2e} (allowed {c['allowed']:.2e})")
        return (f"verification {verdict}: prompt {self.prompt_tokens} tokens + {self.decode_steps} decode steps, "
                f"max |logit diff| {max(self.max_abs_diff_prompt, self.max_abs_diff_decode):.2e} "
                f"(tolerance {self.tolerance:.0e}), greedy continuation "
                f"{'identical' if self.greedy_match else 'DIFFERS'}{ties}")


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


def verify(folder: Path, cfg: ModelConfig, tensors: Mapping[str, torch.Tensor], tokenizer_file: Path, dtype: str,
           decode_steps: int = DECODE_STEPS, progress: bool = False) -> VerificationReport:
    """verify_prompt, with a failure at a routing near-tie judged once more the other way (the module's
    docstring)."""
    def judge(routing, swap, exact=False) -> tuple[VerificationReport, None]:
        return verify_prompt(folder, cfg, tensors, tokenizer_file, dtype, decode_steps, progress, routing, swap,
                             exact), None
    return judge_verification(judge, float32=dtype == "float32")[0]


def judge_verification(judge, float32: bool = True):
    """judge(routing, swap, exact=False) -> (report, anything), as judge_with_ties takes it, with `exact` asking
    for the float64 reference too. A routing near-tie gets its second look first; a float32 failure still
    small after that, with no tie, gets the float64 one (the module's docstring). Returns the deciding
    (report, anything)."""
    report, other = judge_with_ties(judge)
    if report.passed or not float32 or not small(report) or report.routing_ties:
        return report, other
    log.warning("%s: judging again against the torch model in float64, to tell float32's own rounding from a "
                "fault (the float32 reference once more and a float64 one, twice as slow)", report.summary())
    exact, exact_other = judge(None, None, True)
    if exact.passed:
        log.warning("passed against float64 arithmetic only: at %s this model is ill-conditioned (torch's own float32 "
                    "strays %.2e there), so a fault no larger than that could not be told from rounding by any "
                    "float32 check", position_name(exact.float64_check["position"]),
                    exact.float64_check["torch_float32_vs_float64"])
    return exact, exact_other


def small(report: VerificationReport) -> bool:
    """A failure that float32's own rounding could explain: greedy identical, within EXACT_CAP tolerances."""
    worst = max(report.max_abs_diff_prompt, report.max_abs_diff_decode)
    return report.greedy_match and worst <= EXACT_CAP * report.tolerance


def position_name(position: int) -> str:
    return "the prompt's last token" if position == 0 else f"decode step {position}"


def reference_runs(cfg: ModelConfig, tensors: Mapping[str, torch.Tensor], ids: list[int], last: int, progress: bool,
                   lookup=None, routing: list[dict] | None = None, swap: tuple[int, int] | None = None,
                   exact: bool = False) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """The torch reference's logits at the last `last` positions of `ids` (layered_logits), and with `exact`
    the float64 reference's too and where the two route differently: (float32, float64, difference)."""
    narrow = [] if exact else None
    with tqdm(total=cfg.num_hidden_layers, desc="verify: torch reference", unit="layer", disable=not progress) as bar:
        ref = layered_logits(cfg, tensors, ids, last, bar, lookup=lookup, routing=routing, swap=swap, chosen=narrow)
    if not exact:
        return ref, None, None
    chosen: list = []
    with tqdm(total=cfg.num_hidden_layers, desc="verify: torch reference in float64", unit="layer",
              disable=not progress) as bar:
        wide = layered_logits(cfg, tensors, ids, last, bar, lookup=lookup, swap=swap, dtype=torch.float64,
                              chosen=chosen)
    return ref, wide, routing_difference(narrow, chosen)


def routing_difference(narrow: list[np.ndarray], wide: list[np.ndarray]) -> str | None:
    """Where the float64 reference routes a position to other experts than the float32 one (None: nowhere).
    There the two compute different things, and their distance says nothing about rounding."""
    for layer, (a, b) in enumerate(zip(narrow, wide)):
        differ = np.flatnonzero((a != b).any(axis=-1))
        if differ.size:
            return f"the float64 reference routes position {int(differ[0])} of layer {layer} to other experts"
    return None


def judge_with_ties(judge):
    """judge(routing, swap) -> (report, anything): one comparison of the graph with the reference, the
    reference filling `routing` with its closest decision per layer when given a list and taking the other
    expert at `swap` (layer, position) when given one. A failure at a near-tie is judged once more with that
    choice swapped. Returns the deciding (report, anything), the report listing the tie if there was one."""
    routing: list[dict] = []
    report, other = judge(routing, None)
    tie = None if report.passed else near_tie(routing)
    if tie is None:
        return report, other
    log.warning("%s, but the torch model's router nearly tied at layer %d, position %d (gap %.2g between logits up "
                "to %.3g), so the graph may have chosen the other expert: comparing again with that choice swapped",
                report.summary(), tie["layer"], tie["position"], tie["gap"], tie["scale"])
    swapped, other_swapped = judge(None, (tie["layer"], tie["position"]))
    entry = {**tie, "max_abs_diff_as_chosen": max(report.max_abs_diff_prompt, report.max_abs_diff_decode),
             "max_abs_diff_swapped": max(swapped.max_abs_diff_prompt, swapped.max_abs_diff_decode)}
    result, other = (swapped, other_swapped) if swapped.passed else (report, other)
    result.routing_ties = [entry]
    return result, other


def near_tie(routing: list[dict]) -> dict | None:
    """The closest routing decision of a reference run, if it was within NEAR_TIE_GAP of a tie."""
    closest = min(routing, key=lambda r: r["gap"] / max(1.0, r["scale"]), default=None)
    if closest is None or not closest["gap"] <= NEAR_TIE_GAP * max(1.0, closest["scale"]):
        return None
    return closest


def swap_of(report: VerificationReport) -> tuple[int, int] | None:
    """The routing choice a passed report was judged with the other way, for measurements on the same run."""
    if not report.passed or not report.routing_ties:
        return None
    return report.routing_ties[0]["layer"], report.routing_ties[0]["position"]


def verify_prompt(folder: Path, cfg: ModelConfig, tensors: Mapping[str, torch.Tensor], tokenizer_file: Path,
                  dtype: str, decode_steps: int = DECODE_STEPS, progress: bool = False,
                  routing: list[dict] | None = None, swap: tuple[int, int] | None = None,
                  exact: bool = False) -> VerificationReport:
    """The graph first (greedy, token by token through the runtime's session and KV cache), then the
    torch reference over the same tokens one layer at a time; the graph's session is gone by then, so
    the two never share memory. `routing` gets the reference's closest routing decision per layer; `swap`
    (layer, position) has the reference take its other expert there; `exact` judges against float64 too."""
    start = time.perf_counter()
    ids = prompt_ids(tokenizer_file, prompt_length(cfg), cfg.vocab_size)
    session = ModelSession(folder, SessionOptions(provider="cpu"))
    provider = session.session.get_providers()[0]
    cache = session.new_cache(batch=1, length=min(session.max_context, len(ids) + decode_steps + 1))
    ours = [session.run(np.array([ids]), cache)[0]]
    greedy: list[int] = []
    for _ in tqdm(range(decode_steps), desc="verify: graph decode steps", unit="step", disable=not progress):
        greedy.append(int(ours[-1].argmax()))
        ours.append(session.run(np.array([[greedy[-1]]]), cache)[0])
    del session, cache

    ref, wide, differs = reference_runs(cfg, tensors, ids + greedy, decode_steps + 1, progress, routing=routing,
                                        swap=swap, exact=exact)
    return compare(ours, ref, dtype, len(ids), greedy, provider, start, wide, differs)


def compare(ours: list[np.ndarray], ref: np.ndarray, dtype: str, prompt_tokens: int, greedy: list[int],
            provider: str, start: float, exact: np.ndarray | None = None,
            exact_routing: str | None = None) -> VerificationReport:
    """The graph's logits at the prompt's last position and each decode step against the reference's
    (and against the reference in float64, `exact`, when given: the module's docstring; `exact_routing`
    says where that reference routed differently, which rules the float64 judgment out)."""
    diff_prompt = float(np.abs(ours[0] - ref[0]).max())
    diff_decode = max((float(np.abs(o - r).max()) for o, r in zip(ours[1:], ref[1:])), default=0.0)

    tol = TOLERANCE[dtype] * max(1.0, float(np.abs(ref[0]).max()))

    def same_choice(o: np.ndarray, r: np.ndarray) -> bool:
        if int(o.argmax()) == int(r.argmax()):
            return True
        return NEAR_TIES[dtype] and r.max() - r[int(o.argmax())] <= tol

    match = all(same_choice(o, r) for o, r in zip(ours, ref))
    worst = max(diff_prompt, diff_decode)
    check = None if exact is None else float64_check(ours, ref, exact, tol, exact_routing)
    close = worst <= tol if check is None else check["passed"] and worst <= EXACT_CAP * tol
    return VerificationReport(
        passed=bool(match and close), prompt_tokens=prompt_tokens,
        decode_steps=len(ours) - 1, max_abs_diff_prompt=diff_prompt, max_abs_diff_decode=diff_decode,
        tolerance=tol, greedy_match=bool(match), greedy_tokens=greedy,
        provider=provider, seconds=round(time.perf_counter() - start, 3), float64_check=check)


def float64_check(ours: list[np.ndarray], ref: np.ndarray, exact: np.ndarray, tol: float,
                  routing_differs: str | None = None) -> dict:
    """At each position the graph may be EXACT_SLACK times as far from float64 arithmetic as torch's float32
    is, never less than `tol` and never more than EXACT_CAP times it. Returns whether it holds everywhere
    and the figures at the position closest to failing (0: the prompt's last token, then each decode step);
    never a pass where the float64 reference routed differently (`routing_differs` says where)."""
    if routing_differs is not None:
        return {"passed": False, "reason": routing_differs}
    rows = []
    for position, (o, r, x) in enumerate(zip(ours, ref, exact)):
        graph = float(np.abs(np.asarray(o, np.float64) - x).max())
        torch32 = float(np.abs(np.asarray(r, np.float64) - x).max())
        allowed = max(tol, min(EXACT_CAP * tol, EXACT_SLACK * torch32))
        rows.append({"position": position, "graph_vs_float64": graph, "torch_float32_vs_float64": torch32,
                     "allowed": allowed})
    worst = max(rows, key=lambda row: row["graph_vs_float64"] / row["allowed"])
    return {"passed": all(row["graph_vs_float64"] <= row["allowed"] for row in rows), **worst}
