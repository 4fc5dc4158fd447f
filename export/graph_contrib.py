"""gpt-oss as an ONNX graph of onnxruntime's fused contrib ops.

GroupQueryAttention (rotary, sinks, sliding window, in-place KV buffer), MoE
(top-k softmax routing, interleaved clamped SwiGLU) and SkipSimplifiedLayerNormalization.
This is the fast path on onnxruntime's CPU and CUDA providers.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto
from tqdm import tqdm

from export import mxfp4

from export.graph_common import (MS, GraphWeights, add_io, embedding, last_position, linear, logits_outputs,
                                 unembedding, windowed)
from export.onnx_builder import GraphBuilder
from export.quantize import quantize_blocks_int4, quantize_rows
from runtime import manifest as m

E8M0 = TensorProto.FLOAT8E8M0
QMOE_WEIGHTS_PREPACKED = 0  # integer experts as raw codes; the manifest says so (runtime/session.py)


def build(g: GraphBuilder, w: GraphWeights, progress: bool = False) -> None:
    cfg = w.cfg
    ids, seqlens_k, total_len = add_io(g, cfg, w.elem_type, w.window_cache)
    rope = rope_tables(g, w)
    normed, residual = embed_part(g, w, ids)
    for n in tqdm(range(cfg.num_hidden_layers), desc="graph (contrib ops)", unit="layer", disable=not progress):
        normed, residual = layer_part(g, w, n, normed, residual, seqlens_k, total_len, rope)
    logits_outputs(g, cfg, head_part(g, w, residual))


# The graph is the composition of these parts (export/layer_pieces.py also builds them one at a time):
# embed_part, then layer_part for every layer, then head_part. A layer part ends with the next layer's
# first norm, fused with its residual add, as onnxruntime's SkipSimplifiedLayerNormalization does it.

def rope_tables(g: GraphBuilder, w: GraphWeights) -> tuple[str, str]:
    return g.weight("rope.cos", w.cos), g.weight("rope.sin", w.sin)


def embed_part(g: GraphBuilder, w: GraphWeights, ids: str) -> tuple[str, str]:
    """Token ids -> (layer 0's normed input, the residual stream)."""
    residual = embedding(g, w, ids)
    with g.scope("layers.0"), g.scope("ln1"):
        normed = g.op("SimplifiedLayerNormalization", [residual, g.weight("layers.0.ln1", w.ln1(0))],
                      axis=-1, epsilon=w.cfg.rms_norm_eps)
    return normed, residual


def layer_part(g: GraphBuilder, w: GraphWeights, n: int, normed: str, residual: str, seqlens_k: str, total_len: str,
               rope: tuple[str, str], taps: dict[str, str] | None = None) -> tuple[str, str]:
    """Layer n: attention, the norm before the experts, the experts; then the next layer's normed input and
    the residual stream (the last layer: the residual stream twice, there is no next norm). taps, when
    given, gets the router logits' name (tools/experiments/float16_layer_errors.py reads them)."""
    cfg, eps = w.cfg, w.cfg.rms_norm_eps
    lw = w.layer(n)
    p = f"layers.{n}."
    with g.scope(f"layers.{n}"):
        with g.scope("attn"):
            attn = attention(g, w, n, lw, normed, seqlens_k, total_len, *rope)
        with g.scope("ln2"):  # the attention's residual add, then the norm before the experts
            normed, _, _, residual = g.op(
                "SkipSimplifiedLayerNormalization", [attn, residual, g.weight(p + "ln2", lw.ln2)],
                outputs=[g.fresh("normed"), "", "", g.fresh("residual")], domain=MS, epsilon=eps)
        with g.scope("moe"):
            with g.scope("router"):
                router = linear(g, w, p + "router", normed, lw.router_w, lw.router_b)
                router = g.op("Reshape", [router, g.const([-1, cfg.num_local_experts])])
                if taps is not None:
                    taps["router"] = router
            moe = experts(g, w, p, lw, normed, router)
            if n + 1 == cfg.num_hidden_layers:
                with g.scope("residual"):
                    residual = g.op("Add", [moe, residual])
                    return residual, residual
    with g.scope(f"layers.{n + 1}"), g.scope("ln1"):  # this layer's residual add, the next one's norm
        normed, _, _, residual = g.op(
            "SkipSimplifiedLayerNormalization", [moe, residual, g.weight(f"layers.{n + 1}.ln1", w.ln1(n + 1))],
            outputs=[g.fresh("normed"), "", "", g.fresh("residual")], domain=MS, epsilon=eps)
    return normed, residual


def head_part(g: GraphBuilder, w: GraphWeights, residual: str) -> str:
    """The residual stream -> the last position's float32 logits."""
    last = last_position(g, residual)
    with g.scope("final_norm"):
        final = g.op("SimplifiedLayerNormalization", [last, g.weight("norm.weight", w.final_norm)],
                     axis=-1, epsilon=w.cfg.rms_norm_eps)
    return unembedding(g, w, final)


def attention(g: GraphBuilder, w: GraphWeights, n: int, lw, x: str, seqlens_k: str, total_len: str, cos: str,
              sin: str) -> str:
    """Layer n's attention: the q/k/v projection, GroupQueryAttention (rotary, sinks, the window, the KV
    buffer updated in place), the output projection."""
    cfg, p = w.cfg, f"layers.{n}."
    with g.scope("qkv_proj"):
        qkv = linear(g, w, p + "qkv", x, lw.qkv_w, lw.qkv_b, dense=w.dense)
    # Measured: ORT's local_window_size N sees the same keys as HF's sliding_window N (i - N < j <= i).
    window = cfg.sliding_window if cfg.is_sliding(n) else -1
    # A windowed layer's buffer holds the last `window` positions only (rows [0, L) in position order; the op
    # evicts as it appends): gpt-oss-20b's 12 sliding layers then keep 128 positions rather than the context.
    extra = dict(sliding_window_cache=1) if windowed(cfg, n, w.window_cache) else {}
    attn = g.op("GroupQueryAttention",
                [qkv, "", "", m.past_key(n), m.past_value(n), seqlens_k, total_len, cos, sin,
                 "", "", g.weight(p + "sinks", lw.sinks)],
                outputs=[g.fresh("heads"), m.present_key(n), m.present_value(n)], domain=MS,
                num_heads=cfg.num_attention_heads, kv_num_heads=cfg.num_key_value_heads,
                do_rotary=1, rotary_interleaved=0, local_window_size=window,
                scale=float(cfg.head_dim ** -0.5), **extra)[0]
    with g.scope("o_proj"):
        return linear(g, w, p + "o", attn, lw.o_w, lw.o_b, dense=w.dense)


def experts(g: GraphBuilder, w: GraphWeights, p: str, lw, normed: str, router: str) -> str:
    """The mixture of experts: MoE with float experts, or QMoE with int8 (per row), int4 (per block of w.block) or
    MXFP4 ones (w.experts)."""
    cfg = w.cfg
    attrs = dict(domain=MS, k=cfg.num_experts_per_tok, activation_type="swiglu", swiglu_fusion=1,
                 swiglu_limit=cfg.swiglu_limit, activation_alpha=cfg.swiglu_alpha, activation_beta=1.0,
                 normalize_routing_weights=1)
    if w.experts == "mxfp4":
        return mxfp4_experts(g, w, p, lw, normed, router, attrs)
    fc1, fc2 = fc1_layout(lw.gate_up), fc2_layout(lw.down)
    if w.experts == "float":
        return g.op("MoE", [normed, router, g.weight(p + "fc1.weight", fc1), g.weight(p + "fc1.bias", lw.gate_up_b),
                            g.weight(p + "fc2.weight", fc2), g.weight(p + "fc2.bias", lw.down_b)], **attrs)
    # weights_prepacked=0: the codes are raw [E, N, K/pack], as the CPU reads them. Left out, the CUDA
    # provider takes them for its own prepacked CUTLASS layout and computes garbage (measured on an H200:
    # max |logit diff| 40 against the CPU on the same folder); with 0 it packs them itself at load.
    attrs.update(weights_prepacked=QMOE_WEIGHTS_PREPACKED)
    if w.experts == "int4":
        (q1, s1), (q2, s2) = (quantize_blocks_int4(fc, scale_dtype=w.value_dtype, block=w.block) for fc in (fc1, fc2))
        attrs.update(expert_weight_bits=4, block_size=w.block)
    else:
        (q1, s1), (q2, s2) = (quantize_rows(fc, scale_dtype=w.value_dtype) for fc in (fc1, fc2))
        attrs.update(expert_weight_bits=8)
    dt = w.np_dtype
    return g.op("QMoE", [normed, router, g.weight(p + "fc1.qweight", q1), g.weight(p + "fc1.scale", s1.astype(dt)),
                         g.weight(p + "fc1.bias", lw.gate_up_b), g.weight(p + "fc2.qweight", q2),
                         g.weight(p + "fc2.scale", s2.astype(dt)), g.weight(p + "fc2.bias", lw.down_b)], **attrs)


def mxfp4_experts(g: GraphBuilder, w: GraphWeights, p: str, lw, normed: str, router: str, attrs: dict) -> str:
    """QMoE with the checkpoint's MXFP4 bytes as they are: E2M1 codes (low nibble first, as gpt-oss stores
    them), e8m0 scales per 32 inputs, and a global scale of 1 per expert. onnxruntime 1.31 runs this on
    CUDA only; the exporter verifies it through a CPU twin (exporter.py)."""
    (c1, s1), (c2, s2) = lw.fc1_fp4, lw.fc2_fp4
    ones = np.ones(w.cfg.num_local_experts, dtype=np.float32)
    attrs = dict(attrs, quant_type="fp4", expert_weight_bits=4, block_size=mxfp4.BLOCK)
    return g.op("QMoE", [normed, router, g.weight(p + "fc1.fp4", c1), g.weight(p + "fc1.e8m0", s1, E8M0),
                         g.weight(p + "fc1.bias", lw.gate_up_b), g.weight(p + "fc2.fp4", c2),
                         g.weight(p + "fc2.e8m0", s2, E8M0), g.weight(p + "fc2.bias", lw.down_b),
                         "", "", "", "", "", "", "",  # no fc3 (SwiGLU is fused), zero points or router weights
                         g.weight(p + "fc1.global_scale", ones), g.weight(p + "fc2.global_scale", ones)], **attrs)


def fc1_layout(gate_up: np.ndarray) -> np.ndarray:
    """[E, H, 2I] (Hugging Face) -> [E, 2I, H] (MoE's fc1); gate/up stay interleaved (swiglu_fusion=1).
    A view: the weight writer or the per-expert quantizer copies what it needs, never the whole layer."""
    return gate_up.transpose(0, 2, 1)


def fc2_layout(down: np.ndarray) -> np.ndarray:
    """[E, I, H] (Hugging Face) -> [E, H, I] (MoE's fc2), a view."""
    return down.transpose(0, 2, 1)
