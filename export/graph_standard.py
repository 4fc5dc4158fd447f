"""gpt-oss as an ONNX graph of standard ops only (opset 21): the portable fallback.

Any ONNX runtime or execution provider can run it. Differences from the contrib graph:
the KV cache is written with ScatterElements into a fresh tensor (no in-place update),
and the MoE picks, per call, between gathering the k chosen experts' weights (few
tokens: decode) and running every expert densely (many tokens: prompts).
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto
from tqdm import tqdm

from export.graph_common import GraphWeights, add_io, embedding, last_position, linear, logits_outputs, unembedding
from export.onnx_builder import GraphBuilder
from runtime import manifest as m


def build(g: GraphBuilder, w: GraphWeights, progress: bool = False) -> None:
    cfg = w.cfg
    ids, seqlens_k, total_len = add_io(g, cfg, w.elem_type)
    ctx = _Context(g, w, ids, seqlens_k, total_len)
    x = embedding(g, w, ids)
    eps = cfg.rms_norm_eps
    for n in tqdm(range(cfg.num_hidden_layers), desc="graph (standard ops)", unit="layer", disable=not progress):
        lw = w.layer(n)
        with g.scope(f"layers.{n}"):
            normed = rms_norm(g, "ln1", x, g.weight(f"layers.{n}.ln1", lw.ln1), eps)
            with g.scope("attn"):
                attn = ctx.attention(n, normed, lw)
                with g.scope("residual"):
                    x = g.op("Add", [x, attn])
            normed = rms_norm(g, "ln2", x, g.weight(f"layers.{n}.ln2", lw.ln2), eps)
            with g.scope("moe"):
                moe = ctx.moe(n, normed, lw)
                with g.scope("residual"):
                    x = g.op("Add", [x, moe])
    last = last_position(g, x)
    logits_outputs(g, cfg, unembedding(g, w, rms_norm(g, "final_norm", last, g.weight("norm.weight", w.final_norm),
                                                      eps)))


def rms_norm(g: GraphBuilder, scope: str, x: str, weight: str, eps: float) -> str:
    with g.scope(scope):
        x32 = g.op("Cast", [x], to=TensorProto.FLOAT)
        mean_sq = g.op("ReduceMean", [g.op("Mul", [x32, x32]), g.const([-1])], keepdims=1)
        inv = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [mean_sq, g.const(eps, np.float32)])])])
        normed = g.op("CastLike", [g.op("Mul", [x32, inv]), x])
        return g.op("Mul", [normed, weight])


class _Context:
    """Per-graph values every layer reuses: positions, rotary tables, masks' inputs."""

    def __init__(self, g: GraphBuilder, w: GraphWeights, ids: str, seqlens_k: str, total_len: str):
        self.g, self.w, self.cfg = g, w, w.cfg
        cfg = self.cfg
        with g.scope("positions"):
            shape = g.op("Shape", [ids])
            self.batch = g.op("Slice", [shape, g.const([0]), g.const([1])])
            self.seq = g.op("Slice", [shape, g.const([1]), g.const([2])])
            seq_scalar = g.op("Squeeze", [self.seq, g.const([0])])
            # positions[b, t] = seqlens_k[b] + 1 - T + t
            first = g.op("Sub", [g.op("Add", [g.op("Cast", [seqlens_k], to=TensorProto.INT64), g.const(1)]),
                                 seq_scalar])
            steps = g.op("Range", [g.const(0), seq_scalar, g.const(1)])
            self.positions = g.op("Add", [g.op("Unsqueeze", [first, g.const([1])]), steps])
        cos = g.weight("rope.cos", w.cos)
        sin = g.weight("rope.sin", w.sin)
        with g.scope("rope"):
            self.cos = g.op("Unsqueeze", [g.op("Gather", [cos, self.positions]), g.const([1])])  # [B,1,T,D/2]
            self.sin = g.op("Unsqueeze", [g.op("Gather", [sin, self.positions]), g.const([1])])
        with g.scope("masks"):
            self.total = g.op("Reshape", [g.op("Cast", [total_len], to=TensorProto.INT64), g.const([1])])
            key_pos = g.op("Range", [g.const(0), g.op("Squeeze", [self.total, g.const([0])]), g.const(1)])
            query_pos = g.op("Unsqueeze", [self.positions, g.const([1, 2, 4])])  # [B,1,1,T,1]
            causal = g.op("LessOrEqual", [key_pos, query_pos])
            self.full_mask = causal
            self.window_mask = g.op("And", [causal, g.op("Greater", [
                key_pos, g.op("Sub", [query_pos, g.const(cfg.sliding_window)])])])
        with g.scope("cache_index"):
            # scatter indices for writing new keys: [B, kv_heads, T, head_dim] filled with the position
            pos4 = g.op("Unsqueeze", [self.positions, g.const([1, 3])])
            self.scatter_idx = g.op("Expand", [pos4, g.op("Concat", [
                self.batch, g.const([cfg.num_key_value_heads]), self.seq, g.const([cfg.head_dim])], axis=0)])

    def heads(self, x: str, n_heads: int) -> str:
        """[B,T,n*D] -> [B,n,T,D]"""
        g = self.g
        x = g.op("Reshape", [x, g.const([0, 0, n_heads, self.cfg.head_dim])])
        return g.op("Transpose", [x], perm=[0, 2, 1, 3])

    def rotate(self, x: str) -> str:
        g = self.g
        half = self.cfg.head_dim // 2
        with g.scope("rope"):
            x1, x2 = g.op("Split", [x, g.const([half, half])], outputs=2, axis=-1)
            return g.op("Concat", [g.op("Sub", [g.op("Mul", [x1, self.cos]), g.op("Mul", [x2, self.sin])]),
                                   g.op("Add", [g.op("Mul", [x2, self.cos]), g.op("Mul", [x1, self.sin])])], axis=-1)

    def attention(self, n: int, x: str, lw) -> str:
        """Layer n's attention, in the caller's scope: [B,T,H] normed -> [B,T,H], the KV cache written."""
        g, cfg = self.g, self.cfg
        p = f"layers.{n}."
        with g.scope("qkv_proj"):
            qkv = linear(g, self.w, p + "qkv", x, lw.qkv_w, lw.qkv_b)
        q, k, v = g.op("Split", [qkv, g.const([cfg.q_size, cfg.kv_size, cfg.kv_size])], outputs=3, axis=-1)
        with g.scope("q"):
            q = self.rotate(self.heads(q, cfg.num_attention_heads))
        with g.scope("k"):
            k = self.rotate(self.heads(k, cfg.num_key_value_heads))
        with g.scope("v"):
            v = self.heads(v, cfg.num_key_value_heads)
        with g.scope("cache"):
            present_k = g.op("ScatterElements", [m.past_key(n), self.scatter_idx, k], axis=2,
                             outputs=[m.present_key(n)])
            present_v = g.op("ScatterElements", [m.past_value(n), self.scatter_idx, v], axis=2,
                             outputs=[m.present_value(n)])
            keys = g.op("Slice", [present_k, g.const([0]), self.total, g.const([2])])
            values = g.op("Slice", [present_v, g.const([0]), self.total, g.const([2])])
        groups = cfg.num_attention_heads // cfg.num_key_value_heads
        with g.scope("scores"):
            q5 = g.op("Reshape", [q, g.const([0, cfg.num_key_value_heads, groups, -1, cfg.head_dim])])
            k5 = g.op("Unsqueeze", [keys, g.const([2])])
            scores = g.op("Mul", [g.op("MatMul", [q5, g.op("Transpose", [k5], perm=[0, 1, 2, 4, 3])]),
                                  g.const(cfg.head_dim ** -0.5, self.w.np_dtype)])
            mask = self.window_mask if cfg.is_sliding(n) else self.full_mask
            scores = g.op("Where", [mask, scores, g.const(-np.inf, self.w.np_dtype)])
        with g.scope("softmax"):
            # the sink: one more softmax column per head, dropped after normalising
            sink = g.op("Reshape", [g.weight(p + "sinks", lw.sinks),
                                    g.const([1, cfg.num_key_value_heads, groups, 1, 1])])
            sink_shape = g.op("Concat", [g.op("Slice", [g.op("Shape", [scores]), g.const([0]), g.const([4])]),
                                         g.const([1])], axis=0)
            probs = g.op("Softmax", [g.op("Concat", [scores, g.op("Expand", [sink, sink_shape])], axis=-1)], axis=-1)
            probs = g.op("Slice", [probs, g.const([0]), g.const([-1]), g.const([-1])])
        with g.scope("values"):
            v5 = g.op("Unsqueeze", [values, g.const([2])])
            out = g.op("MatMul", [probs, v5])  # [B,KV,G,T,D]
            out = g.op("Reshape", [out, g.const([0, cfg.num_attention_heads, -1, cfg.head_dim])])
            out = g.op("Reshape", [g.op("Transpose", [out], perm=[0, 2, 1, 3]), g.const([0, 0, cfg.q_size])])
        with g.scope("o_proj"):
            return linear(g, self.w, p + "o", out, lw.o_w, lw.o_b)

    def swiglu(self, gate_up: str) -> str:
        g, cfg = self.g, self.cfg
        dt = self.w.np_dtype
        with g.scope("swiglu"):
            shape = g.op("Shape", [gate_up])
            pairs = g.op("Concat", [g.op("Slice", [shape, g.const([0]), g.const([-1])]),
                                    g.const([cfg.intermediate_size, 2])], axis=0)
            gate, up = g.op("Split", [g.op("Reshape", [gate_up, pairs]), g.const([1, 1])], outputs=2, axis=-1)
            gate = g.op("Squeeze", [gate, g.const([-1])])
            up = g.op("Squeeze", [up, g.const([-1])])
            gate = g.op("Min", [gate, g.const(cfg.swiglu_limit, dt)])
            up = g.op("Clip", [up, g.const(-cfg.swiglu_limit, dt), g.const(cfg.swiglu_limit, dt)])
            glu = g.op("Mul", [gate, g.op("Sigmoid", [g.op("Mul", [gate, g.const(cfg.swiglu_alpha, dt)])])])
            return g.op("Mul", [g.op("Add", [up, g.const(1.0, dt)]), glu])

    def moe(self, n: int, x: str, lw) -> str:
        """Layer n's experts, in the caller's scope: [B,T,H] normed -> [B,T,H]."""
        g, cfg = self.g, self.cfg
        p = f"layers.{n}."
        e, k, hdim = cfg.num_local_experts, cfg.num_experts_per_tok, cfg.hidden_size
        shape = g.op("Shape", [x])
        flat = g.op("Reshape", [x, g.const([-1, hdim])])  # [N,H]
        with g.scope("router"):
            router = linear(g, self.w, p + "router", flat, lw.router_w, lw.router_b)
            top_vals, top_idx = g.op("TopK", [router, g.const([k])], outputs=2, axis=-1)
            weights = g.op("Softmax", [top_vals], axis=-1)  # [N,k]
        w1 = g.weight(p + "experts.gate_up", lw.gate_up)  # [E,H,2I]
        b1 = g.weight(p + "experts.gate_up_bias", lw.gate_up_b)  # [E,2I]
        w2 = g.weight(p + "experts.down", lw.down)  # [E,I,H]
        b2 = g.weight(p + "experts.down_bias", lw.down_b)  # [E,H]
        sparse_out, dense_out = g.fresh("sparse"), g.fresh("dense")

        def sparse():  # read only the k chosen experts' weights: right for decode
            with g.scope("sparse"):
                xs = g.op("Unsqueeze", [flat, g.const([1, 2])])  # [N,1,1,H]
                h = g.op("MatMul", [xs, g.op("Gather", [w1, top_idx])])  # [N,k,1,2I]
                h = g.op("Add", [h, g.op("Unsqueeze", [g.op("Gather", [b1, top_idx]), g.const([2])])])
                y = g.op("MatMul", [self.swiglu(h), g.op("Gather", [w2, top_idx])])  # [N,k,1,H]
                y = g.op("Add", [g.op("Squeeze", [y, g.const([2])]), g.op("Gather", [b2, top_idx])])  # [N,k,H]
                weighted = g.op("Mul", [y, g.op("Unsqueeze", [weights, g.const([2])])])
                g.op("ReduceSum", [weighted, g.const([1])], keepdims=0, outputs=[sparse_out])

        def dense():  # every expert on every token, weighted by a mostly-zero [N,E]: right for prompts
            with g.scope("dense"):
                h = g.op("MatMul", [g.op("Unsqueeze", [flat, g.const([0])]), w1])  # [E,N,2I]
                h = g.op("Add", [h, g.op("Unsqueeze", [b1, g.const([1])])])
                y = g.op("Add", [g.op("MatMul", [self.swiglu(h), w2]), g.op("Unsqueeze", [b2, g.const([1])])])
                full = g.op("ScatterElements", [g.op("Mul", [router, g.const(0.0, self.w.np_dtype)]), top_idx,
                                                weights], axis=1)  # [N,E]
                gate = g.op("Unsqueeze", [g.op("Transpose", [full], perm=[1, 0]), g.const([2])])  # [E,N,1]
                g.op("ReduceSum", [g.op("Mul", [y, gate]), g.const([0])], keepdims=0, outputs=[dense_out])

        tokens = g.op("Gather", [g.op("Shape", [flat]), g.const(0)])
        use_sparse = g.op("Less", [g.op("Mul", [tokens, g.const(k)]), g.const(e)])
        elem = self.w.elem_type
        out = g.op("If", [use_sparse],
                   then_branch=g.subgraph(sparse, [(sparse_out, elem)], f"layers.{n}/moe/sparse"),
                   else_branch=g.subgraph(dense, [(dense_out, elem)], f"layers.{n}/moe/dense"))
        return g.op("Reshape", [out, shape])
