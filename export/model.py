"""The gpt-oss decoder in torch: the reference every exported graph is checked against.

Written like the math, with the KV cache as explicit tensors in and out so the
prompt step and the decode steps are the same function.
"""
from __future__ import annotations

import torch
from torch import nn

from export.rope import cos_sin
from runtime.model_config import ModelConfig


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    wide = x.to(torch.promote_types(x.dtype, torch.float32))  # at least float32; float64 stays float64
    wide = wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + eps)
    return (weight * wide).to(x.dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Half-split RoPE: the first half of each head pairs with the second half."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def attention_with_sinks(q, k, v, sinks, mask):
    """q [B,H,T,D], k/v [B,Hkv,S,D], sinks [H], mask [T,S] bool -> [B,T,H*D].

    Each head's sink is one extra softmax column that is dropped afterwards,
    so a row's weights may sum to less than one.
    """
    b, h, t, d = q.shape
    groups = h // k.shape[1]
    q = q.view(b, k.shape[1], groups, t, d)
    scores = torch.einsum("bkgtd,bksd->bkgts", q, k) / d**0.5
    scores = scores.masked_fill(~mask, float("-inf"))
    sink_col = sinks.view(1, k.shape[1], groups, 1, 1).expand(b, -1, -1, t, 1).to(scores.dtype)
    probs = torch.softmax(torch.cat([scores, sink_col], dim=-1), dim=-1)[..., :-1]
    out = torch.einsum("bkgts,bksd->bkgtd", probs, v)
    return out.reshape(b, h, t, d).transpose(1, 2).reshape(b, t, h * d)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.cfg = cfg
        self.window = cfg.sliding_window if cfg.is_sliding(layer) else 0
        self.norm = nn.Parameter(torch.ones(cfg.hidden_size))
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.q_size)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.kv_size)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.kv_size)
        self.o_proj = nn.Linear(cfg.q_size, cfg.hidden_size)
        self.sinks = nn.Parameter(torch.zeros(cfg.num_attention_heads))

    def forward(self, x, cos, sin, past_k, past_v, positions):
        cfg = self.cfg
        b, t, _ = x.shape
        h = rms_norm(x, self.norm, cfg.rms_norm_eps)
        q = self.q_proj(h).view(b, t, cfg.num_attention_heads, cfg.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, t, cfg.num_key_value_heads, cfg.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, t, cfg.num_key_value_heads, cfg.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k = torch.cat([past_k, k], dim=2)
        v = torch.cat([past_v, v], dim=2)
        key_pos = torch.arange(k.shape[2], device=x.device)
        mask = key_pos[None, :] <= positions[:, None]
        if self.window:
            mask &= key_pos[None, :] > positions[:, None] - self.window
        out = attention_with_sinks(q, k, v, self.sinks, mask)
        return x + self.o_proj(out), k, v


class MoE(nn.Module):
    """Top-k router (softmax over the chosen k) and SwiGLU experts with the clamp."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        e, hdim, inter = cfg.num_local_experts, cfg.hidden_size, cfg.intermediate_size
        self.norm = nn.Parameter(torch.ones(hdim))
        self.router = nn.Linear(hdim, e)
        # Hugging Face layout: gate and up interleaved along the last axis.
        self.gate_up = nn.Parameter(torch.zeros(e, hdim, 2 * inter))
        self.gate_up_bias = nn.Parameter(torch.zeros(e, 2 * inter))
        self.down = nn.Parameter(torch.zeros(e, inter, hdim))
        self.down_bias = nn.Parameter(torch.zeros(e, hdim))

    def swiglu(self, gate_up: torch.Tensor) -> torch.Tensor:
        limit, alpha = self.cfg.swiglu_limit, self.cfg.swiglu_alpha
        gate = gate_up[..., ::2].clamp(max=limit)
        up = gate_up[..., 1::2].clamp(-limit, limit)
        return (up + 1) * gate * torch.sigmoid(alpha * gate)

    # Token positions where this layer takes the (k+1)-th expert in place of the k-th: how verification
    # follows a graph that broke a near-tie the other way (export/verify.py)
    swap_at: tuple[int, ...] = ()

    def forward(self, x):
        b, t, hdim = x.shape
        h = rms_norm(x, self.norm, self.cfg.rms_norm_eps).reshape(-1, hdim)
        k = self.cfg.num_experts_per_tok
        if self.swap_at:
            top_logits, top_idx = torch.topk(self.router(h), k + 1, dim=-1)
            at = torch.tensor(self.swap_at)
            top_logits[at, k - 1], top_idx[at, k - 1] = top_logits[at, k], top_idx[at, k]
            top_logits, top_idx = top_logits[:, :k], top_idx[:, :k]
        else:
            top_logits, top_idx = torch.topk(self.router(h), k, dim=-1)
        weights = torch.softmax(top_logits, dim=-1)
        out = torch.zeros_like(h)
        # A static loop over experts; each takes the tokens routed to it.
        for e in range(self.cfg.num_local_experts):
            token, slot = torch.where(top_idx == e)
            # a float64 reference keeps its experts float32 and widens one at a time (export/reference.py)
            y = self.swiglu(h[token] @ self.gate_up[e].to(h.dtype) + self.gate_up_bias[e])
            y = y @ self.down[e].to(h.dtype) + self.down_bias[e]
            out.index_add_(0, token, y * weights[token, slot, None])
        return x + out.view(b, t, hdim)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.attn = Attention(cfg, layer)
        self.mlp = MoE(cfg)

    def forward(self, x, cos, sin, past_k, past_v, positions):
        x, k, v = self.attn(x, cos, sin, past_k, past_v, positions)
        return self.mlp(x), k, v


class GptOss(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = nn.Parameter(torch.ones(cfg.hidden_size))
        self.unembed = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.unembed.weight = self.embed.weight

    def empty_cache(self, batch: int = 1) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        cfg = self.cfg
        shape = (batch, cfg.num_key_value_heads, 0, cfg.head_dim)
        dtype = self.embed.weight.dtype
        return ([torch.zeros(shape, dtype=dtype) for _ in self.blocks],
                [torch.zeros(shape, dtype=dtype) for _ in self.blocks])

    def forward(self, input_ids, past_keys, past_values):
        """input_ids [B,T]; caches [B,Hkv,P,D] per layer -> logits [B,T,V], new caches."""
        t = input_ids.shape[1]
        positions = past_keys[0].shape[2] + torch.arange(t, device=input_ids.device)
        cos, sin = cos_sin(self.cfg, positions)
        dtype = self.embed.weight.dtype
        cos, sin = cos.to(dtype), sin.to(dtype)
        x = self.embed(input_ids)
        keys, values = [], []
        for block, pk, pv in zip(self.blocks, past_keys, past_values):
            x, k, v = block(x, cos, sin, pk, pv, positions)
            keys.append(k)
            values.append(v)
        logits = self.unembed(rms_norm(x, self.norm, self.cfg.rms_norm_eps))
        return logits, keys, values
