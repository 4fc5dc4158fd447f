"""Would int8 activations speed up the CPU's 4-bit experts, and what would they cost in accuracy?

    .venv/bin/python -m tools.experiments.bench_qmoe_accuracy_level [--repeats 30] [--experts 8]

onnxruntime's CPU QMoE takes `accuracy_level`: 0 (what Parley exports) keeps float32 activations, 4 lets
its int8 dot-product kernels quantize them. One QMoE node with gpt-oss-20b's expert shape (hidden and
intermediate 2880, top-4, int4 blocks of 32, raw codes) at 1 and 8 tokens (a decode step, a decode batch),
the two levels interleaved, medians reported; accuracy as max |diff| / max |reference| against a float32
MoE node holding the dequantized weights, on the same inputs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto

from export.quantize import dequantize_blocks, quantize_blocks
from tools.experiments.qmoe_cuda_check import attrs, float_moe, model, tensor

HIDDEN = INTER = 2880
TOP_K = 4


def qmoe(c1, s1, b1, c2, s2, b2, level: int) -> bytes:
    inits = [tensor("q1", c1), tensor("s1", s1), tensor("b1", b1), tensor("q2", c2), tensor("s2", s2),
             tensor("b2", b2)]
    return model("QMoE", inits, inits, dict(attrs(TOP_K), expert_weight_bits=4, block_size=32, weights_prepacked=0,
                                             accuracy_level=level), TensorProto.FLOAT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--experts", type=int, default=8, help="8 keeps the float reference under protobuf's 2 GB")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    e = args.experts
    fc1 = (rng.standard_normal((e, 2 * INTER, HIDDEN)) * HIDDEN ** -0.5).astype(np.float32)
    fc2 = (rng.standard_normal((e, HIDDEN, INTER)) * INTER ** -0.5).astype(np.float32)
    b1 = (rng.standard_normal((e, 2 * INTER)) * 0.02).astype(np.float32)
    b2 = (rng.standard_normal((e, HIDDEN)) * 0.02).astype(np.float32)
    (c1, s1), (c2, s2) = quantize_blocks(fc1, 4), quantize_blocks(fc2, 4)
    reference = ort.InferenceSession(float_moe(dequantize_blocks(c1, s1, 4), b1, dequantize_blocks(c2, s2, 4), b2,
                                               TOP_K), providers=["CPUExecutionProvider"])
    del fc1, fc2
    sessions = {level: ort.InferenceSession(qmoe(c1, s1, b1, c2, s2, b2, level), providers=["CPUExecutionProvider"])
                for level in (0, 4)}
    print(f"{'tokens':>6} {'level 0 (ms)':>13} {'level 4 (ms)':>13} {'ratio':>6} {'error 0':>9} {'error 4':>9}")
    for tokens in (1, 8):
        feeds = {"x": rng.standard_normal((tokens, HIDDEN)).astype(np.float32),
                 "router": rng.standard_normal((tokens, e)).astype(np.float32)}
        expected = reference.run(None, feeds)[0]
        errors = {lv: float(np.abs(s.run(None, feeds)[0] - expected).max() / np.abs(expected).max())
                  for lv, s in sessions.items()}
        times = {0: [], 4: []}
        for _ in range(args.repeats):
            for level, s in sessions.items():
                start = time.perf_counter()
                s.run(None, feeds)
                times[level].append((time.perf_counter() - start) * 1000)
        t0, t4 = statistics.median(times[0]), statistics.median(times[4])
        print(f"{tokens:>6} {t0:>13.2f} {t4:>13.2f} {t0 / t4:>5.2f}x {errors[0]:>9.1e} {errors[4]:>9.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
