"""How fast is onnxruntime's CPU mixture-of-experts op with float32 experts (MoE) or quantized ones (QMoE)?

One layer of the benchmark checkpoint's experts (BENCH_SHAPE in export/synthetic.py: hidden 512, intermediate 512,
16 experts, top-4, SwiGLU with gpt-oss's clamp), random routing, for 1, 8 and 32 tokens: the sizes of a
single reply's decode step, a full decode batch and a short prompt. The op sets are interleaved and
medians reported, with each quantized op's time as a ratio of the float32 one. Only speed is measured
here: quantized experts would need their accuracy measured through a real export before use.

    .venv/bin/python -m tools.experiments.bench_moe_ops [--repeats 50] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

HIDDEN, INTER, EXPERTS, TOP_K = 512, 512, 16, 4
TOKENS = (1, 8, 32)
SWIGLU = dict(k=TOP_K, activation_type="swiglu", normalize_routing_weights=0, swiglu_fusion=1,
              activation_alpha=1.702, activation_beta=1.0, swiglu_limit=7.0)


def tensor(name: str, array: np.ndarray) -> TensorProto:
    dtype = TensorProto.UINT8 if array.dtype == np.uint8 else TensorProto.FLOAT
    return helper.make_tensor(name, dtype, array.shape, array.tobytes(), raw=True)


def moe_graph(bits: int, rng: np.random.Generator) -> bytes:
    """A graph of one MoE (bits=32) or QMoE (bits=8 or 4) node with random weights."""
    fc1_bias = np.zeros((EXPERTS, 2 * INTER), np.float32)
    fc2_bias = np.zeros((EXPERTS, HIDDEN), np.float32)
    if bits == 32:
        node = helper.make_node("MoE", ["x", "router", "fc1", "fc1_bias", "fc2", "fc2_bias"], ["y"],
                                domain="com.microsoft", **SWIGLU)
        weights = [tensor("fc1", rng.standard_normal((EXPERTS, 2 * INTER, HIDDEN), dtype=np.float32)),
                   tensor("fc2", rng.standard_normal((EXPERTS, HIDDEN, INTER), dtype=np.float32))]
    else:
        per_byte = 8 // bits
        node = helper.make_node("QMoE", ["x", "router", "fc1", "fc1_scale", "fc1_bias", "fc2", "fc2_scale",
                                         "fc2_bias"], ["y"], domain="com.microsoft", expert_weight_bits=bits, **SWIGLU)
        weights = [tensor("fc1", rng.integers(0, 256, (EXPERTS, 2 * INTER, HIDDEN // per_byte), dtype=np.uint8)),
                   tensor("fc1_scale", np.full((EXPERTS, 2 * INTER), 0.01, np.float32)),
                   tensor("fc2", rng.integers(0, 256, (EXPERTS, HIDDEN, INTER // per_byte), dtype=np.uint8)),
                   tensor("fc2_scale", np.full((EXPERTS, HIDDEN), 0.01, np.float32))]
    graph = helper.make_graph(
        [node], "moe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["tokens", HIDDEN]),
                        helper.make_tensor_value_info("router", TensorProto.FLOAT, ["tokens", EXPERTS])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["tokens", HIDDEN])],
        initializer=weights + [tensor("fc1_bias", fc1_bias), tensor("fc2_bias", fc2_bias)])
    # IR 10: what this onnxruntime reads; the contrib domain holds both ops
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 21),
                                                                   helper.make_opsetid("com.microsoft", 1)])
    return model.SerializeToString()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all cores)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if args.threads:
        so.intra_op_num_threads = args.threads
    sessions = {bits: ort.InferenceSession(moe_graph(bits, rng), so, providers=["CPUExecutionProvider"])
                for bits in (32, 8, 4)}
    print(f"one layer of experts: hidden {HIDDEN}, intermediate {INTER}, {EXPERTS} experts, top-{TOP_K}; "
          f"median of {args.repeats} runs, interleaved")
    print(f"{'tokens':>6} | {'MoE fp32 (ms)':>13} | {'QMoE int8 (ms)':>14} | {'int8/fp32':>9} | "
          f"{'QMoE int4 (ms)':>14} | {'int4/fp32':>9}")
    for tokens in TOKENS:
        feeds = {"x": rng.standard_normal((tokens, HIDDEN), dtype=np.float32),
                 "router": rng.standard_normal((tokens, EXPERTS), dtype=np.float32)}
        times: dict[int, list[float]] = {bits: [] for bits in sessions}
        for bits, s in sessions.items():  # warm-up: the first runs allocate (QMoE unpacks its weights)
            for _ in range(3):
                s.run(None, feeds)
        for _ in range(args.repeats):
            for bits, s in sessions.items():
                start = time.perf_counter()
                s.run(None, feeds)
                times[bits].append((time.perf_counter() - start) * 1000)
        ms = {bits: statistics.median(t) for bits, t in times.items()}
        print(f"{tokens:>6} | {ms[32]:>13.3f} | {ms[8]:>14.3f} | {ms[8] / ms[32]:>9.2f} | {ms[4]:>14.3f} | "
              f"{ms[4] / ms[32]:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
