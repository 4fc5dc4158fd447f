"""Broken checkpoints get an error that names the file or tensor, and OUT_DIR is never created."""
from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

import export.verify
from export.errors import CheckpointError, ExportError, VerificationError
from export.exporter import ExportOptions, export_model


@pytest.fixture
def broken(tiny_checkpoint, tmp_path):
    """A private copy of the tiny checkpoint to damage."""
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    return folder


def assert_refused(folder, tmp_path, match, opts=ExportOptions(max_context=32), error=CheckpointError):
    out = tmp_path / "model"
    with pytest.raises(error, match=match):
        export_model(folder, out, opts)
    assert not out.exists()
    assert not list(tmp_path.glob(".model.partial-*"))  # no staging debris either


def rewrite_tensors(folder, change):
    tensors = load_file(folder / "model.safetensors")
    change(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def test_missing_tensor_is_named(broken, tmp_path):
    rewrite_tensors(broken, lambda t: t.pop("model.layers.1.self_attn.sinks"))
    assert_refused(broken, tmp_path, r"'model\.layers\.1\.self_attn\.sinks' is missing from model\.safetensors")


def test_wrong_shape_names_tensor_and_expected_shape(broken, tmp_path):
    def shrink(t):
        t["model.layers.0.self_attn.q_proj.weight"] = t["model.layers.0.self_attn.q_proj.weight"][:-1]
    rewrite_tensors(broken, shrink)
    assert_refused(broken, tmp_path, r"q_proj\.weight' in model\.safetensors has shape \[63, 64\]; "
                                     r"config\.json implies \[64, 64\]")


def test_unknown_model_type_is_refused(broken, tmp_path):
    cfg = json.loads((broken / "config.json").read_text())
    cfg["model_type"] = "llama"
    (broken / "config.json").write_text(json.dumps(cfg))
    assert_refused(broken, tmp_path, r"config\.json: model_type is 'llama'; Parley exports 'gpt_oss'")


def test_unsupported_quantization_is_refused(broken, tmp_path):
    cfg = json.loads((broken / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "gptq"}
    (broken / "config.json").write_text(json.dumps(cfg))
    assert_refused(broken, tmp_path, r"quant_method is 'gptq'; supported: 'mxfp4'")


def test_corrupted_safetensors_header_is_named(broken, tmp_path):
    data = bytearray((broken / "model.safetensors").read_bytes())
    data[8:40] = b"{not json at all!!!!!!!!!!!!!!!!"
    (broken / "model.safetensors").write_bytes(bytes(data))
    assert_refused(broken, tmp_path, r"model\.safetensors: cannot read safetensors file")


def test_shard_index_naming_a_missing_file(broken, tmp_path):
    index = {"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}}
    (broken / "model.safetensors.index.json").write_text(json.dumps(index))
    assert_refused(broken, tmp_path, r"lists shard\(s\) that are not in the folder: model-00001-of-00002")


def test_tokenizer_without_harmony_tokens_is_refused(broken, tmp_path):
    from tokenizers import Tokenizer, models
    Tokenizer(models.BPE()).save(str(broken / "tokenizer.json"))
    assert_refused(broken, tmp_path, r"tokenizer\.json: has no '<\|start\|>' token")


def test_sharded_checkpoint_loads_like_a_single_file(broken, tmp_path):
    tensors = load_file(broken / "model.safetensors")
    names = sorted(tensors)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, broken / file, metadata={"format": "pt"})
    (broken / "model.safetensors").unlink()
    index = {"weight_map": {k: f for f, keys in shards.items() for k in keys}}
    (broken / "model.safetensors.index.json").write_text(json.dumps(index))
    summary = export_model(broken, tmp_path / "model", ExportOptions(max_context=32))
    assert summary.verification.passed


def test_a_graph_that_disagrees_with_torch_is_not_written(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(export.verify.TOLERANCE, "float32", -1.0)  # nothing can pass
    assert_refused(tiny_checkpoint, tmp_path, r"verification FAILED.*not written", error=VerificationError)


def test_existing_out_dir_needs_force(tiny_checkpoint, tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(ExportError, match="already exists; .* --force"):
        export_model(tiny_checkpoint, tmp_path / "model", ExportOptions(max_context=32))
    export_model(tiny_checkpoint, tmp_path / "model", ExportOptions(max_context=32, force=True))
    assert (tmp_path / "model" / "manifest.json").is_file()
