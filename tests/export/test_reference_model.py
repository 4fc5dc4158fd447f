"""Our torch gpt-oss equals transformers' GptOssForCausalLM on the same checkpoint."""
from __future__ import annotations

import pytest
import torch

from export.checkpoint import load_checkpoint
from export.reference import build_reference
from tests.helpers.checkpoints import TinySpec, load_hf, load_hf_float64, make_checkpoint

SHAPES = {
    "default": TinySpec(),
    "mha_8experts_top4": TinySpec(heads=4, kv_heads=4, experts=8, top_k=4, seed=1),
    "mqa_top1_window3": TinySpec(heads=4, kv_heads=1, experts=3, top_k=1, window=3, seed=2),
    "tied_embeddings": TinySpec(tie=True, seed=3),
}


@pytest.fixture(scope="module", params=sorted(SHAPES))
def checkpoint(request, tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp(request.param), SHAPES[request.param])


def run_ours_incrementally(model, ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """Prompt step, then one token at a time against the cache; logits for every position."""
    keys, values = model.empty_cache(ids.shape[0])
    logits, keys, values = model(ids[:, :prompt_len], keys, values)
    steps = [logits]
    for t in range(prompt_len, ids.shape[1]):
        logits, keys, values = model(ids[:, t:t + 1], keys, values)
        steps.append(logits)
    return torch.cat(steps, dim=1)


@torch.no_grad()
def test_float32_logits_equal_transformers(checkpoint):
    ckpt = load_checkpoint(checkpoint)
    ours = build_reference(ckpt.config, ckpt.tensors)
    ids = torch.randint(0, ckpt.config.vocab_size, (2, 17), generator=torch.Generator().manual_seed(5))
    expected = load_hf(checkpoint)(ids).logits
    got = ours(ids, *ours.empty_cache(2))[0]
    assert torch.allclose(got, expected, atol=1e-5, rtol=0), (got - expected).abs().max()


@torch.no_grad()
def test_prompt_then_decode_steps_equal_transformers_exactly_in_float64(checkpoint):
    """float64 removes rounding, so any architectural difference would show far above 1e-9."""
    ckpt = load_checkpoint(checkpoint)
    ours = build_reference(ckpt.config, ckpt.tensors, dtype=torch.float64)
    hf = load_hf_float64(checkpoint)
    ids = torch.randint(0, ckpt.config.vocab_size, (2, 17), generator=torch.Generator().manual_seed(6))
    expected = hf(ids).logits
    got = run_ours_incrementally(ours, ids, prompt_len=11)
    assert ckpt.config.sliding_window < 11  # the prompt and the decode steps cross the window
    assert torch.allclose(got, expected, atol=1e-9, rtol=0), (got - expected).abs().max()


@torch.no_grad()
def test_tied_config_shares_the_embedding(tmp_path):
    ckpt = load_checkpoint(make_checkpoint(tmp_path, TinySpec(tie=True)))
    model = build_reference(ckpt.config, ckpt.tensors)
    assert "lm_head.weight" not in ckpt.tensors
    assert model.unembed.weight.data_ptr() == model.embed.weight.data_ptr()
