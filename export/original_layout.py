"""OpenAI's original gpt-oss layout (the `original/` folder): config keys and tensor names.

Converted to the Hugging Face config and canonical tensor names, so everything after
loading is shared. Facts from openai/gpt-oss's reference implementation: qkv is fused
(q rows, then k, then v), even layers use the sliding window, mlp1 is [E, 2I, H] with
gate/up interleaved like Hugging Face's, RoPE is YaRN with ntk_beta/ntk_alpha as beta_fast/beta_slow.
"""
from __future__ import annotations

import re

import torch

from export import mxfp4
from export.errors import CheckpointError
from export.checkpoint_config import CONFIG_KEYS, hf_config, is_original  # noqa: F401 (its config, re-exported)

SIMPLE = {
    "attn.norm.scale": "input_layernorm.weight",
    "attn.sinks": "self_attn.sinks",
    "attn.out.weight": "self_attn.o_proj.weight",
    "attn.out.bias": "self_attn.o_proj.bias",
    "mlp.norm.scale": "post_attention_layernorm.weight",
    "mlp.gate.weight": "mlp.router.weight",
    "mlp.gate.bias": "mlp.router.bias",
    "mlp.mlp1_bias": "mlp.experts.gate_up_proj_bias",
    "mlp.mlp2_bias": "mlp.experts.down_proj_bias",
}
EXPERTS = {"mlp.mlp1_weight": "mlp.experts.gate_up_proj", "mlp.mlp2_weight": "mlp.experts.down_proj"}
TOP = {"embedding.weight": "model.embed_tokens.weight", "norm.scale": "model.norm.weight",
       "unembedding.weight": "lm_head.weight"}
BLOCK = re.compile(r"block\.(\d+)\.(.+)")


def to_canonical(raw: dict[str, torch.Tensor], q_size: int, kv_size: int) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, t in raw.items():
        if name in TOP:
            out[TOP[name]] = t
            continue
        match = BLOCK.fullmatch(name)
        if not match:
            continue  # unknown extras are ignored; missing ones are reported by the shape check
        n, rest = match.groups()
        p = f"model.layers.{n}."
        if rest in SIMPLE:
            out[p + SIMPLE[rest]] = t
        elif rest in ("attn.qkv.weight", "attn.qkv.bias"):
            kind = rest.rsplit(".", 1)[1]
            if t.shape[0] != q_size + 2 * kv_size:
                raise CheckpointError(f"tensor '{name}' has {t.shape[0]} rows; config implies "
                                      f"{q_size + 2 * kv_size} (q {q_size} + k {kv_size} + v {kv_size})")
            q, k, v = torch.split(t, [q_size, kv_size, kv_size], dim=0)
            for proj, part in zip("qkv", (q, k, v)):
                out[f"{p}self_attn.{proj}_proj.{kind}"] = part
        elif rest.endswith(".blocks") and rest[: -len(".blocks")] in EXPERTS:
            base = rest[: -len(".blocks")]
            scales = raw.get(f"block.{n}.{base}.scales")
            if scales is None:
                raise CheckpointError(f"tensor 'block.{n}.{base}.scales' is missing (needed with '{name}')")
            out[p + EXPERTS[base]] = mxfp4.dequantize(t, scales)
        elif rest in EXPERTS:  # unquantized: [E, out, in] -> Hugging Face's [E, in, out]
            out[p + EXPERTS[rest]] = t.transpose(1, 2).contiguous()
    return out
