"""Dense weights (the attention projections, the unembedding and the embedding) block-quantized.

For gpt-oss-20b these are most of the bytes a CPU reads per token once the experts are 4-bit (about
1.2B dense active parameters against 2.4B expert parameters at half a byte). Measured on onnxruntime
1.31's CPU provider: MatMulNBits with 8 or 4 bits, blocks of 32 (or `--block-size`) and accuracy_level 0 (float
activations) equals float math on the dequantized weights to 2e-6 relative, so the torch reference run
on the same round-tripped weights verifies the graph exactly; accuracy_level 4 (int8 activations)
differs by 0.5% and is not used. The embedding table is quantized the same way (GatherBlockQuantized,
exact against the dequantized rows): a lookup reads one row, but the table is 1.1 GB of gpt-oss-20b's
memory in float16.

Speed on the CPU (tools/experiments/bench_dense_ops.py, onnxruntime 1.31): at accuracy_level 0, int4 blocks run
3.5 to 6.5x faster than float32 MatMul for one row, but int8 blocks take a slow path, 5 to 36x slower
than float32, and in float16 it loses precision (six times the error of int4 after two of gpt-oss-20b's
layers). So int4 is the choice; an int8 export warns. (In float16, gpt-oss-20b's full size does not verify
yet either way: docs/performance.md.)
"""
from __future__ import annotations

import numpy as np
import torch

from export.quantize import INT4_BLOCK, dequantize_blocks, quantize_blocks
from runtime.model_config import ModelConfig

DENSE_PRECISIONS = ("float", "int8", "int4")
BITS = {"int8": 8, "int4": 4}
BLOCK = INT4_BLOCK
ROWS_AT_ONCE = 8192  # the unembedding has 201,088 rows: quantized a slab at a time, never in whole temporaries
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


def dense_names(cfg: ModelConfig) -> frozenset[str]:
    """The canonical tensors the graph block-quantizes: the projections and the unembedding (MatMulNBits)
    and the embedding (GatherBlockQuantized; a tied model's unembedding is its embedding)."""
    names = {f"model.layers.{n}.self_attn.{p}.weight" for n in range(cfg.num_hidden_layers) for p in PROJECTIONS}
    names.add("model.embed_tokens.weight")
    if not cfg.tie_word_embeddings:
        names.add("lm_head.weight")
    return frozenset(names)


def quantize_matrix(w: np.ndarray, bits: int, scale_dtype=np.float32,
                    block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """[N, K] (out, in; Hugging Face's layout) -> (uint8 codes [N, K/block, block*bits/8], float32 scales
    [N, K/block] holding scale_dtype values): MatMulNBits' B and scales."""
    rows, inputs = w.shape
    codes = np.empty((rows, inputs // block, block * bits // 8), dtype=np.uint8)
    scales = np.empty((rows, inputs // block), dtype=np.float32)
    for start in range(0, rows, ROWS_AT_ONCE):
        part = slice(start, start + ROWS_AT_ONCE)
        q, s = quantize_blocks(w[part], bits, block=block, scale_dtype=scale_dtype)
        codes[part], scales[part] = q.reshape(codes[part].shape), s
    return codes, scales


def dequantize_matrix(codes: np.ndarray, scales: np.ndarray, bits: int) -> np.ndarray:
    rows = codes.shape[0]
    out = np.empty((rows, codes[0].size * 8 // bits), dtype=np.float32)
    for start in range(0, rows, ROWS_AT_ONCE):
        part = slice(start, start + ROWS_AT_ONCE)
        out[part] = dequantize_blocks(codes[part].reshape(codes[part].shape[0], -1), scales[part], bits)
    return out


def dense_round_trip(precision: str, cfg: ModelConfig, scale_dtype=np.float32, block: int = BLOCK):
    """A per-tensor change (see tensor_source.Transformed) that sends the dense weights through
    `precision` (blocks of `block` inputs) and back, so the torch reference computes what the MatMulNBits
    graph computes."""
    bits, names = BITS[precision], dense_names(cfg)

    def change(name: str, tensor: torch.Tensor) -> torch.Tensor:
        if name not in names:
            return tensor
        w = tensor.detach().to(torch.float32).numpy()
        return torch.from_numpy(dequantize_matrix(*quantize_matrix(w, bits, scale_dtype, block), bits))
    return change
