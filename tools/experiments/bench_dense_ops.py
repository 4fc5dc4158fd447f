"""How fast are onnxruntime's CPU kernels for the dense weights as `parley export --dense` writes them?

MatMul on float32 weights against MatMulNBits on int8 or int4 blocks of 32, at accuracy_level 0 (float
activations: exact against float math on the dequantized weights, what Parley exports) and 4 (int8
activations: faster, inexact, what onnxruntime-genai's int4 build uses), on gpt-oss-20b's dense shapes
(the unembedding cut to its first 32,768 rows to keep the float copy small). Interleaved rounds,
medians, ratios to float.

    .venv/bin/python -m tools.experiments.bench_dense_ops [--repeats 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from export.dense_quantize import BITS, BLOCK, quantize_matrix

SHAPES = {"qkv projection": (5120, 2880), "o projection": (2880, 4096), "unembedding (32k rows)": (32768, 2880)}
KINDS = (("float", 0), ("int8", 0), ("int4", 0), ("int8", 4), ("int4", 4))


def session(weight: np.ndarray, kind: str, accuracy: int) -> ort.InferenceSession:
    n, k = weight.shape
    if kind == "float":
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        inits = [numpy_helper.from_array(np.ascontiguousarray(weight.T), "B")]
    else:
        codes, scales = quantize_matrix(weight, BITS[kind])
        node = helper.make_node("MatMulNBits", ["A", "B", "S"], ["Y"], domain="com.microsoft", K=k, N=n,
                                bits=BITS[kind], block_size=BLOCK, accuracy_level=accuracy)
        inits = [numpy_helper.from_array(codes, "B"), numpy_helper.from_array(scales.reshape(-1), "S")]
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["m", k])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["m", n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--rows", default="1,8", help="activation rows (decode batch sizes)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = [int(r) for r in args.rows.split(",")]
    print("| weight | rows | " + " | ".join(f"{k} acc {a} (ms)" for k, a in KINDS) + " | "
          + " | ".join(f"{k} acc {a} / float" for k, a in KINDS[1:]) + " |")
    print("| --- | ---: |" + " ---: |" * (2 * len(KINDS) - 1))
    for name, (n, k) in SHAPES.items():
        weight = (rng.standard_normal((n, k)) * k ** -0.5).astype(np.float32)
        sessions = {kind: session(weight, *kind) for kind in KINDS}
        for m in rows:
            a = rng.standard_normal((m, k)).astype(np.float32)
            times = {kind: [] for kind in KINDS}
            for s in sessions.values():
                s.run(None, {"A": a})  # warm-up (prepacking happens at load, buffers at first run)
            for _ in range(args.repeats):
                for kind, s in sessions.items():
                    start = time.perf_counter()
                    s.run(None, {"A": a})
                    times[kind].append(time.perf_counter() - start)
            med = {kind: 1000 * statistics.median(t) for kind, t in times.items()}
            base = med[KINDS[0]]
            print(f"| {name} | {m} | " + " | ".join(f"{med[kind]:.2f}" for kind in KINDS) + " | "
                  + " | ".join(f"{med[kind] / base:.2f}" for kind in KINDS[1:]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
