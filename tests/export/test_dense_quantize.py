"""Block-quantized dense weights (`parley export --dense int8|int4`): MatMulNBits for the attention
projections and the unembedding, GatherBlockQuantized for the embedding, exact against transformers
running the same rounded weights."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from export import dense_quantize
from export.dense_quantize import BITS, BLOCK, dense_names, dense_round_trip, dequantize_matrix, quantize_matrix
from export.errors import ExportError
from export.exporter import ExportOptions, export_model
from export.quantize import ROUND_TRIPS
from runtime.manifest import Manifest
from runtime.session import ModelSession, SessionOptions
from tests.helpers.checkpoints import TinySpec, graph_vs_transformers, load_hf, make_checkpoint


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_matrices_round_trip_within_half_a_step_a_slab_at_a_time(precision, monkeypatch):
    bits = BITS[precision]
    w = np.random.default_rng(0).standard_normal((7, 96)).astype(np.float32)
    w[2, :BLOCK] = 0.0  # an all-zero block stays zero
    whole = quantize_matrix(w, bits)
    monkeypatch.setattr(dense_quantize, "ROWS_AT_ONCE", 3)  # slabs that do not divide the rows
    codes, scales = quantize_matrix(w, bits)
    assert (codes == whole[0]).all() and (scales == whole[1]).all()
    assert codes.shape == (7, 96 // BLOCK, BLOCK * bits // 8) and scales.shape == (7, 96 // BLOCK)
    back = dequantize_matrix(codes, scales, bits)
    step = np.repeat(scales, BLOCK, axis=-1)
    assert (np.abs(back - w) <= step / 2 + 1e-6).all() and not back[2, :BLOCK].any()
    again = quantize_matrix(back, bits)  # rounding twice changes nothing: the reference and graph agree
    assert (again[0] == codes).all() and np.allclose(again[1], scales, rtol=1e-6)


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_onnxruntime_matmulnbits_equals_float_math_on_the_dequantized_weights(precision):
    """The premise of exact verification: the CPU kernel at accuracy_level 0 does float math."""
    bits, rng = BITS[precision], np.random.default_rng(1)
    n, k = 48, 128
    w = rng.standard_normal((n, k)).astype(np.float32)
    codes, scales = quantize_matrix(w, bits)
    node = helper.make_node("MatMulNBits", ["A", "B", "S"], ["Y"], domain="com.microsoft", K=k, N=n, bits=bits,
                            block_size=BLOCK, accuracy_level=0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["b", k])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["b", n])],
                              [numpy_helper.from_array(codes, "B"), numpy_helper.from_array(scales.reshape(-1), "S")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    a = rng.standard_normal((5, k)).astype(np.float32)
    expected = a.astype(np.float64) @ dequantize_matrix(codes, scales, bits).T.astype(np.float64)
    got = session.run(None, {"A": a})[0]
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


@pytest.mark.parametrize("precision,dtype", [("int8", np.float32), ("int4", np.float32), ("int4", np.float16)])
def test_onnxruntime_gatherblockquantized_looks_up_the_dequantized_rows(precision, dtype):
    """The embedding's lookup: the codes times their block's scale (in float16, that product rounded)."""
    bits, rng = BITS[precision], np.random.default_rng(2)
    vocab, hidden = 40, 96
    codes, scales = quantize_matrix(rng.standard_normal((vocab, hidden)).astype(np.float32), bits, dtype)
    data = codes.reshape(vocab, -1)
    node = helper.make_node("GatherBlockQuantized", ["data", "ids", "scales"], ["rows"], domain="com.microsoft",
                            gather_axis=0, quantize_axis=1, block_size=BLOCK, bits=bits)
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.FLOAT16
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "t"])],
                              [helper.make_tensor_value_info("rows", elem, ["b", "t", hidden])],
                              [numpy_helper.from_array(data, "data"), numpy_helper.from_array(scales.astype(dtype), "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = np.array([[3, 0, 39], [7, 7, 1]], dtype=np.int64)
    expected = dequantize_matrix(codes, scales, bits)[ids].astype(dtype)
    assert np.array_equal(session.run(None, {"ids": ids})[0], expected)


@pytest.fixture(scope="module")
def dense_exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("dense")
    ckpt = make_checkpoint(root / "ckpt", TinySpec(kv_heads=4, experts=8, top_k=4, seed=2))
    float_summary = export_model(ckpt, root / "float", ExportOptions(max_context=64, experts="float"))
    summary = export_model(ckpt, root / "int8", ExportOptions(max_context=64, experts="int4", dense="int8"))
    return ckpt, root, summary, float_summary


def test_int8_dense_and_int4_experts_equal_transformers_with_the_same_rounded_weights(dense_exports):
    ckpt, root, _, _ = dense_exports
    hf = load_hf(ckpt)
    dense = dense_round_trip("int8", hf.config)
    state = {name: dense(name, ROUND_TRIPS["int4"](name, t)) for name, t in hf.state_dict().items()}
    assert sum(not torch.equal(state[n], t) for n, t in hf.state_dict().items()) == len(dense_names(hf.config)) + 2 * 4
    hf.load_state_dict(state)
    session = ModelSession(root / "int8", SessionOptions(provider="cpu"))
    assert graph_vs_transformers(session, hf) <= 1e-4


def test_the_graph_reads_quantized_dense_weights_and_says_how_far_they_are_from_the_checkpoint(dense_exports):
    _, root, summary, float_summary = dense_exports
    graph = onnx.load(root / "int8" / "model.onnx", load_external_data=False)
    ops = [node.op_type for node in graph.graph.node]
    layers = Manifest.read(root / "int8").config.num_hidden_layers
    assert ops.count("MatMulNBits") == 2 * layers + 1 and "Gemm" not in ops  # qkv and o per layer, lm_head
    assert ops.count("GatherBlockQuantized") == 1 and "Gather" not in ops  # the embedding
    names = {t.name for t in graph.graph.initializer}
    assert "lm_head.qweight" in names and "layers.0.qkv.weight" not in names
    assert "embed.qweight" in names and "embed.weight" not in names
    manifest = Manifest.read(root / "int8")
    assert manifest.export_options["dense"] == "int8" and manifest.verification["status"] == "passed"
    effect = manifest.verification["vs_checkpoint"]
    assert effect == summary.vs_checkpoint and effect["quantized"] == "int4 experts, int8 dense weights"
    assert effect["max_abs_diff_prompt"] > 0
    assert summary.graph_bytes < 0.5 * float_summary.graph_bytes


def test_a_tied_model_rounds_its_embedding_for_both_lookup_and_unembedding(tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt", TinySpec(tie=True, seed=3))
    summary = export_model(ckpt, tmp_path / "out", ExportOptions(max_context=32, experts="float", dense="int4"))
    assert summary.verification.passed and summary.vs_checkpoint["quantized"] == "int4 dense weights"


@pytest.mark.parametrize("opts", [dict(dense="int8", op_set="standard"), dict(dense="int2")])
def test_dense_quantization_outside_the_contrib_graph_is_refused_before_reading(tiny_checkpoint, tmp_path,
                                                                                        opts):
    with pytest.raises(ExportError, match="dense"):
        export_model(tiny_checkpoint, tmp_path / "out", ExportOptions(max_context=32, **opts))
    assert not (tmp_path / "out").exists()


def test_int8_dense_weights_warn_about_onnxruntimes_cpu_kernel(tiny_checkpoint, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        export_model(tiny_checkpoint, tmp_path / "int8", ExportOptions(max_context=32, experts="float", dense="int8"))
    assert "--dense int4" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        export_model(tiny_checkpoint, tmp_path / "int4", ExportOptions(max_context=32, experts="float", dense="int4"))
    assert "int8 dense weights" not in caplog.text
