"""Build the torch reference model from canonical (Hugging Face-named) tensors."""
from __future__ import annotations

import torch

from export.model import GptOss
from runtime.model_config import ModelConfig

# canonical suffix inside model.layers.N. -> our module path inside blocks.N.
LAYER_NAMES = {
    "input_layernorm.weight": "attn.norm",
    "self_attn.q_proj.weight": "attn.q_proj.weight",
    "self_attn.q_proj.bias": "attn.q_proj.bias",
    "self_attn.k_proj.weight": "attn.k_proj.weight",
    "self_attn.k_proj.bias": "attn.k_proj.bias",
    "self_attn.v_proj.weight": "attn.v_proj.weight",
    "self_attn.v_proj.bias": "attn.v_proj.bias",
    "self_attn.o_proj.weight": "attn.o_proj.weight",
    "self_attn.o_proj.bias": "attn.o_proj.bias",
    "self_attn.sinks": "attn.sinks",
    "post_attention_layernorm.weight": "mlp.norm",
    "mlp.router.weight": "mlp.router.weight",
    "mlp.router.bias": "mlp.router.bias",
    "mlp.experts.gate_up_proj": "mlp.gate_up",
    "mlp.experts.gate_up_proj_bias": "mlp.gate_up_bias",
    "mlp.experts.down_proj": "mlp.down",
    "mlp.experts.down_proj_bias": "mlp.down_bias",
}


def build_reference(cfg: ModelConfig, tensors: dict[str, torch.Tensor],
                    dtype: torch.dtype = torch.float32) -> GptOss:
    state = {"embed.weight": tensors["model.embed_tokens.weight"], "norm": tensors["model.norm.weight"]}
    state["unembed.weight"] = tensors.get("lm_head.weight", tensors["model.embed_tokens.weight"])
    for n in range(cfg.num_hidden_layers):
        for hf, ours in LAYER_NAMES.items():
            state[f"blocks.{n}.{ours}"] = tensors[f"model.layers.{n}.{hf}"]
    with torch.device("meta"):
        model = GptOss(cfg)
    model.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_word_embeddings:
        model.unembed.weight = model.embed.weight
    return model.to(dtype).eval()
