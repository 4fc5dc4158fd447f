"""What both op sets share: the graph's inputs and outputs, and the weights in graph-ready layout."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from onnx import TensorProto

from export import mxfp4
from export.errors import ExportError
from export.dense_quantize import BITS, BLOCK, ROWS_AT_ONCE, quantize_matrix
from export.onnx_builder import GraphBuilder
from export.rope import cos_sin
from runtime import manifest as m
from runtime.model_config import ModelConfig

MS = "com.microsoft"  # onnxruntime's contrib ops
DTYPES = {"float32": (np.float32, TensorProto.FLOAT), "float16": (np.float16, TensorProto.FLOAT16)}


def float16_overflow(name: str, biggest: float) -> str:
    return (f"{name}: float16 cannot hold this tensor (largest |value| {biggest:.4g}; float16 stops at 65504): "
            f"export with --dtype float32")


@dataclass
class LayerWeights:
    ln1: np.ndarray  # [H]
    ln2: np.ndarray
    qkv_w: np.ndarray  # [H, q + 2kv]: x @ qkv_w, q columns first, then k, then v
    qkv_b: np.ndarray
    o_w: np.ndarray  # [q, H]
    o_b: np.ndarray
    sinks: np.ndarray  # [heads]
    router_w: np.ndarray  # [H, E]
    router_b: np.ndarray
    gate_up: np.ndarray  # [E, H, 2I], gate/up interleaved (Hugging Face layout)
    gate_up_b: np.ndarray  # [E, 2I]
    down: np.ndarray  # [E, I, H]
    down_b: np.ndarray  # [E, H]
    # MXFP4 experts (experts "mxfp4"): (codes, e8m0 scales) of fc1 [E, 2I, H] and fc2 [E, H, I] in QMoE's
    # layout, and no float copies of them above
    fc1_fp4: tuple[np.ndarray, np.ndarray] | None = None
    fc2_fp4: tuple[np.ndarray, np.ndarray] | None = None


class GraphWeights:
    """Canonical tensors converted to numpy in the graph's dtype, one layer at a time."""

    def __init__(self, cfg: ModelConfig, tensors: Mapping[str, torch.Tensor], dtype: str, max_context: int,
                 experts: str = "float", dense: str = "float", lookup_tensors: Mapping[str, torch.Tensor] | None = None,
                 values: str | None = None, window_cache: bool = False, block: int = BLOCK):
        """values: the precision every stored float value is rounded to, quantization scales included (the
        graph's dtype unless asked: a float32 twin of a float16 graph holds float16's values). window_cache:
        the sliding layers' KV buffers hold their window only (contrib graphs; cache_dims). block: the
        inputs sharing one scale in int4 experts and int8/int4 dense weights (`--block-size`)."""
        self.cfg = cfg
        self.block = block
        self.window_cache = window_cache
        # what a float embedding lookup reads (a quantized one quantizes `tensors`, as the unembedding does)
        self.lookup_tensors = lookup_tensors if lookup_tensors is not None else tensors
        self.experts = experts  # "float", or "int8"/"int4"/"mxfp4" (the contrib graph's QMoE)
        self.dense = dense  # "float", or "int8"/"int4" (the contrib graph's MatMulNBits)
        self.tensors = tensors
        self.np_dtype, self.elem_type = DTYPES[dtype]
        self.value_dtype = DTYPES[values or dtype][0]
        cos, sin = cos_sin(cfg, torch.arange(max_context))
        # computed, not the checkpoint's values: in the graph's dtype, never rounded further
        self.cos, self.sin = (t.to(torch.float32).numpy().astype(self.np_dtype) for t in (cos, sin))
        self.final_norm = self._np(tensors["model.norm.weight"], "model.norm.weight")

    @property
    def embed(self) -> np.ndarray:
        """[V, H], read when asked (a 20B model's is 2.3 GB in float32: not kept for the whole build)."""
        return self._np(self.lookup_tensors["model.embed_tokens.weight"], "model.embed_tokens.weight")

    def embed_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """The embedding as GatherBlockQuantized reads it with dense int8/int4: uint8 codes [V, H * bits / 8]
        (two 4-bit codes a byte, low nibble first) and scales [V, H / block] in the graph's dtype; the
        checkpoint's own values quantized a slab of rows at a time, the way the unembedding's are."""
        name = "model.embed_tokens.weight"
        table = self.tensors[name]
        rows, hidden = table.shape
        bits = BITS[self.dense]
        codes = np.empty((rows, hidden * bits // 8), dtype=np.uint8)
        scales = np.empty((rows, hidden // self.block), dtype=self.np_dtype)
        for start in range(0, rows, ROWS_AT_ONCE):
            part = slice(start, start + ROWS_AT_ONCE)
            q, scale = quantize_matrix(self._np(table[part], name), bits, self.value_dtype, self.block)
            codes[part], scales[part] = q.reshape(q.shape[0], -1), scale
        return codes, scales

    def embed_bfloat16_bits(self) -> np.ndarray | None:
        """[V, H] as bfloat16 bits, when bfloat16 holds the embedding exactly (a bfloat16 checkpoint, as
        gpt-oss is released) and no float matmul shares it (a tied, unquantized unembedding): a lookup
        copies rows, so the graph keeps them at half float32's bytes and casts what it gathered."""
        if self.cfg.tie_word_embeddings and self.dense == "float":
            return None
        table = self.lookup_tensors["model.embed_tokens.weight"].to(torch.float32)
        narrow = table.to(torch.bfloat16)
        if not torch.equal(narrow.to(torch.float32), table):
            return None
        return narrow.view(torch.int16).numpy().view(np.uint16)

    def _np(self, t: torch.Tensor, name: str = "a tensor") -> np.ndarray:
        a = t.detach().to(torch.float32).numpy()
        if self.value_dtype != np.float32:
            with np.errstate(over="ignore"):  # an overflow is refused just below, by name
                a = a.astype(self.value_dtype)
            if not np.isfinite(a).all():  # a silent inf would fail verification with no hint why
                raise ExportError(float16_overflow(name, float(t.detach().abs().max())))
        return a.astype(self.np_dtype, copy=False)

    def ln1(self, n: int) -> np.ndarray:
        """Layer n's first norm alone (the graph fuses it into the previous layer's last op)."""
        name = f"model.layers.{n}.input_layernorm.weight"
        return self._np(self.tensors[name], name)

    def layer(self, n: int) -> LayerWeights:
        t = lambda name: self.tensors[f"model.layers.{n}.{name}"]  # noqa: E731
        a = lambda name: self._np(t(name), f"model.layers.{n}.{name}")  # noqa: E731
        qkv_w = torch.cat([t("self_attn.q_proj.weight"), t("self_attn.k_proj.weight"),
                           t("self_attn.v_proj.weight")], dim=0).T
        qkv_b = torch.cat([t("self_attn.q_proj.bias"), t("self_attn.k_proj.bias"), t("self_attn.v_proj.bias")])
        fp4 = self.experts == "mxfp4"
        experts = lambda name: None if fp4 else a(name)  # noqa: E731  (4-bit experts never exist in float)
        prefix = f"model.layers.{n}.mlp.experts."
        return LayerWeights(
            ln1=a("input_layernorm.weight"), ln2=a("post_attention_layernorm.weight"),
            qkv_w=self._np(qkv_w, f"model.layers.{n}.self_attn.q/k/v_proj.weight"),
            qkv_b=self._np(qkv_b, f"model.layers.{n}.self_attn.q/k/v_proj.bias"),
            o_w=self._np(t("self_attn.o_proj.weight").T, f"model.layers.{n}.self_attn.o_proj.weight"),
            o_b=a("self_attn.o_proj.bias"),
            sinks=a("self_attn.sinks"),
            router_w=self._np(t("mlp.router.weight").T, f"model.layers.{n}.mlp.router.weight"),
            router_b=a("mlp.router.bias"),
            gate_up=experts("mlp.experts.gate_up_proj"), gate_up_b=a("mlp.experts.gate_up_proj_bias"),
            down=experts("mlp.experts.down_proj"), down_b=a("mlp.experts.down_proj_bias"),
            fc1_fp4=mxfp4.codes_of(self.tensors, prefix + "gate_up_proj") if fp4 else None,
            fc2_fp4=mxfp4.codes_of(self.tensors, prefix + "down_proj") if fp4 else None)

    def unembed_matrix(self) -> np.ndarray:
        """[V, H], the unembedding (the embedding itself in a tied model)."""
        name = "model.embed_tokens.weight" if self.cfg.tie_word_embeddings else "lm_head.weight"
        return self._np(self.tensors[name], name)

    def lm_head_name(self, g: GraphBuilder) -> str:
        """[V, H] matrix for Gemm(transB=1); tied models reuse the embedding initializer (written here when
        the builder has none: the head built alone, as export/layer_pieces.py builds it)."""
        if self.cfg.tie_word_embeddings:
            if not g.has_weight("embed.weight"):
                g.weight("embed.weight", self.embed)
            return "embed.weight"
        if not g.has_weight("lm_head.weight"):
            g.weight("lm_head.weight", self.unembed_matrix())
        return "lm_head.weight"


def windowed(cfg: ModelConfig, n: int, window_cache: bool) -> bool:
    """Layer n keeps only its window's keys and values (GroupQueryAttention's sliding_window_cache)."""
    return window_cache and cfg.is_sliding(n)


def cache_dims(cfg: ModelConfig, n: int, window_cache: bool) -> list:
    """Layer n's KV buffer as the graph declares it: [batch, kv_heads, positions, head_dim], the positions
    fixed at the window for a windowed layer (onnxruntime's CUDA kernel wants exactly that), else any."""
    positions = cfg.sliding_window if windowed(cfg, n, window_cache) else "cache_length"
    return ["batch", cfg.num_key_value_heads, positions, cfg.head_dim]


def add_io(g: GraphBuilder, cfg: ModelConfig, elem: int, window_cache: bool = False) -> tuple[str, str, str]:
    ids = g.input(m.INPUT_IDS, TensorProto.INT64, ["batch", "sequence"])
    seqlens_k = g.input(m.SEQLENS_K, TensorProto.INT32, ["batch"])
    total = g.input(m.TOTAL_SEQ_LEN, TensorProto.INT32, [])
    for n in range(cfg.num_hidden_layers):
        g.input(m.past_key(n), elem, cache_dims(cfg, n, window_cache))
        g.input(m.past_value(n), elem, cache_dims(cfg, n, window_cache))
    g.output(m.LOGITS, TensorProto.FLOAT, ["batch", cfg.vocab_size])
    k = candidates(cfg)
    g.output(m.TOP_VALUES, TensorProto.FLOAT, ["batch", k])
    g.output(m.TOP_IDS, TensorProto.INT64, ["batch", k])
    for n in range(cfg.num_hidden_layers):
        g.output(m.present_key(n), elem, cache_dims(cfg, n, window_cache))
        g.output(m.present_value(n), elem, cache_dims(cfg, n, window_cache))
    return ids, seqlens_k, total


def embedding(g: GraphBuilder, w: GraphWeights, ids: str) -> str:
    """The token lookup: [B, T] ids -> [B, T, H] in the graph's dtype. With dense int8/int4 weights the
    table is block-quantized like the unembedding (GatherBlockQuantized: codes times the block's scale, exact
    against float math on the dequantized rows): a lookup reads one row, but the whole table takes memory,
    1.1 GB of a gpt-oss-20b export in float16."""
    if w.dense != "float":
        codes, scales = w.embed_blocks()
        with g.scope("embed"):
            rows = g.op("GatherBlockQuantized", [g.weight("embed.qweight", codes), ids, g.weight("embed.scales", scales)],
                        domain=MS, gather_axis=0, quantize_axis=1, block_size=w.block, bits=BITS[w.dense])
            if w.value_dtype == np.float16 and w.np_dtype != np.float16:
                # a float32 twin of a float16 graph: that graph's rows are code x scale rounded to float16
                rows = g.op("Cast", [g.op("Cast", [rows], to=TensorProto.FLOAT16)], to=w.elem_type)
            return rows
    bits = w.embed_bfloat16_bits()
    with g.scope("embed"):
        if bits is None:
            return g.op("Gather", [g.weight("embed.weight", w.embed), ids])
        rows = g.op("Gather", [g.weight("embed.weight", bits, TensorProto.BFLOAT16), ids])
        return g.op("Cast", [rows], to=w.elem_type)


def linear(g: GraphBuilder, w: GraphWeights, name: str, x: str, weight: np.ndarray, bias: np.ndarray | None = None,
           dense: str = "float") -> str:
    """x @ weight (+ bias) for a [K, N] weight, its initializers named `name`.weight/.bias: MatMul (and Add),
    or one MatMulNBits for dense "int8"/"int4" (blocks of w.block along K, float activations: accuracy_level 0,
    exact against float math on the dequantized weights). The caller's scope names the nodes."""
    if dense == "float":
        y = g.op("MatMul", [x, g.weight(name + ".weight", weight)])
        return y if bias is None else g.op("Add", [y, g.weight(name + ".bias", bias)])
    bits = BITS[dense]
    k, n = weight.shape
    codes, scales = quantize_matrix(weight.T, bits, w.value_dtype, w.block)
    inputs = [x, g.weight(name + ".qweight", codes), g.weight(name + ".scales", scales.reshape(-1).astype(w.np_dtype))]
    if bias is not None:
        inputs += ["", "", g.weight(name + ".bias", bias)]
    return g.op("MatMulNBits", inputs, domain=MS, K=k, N=n, bits=bits, block_size=w.block, accuracy_level=0)


def last_position(g: GraphBuilder, x: str) -> str:
    """[B, T, H] -> [B, H]: only the last position's logits are ever needed."""
    with g.scope("last_position"):
        sliced = g.op("Slice", [x, g.const([-1]), g.const([np.iinfo(np.int64).max]), g.const([1])])
        return g.op("Squeeze", [sliced, g.const([1])])


def unembedding(g: GraphBuilder, w: GraphWeights, x: str) -> str:
    """[B, H] -> float32 logits [B, V]: Gemm on the [V, H] matrix (a tied model's embedding itself), or
    MatMulNBits when the dense weights are quantized."""
    with g.scope("lm_head"):
        if w.dense == "float":
            logits = g.op("Gemm", [x, w.lm_head_name(g)], transB=1)
        else:
            logits = linear(g, w, "lm_head", x, w.unembed_matrix().T, dense=w.dense)
        if w.elem_type != TensorProto.FLOAT:
            logits = g.op("Cast", [logits], to=TensorProto.FLOAT)
        return logits


MAX_CANDIDATES = 64


def candidates(cfg: ModelConfig) -> int:
    return min(MAX_CANDIDATES, cfg.vocab_size)


def logits_outputs(g: GraphBuilder, cfg: ModelConfig, logits: str) -> None:
    """logits plus their top-K: a GPU runtime copies K candidates per step, not the vocabulary."""
    with g.scope("logits"):
        g.op("Identity", [logits], outputs=[m.LOGITS])
        g.op("TopK", [logits, g.const([candidates(cfg)])], outputs=[m.TOP_VALUES, m.TOP_IDS], axis=-1,
             largest=1, sorted=1)
