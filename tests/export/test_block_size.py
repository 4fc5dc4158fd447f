"""`parley export --block-size`: int4 experts and int8/int4 dense weights with blocks other than 32, exact
against transformers running the same weights rounded at that block size; clear errors where it cannot apply."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from export.dense_quantize import dense_round_trip
from export.errors import ExportError
from export.exporter import ExportOptions, export_model
from export.quantize import int4_round_trip
from runtime.manifest import Manifest
from runtime.session import ModelSession, SessionOptions
from tests.helpers.checkpoints import TinySpec, load_hf, make_checkpoint

BLOCKED_OPS = ("QMoE", "MatMulNBits", "GatherBlockQuantized")


@pytest.fixture(scope="module")
def block64(tmp_path_factory):
    root = tmp_path_factory.mktemp("block64")
    ckpt = make_checkpoint(root / "ckpt", TinySpec(hidden=128, intermediate=128, heads=4, head_dim=32, seed=3))
    summary = export_model(ckpt, root / "out", ExportOptions(max_context=64, experts="int4", dense="int4",
                                                             block_size=64))
    return ckpt, root / "out", summary


def logits_with(ckpt, block: int, ids: np.ndarray) -> np.ndarray:
    """transformers' logits with the experts and dense weights rounded at `block`, as the graph should hold them."""
    hf = load_hf(ckpt)
    dense = dense_round_trip("int4", hf.config, block=block)
    hf.load_state_dict({name: dense(name, int4_round_trip(name, t, block=block)) for name, t in hf.state_dict().items()})
    with torch.no_grad():
        return hf(torch.from_numpy(ids)).logits[0, -1].numpy()


def test_a_block_64_graph_equals_transformers_on_weights_rounded_at_64(block64):
    ckpt, folder, summary = block64
    assert summary.verification.passed and summary.block_size == 64
    session = ModelSession(folder, SessionOptions(provider="cpu"))
    ids = np.random.default_rng(0).integers(0, session.config.vocab_size, size=(1, 12))
    got = session.run(ids, session.new_cache(length=32))[0]
    assert np.abs(got - logits_with(ckpt, 64, ids)).max() <= 1e-4
    # the same weights rounded at 32 are another model: the comparison above can tell the two apart
    assert np.abs(got - logits_with(ckpt, 32, ids)).max() > 1e-3


def test_every_block_quantized_node_and_its_scales_use_the_block_size(block64):
    _, folder, _ = block64
    graph = onnx.load(folder / "model.onnx", load_external_data=False).graph
    nodes = [n for n in graph.node if n.op_type in BLOCKED_OPS]
    assert {n.op_type for n in nodes} == set(BLOCKED_OPS)
    assert all({a.name: a.i for a in n.attribute}["block_size"] == 64 for n in nodes)
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    assert shapes["embed.scales"] == [shapes["embed.qweight"][0], 128 // 64]
    manifest = Manifest.read(folder)
    assert manifest.export_options["block_size"] == 64
    assert "(blocks of 64)" in manifest.verification["vs_checkpoint"]["quantized"]


def test_block_sizes_that_cannot_apply_are_refused_before_anything_is_written(tiny_checkpoint, tmp_path):
    # the tiny checkpoint's hidden and intermediate sizes are 64
    with pytest.raises(ExportError, match=r"does not divide this model's hidden size \(64\).*fit: 16, 32, 64"):
        export_model(tiny_checkpoint, tmp_path / "a", ExportOptions(max_context=64, experts="int4", block_size=128))
    with pytest.raises(ExportError, match="applies to int4 experts and int8/int4 dense weights"):
        export_model(tiny_checkpoint, tmp_path / "b", ExportOptions(max_context=64, experts="int8", block_size=64))
    with pytest.raises(ExportError, match="--block-size 48 is not supported"):
        export_model(tiny_checkpoint, tmp_path / "c", ExportOptions(max_context=64, experts="int4", block_size=48))
    assert not list(tmp_path.iterdir())


def test_the_command_line_takes_the_block_size_and_says_so(tiny_checkpoint, tmp_path):
    result = subprocess.run([sys.executable, "-m", "runtime.cli", "export", str(tiny_checkpoint), str(tmp_path / "m"),
                             "--max-context", "64", "--experts", "int4", "--block-size", "16"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "int4 experts (blocks of 16)" in result.stdout and "verification PASSED" in result.stdout
    assert Manifest.read(tmp_path / "m").export_options["block_size"] == 16


def test_the_block_size_is_checked_from_the_config_before_any_tensor_is_read(tmp_path):
    """An MXFP4 checkpoint in OpenAI's original layout is read whole when opened: the check must come first.
    Here its weights file is not even valid, so reaching it would be a different error."""
    from export.synthetic import GPT_OSS_20B_SHAPE, hf_config

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**hf_config({**GPT_OSS_20B_SHAPE, "num_hidden_layers": 2}),
                                                    "quantization_config": {"quant_method": "mxfp4"}}))
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    # --experts auto on an MXFP4 config means int4 experts: 2880 is no multiple of 128
    with pytest.raises(ExportError, match=r"--block-size 128 does not divide .*hidden size \(2880\).*16, 32, 64"):
        export_model(folder, tmp_path / "out", ExportOptions(block_size=128))


def test_sizes_that_no_block_fits_are_an_export_error_even_at_32(tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt", TinySpec(hidden=48, intermediate=48, heads=4, head_dim=12))
    with pytest.raises(ExportError, match=r"--block-size 32 does not divide .*hidden size \(48\).*fit: 16"):
        export_model(ckpt, tmp_path / "out", ExportOptions(max_context=64, experts="int4"))
