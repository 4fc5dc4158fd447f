"""gpt-oss as an ONNX graph of onnxruntime's fused contrib ops.

GroupQueryAttention (rotary, sinks, sliding window, in-place KV buffer), MoE
(top-k softmax routing, interleaved clamped SwiGLU) and SkipSimplifiedLayerNormalization.
This is the fast path on onnxruntime's CPU and CUDA providers.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto
from tqdm import tqdm

from export.dense_quantize import BITS, BLOCK, quantize_matrix
from export.graph_common import GraphWeights, add_io, embedding, last_position, logits_outputs
from export.onnx_builder import GraphBuilder
from export.quantize import INT4_BLOCK, quantize_blocks_int4, quantize_rows
from runtime import manifest as m

MS = "com.microsoft"


def build(g: GraphBuilder, w: GraphWeights, progress: bool = False) -> None:
    cfg = w.cfg
    elem = w.elem_type
    ids, seqlens_k, total_len = add_io(g, cfg, elem, w.max_context)
    cos = g.weight("rope.cos", w.cos)
    sin = g.weight("rope.sin", w.sin)
    eps = cfg.rms_norm_eps

    x = embedding(g, w, ids)
    residual = x
    normed = g.op("SimplifiedLayerNormalization", [x, g.weight("layers.0.ln1", w.ln1(0))],
                  axis=-1, epsilon=eps, hint="ln1")
    for n in tqdm(range(cfg.num_hidden_layers), desc="graph (contrib ops)", unit="layer", disable=not progress):
        lw = w.layer(n)
        p = f"layers.{n}."
        qkv = linear(g, w, p + "qkv", normed, lw.qkv_w, lw.qkv_b)
        # Measured: ORT's local_window_size N sees the same keys as HF's sliding_window N (i - N < j <= i).
        window = cfg.sliding_window if cfg.is_sliding(n) else -1
        attn = g.op("GroupQueryAttention",
                    [qkv, "", "", m.past_key(n), m.past_value(n), seqlens_k, total_len, cos, sin,
                     "", "", g.weight(p + "sinks", lw.sinks)],
                    outputs=[g.fresh("attn"), m.present_key(n), m.present_value(n)], domain=MS,
                    num_heads=cfg.num_attention_heads, kv_num_heads=cfg.num_key_value_heads,
                    do_rotary=1, rotary_interleaved=0, local_window_size=window,
                    scale=float(cfg.head_dim ** -0.5), hint="gqa")[0]
        o = linear(g, w, p + "o", attn, lw.o_w, lw.o_b)
        normed, _, _, residual = g.op(
            "SkipSimplifiedLayerNormalization", [o, residual, g.weight(p + "ln2", lw.ln2)],
            outputs=[g.fresh("ln2"), "", "", g.fresh("resid")], domain=MS, epsilon=eps)
        router = g.op("Add", [g.op("MatMul", [normed, g.weight(p + "router.weight", lw.router_w)]),
                              g.weight(p + "router.bias", lw.router_b)], hint="router")
        router = g.op("Reshape", [router, g.const([-1, cfg.num_local_experts])])
        moe = experts(g, w, p, lw, normed, router)
        if n + 1 < cfg.num_hidden_layers:
            normed, _, _, residual = g.op(
                "SkipSimplifiedLayerNormalization", [moe, residual, g.weight(f"layers.{n + 1}.ln1",
                                                                             w.ln1(n + 1))],
                outputs=[g.fresh("ln1"), "", "", g.fresh("resid")], domain=MS, epsilon=eps)
        else:
            residual = g.op("Add", [moe, residual], hint="resid")

    last = last_position(g, residual)
    final = g.op("SimplifiedLayerNormalization", [last, g.weight("norm.weight", w.final_norm)],
                 axis=-1, epsilon=eps, hint="final_norm")
    if w.dense == "float":
        logits = g.op("Gemm", [final, w.lm_head_name(g)], transB=1, hint="lm_head")
    else:
        logits = quantized_matmul(g, w, "lm_head", final, w.unembed_matrix())
    if elem != TensorProto.FLOAT:
        logits = g.op("Cast", [logits], to=TensorProto.FLOAT)
    logits_outputs(g, cfg, logits)


def linear(g: GraphBuilder, w: GraphWeights, name: str, x: str, weight: np.ndarray, bias: np.ndarray) -> str:
    """x @ weight + bias ([K, N] weight): MatMul and Add, or MatMulNBits when the dense weights are
    quantized (w.dense)."""
    hint = name.rsplit(".", 1)[-1]
    if w.dense == "float":
        return g.op("Add", [g.op("MatMul", [x, g.weight(name + ".weight", weight)]), g.weight(name + ".bias", bias)],
                    hint=hint)
    return quantized_matmul(g, w, name, x, weight.T, bias)


def quantized_matmul(g: GraphBuilder, w: GraphWeights, name: str, x: str, weight_nk: np.ndarray,
                     bias: np.ndarray | None = None) -> str:
    """x @ weight_nk.T (+ bias) as MatMulNBits: blocks of 32 along K, float activations (accuracy_level 0,
    exact against float math on the dequantized weights)."""
    bits = BITS[w.dense]
    n, k = weight_nk.shape
    codes, scales = quantize_matrix(weight_nk, bits)
    inputs = [x, g.weight(name + ".qweight", codes), g.weight(name + ".scales", scales.reshape(-1).astype(w.np_dtype))]
    if bias is not None:
        inputs += ["", "", g.weight(name + ".bias", bias)]
    return g.op("MatMulNBits", inputs, domain=MS, K=k, N=n, bits=bits, block_size=BLOCK, accuracy_level=0,
                hint=name.rsplit(".", 1)[-1])


def experts(g: GraphBuilder, w: GraphWeights, p: str, lw, normed: str, router: str) -> str:
    """The mixture of experts: MoE with float experts, or QMoE with int8 (per row) or int4 (per block of 32)
    ones (w.experts)."""
    cfg = w.cfg
    attrs = dict(domain=MS, k=cfg.num_experts_per_tok, activation_type="swiglu", swiglu_fusion=1,
                 swiglu_limit=cfg.swiglu_limit, activation_alpha=cfg.swiglu_alpha, activation_beta=1.0,
                 normalize_routing_weights=1)
    fc1, fc2 = fc1_layout(lw.gate_up), fc2_layout(lw.down)
    if w.experts == "float":
        return g.op("MoE", [normed, router, g.weight(p + "fc1.weight", fc1), g.weight(p + "fc1.bias", lw.gate_up_b),
                            g.weight(p + "fc2.weight", fc2), g.weight(p + "fc2.bias", lw.down_b)], hint="moe", **attrs)
    if w.experts == "int4":
        (q1, s1), (q2, s2) = quantize_blocks_int4(fc1), quantize_blocks_int4(fc2)
        attrs.update(expert_weight_bits=4, block_size=INT4_BLOCK)
    else:
        (q1, s1), (q2, s2) = quantize_rows(fc1), quantize_rows(fc2)
        attrs.update(expert_weight_bits=8)
    dt = w.np_dtype
    return g.op("QMoE", [normed, router, g.weight(p + "fc1.qweight", q1), g.weight(p + "fc1.scale", s1.astype(dt)),
                         g.weight(p + "fc1.bias", lw.gate_up_b), g.weight(p + "fc2.qweight", q2),
                         g.weight(p + "fc2.scale", s2.astype(dt)), g.weight(p + "fc2.bias", lw.down_b)],
                hint="qmoe", **attrs)


def fc1_layout(gate_up: np.ndarray) -> np.ndarray:
    """[E, H, 2I] (Hugging Face) -> [E, 2I, H] (MoE's fc1); gate/up stay interleaved (swiglu_fusion=1).
    A view: the weight writer or the per-expert quantizer copies what it needs, never the whole layer."""
    return gate_up.transpose(0, 2, 1)


def fc2_layout(down: np.ndarray) -> np.ndarray:
    """[E, I, H] (Hugging Face) -> [E, H, I] (MoE's fc2), a view."""
    return down.transpose(0, 2, 1)
