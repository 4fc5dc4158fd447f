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
from runtime.session import ModelLoadError, ModelSession, SessionOptions, check_provider_fits

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


def test_a_folder_from_before_is_refused_on_a_gpu_and_served_on_the_cpu(integer_export, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for f in integer_export.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["export_options"]["qmoe_weights_prepacked"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="export the checkpoint again.*--provider cpu"):
        check_provider_fits(old, Manifest.read(old), CUDA)
    check_provider_fits(old, Manifest.read(old), CPU)
    assert ModelSession(old, SessionOptions(provider="cpu")).device == "cpu"
