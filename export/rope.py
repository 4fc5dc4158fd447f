"""RoPE frequencies with YaRN scaling, as gpt-oss uses them.

The same tables feed the torch reference and the ONNX graph's cos/sin caches,
so the two cannot drift apart.
"""
from __future__ import annotations

import math

import torch

from runtime.model_config import ModelConfig


def _correction_dim(rotations: float, dim: int, base: float, context: int) -> float:
    # The rotary dim whose wavelength fits `rotations` times into the original context.
    return dim * math.log(context / (rotations * 2 * math.pi)) / (2 * math.log(base))


def inv_freq_and_scale(cfg: ModelConfig) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (float32, [head_dim/2]) and the cos/sin concentration factor."""
    dim = cfg.head_dim
    base = cfg.rope_theta
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    if cfg.yarn is None:
        return 1.0 / pos_freqs, 1.0
    y = cfg.yarn
    low = _correction_dim(y.beta_fast, dim, base, y.original_max_position_embeddings)
    high = _correction_dim(y.beta_slow, dim, base, y.original_max_position_embeddings)
    if y.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    extrapolate = 1 - ramp  # 1: keep the original frequency (high-frequency dims)
    inv_freq = (1.0 / (y.factor * pos_freqs)) * (1 - extrapolate) + (1.0 / pos_freqs) * extrapolate
    concentration = 0.1 * math.log(y.factor) + 1.0 if y.factor > 1 else 1.0
    return inv_freq, concentration


def cos_sin(cfg: ModelConfig, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables [..., head_dim/2] for integer positions, concentration included."""
    inv_freq, scale = inv_freq_and_scale(cfg)
    freqs = positions[..., None].to(torch.float32) * inv_freq
    return freqs.cos() * scale, freqs.sin() * scale
