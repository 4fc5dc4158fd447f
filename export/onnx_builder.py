"""A small ONNX graph builder that streams weights into one external-data file.

Weights go to disk as they are added, so exporting a 20B model never holds a
second in-memory copy inside a ModelProto.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ALIGN = 4096  # page-aligned offsets let onnxruntime map weights straight from the file

NP_TO_ONNX = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float16): TensorProto.FLOAT16,
              np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int32): TensorProto.INT32,
              np.dtype(np.uint8): TensorProto.UINT8}


class GraphBuilder:
    def __init__(self, data_path: Path):
        self.data_path = Path(data_path)
        self._data = self.data_path.open("wb")
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._counter = 0
        self.weight_bytes = 0

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}_{self._counter}"

    def weight(self, name: str, array: np.ndarray, elem_type: int | None = None) -> str:
        """A large initializer, written to the external-data file now. elem_type overrides the type the
        array's dtype implies (bfloat16, which numpy lacks, travels as its uint16 bits)."""
        array = np.ascontiguousarray(array)
        offset = self._data.tell()
        pad = -offset % ALIGN
        self._data.write(b"\0" * pad)
        offset += pad
        if array.nbytes:
            self._data.write(memoryview(array).cast("B"))  # straight from the array: no copy of a GB tensor
        tensor = TensorProto(name=name, data_type=elem_type or NP_TO_ONNX[array.dtype], dims=array.shape)
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.data_path.name), ("offset", str(offset)), ("length", str(array.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        self.initializers.append(tensor)
        self.weight_bytes += array.nbytes
        return name

    def const(self, value, dtype=np.int64, hint: str = "const") -> str:
        """A small inline constant (shapes, indices, scalars)."""
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "",
           hint: str | None = None, **attrs) -> str | list[str]:
        hint = hint or op_type.lower()
        names = outputs if isinstance(outputs, list) else [self.fresh(hint) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.fresh(f"n_{hint}"),
                                           domain=domain or None, **attrs))
        return names[0] if len(names) == 1 else names

    def subgraph(self, build, outputs: list[tuple[str, int]], name: str) -> onnx.GraphProto:
        """Run build() with a fresh node list; its nodes form a subgraph (for If/Loop)."""
        saved, self.nodes = self.nodes, []
        try:
            build()
            body = self.nodes
        finally:
            self.nodes = saved
        outs = [helper.make_tensor_value_info(n, t, None) for n, t in outputs]
        return helper.make_graph(body, name, [], outs)

    def input(self, name: str, elem_type: int, shape: list) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, name: str, elem_type: int, shape: list) -> str:
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def finish(self, path: Path, graph_name: str, opset: int = 21, doc: str = "") -> onnx.ModelProto:
        self._data.close()
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, producer_name="parley-export", doc_string=doc, opset_imports=[
            helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)])
        model.ir_version = 10
        onnx.save_model(model, str(path))  # weights are already external; this file is small
        return model
