"""Make a trained demo model deeper without changing what it computes, so that more capacity can be trained
on top of everything it has already learned instead of from scratch.

New layers go in as sliding/full pairs in the middle of the stack (the alternation of layer types stays
as it was). Each starts as the identity on the residual stream: its attention's output projection and
its experts' down projections (weights and biases) are zero, so it adds nothing until training moves
them; the rest of it is initialised as a fresh layer would be.
"""
from __future__ import annotations

import torch


def layer_types(count: int) -> list[str]:
    """The demo model's alternation: sliding-window layers at even indices, full attention at odd ones."""
    return ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(count)]


def grow_depth(model, extra_layers: int):
    """A copy of `model` (a GptOssForCausalLM) with `extra_layers` more layers computing the same logits."""
    from transformers import GptOssForCausalLM

    if extra_layers <= 0 or extra_layers % 2:
        raise ValueError(f"extra layers must be a positive even number (sliding/full pairs), not {extra_layers}")
    old = model.config
    config = old.__class__.from_dict({**old.to_dict(), "num_hidden_layers": old.num_hidden_layers + extra_layers,
                                      "layer_types": layer_types(old.num_hidden_layers + extra_layers)})
    grown = GptOssForCausalLM(config)
    split = (old.num_hidden_layers // 2) // 2 * 2  # after the first half, on a pair boundary
    source = {}  # the grown model's layer index -> the old layer it copies (new layers are absent)
    for i in range(old.num_hidden_layers):
        source[i if i < split else i + extra_layers] = i
    old_state = model.state_dict()
    state = grown.state_dict()
    with torch.no_grad():
        for name, value in state.items():
            if not name.startswith("model.layers."):
                value.copy_(old_state[name])
                continue
            index, rest = name[len("model.layers."):].split(".", 1)
            if int(index) in source:
                value.copy_(old_state[f"model.layers.{source[int(index)]}.{rest}"])
            elif rest.startswith(("self_attn.o_proj.", "mlp.experts.down_proj")):
                value.zero_()
    grown.load_state_dict(state)
    return grown
