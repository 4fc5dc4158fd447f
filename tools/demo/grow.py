"""Make a trained demo model deeper or wider without changing what it computes, so that more capacity can be trained
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


def grow_width(model, hidden: int):
    """A copy of `model` `hidden` wide (heads of the same size, so more of them; experts as wide as the model)
    computing the same logits: the old weights keep their places, the new residual dimensions start at zero and
    stay there until training moves them (every projection that writes the residual stream writes zeros into
    them, and every new head's and expert unit's output projection is zero), and the norms' weights shrink by
    sqrt(old / new) (and their epsilon by old / new) because a root mean square over more dimensions, the new ones
    zero, is smaller by that much.
    The rest of the new weights are initialised as a fresh model's would be; the zeroed projections move at the
    first step and the weights behind them from the second. Experts as wide as the model: the demo's shape."""
    from transformers import GptOssForCausalLM

    old = model.config
    if hidden <= old.hidden_size or hidden % old.head_dim:
        raise ValueError(f"the new width must be wider than {old.hidden_size} and a multiple of the heads' "
                         f"{old.head_dim}, not {hidden}")
    heads = hidden // old.head_dim
    group = old.num_attention_heads // old.num_key_value_heads  # query heads per kv head, kept
    if heads % group:
        raise ValueError(f"{heads} query heads do not share kv heads {group} to one as the model's do")
    # the norms' epsilon is added to the mean square: over more dimensions, the new ones zero, it shrinks with it
    config = old.__class__.from_dict({**old.to_dict(), "hidden_size": hidden, "intermediate_size": hidden,
                                      "num_attention_heads": heads, "num_key_value_heads": heads // group,
                                      "rms_norm_eps": old.rms_norm_eps * old.hidden_size / hidden})
    grown = GptOssForCausalLM(config)
    shrink = (old.hidden_size / hidden) ** 0.5
    # tensors that write the residual stream are zero wherever the old one has no value: the new residual places,
    # and the new heads' and expert units' inputs to them, so that nothing new reaches the stream until trained
    writes_residual = ("self_attn.o_proj.", "mlp.experts.down_proj", "model.embed_tokens.")
    old_state, state = model.state_dict(), grown.state_dict()
    with torch.no_grad():
        for name, value in state.items():
            before = old_state[name]
            if name.endswith(("layernorm.weight", "model.norm.weight")):
                value.fill_(float(before.mean()) * shrink)
                value[: before.shape[0]] = before * shrink
                continue
            if any(part in name for part in writes_residual):
                value.zero_()
            value[tuple(slice(0, n) for n in before.shape)] = before
    grown.load_state_dict(state)
    return grown
