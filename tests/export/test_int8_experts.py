"""Int8 experts (`parley export --experts int8`): the QMoE graph equals transformers running the same
int8-rounded expert weights, and the export reports how far that is from the float experts."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from export.errors import ExportError
from export.exporter import ExportOptions, export_model
from export.quantize import ZERO_POINT, dequantize_rows, int8_round_trip, quantize_rows
from runtime.manifest import Manifest
from runtime.session import ModelSession, SessionOptions
from tests.helpers.checkpoints import TinySpec, graph_vs_transformers, load_hf, make_checkpoint


def test_rows_round_trip_within_half_a_step_and_requantize_to_the_same_codes():
    w = np.random.default_rng(0).standard_normal((3, 8, 32)).astype(np.float32)
    w[1, 2] = 0.0  # an all-zero row stays zero instead of dividing by zero
    q, scale = quantize_rows(w)
    back = dequantize_rows(q, scale)
    assert q.dtype == np.uint8 and scale.shape == (3, 8)
    assert (np.abs(back - w) <= scale[..., None] / 2 + 1e-7).all()
    assert not back[1, 2].any() and (q[1, 2] == ZERO_POINT).all()
    q2, scale2 = quantize_rows(back)
    assert (q2 == q).all() and np.allclose(scale2, scale, rtol=1e-6)


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    spec = TinySpec(kv_heads=4, experts=8, top_k=4, seed=1)
    ckpt = make_checkpoint(root / "ckpt", spec)
    float_summary = export_model(ckpt, root / "float", ExportOptions(max_context=64))
    summary = export_model(ckpt, root / "int8", ExportOptions(max_context=64, experts="int8"))
    return ckpt, root / "int8", summary, float_summary


def test_int8_graph_equals_transformers_with_the_same_int8_experts(int8_export):
    ckpt, folder, _, _ = int8_export
    hf = load_hf(ckpt)
    state = {name: int8_round_trip(name, t) for name, t in hf.state_dict().items()}
    hf.load_state_dict(state)
    session = ModelSession(folder, SessionOptions(provider="cpu"))
    assert graph_vs_transformers(session, hf) <= 1e-4


def test_the_export_says_how_far_int8_is_from_the_float_experts(int8_export):
    _, folder, summary, float_summary = int8_export
    manifest = Manifest.read(folder)
    assert manifest.export_options["experts"] == "int8"
    effect = manifest.verification["vs_checkpoint"]
    assert manifest.verification["status"] == "passed" and effect == summary.vs_checkpoint
    # quantization moves the logits a little (this tiny random model's are O(1)), never not at all
    assert 0 < effect["max_abs_diff_prompt"] < 1.0
    # the expert matrices shrink to a byte a weight: the weights file is much smaller
    assert summary.graph_bytes < 0.6 * float_summary.graph_bytes


def test_int8_experts_need_the_contrib_graph(tiny_checkpoint, tmp_path):
    with pytest.raises(ExportError, match="int8 experts need the contrib op set"):
        export_model(tiny_checkpoint, tmp_path / "m", ExportOptions(op_set="standard", experts="int8"))
    assert not (tmp_path / "m").exists()


def test_the_cli_flag(tiny_checkpoint, tmp_path):
    result = subprocess.run([sys.executable, "-m", "runtime.cli", "export", str(tiny_checkpoint), str(tmp_path / "m"),
                             "--experts", "int8", "--max-context", "64"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "int8 experts" in result.stdout and "int8 experts vs the checkpoint's" in result.stdout
