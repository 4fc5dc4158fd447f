"""Verification and routing near-ties: the reference reports how close each layer's routing came to another
choice (against transformers' own router logits), and a failed check is tried on the next conversation
only when the reference's routing nearly tied."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export.checkpoint import load_checkpoint
from export.exporter import ExportOptions, export_model
from export.reference import layered_logits
from export.verify import SAMPLE_TEXTS, TIE_RETRIES, near_tie, prompt_ids, verify
from tests.helpers.checkpoints import TinySpec, load_hf, make_checkpoint


def tied_router(folder, spec: TinySpec):
    """A checkpoint whose every layer routes to expert 2, then to 0 or 1 with exactly equal logits: the
    choice between them is a tie at every position."""
    make_checkpoint(folder, spec)
    hf = load_hf(folder)
    with torch.no_grad():
        for layer in hf.model.layers:
            r = layer.mlp.router
            r.weight[1], r.bias[1] = r.weight[0], r.bias[0]
            r.bias[2] += 100.0
            r.bias[3] -= 100.0
    hf.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("ties")
    spec = TinySpec(experts=4, top_k=2, seed=5)
    plain = make_checkpoint(root / "plain", spec)
    tied = tied_router(root / "tied", spec)
    export_model(plain, root / "plain-out", ExportOptions(max_context=64))
    return plain, tied, root / "plain-out"


def test_the_references_closest_routing_is_transformers_router_gap(models):
    plain, _, _ = models
    ckpt = load_checkpoint(plain)
    ids = prompt_ids(ckpt.tokenizer_file, 20, ckpt.config.vocab_size)
    routing: list[dict] = []
    layered_logits(ckpt.config, ckpt.tensors, ids, 1, routing=routing)
    hf, seen = load_hf(plain), []
    for layer in hf.model.layers:  # transformers' router returns (logits, scores, indices)
        layer.mlp.router.register_forward_hook(lambda _m, _i, out: seen.append(out[0].detach()))
    with torch.no_grad():
        hf(torch.tensor([ids]))
    assert [r["layer"] for r in routing] == list(range(len(seen)))
    for ours, logits in zip(routing, seen):
        top = torch.topk(logits, 3, dim=-1).values  # top_k 2: the 2nd against the 3rd
        gaps = (top[:, 1] - top[:, 2]).numpy()
        assert ours["gap"] == pytest.approx(float(gaps.min()), abs=1e-5) and ours["position"] == int(gaps.argmin())
        assert ours["scale"] == pytest.approx(float(logits.abs().max()), rel=1e-5)


def test_a_near_tie_is_a_gap_within_rounding_of_the_logits_size():
    assert near_tie([{"layer": 0, "gap": 0.3, "position": 1, "scale": 4.0}]) is None
    close = {"layer": 4, "gap": 2.4e-7, "position": 98, "scale": 4.14}  # what gpt-oss-20b's shape met
    assert near_tie([{"layer": 3, "gap": 1e-3, "position": 0, "scale": 4.0}, close]) == close
    assert near_tie([{"layer": 0, "gap": 3e-5, "position": 0, "scale": 4.0}]) is not None  # 0.75e-5 of 4
    assert near_tie([{"layer": 0, "gap": 5e-5, "position": 0, "scale": 4.0}]) is None


def test_the_fallback_conversations_are_other_real_tokens(models):
    plain, _, _ = models
    ckpt = load_checkpoint(plain)
    prompts = [prompt_ids(ckpt.tokenizer_file, 40, ckpt.config.vocab_size, v) for v in range(len(SAMPLE_TEXTS))]
    assert len({tuple(p) for p in prompts}) == len(SAMPLE_TEXTS) and all(len(p) == 40 for p in prompts)
    assert prompts[0] == prompt_ids(ckpt.tokenizer_file, 40, ckpt.config.vocab_size)  # the first stays as it was


def test_a_failure_without_a_tie_fails_at_once(models):
    plain, _, folder = models
    other = load_checkpoint(plain)
    # the graph against a reference whose unembedding is off by 1%: a real difference, no tie in sight
    tensors = dict(other.tensors)
    tensors["lm_head.weight"] = tensors["lm_head.weight"] * 1.01
    report = verify(folder, other.config, tensors, other.tokenizer_file, "float32")
    assert not report.passed and report.routing_ties == []


def test_a_failure_where_the_reference_routing_tied_is_tried_on_each_conversation(models):
    _, tied, folder = models
    reference = load_checkpoint(tied)  # not the graph's model: every check fails, and its routing ties everywhere
    report = verify(folder, reference.config, reference.tensors, reference.tokenizer_file, "float32")
    assert not report.passed
    assert [t["prompt"] for t in report.routing_ties] == list(range(TIE_RETRIES + 1))
    assert all(t["gap"] == 0.0 for t in report.routing_ties)
    assert f"nearly tied on {TIE_RETRIES + 1} of the prompts tried" in report.summary()


def test_an_exact_tie_both_sides_break_alike_still_verifies(tmp_path):
    """Ties as such are no failure: onnxruntime and torch both break an exact tie the same way here."""
    tied = tied_router(tmp_path / "tied", TinySpec(experts=4, top_k=2, seed=5))
    summary = export_model(tied, tmp_path / "out", ExportOptions(max_context=64))
    assert summary.verification.passed and summary.verification.routing_ties == []
