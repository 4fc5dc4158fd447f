"""Integer experts declare their codes raw (QMoE weights_prepacked=0), so onnxruntime's CUDA kernels pack
them for the GPU instead of reading them as their own packed layout (which gave garbage on an H200, see
docs/performance.md); a folder that does not say so is refused on a GPU with what to do, and still served
on the CPU, which reads it right either way."""
from __future__ import annotations

import json

import onnx
import pytest

from export.exporter import ExportOptions, export_model
from runtime.manifest import Manifest
from runtime.memory_plan import MemoryPlan, over_gpu_cap
from runtime.provider_fit import check_provider_fits, providers_for
from runtime.session import ModelLoadError, ModelSession, SessionOptions

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


@pytest.fixture(scope="module", params=["int4", "int8"])
def integer_export(request, tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "model"
    export_model(tiny_checkpoint, out, ExportOptions(max_context=64, experts=request.param))
    return out


def test_every_qmoe_node_declares_raw_codes_and_the_manifest_says_so(integer_export):
    graph = onnx.load(integer_export / "model.onnx", load_external_data=False).graph
    qmoe = [n for n in graph.node if n.op_type == "QMoE"]
    assert qmoe
    for node in qmoe:
        assert {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}["weights_prepacked"] == 0
    assert Manifest.read(integer_export).export_options["qmoe_weights_prepacked"] == 0
    check_provider_fits(integer_export, Manifest.read(integer_export), CUDA)  # fits a GPU


def older_folder(integer_export, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for f in integer_export.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["export_options"]["qmoe_weights_prepacked"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    return old


def test_a_folder_from_before_is_refused_on_a_gpu_and_served_on_the_cpu(integer_export, tmp_path):
    old = older_folder(integer_export, tmp_path)
    with pytest.raises(ModelLoadError, match="export the checkpoint again.*--provider cpu"):
        check_provider_fits(old, Manifest.read(old), CUDA)
    check_provider_fits(old, Manifest.read(old), CPU)
    assert ModelSession(old, SessionOptions(provider="cpu")).device == "cpu"


def test_left_to_choose_a_folder_from_before_serves_on_the_cpu_of_a_gpu_machine(integer_export, tmp_path):
    """A folder a studio already shipped keeps working for players with an NVIDIA GPU (provider auto)."""
    old = older_folder(integer_export, tmp_path)
    gpu_first = [("CUDAExecutionProvider", {"device_id": 0}), CPU]
    assert providers_for(old, Manifest.read(old), SessionOptions(provider="auto"), gpu_first) == [CPU]
    with pytest.raises(ModelLoadError, match="export the checkpoint again"):
        providers_for(old, Manifest.read(old), SessionOptions(provider="cuda"), gpu_first)
    current = Manifest.read(integer_export)
    assert providers_for(integer_export, current, SessionOptions(provider="auto"), gpu_first) == gpu_first


def test_a_gpu_memory_cap_that_cannot_hold_the_weights_is_refused_before_loading(demo_model):
    manifest, gpu_first = Manifest.read(demo_model), [("CUDAExecutionProvider", {"device_id": 0}), CPU]
    weights = MemoryPlan.for_folder(demo_model, 0, 0, manifest).weights_bytes
    too_small = weights // 2**20 // 2
    assert too_small >= 1
    with pytest.raises(ModelLoadError, match=f"more than the {too_small:,} MiB cap .*--gpu-mem-mb"):
        providers_for(demo_model, manifest, SessionOptions(provider="cuda", gpu_mem_limit_mb=too_small), gpu_first)
    roomy = SessionOptions(provider="cuda", gpu_mem_limit_mb=weights // 2**20 + 64)
    assert providers_for(demo_model, manifest, roomy, gpu_first) == gpu_first
    assert providers_for(demo_model, manifest, SessionOptions(gpu_mem_limit_mb=too_small), [CPU]) == [CPU]
    assert "lower --max-batch" in over_gpu_cap(weights, 10 * 2**20, weights // 2**20 + 5)
