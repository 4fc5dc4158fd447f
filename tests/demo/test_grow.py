"""Growing a trained demo model deeper (tools/demo/grow.py): the same logits at first, then trainable."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tools.demo.grow import grow_depth, grow_width  # noqa: E402


def tiny_model(layers: int = 4):
    torch.manual_seed(0)
    config = transformers.GptOssConfig(
        vocab_size=300, hidden_size=64, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, num_local_experts=4, num_experts_per_tok=2, sliding_window=8,
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)],
        max_position_embeddings=256)
    model = transformers.GptOssForCausalLM(config)
    with torch.no_grad():  # trained weights are not the initialiser's: give every tensor (sinks, biases) values
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def test_a_grown_model_computes_the_same_logits_with_its_layer_types_still_alternating():
    model = tiny_model()
    grown = grow_depth(model, 2).eval()
    ids = torch.randint(0, 300, (2, 40))  # longer than the window: sliding layers really slide
    with torch.no_grad():
        before, after = model(input_ids=ids).logits, grown(input_ids=ids).logits
    assert torch.allclose(before, after, atol=1e-6, rtol=0)
    assert grown.config.num_hidden_layers == 6
    assert grown.config.layer_types == ["sliding_attention", "full_attention"] * 3
    old, new = model.state_dict(), grown.state_dict()
    # the first pair stays where it was, the second moves past the two new layers
    for old_index, new_index in ((0, 0), (1, 1), (2, 4), (3, 5)):
        assert torch.equal(old[f"model.layers.{old_index}.self_attn.q_proj.weight"],
                           new[f"model.layers.{new_index}.self_attn.q_proj.weight"])
    assert not new["model.layers.2.self_attn.o_proj.weight"].any()
    assert not new["model.layers.3.mlp.experts.down_proj"].any()


def after_one_step(grown):
    """The grown model's weights after one SGD step on random tokens."""
    grown.train()
    ids = torch.randint(0, 300, (2, 24))
    opt = torch.optim.SGD(grown.parameters(), lr=0.1)
    grown(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    return grown.state_dict()


def test_the_new_layers_learn_from_the_first_step():
    state = after_one_step(grow_depth(tiny_model(), 2))
    # zero output projections get gradients at once (their inputs are not zero), so the layer comes alive
    assert state["model.layers.2.self_attn.o_proj.weight"].abs().sum() > 0
    assert state["model.layers.3.mlp.experts.down_proj"].abs().sum() > 0


@pytest.mark.parametrize("extra", [0, 1, 3, -2])
def test_only_whole_sliding_and_full_pairs_are_added(extra):
    with pytest.raises(ValueError, match="even"):
        grow_depth(tiny_model(), extra)


def test_a_widened_model_computes_the_same_logits_with_more_heads_and_wider_experts():
    model = tiny_model()
    grown = grow_width(model, 128).eval()
    ids = torch.randint(0, 300, (2, 40))
    with torch.no_grad():
        before, after = model(input_ids=ids).logits, grown(input_ids=ids).logits
    assert torch.allclose(before, after, atol=2e-6, rtol=0), float((before - after).abs().max())
    config = grown.config
    assert (config.hidden_size, config.intermediate_size) == (128, 128)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (4, 2, 32)
    new = grown.state_dict()
    assert not new["model.embed_tokens.weight"][:, 64:].any()  # the new residual places start at zero
    assert not new["model.layers.1.self_attn.o_proj.weight"][64:].any()
    assert not new["model.layers.1.self_attn.o_proj.weight"][:, 64:].any()  # the new heads add nothing yet
    assert not new["model.layers.1.mlp.experts.down_proj"][:, 64:].any()  # nor do the new expert units


def test_the_widened_parts_learn_from_the_first_step():
    state = after_one_step(grow_width(tiny_model(), 128))
    assert state["model.layers.1.self_attn.o_proj.weight"][:, 64:].abs().sum() > 0
    assert state["model.layers.1.mlp.experts.down_proj"][:, 64:].abs().sum() > 0
    assert state["model.embed_tokens.weight"][:, 64:].abs().sum() > 0


@pytest.mark.parametrize("hidden", [64, 32, 80])
def test_a_width_must_be_wider_and_whole_heads(hidden):
    with pytest.raises(ValueError, match="wider"):
        grow_width(tiny_model(), hidden)
