"""A float16 export (the GPU's folder) verified on the CPU through a float32 twin holding its values
(export/float16_twin.py): float16's routing ties move a random-weight model's logits far at gpt-oss-20b's
size, so the float16 graph's arithmetic is measured, not trusted, and its weights are checked value for value."""
from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import torch

from export import float16_twin
from export.checkpoint import load_checkpoint
from export.errors import ExportError, VerificationError
from export.exporter import ExportOptions, _round_trips, export_model
from export.graph_common import GraphWeights
from export.quantize import dequantize_blocks_int4, quantize_blocks, quantize_blocks_int4, quantize_rows
from export.tensor_source import Transformed
from runtime.manifest import Manifest
from runtime.session import ModelSession, SessionOptions
from tests.helpers.checkpoints import TinySpec, make_checkpoint

OPTIONS = ExportOptions(max_context=32, dtype="float16", experts="int4", dense="int4", measure_float16_on_cpu=True)


@pytest.fixture(scope="module")
def float16_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("f16")
    ckpt = make_checkpoint(root / "ckpt", TinySpec(seed=21))
    summary = export_model(ckpt, root / "model", OPTIONS)
    return ckpt, root / "model", summary


def test_scales_are_float16_values_and_codes_are_computed_against_them():
    w = (np.random.default_rng(0).standard_normal((3, 4, 64)) * 0.02).astype(np.float16).astype(np.float32)
    w[0, 0, :32] = np.float16(1.2e-7)  # a block whose scale float16 cannot hold keeps float16's smallest, never 0
    codes, scale = quantize_blocks_int4(w, scale_dtype=np.float16)
    assert np.array_equal(scale.astype(np.float16).astype(np.float32), scale) and (scale > 0).all()
    back = dequantize_blocks_int4(codes, scale)
    again, scale2 = quantize_blocks_int4(back, scale_dtype=np.float16)  # the reference's round trip is stable
    assert np.array_equal(again, codes) and np.array_equal(scale2, scale)
    # float32 exports are unchanged: the scale is max|w| / 7 in float32, as before
    _, scale32 = quantize_blocks(w[1], 4)
    assert np.array_equal(scale32, (np.abs(w[1].reshape(4, 2, 32)).max(-1) / 7).astype(np.float32))
    q8, s8 = quantize_rows(w, scale_dtype=np.float16)
    assert np.array_equal(s8.astype(np.float16).astype(np.float32), s8)


def test_a_float16_export_is_verified_through_its_float32_twin(float16_folder):
    ckpt, folder, summary = float16_folder
    assert summary.verification.passed and summary.verification.tolerance <= 1e-3  # float32's, not float16's
    verification = Manifest.read(folder).verification
    assert verification["method"] == "float32 twin"
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert f"all {len(external)} weight tensors" in verification["twin"]
    on_cpu = verification["float16_graph_on_cpu"]  # the float16 arithmetic, measured as information
    assert 0 < on_cpu["max_abs_diff_prompt"] < 0.1 and on_cpu["greedy_match"]
    assert verification["vs_checkpoint"]["quantized"] == "float16 weights, int4 experts, int4 dense weights"
    session = ModelSession(folder, SessionOptions(provider="cpu"))
    assert session.session.get_inputs()[3].type == "tensor(float16)"


def _twin(ckpt) -> GraphWeights:
    loaded = load_checkpoint(ckpt, progress=False)
    tensors = Transformed(loaded.tensors, _round_trips(OPTIONS, loaded.config))
    return GraphWeights(loaded.config, loaded.tensors, "float32", 32, "int4", "int4", lookup_tensors=tensors,
                        values="float16", window_cache=True)


def _tamper(folder, name: str, dtype, change) -> None:
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.name == name)
    offset = int(next(e.value for e in tensor.external_data if e.key == "offset"))
    data = np.memmap(folder / "model.onnx.data", dtype=dtype, mode="r+", offset=offset, shape=(1,))
    data[0] = change(data[0])
    data.flush()


@pytest.mark.parametrize("name, dtype, change", [
    ("layers.1.ln1", np.float16, lambda v: np.float16(float(v) * 1.01)),  # a norm weight, one step or so
    ("layers.0.fc1.qweight", np.uint8, lambda v: np.uint8(v ^ 0x01)),  # one 4-bit expert code
    ("layers.2.fc2.scale", np.float16, lambda v: np.float16(float(v) * 1.01)),  # one expert scale
    ("rope.cos", np.float16, lambda v: np.float16(float(v) * 0.99)),  # a computed table
], ids=["norm", "expert code", "expert scale", "rope table"])
def test_the_twin_refuses_a_graph_whose_weights_differ_from_what_it_verified(float16_folder, tmp_path, name, dtype,
                                                                              change):
    ckpt, folder, _ = float16_folder
    run = float16_twin.run_float16_twin(folder, _twin(ckpt), folder / "tokenizer.json")
    assert run.weights > 10 and run.nodes > 10
    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    _tamper(tampered, name, dtype, change)
    with pytest.raises(VerificationError, match=rf"{name}: the written float16 graph does not hold .*\(1 values differ"):
        float16_twin.run_float16_twin(tampered, _twin(ckpt), tampered / "tokenizer.json")


@pytest.mark.parametrize("spec, options", [
    (TinySpec(seed=22, tie=True), ExportOptions(max_context=32, dtype="float16", experts="float")),
    (TinySpec(seed=23, tie=True), ExportOptions(max_context=32, dtype="float16", experts="int4", dense="int4")),
    (TinySpec(seed=24), ExportOptions(max_context=32, dtype="float16", experts="int8", dense="int8")),
], ids=["tied, float", "tied, int4 dense", "int8 experts and dense"])
def test_other_float16_layouts_verify_through_the_twin(tmp_path, spec, options):
    ckpt = make_checkpoint(tmp_path / "ckpt", spec)
    summary = export_model(ckpt, tmp_path / "model", options)
    verification = Manifest.read(tmp_path / "model").verification
    assert summary.verification.passed and verification["method"] == "float32 twin"
    # the float16 graph on this CPU is information, measured only when asked (minutes at full size)
    assert verification["float16_graph_on_cpu"] == {"skipped": "parley export --measure-float16-on-cpu"}
    assert "measure float16 on the cpu" not in summary.stages
    if summary.vs_checkpoint:  # every line of the summary says what it measured (an outside review: one began blank)
        from export.cli import format_summary

        line = next(x for x in format_summary(summary).splitlines() if "vs the checkpoint" in x)
        label = line.strip().split(" vs the checkpoint")[0]
        assert label and (label == "float16" if options.experts == "float" else label != "float16"), line


def test_measuring_float16_on_the_cpu_applies_to_float16_exports_only(tmp_path):
    with pytest.raises(ExportError, match="--measure-float16-on-cpu applies to a verified --dtype float16"):
        export_model(tmp_path / "missing", tmp_path / "model", ExportOptions(measure_float16_on_cpu=True))


def test_a_tensor_float16_cannot_hold_is_refused_with_its_name(tmp_path):
    with pytest.raises(ExportError, match=r"model.layers.0.mlp.router.weight: float16 cannot hold .*--dtype float32"):
        float16_twin.float16_round_trip("model.layers.0.mlp.router.weight", torch.tensor([1.0, 1e6]))
    ids = torch.tensor([1, 2])
    assert float16_twin.float16_round_trip("ids", ids) is ids
    from safetensors.torch import load_file, save_file
    ckpt = make_checkpoint(tmp_path / "ckpt", TinySpec(seed=25))
    shard = next(ckpt.glob("*.safetensors"))
    state = load_file(shard)
    state["model.layers.1.self_attn.o_proj.bias"][0] = 1e6
    save_file(state, shard, metadata={"format": "pt"})
    with pytest.raises(ExportError, match=r"model.layers.1.self_attn.o_proj.bias: float16 cannot hold"):
        export_model(ckpt, tmp_path / "out", ExportOptions(max_context=32, dtype="float16"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # nothing written, no staging left behind


def test_a_float16_layer_follows_its_twin_wherever_it_picks_the_same_experts(float16_folder, tmp_path):
    """What tools/experiments/float16_layer_errors.py measures at full size: each float16 layer, fed its twin's
    input, stays within float16's rounding of the twin's output at every position whose router (tapped from
    the same layer piece) picks the twin's experts."""
    from export import verify
    from tools.experiments.float16_layer_errors import embedded, layer, weights

    ckpt, _, _ = float16_folder
    f16, twin = weights(ckpt, 32)
    cfg, k = twin.cfg, twin.cfg.num_experts_per_tok
    prompt = 12
    ids = verify.prompt_ids(ckpt / "tokenizer.json", prompt + 4, cfg.vocab_size)
    state = embedded(twin, ids, tmp_path)
    for n in range(cfg.num_hidden_layers):
        *out, router = layer(twin, n, "CPUExecutionProvider", state, prompt, len(ids), tmp_path)
        _, residual, router16 = layer(f16, n, "CPUExecutionProvider", state, prompt, len(ids), tmp_path)
        assert router.shape == router16.shape == (len(ids), cfg.num_local_experts)
        assert np.abs(router16 - router).max() <= 5e-3 * np.abs(router).max()
        same = [set(a) == set(b) for a, b in zip(np.argsort(-router, -1)[:, :k], np.argsort(-router16, -1)[:, :k])]
        assert sum(same) >= len(ids) - 1, n
        diff = np.abs(residual.astype(np.float32) - out[1])[0].max(-1)
        assert diff[same].max() <= 5e-3 * np.abs(out[1]).max(), n
        state = out[0], out[1]
