"""Exported graphs read like the model in Netron: every node is named for the part of the model it
belongs to (`layers.3/attn/GroupQueryAttention`), names are unique, and the linear layers are one
MatMul (+ Add) or MatMulNBits each under their own scope."""
from __future__ import annotations

import re
from collections.abc import Iterator

import onnx
import pytest

from export.exporter import ExportOptions, export_model

TOP_SCOPES = r"(embed|layers\.\d+|last_position|final_norm|lm_head|logits|positions|rope|masks|cache_index)"
SCOPED = re.compile(rf"^{TOP_SCOPES}(/[\w.]+)*/(?P<leaf>\w+)$")
LAYERS = 4  # TinySpec's


def nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node, those in If branches too."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from nodes(attr.g)


@pytest.fixture(scope="module", params=["contrib", "standard", "contrib-int4"])
def graph(request, tiny_checkpoint, tmp_path_factory) -> onnx.GraphProto:
    opts = {"contrib": ExportOptions(verify=False),
            "standard": ExportOptions(op_set="standard", verify=False),
            "contrib-int4": ExportOptions(experts="int4", dense="int4", verify=False)}[request.param]
    out = tmp_path_factory.mktemp(f"names-{request.param}") / "model"
    export_model(tiny_checkpoint, out, opts)
    return onnx.load(str(out / "model.onnx"), load_external_data=False).graph


def test_every_node_is_named_for_its_place_in_the_model_and_its_op(graph):
    for node in nodes(graph):
        match = SCOPED.match(node.name)
        assert match, f"{node.name!r} ({node.op_type}) is not scoped like 'layers.3/attn/GroupQueryAttention'"
        assert re.fullmatch(rf"{node.op_type}(_\d+)?", match["leaf"]), (node.name, node.op_type)


def test_node_names_are_unique_across_the_graph_and_its_branches(graph):
    names = [node.name for node in nodes(graph)]
    assert len(names) == len(set(names))


def test_every_layer_has_its_attention_projections_router_and_experts(graph, request):
    kind = request.node.callspec.params["graph"]
    names = {node.name for node in nodes(graph)}
    dense_op = "MatMulNBits" if kind == "contrib-int4" else "MatMul"
    for n in range(LAYERS):
        for proj in ("qkv_proj", "o_proj"):
            assert f"layers.{n}/attn/{proj}/{dense_op}" in names
            # a float projection adds its bias after the MatMul; MatMulNBits takes it as an input
            assert (f"layers.{n}/attn/{proj}/Add" in names) == (dense_op == "MatMul")
        assert {f"layers.{n}/moe/router/MatMul", f"layers.{n}/moe/router/Add"} <= names
        if kind == "standard":
            assert {f"layers.{n}/moe/If", f"layers.{n}/moe/sparse/ReduceSum", f"layers.{n}/moe/dense/ReduceSum",
                    f"layers.{n}/attn/softmax/Softmax"} <= names
        else:
            assert f"layers.{n}/attn/GroupQueryAttention" in names
            assert f"layers.{n}/moe/{'QMoE' if kind == 'contrib-int4' else 'MoE'}" in names
    assert f"lm_head/{'MatMulNBits' if kind == 'contrib-int4' else 'Gemm'}" in names
    assert f"embed/{'GatherBlockQuantized' if kind == 'contrib-int4' else 'Gather'}" in names and "logits/TopK" in names
