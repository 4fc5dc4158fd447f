"""Int8 experts: symmetric, one scale per output row, as onnxruntime's QMoE reads them.

QMoE (com.microsoft, expert_weight_bits=8, no zero-point input) takes uint8 weights laid out
[experts, out, in] whose zero point is 128 and float scales [experts, out]; measured equal to the
float MoE op on the dequantized weights (1e-7). Quantizing halves the bytes an expert reads.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from export import mxfp4

EXPERT_PRECISIONS = ("float", "int8", "int4", "mxfp4")
ZERO_POINT = 128
INT4_BLOCK = 32  # values sharing one scale along the input axis (QMoE's block_size), unless asked otherwise
# What `--block-size` may ask for: powers of two that onnxruntime's QMoE, MatMulNBits and GatherBlockQuantized
# take. Larger blocks hold fewer scales (gpt-oss-20b's float16 --dense int4 export: 623 MiB less at 64) and
# run faster on the CPU, for a coarser step where a block's largest value sets it (docs/performance.md).
BLOCK_SIZES = (16, 32, 64, 128)
MAX_THREADS = 8  # each holds one expert's float temporaries (about 0.4 GB at gpt-oss-20b's size)


def each_expert(count: int, work) -> list:
    """work(e) for every expert e, a thread per core (numpy lets go of the GIL in its array loops)."""
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, count, MAX_THREADS)) as pool:
        return list(pool.map(work, range(count)))


def per_expert(quantize):
    """Apply quantize to one expert ([out, in]) at a time: a 20B layer's experts are 3 GB in float32,
    and quantizing them whole would hold several float copies at once. Experts go to a thread per core
    (numpy lets go of the GIL in its array loops), each holding one expert's temporaries."""
    def each(w: np.ndarray, **options):
        if w.ndim < 3:
            return quantize(w, **options)
        parts = each_expert(w.shape[0], lambda e: quantize(w[e], **options))
        return tuple(np.stack([p[i] for p in parts]) for i in range(len(parts[0])))
    each.__doc__ = quantize.__doc__
    return each


def stored_scales(scale: np.ndarray, scale_dtype=np.float32) -> np.ndarray:
    """Scales as the graph stores them (float16 in a float16 graph), in float32. Codes are computed against
    these, so code x scale is exactly the weight the graph holds, and the torch reference's round trip
    (which uses the same functions) holds it too. An all-zero row or block keeps scale 1 (its codes are
    0), and a scale below float16's range keeps float16's smallest instead of becoming 0."""
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    if np.dtype(scale_dtype) == np.float32:
        return scale
    narrow = scale.astype(scale_dtype)
    return np.maximum(narrow, np.finfo(scale_dtype).smallest_subnormal).astype(np.float32)


@per_expert
def quantize_rows(w: np.ndarray, scale_dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """[..., out, in] floats -> (uint8 [..., out, in], float32 scales [..., out] holding scale_dtype values)."""
    w = w.astype(np.float32, copy=False)
    scale = stored_scales(np.abs(w).max(axis=-1) / 127.0, scale_dtype)
    q = np.clip(np.rint(w / scale[..., None]), -127, 127).astype(np.int16)
    return (q + ZERO_POINT).astype(np.uint8), scale


def dequantize_rows(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return ((q.astype(np.int16) - ZERO_POINT) * scale[..., None]).astype(np.float32)


def quantize_blocks(w: np.ndarray, bits: int, block: int = INT4_BLOCK,
                    scale_dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """[..., out, in] floats -> (uint8 codes [..., out, in * bits / 8], float32 scales [..., out, in/block]
    holding scale_dtype values): symmetric per block of inputs (32 unless asked), zero point 2^(bits-1);
    int4 packs two codes a byte, low nibble first. The layout onnxruntime's QMoE (block_size) and
    MatMulNBits read."""
    w = w.astype(np.float32, copy=False)
    *lead, inputs = w.shape
    if inputs % block:
        raise ValueError(f"block-wise quantization needs the input axis ({inputs}) to be a multiple of {block}")
    top, zero = 2 ** (bits - 1) - 1, 2 ** (bits - 1)
    blocks = w.reshape(*lead, inputs // block, block)
    scale = stored_scales(np.abs(blocks).max(axis=-1) / top, scale_dtype)
    q = (np.clip(np.rint(blocks / scale[..., None]), -zero, top) + zero).astype(np.uint8).reshape(*lead, inputs)
    if bits == 4:
        q = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    return q, scale


def dequantize_blocks(codes: np.ndarray, scale: np.ndarray, bits: int) -> np.ndarray:
    *lead, width = codes.shape
    if bits == 4:
        q = np.empty((*lead, 2 * width), dtype=np.int16)
        q[..., 0::2], q[..., 1::2] = codes & 0x0F, codes >> 4
    else:
        q = codes.astype(np.int16)
    q -= 2 ** (bits - 1)
    block = q.shape[-1] // scale.shape[-1]
    blocks = q.reshape(*lead, -1, block).astype(np.float32) * scale[..., None]
    return blocks.reshape(*lead, q.shape[-1])


@per_expert
def quantize_blocks_int4(w: np.ndarray, scale_dtype=np.float32, block: int = INT4_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """[..., out, in] floats -> (uint8 [..., out, in/2]: two 4-bit codes a byte, low nibble first, zero
    point 8; float32 scales [..., out, in/block]), symmetric per block of inputs, as QMoE reads them."""
    return quantize_blocks(w, 4, block=block, scale_dtype=scale_dtype)


def dequantize_blocks_int4(packed: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return dequantize_blocks(packed, scale, 4)


EXPERT_MATRICES = (".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")


def _round_trip(tensor: torch.Tensor, quantize, dequantize) -> torch.Tensor:
    # rows are each matrix's output features: gate_up is [E, H, 2I] and down [E, I, H] in torch
    w = tensor.detach().to(torch.float32).numpy()
    out = np.empty_like(w)

    def one(e: int) -> None:  # one expert at a time, like the quantizers
        out[e] = dequantize(*quantize(w[e].T)).T
    each_expert(w.shape[0], one)
    return torch.from_numpy(out)


def int8_round_trip(name: str, tensor: torch.Tensor, scale_dtype=np.float32) -> torch.Tensor:
    """An expert matrix through int8 and back (other tensors as they are), so that the torch reference
    (and the verification against it) computes exactly what the QMoE graph computes. Quantizing the
    result again gives the same codes and scales. A per-tensor change: see tensor_source.Transformed."""
    if not name.endswith(EXPERT_MATRICES):
        return tensor
    return _round_trip(tensor, lambda w: quantize_rows(w, scale_dtype=scale_dtype), dequantize_rows)


def int4_round_trip(name: str, tensor: torch.Tensor, scale_dtype=np.float32, block: int = INT4_BLOCK) -> torch.Tensor:
    """int8_round_trip's twin for block-wise int4 experts."""
    if not name.endswith(EXPERT_MATRICES):
        return tensor
    return _round_trip(tensor, lambda w: quantize_blocks_int4(w, scale_dtype=scale_dtype, block=block),
                       dequantize_blocks_int4)


def mxfp4_round_trip(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """An expert matrix as MXFP4 holds it (the values of an MXFP4 checkpoint come back unchanged)."""
    if not name.endswith(EXPERT_MATRICES):
        return tensor
    return mxfp4.dequantize(*mxfp4.quantize(tensor))


ROUND_TRIPS = {"int8": int8_round_trip, "int4": int4_round_trip, "mxfp4": mxfp4_round_trip}
