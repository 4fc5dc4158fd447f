"""Int8 activations in the CPU's 4-bit kernels (`parley export --int8-activations`).

onnxruntime's QMoE and MatMulNBits take `accuracy_level`: 0 keeps float32 activations (exact against the
torch model, what verification checks), 4 lets their int8 dot-product kernels quantize the activations a
block at a time. At gpt-oss-20b's size on the development VM that took decode from 4.35 to 7.16 tokens/s
(docs/performance.md), at about 1% relative error per expert layer. So the graph is verified at level 0
as always, then switched to 4 and its distance from the verified graph measured into the manifest.
Only the graph file changes: the weights are external and stay as they are.
"""
from __future__ import annotations

from pathlib import Path

import onnx
from onnx import helper

LEVEL = 4
OPS = ("QMoE", "MatMulNBits")


def set_accuracy_level(folder: Path, level: int = LEVEL, graph_file: str = "model.onnx") -> int:
    """Every QMoE and MatMulNBits node of the folder's graph at `level`; returns how many there are."""
    path = Path(folder) / graph_file
    model = onnx.load(str(path), load_external_data=False)
    count = 0
    for node in model.graph.node:
        if node.op_type in OPS:
            keep = [a for a in node.attribute if a.name != "accuracy_level"]
            del node.attribute[:]
            node.attribute.extend(keep + [helper.make_attribute("accuracy_level", level)])
            count += 1
    onnx.save(model, str(path))
    return count
