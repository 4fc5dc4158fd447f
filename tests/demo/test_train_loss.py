"""The demo trainer's label-smoothed loss (tools/demo/train.py --label-smoothing)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tools.demo.train import smoothed_loss  # noqa: E402


def model_and_batch():
    torch.manual_seed(0)
    config = transformers.GptOssConfig(
        vocab_size=300, hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, num_local_experts=4, num_experts_per_tok=2, sliding_window=8,
        layer_types=["sliding_attention", "full_attention"], output_router_logits=True, router_aux_loss_coef=0.01)
    ids = torch.randint(0, 300, (2, 20))
    labels = ids.clone()
    labels[:, :6] = -100  # the prompt: not trained
    return transformers.GptOssForCausalLM(config), ids, labels


def test_without_smoothing_it_is_the_models_own_loss_with_the_router_term():
    model, ids, labels = model_and_batch()
    out = model(input_ids=ids, labels=labels)
    assert torch.allclose(smoothed_loss(out, labels, 0.0, 0.01), out.loss, atol=1e-5)


def test_smoothing_penalises_a_model_that_is_sure_of_every_token():
    model, ids, labels = model_and_batch()
    with torch.no_grad():  # an unembedding that puts nearly all weight on the right token
        model.lm_head.weight.mul_(0)
    out = model(input_ids=ids, labels=labels)
    sure = out.logits.detach().clone()
    rows, cols = torch.arange(ids.shape[1] - 1), ids[0, 1:]
    sure[0, rows, cols] = 30.0
    sure[1, rows, ids[1, 1:]] = 30.0
    out.logits = sure
    plain, smooth = smoothed_loss(out, labels, 0.0, 0.0), smoothed_loss(out, labels, 0.1, 0.0)
    assert plain < 1e-3 < smooth  # certainty costs nothing without smoothing and a lot with it
