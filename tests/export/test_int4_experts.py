"""Int4 experts (`parley export --experts int4`): block-wise (32) symmetric int4 QMoE, exact against
transformers running the same int4-rounded experts, from float or MXFP4 checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export.exporter import ExportOptions, export_model
from export.quantize import INT4_BLOCK, dequantize_blocks_int4, int4_round_trip, quantize_blocks_int4
from runtime.manifest import Manifest
from runtime.session import ModelSession, SessionOptions
from tests.helpers.checkpoints import make_mxfp4_twins
from tests.helpers.checkpoints import TinySpec, load_hf, make_checkpoint


def test_blocks_round_trip_within_half_a_step_and_requantize_to_the_same_codes():
    w = np.random.default_rng(0).standard_normal((2, 4, 64)).astype(np.float32)
    w[1, 3, :INT4_BLOCK] = 0.0  # an all-zero block stays zero
    packed, scale = quantize_blocks_int4(w)
    assert packed.shape == (2, 4, 32) and scale.shape == (2, 4, 2)
    back = dequantize_blocks_int4(packed, scale)
    step = np.repeat(scale, INT4_BLOCK, axis=-1)
    assert (np.abs(back - w) <= step / 2 + 1e-6).all()
    assert not back[1, 3, :INT4_BLOCK].any()
    # low nibble first: the first value of a block is the low nibble of the first byte
    assert ((packed[0, 0, 0] & 0x0F) - 8) * scale[0, 0, 0] == back[0, 0, 0]
    again, scale2 = quantize_blocks_int4(back)
    assert (again == packed).all() and np.allclose(scale2, scale, rtol=1e-6)


@pytest.fixture(scope="module")
def int4_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("int4")
    ckpt = make_checkpoint(root / "ckpt", TinySpec(kv_heads=4, experts=8, top_k=4, seed=1))
    summary = export_model(ckpt, root / "int4", ExportOptions(max_context=64, experts="int4"))
    return ckpt, root / "int4", summary


def test_int4_graph_equals_transformers_with_the_same_int4_experts(int4_export):
    ckpt, folder, _ = int4_export
    hf = load_hf(ckpt)
    state = {name: int4_round_trip(name, t) for name, t in hf.state_dict().items()}
    hf.load_state_dict(state)
    session = ModelSession(folder, SessionOptions(provider="cpu"))
    ids = np.random.default_rng(0).integers(0, session.config.vocab_size, size=(1, 14))
    with torch.no_grad():
        expected = hf(torch.from_numpy(ids)).logits[0, -1].numpy()
    got = session.run(ids, session.new_cache(length=32))[0]
    assert np.abs(got - expected).max() <= 1e-4


def test_the_export_records_how_far_int4_is_from_the_checkpoints_experts(int4_export):
    _, folder, summary = int4_export
    manifest = Manifest.read(folder)
    assert manifest.export_options["experts"] == "int4" and manifest.verification["status"] == "passed"
    assert manifest.verification["vs_checkpoint"] == summary.vs_checkpoint
    assert summary.vs_checkpoint["max_abs_diff_prompt"] > 0


def test_an_mxfp4_checkpoint_exports_to_int4_experts(tmp_path):
    quantized, twin = make_mxfp4_twins(tmp_path)
    summary = export_model(quantized, tmp_path / "int4", ExportOptions(max_context=32, experts="int4"))
    assert summary.verification.passed and summary.vs_checkpoint is not None
    assert Manifest.read(tmp_path / "int4").source["quantization"] == "mxfp4"


def test_an_mxfp4_checkpoint_stays_4_bit_unless_asked_and_the_summary_says_why(tmp_path):
    quantized, _ = make_mxfp4_twins(tmp_path)
    summary = export_model(quantized, tmp_path / "auto", ExportOptions(max_context=32))
    assert summary.experts == "int4" and "MXFP4" in summary.experts_choice
    assert Manifest.read(tmp_path / "auto").export_options["experts"] == "int4"
    standard = export_model(quantized, tmp_path / "std", ExportOptions(max_context=32, op_set="standard"))
    assert standard.experts == "float" and "contrib" in standard.experts_choice


def test_a_float16_export_for_the_gpu_keeps_4_bit_experts_and_8_bit_dense_weights(tmp_path):
    """The GPU target (float16, QMoE and MatMulNBits), verified on the CPU through its float32 twin."""
    quantized, _ = make_mxfp4_twins(tmp_path)
    summary = export_model(quantized, tmp_path / "gpu", ExportOptions(max_context=32, dtype="float16", dense="int8"))
    assert summary.experts == "int4" and summary.verification.passed
    assert summary.vs_checkpoint["quantized"] == "float16 weights, int4 experts, int8 dense weights"
    session = ModelSession(tmp_path / "gpu", SessionOptions(provider="cpu"))
    assert session.session.get_inputs()[3].type == "tensor(float16)"  # the KV cache is float16
