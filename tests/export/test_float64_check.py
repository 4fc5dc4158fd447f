"""Verification against float64 arithmetic: where a model is ill-conditioned, float32 strays by itself, and a
small failure is judged once more against the reference in float64 (export/verify.py's docstring)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from export.checkpoint import load_checkpoint
from export.exporter import ExportOptions, export_model
from export.reference import layered_logits
from export.verify import EXACT_CAP, EXACT_SLACK, compare, judge_verification, prompt_ids
from tests.helpers.checkpoints import TinySpec, load_hf_float64, make_checkpoint, make_lora_adapter


def test_the_float64_reference_is_transformers_in_float64(tmp_path):
    folder = make_checkpoint(tmp_path / "ckpt", TinySpec(seed=3))
    ckpt = load_checkpoint(folder)
    ids = prompt_ids(ckpt.tokenizer_file, 12, ckpt.config.vocab_size)
    wide = layered_logits(ckpt.config, ckpt.tensors, ids, 4, dtype=torch.float64)
    narrow = layered_logits(ckpt.config, ckpt.tensors, ids, 4)
    with torch.no_grad():
        oracle = load_hf_float64(folder)(torch.tensor([ids])).logits[0, -4:].numpy()
    assert wide.dtype == np.float64
    np.testing.assert_allclose(wide, oracle, rtol=0, atol=1e-10)
    assert 0 < np.abs(narrow - wide).max() < 1e-4


def case(torch_error: float, graph_error: float):
    """Logits at two positions: float64's, torch float32's `torch_error` from them at position 1 (and
    exact at 0), a graph `graph_error` from float64 at position 1 on the other side from torch, and the
    float32 tolerance compare gives them (1e-4 of the largest |logit|, 3)."""
    rng = np.random.default_rng(0)
    exact = np.clip(rng.standard_normal((2, 50)) * 0.5, -2, 2)
    exact[:, 7] = 3.0  # a clear greedy choice, and the scale the tolerance is relative to
    ref, ours = exact.copy(), exact.copy()
    ref[1, 11] += torch_error
    ours[1, 11] -= graph_error
    return [o.astype(np.float32) for o in ours], ref.astype(np.float32), exact, 3e-4


def judged(ours, ref, exact=None):
    return compare(ours, ref, "float32", 10, [7], "test", 0.0, exact)


def test_a_graph_as_far_from_float64_as_float32_strays_there_passes_only_against_float64():
    ours, ref, exact, tol = case(torch_error=5e-4, graph_error=8e-4)
    assert not judged(ours, ref).passed  # 1.3e-3 from torch's float32, against 3e-4
    report = judged(ours, ref, exact)
    assert report.passed and report.float64_check["position"] == 1
    assert report.float64_check["allowed"] == pytest.approx(EXACT_SLACK * 5e-4, rel=1e-3)


def test_the_same_difference_where_float32_is_accurate_fails():
    ours, ref, exact, tol = case(torch_error=1e-6, graph_error=8e-4)
    report = judged(ours, ref, exact)
    assert not report.passed and report.float64_check["allowed"] == pytest.approx(tol)


def test_the_allowance_never_passes_more_than_the_cap():
    ours, ref, exact, tol = case(torch_error=1.0, graph_error=2 * EXACT_CAP * 3e-4)
    report = judged(ours, ref, exact)
    assert not report.passed and report.float64_check["allowed"] == pytest.approx(EXACT_CAP * tol)


def test_only_a_small_failure_gets_the_float64_look():
    """judge(routing, swap, exact) as the exporter's checks call it: a failure past EXACT_CAP tolerances,
    or with a different greedy choice, is final; a small one is judged once more, against float64."""
    for graph_error, looked in ((8e-4, True), (3 * EXACT_CAP * 3e-4, False)):
        ours, ref, exact, _ = case(torch_error=5e-4, graph_error=graph_error)
        asked = []

        def judge(routing, swap, exact_too=False):
            asked.append(exact_too)
            return judged(ours, ref, exact if exact_too else None), None
        report, _ = judge_verification(judge)
        assert asked == ([False, True] if looked else [False])
        assert report.passed == looked


@pytest.fixture(scope="module")
def foreign_lora(tmp_path_factory):
    """A LoRA adapter merged into a base it was not trained on: float32 strays far on this model."""
    root = tmp_path_factory.mktemp("foreign")
    _, adapter, _ = make_lora_adapter(root)
    return make_checkpoint(root / "other", TinySpec(seed=12)), adapter


def test_a_lora_merged_into_another_base_exports_verified(foreign_lora, tmp_path):
    """Failed before the float64 look on the development VM: 5.8e-4 from torch's float32 against 3e-4, while
    torch's float32 was itself 8.8e-4 from float64 at that position."""
    other, adapter = foreign_lora
    out = tmp_path / "model"
    export_model(other, out, ExportOptions(lora=adapter, max_context=32, dtype="float16", dense="int8"))
    verification = json.loads((out / "manifest.json").read_text())["verification"]
    assert verification["status"] == "passed"
    check = verification.get("float64_check")
    if check is not None:  # another CPU's float32 kernels may pass at the first look
        assert check["passed"] and check["graph_vs_float64"] <= check["allowed"] <= EXACT_CAP * verification["tolerance"]
