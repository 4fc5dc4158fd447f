"""The torch reference from canonical (Hugging Face-named) tensors: a whole model, or layer by layer."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from export.model import Block, GptOss, rms_norm
from export.rope import cos_sin
from runtime.model_config import ModelConfig

UNEMBED_ROWS = 16384

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


# Kept in float32 by a wider block and widened one expert at a time as they run (MoE.forward): gpt-oss-20b's
# are 3.2 GiB a layer in float32, and widened whole they took a float64 reference to 16.1 GiB
EXPERT_MATRICES = ("mlp.gate_up", "mlp.down")


def build_block(cfg: ModelConfig, tensors: Mapping[str, torch.Tensor], n: int,
                dtype: torch.dtype = torch.float32) -> Block:
    """Layer n alone, its weights read from `tensors` now, in `dtype` (the expert matrices stay float32)."""
    with torch.device("meta"):
        block = Block(cfg, n)
    block.load_state_dict({ours: tensors[f"model.layers.{n}.{hf}"] for hf, ours in LAYER_NAMES.items()},
                          strict=True, assign=True)
    block = block.to(torch.float32).eval()
    if dtype != torch.float32:
        for name, param in block.named_parameters():
            if name not in EXPERT_MATRICES:
                param.data = param.data.to(dtype)
    return block


def closest_routing(cfg: ModelConfig, router_logits: torch.Tensor, layer: int) -> dict:
    """Where a layer's routing came closest to a different choice: the smallest gap between the k-th and
    (k+1)-th router logits over the positions, and how large those logits were. Two float32 implementations
    of the same model round differently; where that gap is within their rounding they may choose different
    experts, and from there their outputs are no longer comparable."""
    logits = router_logits.reshape(-1, cfg.num_local_experts)
    k = cfg.num_experts_per_tok
    if k >= cfg.num_local_experts:  # every expert is chosen: nothing to tie
        return {"layer": layer, "gap": float("inf"), "position": 0, "scale": float(logits.abs().max())}
    top = torch.topk(logits, k + 1, dim=-1).values
    gaps = top[:, k - 1] - top[:, k]
    gaps = torch.where(torch.isfinite(gaps), gaps, torch.inf)  # a non-finite logit is no tie
    at = int(gaps.argmin())
    return {"layer": layer, "gap": float(gaps[at]), "position": at, "scale": float(logits.abs().max())}


@torch.no_grad()
def layered_logits(cfg: ModelConfig, tensors: Mapping[str, torch.Tensor], ids: list[int], last: int,
                   progress=None, lookup: Mapping[str, torch.Tensor] | None = None,
                   routing: list[dict] | None = None, swap: tuple[int, int] | None = None,
                   dtype: torch.dtype = torch.float32, chosen: list | None = None) -> np.ndarray:
    """The reference's logits [last, V] at the final `last` positions of `ids`, computed one layer at a
    time over the whole sequence: memory holds one layer's weights (and the activations), never the
    model. Causal attention makes each position's logits those of a token-by-token decode. `lookup`, when
    given, is what the embedding lookup reads (a tied table can be stored differently for its two uses).
    `routing`, when given, gets each layer's closest_routing. `swap` (layer, position): there the layer takes
    its (k+1)-th expert in place of its k-th, as a graph that broke a near-tie the other way did. `dtype`
    float64 computes the same model nearly exactly (how far float32 arithmetic itself strays on these
    tokens; one layer's weights then take twice the memory). `chosen`, when given, gets each layer's experts
    per position ([positions, k], sorted), before any swap."""
    table = (lookup if lookup is not None else tensors)["model.embed_tokens.weight"]
    x = torch.nn.functional.embedding(torch.tensor([ids]), table).to(dtype)
    positions = torch.arange(len(ids))
    cos, sin = (t.to(dtype) for t in cos_sin(cfg, positions))  # the graph's float32 tables, widened
    empty = torch.zeros(1, cfg.num_key_value_heads, 0, cfg.head_dim, dtype=dtype)
    for n in range(cfg.num_hidden_layers):
        block = build_block(cfg, tensors, n, dtype)
        if swap is not None and swap[0] == n:
            block.mlp.swap_at = (swap[1],)
        hook = None
        if routing is not None or chosen is not None:
            def record(_module, _inputs, out, n=n):
                if routing is not None:
                    routing.append(closest_routing(cfg, out, n))
                if chosen is not None:  # the experts each position takes, as a set
                    top = torch.topk(out, cfg.num_experts_per_tok, dim=-1).indices
                    chosen.append(torch.sort(top, dim=-1).values.numpy())
            hook = block.mlp.router.register_forward_hook(record)
        x, _, _ = block(x, cos, sin, empty, empty, positions)
        if hook is not None:
            hook.remove()
        if progress is not None:
            progress.update(1)
    h = rms_norm(x[0, -last:], tensors["model.norm.weight"].to(dtype), cfg.rms_norm_eps)
    unembed = tensors["model.embed_tokens.weight" if cfg.tie_word_embeddings else "lm_head.weight"]
    if unembed.dtype == dtype:
        return (h @ unembed.T).numpy()
    # a slab of rows at a time: gpt-oss-20b's table is 2.3 GB in float32, twice that widened whole
    return torch.cat([h @ unembed[start:start + UNEMBED_ROWS].to(dtype).T
                      for start in range(0, unembed.shape[0], UNEMBED_ROWS)], dim=-1).numpy()
