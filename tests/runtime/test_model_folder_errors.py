"""A model folder that is missing pieces or was tampered with is refused with a clear error."""
from __future__ import annotations

import json
import shutil

import pytest

from runtime.manifest import ManifestError
from runtime.session import ModelLoadError, ModelSession, SessionOptions


@pytest.fixture
def folder(tiny_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    return copy


def test_folder_without_manifest_says_how_to_make_one(tmp_path):
    with pytest.raises(ManifestError, match="not a Parley model folder.*parley export"):
        ModelSession(tmp_path)


def test_the_manifest_file_itself_given_as_the_model_names_its_folder(folder):
    with pytest.raises(ManifestError, match=f"a file; a model is the folder .* holding manifest.json, {folder}\\)"):
        ModelSession(folder / "manifest.json")


def test_manifest_naming_a_missing_graph(folder):
    (folder / "model.onnx").unlink()
    with pytest.raises(ManifestError, match="lists 'model.onnx' but .* does not exist"):
        ModelSession(folder)


def test_manifest_from_a_newer_format(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="format_version 99 is not supported.*re-export"):
        ModelSession(folder)


def test_truncated_manifest(folder):
    (folder / "manifest.json").write_text('{"format": "parley-model", "format_ver')
    with pytest.raises(ManifestError, match="not valid JSON"):
        ModelSession(folder)


def test_corrupted_graph_file(folder):
    (folder / "model.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelLoadError, match="onnxruntime could not load the graph"):
        ModelSession(folder)


def test_cuda_requested_where_it_is_not_usable(folder):
    from runtime.session import cuda_usable
    if cuda_usable():
        pytest.skip("this machine has a usable CUDA provider")
    with pytest.raises(ModelLoadError, match="CUDA provider was requested but is not usable"):
        ModelSession(folder, SessionOptions(provider="cuda"))


def test_the_memory_plan_states_what_the_runtime_allocates(tiny_model):
    from runtime.memory_plan import MemoryPlan
    from runtime.session import ModelSession, SessionOptions

    session = ModelSession(tiny_model, SessionOptions(provider="cpu"))
    plan = MemoryPlan.for_folder(tiny_model, max_batch=3)
    assert plan.batch_kv_bytes == session.new_cache(batch=3).nbytes
    assert plan.kv_bytes_per_token * 100 + plan.kv_window_bytes == session.new_cache(batch=1, length=100).nbytes
    assert plan.window == session.config.sliding_window and 0 < plan.kv_window_bytes  # sliding layers: the window
    assert plan.weights_bytes == (tiny_model / session.manifest.weights_file).stat().st_size
