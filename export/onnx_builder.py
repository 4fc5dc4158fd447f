"""A small ONNX graph builder that streams weights into one external-data file.

Weights go to disk as they are added, so exporting a 20B model never holds a
second in-memory copy inside a ModelProto.

Nodes are named for where they sit in the model, `layers.3/attn/GroupQueryAttention`, from the scopes
open when they are added (`with g.scope("layers.3"), g.scope("attn"): ...`), so that a graph reads
like the model in Netron; a name that is already taken gets a counter (`.../MatMul_1`).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
        self._scopes: list[str] = []
        self._node_names: set[str] = set()  # across the subgraphs too: value names are made from them
        self.weight_bytes = 0

    @contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Name the nodes added inside after this part of the model ("layers.3", then "attn")."""
        self._scopes.append(name)
        try:
            yield
        finally:
            self._scopes.pop()

    def _path(self, leaf: str) -> str:
        return "/".join([*self._scopes, leaf])

    def fresh(self, hint: str) -> str:
        """A new value or constant name, in the current scope."""
        self._counter += 1
        return self._path(f"{hint}_{self._counter}")

    def _node_name(self, op_type: str) -> str:
        name = base = self._path(op_type)
        count = 0
        while name in self._node_names:
            count += 1
            name = f"{base}_{count}"
        self._node_names.add(name)
        return name

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

    def has_weight(self, name: str) -> bool:
        return any(t.name == name for t in self.initializers)

    def const(self, value, dtype=np.int64, hint: str = "const") -> str:
        """A small inline constant (shapes, indices, scalars)."""
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "",
           **attrs) -> str | list[str]:
        """One node, named for the current scope and its op type; `outputs` is a count (their names are
        made from the node's) or the names themselves ("" for an optional output left out)."""
        node_name = self._node_name(op_type)
        names = outputs if isinstance(outputs, list) else [f"{node_name}_output_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=node_name, domain=domain or None, **attrs))
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
