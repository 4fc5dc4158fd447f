"""Which QMoE weight layouts onnxruntime's CUDA kernels read the way its CPU kernels do.

    python -m tools.experiments.qmoe_cuda_check [--json OUT]      (on a machine with onnxruntime-gpu and a GPU)

The first GPU run of issue 13 found the demo model's int4 and MXFP4 experts wrong on CUDA (max |logit
diff| ~40 against the same folder on the CPU) while its float experts matched (24 of 24 replies
identical). One QMoE node at a time, with the attributes the exporter writes (graph_contrib.experts), is
run on CUDA against a float MoE node on the CPU holding exactly the dequantized weights (float32), at 1
token (the decode path) and 40 tokens (the prefill path), on a small shape and on gpt-oss-20b's expert
shape (hidden and intermediate 2880, fewer experts). Variants: int8 per row, int4 per block of 32, 64 and
128, each with `weights_prepacked` absent (the provider's own packed layout) and 0 (raw [E, N, K/2], as
the CPU reads); MXFP4 as gpt-oss stores it (low nibble first) and with the nibbles swapped. Prints the
relative error (max |diff| / max |reference|) of each: ~1e-3 is right in float16, ~1 is a wrong layout.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from export import mxfp4
from export.quantize import dequantize_blocks, dequantize_rows, quantize_blocks, quantize_rows

MS = "com.microsoft"
SHAPES = {"small": dict(experts=8, hidden=256, inter=256), "gpt-oss-20b experts": dict(experts=4, hidden=2880,
                                                                                      inter=2880)}
E8M0 = TensorProto.FLOAT8E8M0
DEVICE = "CUDAExecutionProvider"  # --provider cpu rehearses the script without a GPU


def attrs(k: int) -> dict:
    return dict(domain=MS, k=k, activation_type="swiglu", swiglu_fusion=1, swiglu_limit=7.0,
                activation_alpha=1.702, activation_beta=1.0, normalize_routing_weights=1)


def model(op: str, inputs: list, initializers: list, node_attrs: dict, dtype: int) -> bytes:
    names = ["x", "router", *[i if isinstance(i, str) else i.name for i in inputs]]
    node = helper.make_node(op, names, ["y"], **node_attrs)
    hidden = initializers[0].dims[-1] if op == "MoE" else None
    graph = helper.make_graph([node], "moe", [helper.make_tensor_value_info("x", dtype, ["M", hidden or "H"]),
                                              helper.make_tensor_value_info("router", dtype, ["M", "E"])],
                              [helper.make_tensor_value_info("y", dtype, None)], initializers)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    m.ir_version = 10
    return m.SerializeToString()


def tensor(name: str, a: np.ndarray, data_type: int | None = None) -> onnx.TensorProto:
    t = numpy_helper.from_array(a, name)
    if data_type is not None:
        t.data_type = data_type
    return t


def float_moe(fc1, b1, fc2, b2, k, dtype=np.float32) -> bytes:
    inits = [tensor("w1", fc1.astype(dtype)), tensor("b1", b1.astype(dtype)), tensor("w2", fc2.astype(dtype)),
             tensor("b2", b2.astype(dtype))]
    onnx_type = TensorProto.FLOAT if dtype == np.float32 else TensorProto.FLOAT16
    return model("MoE", inits, inits, attrs(k), onnx_type)


def variants(fc1, b1, fc2, b2, k):
    """(name, QMoE model in float16, the float weights it holds: fc1, fc2)."""
    f16 = lambda a: a.astype(np.float16)  # noqa: E731
    biases = [tensor("b1", f16(b1))], [tensor("b2", f16(b2))]
    q1, s1 = quantize_rows(fc1)
    q2, s2 = quantize_rows(fc2)
    for prepacked in (None, 0):
        extra = {} if prepacked is None else {"weights_prepacked": prepacked}
        inits = [tensor("q1", q1), tensor("s1", f16(s1)), *biases[0], tensor("q2", q2), tensor("s2", f16(s2)),
                 *biases[1]]
        yield (f"int8 rows, weights_prepacked={prepacked}",
               model("QMoE", inits, inits, dict(attrs(k), expert_weight_bits=8, **extra), TensorProto.FLOAT16),
               dequantize_rows(q1, s1), dequantize_rows(q2, s2))
    for block in (32, 64, 128):
        if fc1.shape[-1] % block or fc2.shape[-1] % block:
            continue
        c1, t1 = quantize_blocks(fc1, 4, block)
        c2, t2 = quantize_blocks(fc2, 4, block)
        for prepacked in (None, 0):
            extra = {} if prepacked is None else {"weights_prepacked": prepacked}
            inits = [tensor("q1", c1), tensor("s1", f16(t1)), *biases[0], tensor("q2", c2), tensor("s2", f16(t2)),
                     *biases[1]]
            yield (f"int4 block {block}, weights_prepacked={prepacked}",
                   model("QMoE", inits, inits, dict(attrs(k), expert_weight_bits=4, block_size=block, **extra),
                         TensorProto.FLOAT16),
                   dequantize_blocks(c1, t1, 4), dequantize_blocks(c2, t2, 4))
    import torch

    def fp4(w):  # [E, N, K] -> codes [E, N, K/2] (low nibble first), e8m0 [E, N, K/32], values [E, N, K]
        blocks, scales = mxfp4.quantize(torch.from_numpy(w.transpose(0, 2, 1).copy()))
        values = mxfp4.dequantize(blocks, scales).numpy().transpose(0, 2, 1)
        return blocks.numpy().reshape(w.shape[0], w.shape[1], -1), scales.numpy(), values

    (c1, e1, v1), (c2, e2, v2) = fp4(fc1), fp4(fc2)
    ones = np.ones(fc1.shape[0], dtype=np.float32)
    for swap in (False, True):
        flip = (lambda c: ((c & 0x0F) << 4) | (c >> 4)) if swap else (lambda c: c)  # noqa: E731
        inits = [tensor("q1", flip(c1)), tensor("s1", e1, E8M0), *biases[0], tensor("q2", flip(c2)),
                 tensor("s2", e2, E8M0), *biases[1], tensor("g1", ones), tensor("g2", ones)]
        names = [*[i.name for i in inits[:6]], "", "", "", "", "", "", "", "g1", "g2"]
        yield (f"mxfp4, {'nibbles swapped' if swap else 'low nibble first (as stored)'}",
               model("QMoE", names, inits, dict(attrs(k), quant_type="fp4", expert_weight_bits=4, block_size=32),
                     TensorProto.FLOAT16), v1, v2)


def run(session_bytes: bytes, provider: str, x: np.ndarray, router: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(session_bytes, providers=[provider])
    if s.get_providers()[0] != provider:
        raise RuntimeError(f"{provider} did not load")
    return s.run(None, {"x": x, "router": router})[0].astype(np.float32)


def check(shape: dict, tokens: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    e, h, i = shape["experts"], shape["hidden"], shape["inter"]
    fc1 = rng.standard_normal((e, 2 * i, h)).astype(np.float32) * h ** -0.5
    fc2 = rng.standard_normal((e, h, i)).astype(np.float32) * i ** -0.5
    b1 = rng.standard_normal((e, 2 * i)).astype(np.float32) * 0.02
    b2 = rng.standard_normal((e, h)).astype(np.float32) * 0.02
    x = rng.standard_normal((tokens, h)).astype(np.float16)
    router = rng.standard_normal((tokens, e)).astype(np.float16)
    k = 2
    out = {}
    control = run(float_moe(fc1, b1, fc2, b2, k, np.float16), DEVICE, x, router)
    exact = run(float_moe(fc1, b1, fc2, b2, k), "CPUExecutionProvider", x.astype(np.float32),
                router.astype(np.float32))
    out["float MoE (control)"] = rel(control, exact)
    for name, qmoe, w1, w2 in variants(fc1, b1, fc2, b2, k):
        reference = run(float_moe(w1, b1, w2, b2, k), "CPUExecutionProvider", x.astype(np.float32),
                        router.astype(np.float32))
        try:
            out[name] = rel(run(qmoe, DEVICE, x, router), reference)
        except Exception as exc:  # noqa: BLE001 - a refused variant is an answer too
            out[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return out


def rel(got: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(got - reference).max() / np.abs(reference).max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--provider", choices=["cuda", "cpu"], default="cuda")
    args = ap.parse_args()
    global DEVICE
    DEVICE = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}[args.provider]
    results = {}
    for shape_name, shape in SHAPES.items():
        for tokens in (1, 40):
            key = f"{shape_name}, {tokens} token{'s' if tokens > 1 else ''}"
            results[key] = check(shape, tokens)
            print(f"== {key}", flush=True)
            for name, value in results[key].items():
                print(f"  {name:<45} {value if isinstance(value, str) else f'{value:.2e}'}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
