"""How many bytes an export's weights take, from the shapes alone: before exporting, a studio can see
which choice (dtype, 4-bit experts, 8-bit dense weights) fits its players' GPUs.

Mirrors what the graph builders write, tensor by tensor (tests compare it with real exports): quantized
matrices hold their codes plus one scale (in the graph's dtype) per row (int8 experts) or per block of
32 or `--block-size` (int4 experts, int8/int4 dense weights, the embedding table with them); MXFP4 experts hold an e8m0
byte per 32 values; otherwise a bfloat16 checkpoint's embedding stays bfloat16.
"""
from __future__ import annotations

from dataclasses import dataclass

from runtime.model_config import ModelConfig

DTYPE_BYTES = {"float32": 4, "float16": 2}
BLOCK = 32


@dataclass(frozen=True)
class ExportChoice:
    dtype: str = "float32"
    experts: str = "float"  # float, int8, int4, mxfp4
    dense: str = "float"  # float, int8, int4
    embed_bfloat16: bool = True  # the checkpoint's embedding is bfloat16 (gpt-oss as released)
    block: int = BLOCK  # inputs a scale covers in int4 experts and int8/int4 dense weights (--block-size)

    def label(self) -> str:
        parts = [self.dtype, f"{self.experts} experts", f"{self.dense} dense"]
        return ", ".join(parts) + (f", blocks of {self.block}" if self.block != BLOCK else "")

    def fits(self, cfg: ModelConfig) -> bool:
        """Whether every axis its blocks split is a multiple of the block size (as the exporter requires)."""
        return all(n % self.block == 0 for n in blocked_axes(cfg, self.experts, self.dense).values())


def blocked_axes(cfg: ModelConfig, experts: str, dense: str) -> dict[str, int]:
    """The sizes that block-quantized weights split into blocks, by name: the inputs of int4 experts (hidden,
    intermediate) and of int8/int4 dense weights (hidden; the attention output that o_proj reads)."""
    axes = {"hidden size": cfg.hidden_size, "intermediate size": cfg.intermediate_size} if experts == "int4" else {}
    if dense != "float":
        axes.update({"hidden size": cfg.hidden_size, "attention output (heads x head dim)": cfg.q_size})
    return axes


def matrix_bytes(rows: int, cols: int, precision: str, dtype: str, block: int = BLOCK) -> int:
    """A [rows, cols] weight (cols = inputs) as the graph stores it, scales included."""
    scale = DTYPE_BYTES[dtype]
    if precision == "float":
        return rows * cols * scale
    if precision == "int8-rows":
        return rows * cols + rows * scale
    if precision == "mxfp4":  # two E2M1 codes a byte, one e8m0 byte per 32 inputs
        return rows * cols // 2 + rows * (cols // BLOCK)
    bits = {"int8": 8, "int4": 4}[precision]
    return rows * cols * bits // 8 + rows * (cols // block) * scale


def weights_bytes(cfg: ModelConfig, choice: ExportChoice, max_context: int) -> int:
    d, h, v = DTYPE_BYTES[choice.dtype], cfg.hidden_size, cfg.vocab_size
    embed_shared = cfg.tie_word_embeddings and choice.dense == "float"
    total = embed_bytes(cfg, choice) * v
    if not embed_shared:
        total += matrix_bytes(v, h, choice.dense, choice.dtype, choice.block)  # the unembedding
    total += 2 * max_context * (cfg.head_dim // 2) * d  # rotary cos and sin tables
    total += h * d  # the final norm
    per_layer = layer_bytes_besides_experts(cfg, choice) + cfg.num_local_experts * expert_bytes(cfg, choice)
    return total + cfg.num_hidden_layers * per_layer


def embed_bytes(cfg: ModelConfig, choice: ExportChoice) -> int:
    """One row of the embedding table as stored: block-quantized with dense int8/int4 weights, else
    bfloat16 when the checkpoint's is (and no float unembedding shares it), else the graph's dtype."""
    if choice.dense != "float":
        return matrix_bytes(1, cfg.hidden_size, choice.dense, choice.dtype, choice.block)
    shared = cfg.tie_word_embeddings
    return cfg.hidden_size * (2 if choice.embed_bfloat16 and not shared else DTYPE_BYTES[choice.dtype])


def layer_bytes_besides_experts(cfg: ModelConfig, choice: ExportChoice) -> int:
    """A layer's attention (q/k/v and o with biases, sinks), two norms and router."""
    d, h, e = DTYPE_BYTES[choice.dtype], cfg.hidden_size, cfg.num_local_experts
    qkv = cfg.q_size + 2 * cfg.kv_size
    return (matrix_bytes(qkv, h, choice.dense, choice.dtype, choice.block) + qkv * d
            + matrix_bytes(h, cfg.q_size, choice.dense, choice.dtype, choice.block) + h * d
            + cfg.num_attention_heads * d + 2 * h * d + (h * e + e) * d)


def expert_bytes(cfg: ModelConfig, choice: ExportChoice) -> int:
    """One expert: gate_up and down as exported, with their biases."""
    d, h, i = DTYPE_BYTES[choice.dtype], cfg.hidden_size, cfg.intermediate_size
    experts = "int8-rows" if choice.experts == "int8" else choice.experts
    global_scales = 2 * 4 if choice.experts == "mxfp4" else 0  # QMoE fp4's float32 scale per expert and matrix
    return (matrix_bytes(2 * i, h, experts, choice.dtype, choice.block)
            + matrix_bytes(h, i, experts, choice.dtype, choice.block)
            + (2 * i + h) * d + global_scales)


# What `parley inspect CHECKPOINT` offers a studio: the exports worth choosing between, by target.
CHOICES = (
    ("CPU, exact", ExportChoice("float32", "float", "float"), "--experts float"),
    ("CPU", ExportChoice("float32", "int4", "int4"), "--dense int4"),
    ("GPU, exact dense", ExportChoice("float16", "int4", "float"), "--dtype float16"),
    # 4-bit dense weights: gpt-oss-20b's full size does not yet verify this way on the CPU (docs/performance.md)
    ("GPU", ExportChoice("float16", "int4", "int4"), "--dtype float16 --dense int4"),
    # half the scales: the demo model's answers as good as at 32 (docs/performance.md, "Blocks of 64, ...")
    ("GPU, smallest", ExportChoice("float16", "int4", "int4", block=64), "--dtype float16 --dense int4 --block-size 64"),
    # closer to the checkpoint, but onnxruntime's CPU kernel cannot verify it at full size (performance.md)
    ("GPU, 8-bit dense", ExportChoice("float16", "int4", "int8"), "--dtype float16 --dense int8"),
    # (--experts mxfp4 is not offered: onnxruntime-gpu 1.31.1 computes it wrong, and the runtime refuses it)
)


def serving_estimates(cfg: ModelConfig, embed_bfloat16: bool, max_context: int = 4096,
                      max_batch: int = 8) -> list[dict]:
    """Memory to serve each export choice: weights plus the decode batch's KV cache (max_batch rows of
    max_context, the sliding layers keeping their window as the exporter's default contrib graphs do), before
    activations and the conversations' own caches."""
    from dataclasses import replace

    from runtime.memory_plan import kv_bytes_per_token, kv_window_bytes

    rows = []
    for target, choice, flags in CHOICES:
        if not choice.fits(cfg):  # its blocks do not divide this model's sizes: not a choice for it
            continue
        choice = replace(choice, embed_bfloat16=embed_bfloat16)
        weights = weights_bytes(cfg, choice, max_context)
        window = cfg.sliding_window if cfg.sliding_window < max_context else 0
        kv = (kv_bytes_per_token(cfg, choice.dtype, window=window) * max_context
              + kv_window_bytes(cfg, choice.dtype, window)) * max_batch
        rows.append({"target": target, "flags": flags, "weights_bytes": weights, "kv_cache_bytes": kv,
                     "total_bytes": weights + kv, "max_context": max_context, "max_batch": max_batch})
    return rows


def serving_table(rows: list[dict]) -> list[str]:
    gib = lambda n: f"{n / 2**30:,.2f} GiB"  # noqa: E731
    out = [f"  {'target':<18}{'weights':>12}{'KV cache':>12}{'total':>12}   parley export flags"]
    for r in rows:
        out.append(f"  {r['target']:<18}{gib(r['weights_bytes']):>12}{gib(r['kv_cache_bytes']):>12}"
                   f"{gib(r['total_bytes']):>12}   {r['flags']}")
    return out


def active_bytes_per_token(cfg: ModelConfig, choice: ExportChoice, rows: int = 1) -> int:
    """The weight bytes one decode step of `rows` rows must read: every layer's attention, router and
    norms, the experts its rows chose (for one row the top k; for several, the expected union of their
    choices, 1 - (1 - k/E)^rows of the experts, choices taken as independent), the unembedding and one
    embedding row per row. What the bandwidth floor divides into the measured read bandwidth."""
    d, h, v, e = DTYPE_BYTES[choice.dtype], cfg.hidden_size, cfg.vocab_size, cfg.num_local_experts
    chosen = e * (1 - (1 - cfg.num_experts_per_tok / e) ** rows)
    per_layer = layer_bytes_besides_experts(cfg, choice) + chosen * expert_bytes(cfg, choice)
    total = (cfg.num_hidden_layers * per_layer + rows * embed_bytes(cfg, choice)
             + matrix_bytes(v, h, choice.dense, choice.dtype, choice.block) + h * d)
    return round(total)
