"""Verification and routing near-ties: the reference reports how close each layer's routing came to another
choice (against transformers' own router logits), can take the other choice, and a failed check passes
only where the other choice at a near-tie explains the whole difference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export.checkpoint import load_checkpoint
from export.exporter import ExportOptions, export_model
from export.reference import layered_logits
from export.verify import compare, judge_with_ties, near_tie, prompt_ids, verify
from tests.helpers.checkpoints import TinySpec, load_hf, make_checkpoint


def tied_router(folder, spec: TinySpec):
    """A checkpoint whose every layer routes to expert 2, then to 0 or 1 with exactly equal logits (0.5 below
    expert 2's, so the second expert keeps a third of the weight): the choice between them is a tie at
    every position."""
    make_checkpoint(folder, spec)
    hf = load_hf(folder)
    with torch.no_grad():
        for layer in hf.model.layers:
            r = layer.mlp.router
            r.weight[1], r.bias[1] = r.weight[0], r.bias[0]
            r.weight[2], r.bias[2] = r.weight[0], r.bias[0] + 0.5
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
    assert near_tie([{"layer": 0, "gap": float("nan"), "position": 0, "scale": float("nan")}]) is None


def test_the_swapped_choice_is_the_other_expert(models):
    """The reference with its (k+1)-th expert at the last layer's last position equals transformers with that
    layer's experts 0 and 1 exchanged: the router ties them exactly, so whichever it picks, the exchanged
    model computes the other one there, and the last position's logits see no other position's expert at the
    last layer."""
    _, tied, _ = models
    ckpt = load_checkpoint(tied)
    cfg, last = ckpt.config, ckpt.config.num_hidden_layers - 1
    ids = prompt_ids(ckpt.tokenizer_file, 20, cfg.vocab_size)
    as_chosen = layered_logits(cfg, ckpt.tensors, ids, 1)[0]
    swapped = layered_logits(cfg, ckpt.tensors, ids, 1, swap=(last, len(ids) - 1))[0]
    hf = load_hf(tied)
    experts = hf.model.layers[last].mlp.experts
    with torch.no_grad():
        for name in ("gate_up_proj", "gate_up_proj_bias", "down_proj", "down_proj_bias"):
            weights = getattr(experts, name)
            weights[[0, 1]] = weights[[1, 0]].clone()
        expected = hf(torch.tensor([ids])).logits[0, -1].numpy()
    assert np.abs(swapped - expected).max() <= 1e-4 < np.abs(as_chosen - expected).max()


def judge_against(tensors, cfg, ids, ours):
    """A judge for judge_with_ties: the logits `ours` against the reference run as asked."""
    def judge(routing, swap):
        ref = layered_logits(cfg, tensors, ids, 3, routing=routing, swap=swap)
        return compare(list(ours), ref, "float32", len(ids) - 2, [], "test", 0.0), None
    return judge


def test_a_failure_at_a_tie_passes_only_if_the_other_choice_explains_it(models):
    _, tied, _ = models
    ckpt = load_checkpoint(tied)  # its routing ties everywhere; the first decision (layer 0, position 0) is closest
    cfg, ids = ckpt.config, prompt_ids(ckpt.tokenizer_file, 20, ckpt.config.vocab_size)
    other_way = layered_logits(cfg, ckpt.tensors, ids, 3, swap=(0, 0))  # as if the graph broke that tie the other way
    report, _ = judge_with_ties(judge_against(ckpt.tensors, cfg, ids, other_way))
    assert report.passed and report.routing_ties[0]["layer"] == 0 and report.routing_ties[0]["position"] == 0
    assert report.routing_ties[0]["max_abs_diff_as_chosen"] > 1e-3 >= report.routing_ties[0]["max_abs_diff_swapped"]
    assert "other expert at a routing near-tie (layer 0, position 0" in report.summary()
    elsewhere = layered_logits(cfg, ckpt.tensors, ids, 3, swap=(1, 5))  # a different choice: not explained
    report, _ = judge_with_ties(judge_against(ckpt.tensors, cfg, ids, elsewhere))
    assert not report.passed and "does not explain it" in report.summary()


def test_a_failure_without_a_tie_fails_at_once(models):
    plain, _, folder = models
    other = load_checkpoint(plain)
    # the graph against a reference whose unembedding is off by 1%: a real difference, no tie in sight
    tensors = dict(other.tensors)
    tensors["lm_head.weight"] = tensors["lm_head.weight"] * 1.01
    report = verify(folder, other.config, tensors, other.tokenizer_file, "float32")
    assert not report.passed and report.routing_ties == []


def test_a_real_difference_is_not_excused_by_a_tie(models):
    _, tied, folder = models
    reference = load_checkpoint(tied)  # not the graph's model, and its routing ties everywhere
    report = verify(folder, reference.config, reference.tensors, reference.tokenizer_file, "float32")
    assert not report.passed and len(report.routing_ties) == 1
    assert report.routing_ties[0]["max_abs_diff_swapped"] > 1e-2 and "does not explain it" in report.summary()


def test_an_exact_tie_both_sides_break_alike_still_verifies(tmp_path):
    """Ties as such are no failure: onnxruntime and torch both break an exact tie the same way here."""
    tied = tied_router(tmp_path / "tied", TinySpec(experts=4, top_k=2, seed=5))
    summary = export_model(tied, tmp_path / "out", ExportOptions(max_context=64))
    assert summary.verification.passed and summary.verification.routing_ties == []
