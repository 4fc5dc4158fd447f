"""The graphs runtime/kv_copy.py runs to copy KV cache rows on the device, built here (where onnx is) and
shipped as files in runtime/graphs/, so the runtime reads them without the onnx package.

One graph per cache dtype: dst = Pad(Slice(src, 0:rows along the positions), to dst's length). src and dst
are one batch row of a cache buffer each ([1, kv_heads, length, head_dim], contiguous), bound by address;
the positions past `rows` come out zero, which is harmless since a cache's lengths say what is valid.

    .venv/bin/python -m export.kv_copy_graph      (rewrites runtime/graphs/; a test checks they are current)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

GRAPHS = Path(__file__).resolve().parents[1] / "runtime" / "graphs"
DTYPES = {"float16": TensorProto.FLOAT16, "float32": TensorProto.FLOAT}


def kv_copy_model(dtype: str) -> onnx.ModelProto:
    t = DTYPES[dtype]
    inits = [numpy_helper.from_array(np.array([0], dtype=np.int64), "starts"),
             numpy_helper.from_array(np.array([2], dtype=np.int64), "axes")]
    nodes = [helper.make_node("Slice", ["src", "starts", "rows", "axes"], ["kept"]),
             helper.make_node("Pad", ["kept", "pads"], ["dst"], mode="constant")]
    graph = helper.make_graph(
        nodes, f"kv_copy_{dtype}",
        [helper.make_tensor_value_info("src", t, [1, "heads", "src_length", "head_dim"]),
         helper.make_tensor_value_info("rows", TensorProto.INT64, [1]),
         helper.make_tensor_value_info("pads", TensorProto.INT64, [8])],
        [helper.make_tensor_value_info("dst", t, [1, "heads", "dst_length", "head_dim"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="parley")
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def kv_copy_bytes(dtype: str) -> bytes:
    return kv_copy_model(dtype).SerializeToString(deterministic=True)


def main() -> int:
    GRAPHS.mkdir(exist_ok=True)
    for dtype in DTYPES:
        (GRAPHS / f"kv_copy_{dtype}.onnx").write_bytes(kv_copy_bytes(dtype))
        print(f"wrote {GRAPHS / f'kv_copy_{dtype}.onnx'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
