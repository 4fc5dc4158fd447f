"""MXFP4 expert weights: two E2M1 values per byte (low nibble first), 32 values share one 2^(e-127) scale.

Released gpt-oss checkpoints store experts this way. Float exports dequantize them on load; `--experts mxfp4`
hands the same bytes to onnxruntime's QMoE (quant_type fp4). quantize() makes such tensors from float ones.
"""
from __future__ import annotations

import numpy as np
import torch

E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
BLOCK = 32


def dequantize(blocks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """blocks [E, rows, G, 16] uint8 and scales [E, rows, G] uint8 -> float32 [E, G*32, rows].

    The result is transposed like transformers does, so a gate_up tensor stored as
    [E, 2I, H/32, 16] becomes the [E, H, 2I] matrix the model multiplies by.
    """
    if blocks.shape[:-1] != scales.shape or blocks.shape[-1] != BLOCK // 2 or blocks.dim() != 4:
        raise ValueError(f"MXFP4 blocks {tuple(blocks.shape)} and scales {tuple(scales.shape)} do not "
                         f"match: expected blocks [E, rows, G, {BLOCK // 2}] and scales [E, rows, G]")
    experts, rows, groups, _ = blocks.shape
    out = torch.empty(experts, groups * BLOCK, rows, dtype=torch.float32)
    for e in range(experts):  # one expert at a time: the temporaries stay a thirty-second of the layer
        out[e] = _dequantize_one(blocks[e].to(torch.uint8), scales[e]).T
    return out


def _dequantize_one(b: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """[rows, G, 16] codes and [rows, G] scales -> [rows, G*32] values."""
    lut = torch.tensor(E2M1_VALUES, dtype=torch.float32)
    values = torch.stack([lut[(b & 0x0F).long()], lut[(b >> 4).long()]], dim=-1)  # low nibble first
    values = torch.ldexp(values.reshape(*b.shape[:-1], BLOCK), (scales.to(torch.int32) - 127).unsqueeze(-1))
    return values.reshape(b.shape[0], -1)


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse layout of dequantize(): [E, K, rows] float -> (blocks, scales), rounding to the nearest E2M1
    value (a value halfway between two goes to the smaller magnitude). One expert at a time, so the
    temporaries stay a few times one expert's size."""
    experts, k, rows = weight.shape
    if k % BLOCK:
        raise ValueError(f"MXFP4 needs the input axis ({k}) to be a multiple of {BLOCK}")
    blocks = torch.empty(experts, rows, k // BLOCK, BLOCK // 2, dtype=torch.uint8)
    scales = torch.empty(experts, rows, k // BLOCK, dtype=torch.uint8)
    magnitudes = torch.tensor(E2M1_VALUES[:8])
    midpoints = (magnitudes[1:] + magnitudes[:-1]) / 2
    for e in range(experts):
        groups = weight[e].T.to(torch.float32).contiguous().reshape(rows, k // BLOCK, BLOCK)  # [rows, G, 32]
        amax = groups.abs().amax(-1).clamp(min=2.0**-126)
        # the exponent that brings the largest magnitude to at most 6 (E2M1's largest value)
        exponent = torch.ceil(torch.log2(amax / 6.0)).clamp(-127, 127).to(torch.int32)
        scaled = groups / torch.exp2(exponent.to(torch.float32)).unsqueeze(-1)
        codes = torch.bucketize(scaled.abs(), midpoints).to(torch.uint8)  # index of the nearest magnitude
        codes |= (scaled < 0).to(torch.uint8) << 3
        blocks[e] = codes[..., 0::2] | (codes[..., 1::2] << 4)
        scales[e] = (exponent + 127).to(torch.uint8)
    return blocks, scales


def codes_of(tensors, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Expert matrix `name` as QMoE's fp4 inputs: codes [E, rows, K/2] uint8 and e8m0 scales [E, rows, K/32]
    uint8, rows being the output features. The checkpoint's own bytes where it stores them (bit for bit,
    never dequantized and requantized); a float tensor is rounded to MXFP4 here."""
    if stores_bytes(tensors, name):
        blocks, scales = tensors.raw(name + "_blocks"), tensors.raw(name + "_scales")
    else:
        blocks, scales = quantize(tensors[name])
    experts, rows = scales.shape[:2]
    return blocks.to(torch.uint8).reshape(experts, rows, -1).numpy(), scales.to(torch.uint8).numpy()


def stores_bytes(tensors, name: str) -> bool:
    """Whether `tensors` (a lazily read checkpoint) holds `name`'s MXFP4 bytes as stored, rather than only
    its values (a checkpoint read whole, a merged LoRA adapter, a float checkpoint)."""
    is_mxfp4 = getattr(tensors, "is_mxfp4", None)
    return is_mxfp4 is not None and is_mxfp4(name)


def decode_rows(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """codes_of()'s inverse: [E, rows, K/2] codes and [E, rows, K/32] scales -> float32 [E, rows, K]."""
    lut = np.array(E2M1_VALUES, dtype=np.float32)
    values = np.stack([lut[codes & 0x0F], lut[codes >> 4]], axis=-1).reshape(*scales.shape, BLOCK)
    return np.ldexp(values, scales.astype(np.int32)[..., None] - 127).reshape(*scales.shape[:2], -1)
