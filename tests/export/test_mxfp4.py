"""MXFP4 experts: the byte layout by hand, and a quantized checkpoint exported against its dequantized twin."""
from __future__ import annotations


import numpy as np
import torch

from export import mxfp4
from export.checkpoint import load_checkpoint
from export.exporter import ExportOptions, export_model
from runtime.session import ModelSession, SessionOptions
from tests.helpers.checkpoints import load_hf, make_mxfp4_twins


def test_dequantize_reads_low_nibble_first_and_scales_by_power_of_two():
    blocks = torch.zeros(1, 1, 1, 16, dtype=torch.uint8)
    blocks[..., 0] = 0x21  # low nibble 1 -> 0.5, high nibble 2 -> 1.0
    blocks[..., 1] = 0xF7  # low 7 -> 6.0, high 0xF -> -6.0
    scales = torch.full((1, 1, 1), 128, dtype=torch.uint8)  # 2^(128-127) = 2
    out = mxfp4.dequantize(blocks, scales)  # [1, 32, 1]
    assert out[0, :4, 0].tolist() == [1.0, 2.0, 12.0, -12.0]
    assert out[0, 4:, 0].abs().sum() == 0


def test_quantize_then_dequantize_is_exact_on_representable_values():
    values = torch.tensor(mxfp4.E2M1_VALUES[:8] * 4).reshape(1, 32, 1) * 4.0
    blocks, scales = mxfp4.quantize(values)
    assert torch.equal(mxfp4.dequantize(blocks, scales), values)


def test_mxfp4_checkpoint_exports_equal_to_its_dequantized_reference(tmp_path):
    quantized, twin = make_mxfp4_twins(tmp_path)
    ckpt = load_checkpoint(quantized)
    assert ckpt.quantization == "mxfp4"
    export_model(quantized, tmp_path / "model", ExportOptions(max_context=32, experts="float"))
    session = ModelSession(tmp_path / "model", SessionOptions(provider="cpu"))
    ids = np.random.default_rng(2).integers(0, session.config.vocab_size, size=(1, 12))
    with torch.no_grad():
        expected = load_hf(twin)(torch.from_numpy(ids)).logits[0, -1].numpy()
    got = session.run(ids, session.new_cache(length=16))[0]
    assert np.abs(got - expected).max() <= 1e-4
    assert session.manifest.source["quantization"] == "mxfp4"
