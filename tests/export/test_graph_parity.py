"""The exported graph, run by the runtime's session, equals transformers over prompt + decode steps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export.exporter import ExportOptions, export_model
from runtime.session import ModelSession, SessionOptions
from tests.helpers.checkpoints import TinySpec, load_hf, make_checkpoint

SHAPES = {
    "default": TinySpec(),
    "mha_8experts_top4": TinySpec(kv_heads=4, experts=8, top_k=4, seed=1),
    "mqa_top1_window3_tied": TinySpec(kv_heads=1, experts=3, top_k=1, window=3, tie=True, seed=2),
}


@pytest.fixture(scope="module", params=[(s, ops) for s in sorted(SHAPES) for ops in ("contrib", "standard")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def exported(request, tmp_path_factory):
    shape, ops = request.param
    root = tmp_path_factory.mktemp(f"{shape}-{ops}")
    ckpt = make_checkpoint(root / "ckpt", SHAPES[shape])
    export_model(ckpt, root / "model", ExportOptions(op_set=ops, max_context=64))
    return ckpt, root / "model"


def hf_logits(ckpt, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return load_hf(ckpt)(torch.from_numpy(ids)).logits.numpy()


def test_prompt_and_decode_steps_equal_transformers_after_the_window_slid(exported):
    ckpt, folder = exported
    session = ModelSession(folder, SessionOptions(provider="cpu"))
    cfg = session.config
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(1, 3 * cfg.sliding_window + 4))
    expected = hf_logits(ckpt, ids)[0]
    cache = session.new_cache(length=32)
    prompt = cfg.sliding_window + 2
    got = [session.run(ids[:, :prompt], cache)[0]]
    for t in range(prompt, ids.shape[1]):
        got.append(session.run(ids[:, t:t + 1], cache)[0])
    diffs = np.abs(np.stack(got) - expected[prompt - 1:]).max(axis=-1)
    assert diffs.max() <= 1e-4, diffs
    assert (np.stack(got).argmax(-1) == expected[prompt - 1:].argmax(-1)).all()


def test_a_prompt_fed_in_chunks_equals_one_prompt(exported):
    """The prefix-cache contract: appending tokens to a filled cache is exact."""
    _, folder = exported
    session = ModelSession(folder, SessionOptions(provider="cpu"))
    ids = np.random.default_rng(1).integers(0, session.config.vocab_size, size=(1, 13))
    whole = session.run(ids, session.new_cache(length=16))
    cache = session.new_cache(length=16)
    session.run(ids[:, :4], cache)
    session.run(ids[:, 4:9], cache)
    chunked = session.run(ids[:, 9:], cache)
    assert np.abs(chunked - whole).max() <= 1e-5


def test_manifest_records_what_the_runtime_needs(exported):
    _, folder = exported
    session = ModelSession(folder, SessionOptions(provider="cpu"))
    man = session.manifest
    assert man.verification["status"] == "passed" and man.verification["greedy_match"]
    assert man.verification["prompt_tokens"] > man.config.sliding_window
    assert man.source["hash"].startswith("sha256:")
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(folder / man.tokenizer_file))
    assert man.special_tokens["<|start|>"] == tok.token_to_id("<|start|>")
    assert man.special_tokens["<|return|>"] == tok.token_to_id("<|return|>")
    assert man.kv_cache.in_place == (man.op_set == "contrib")


def test_float16_export_verifies_and_stays_close_to_transformers(tiny_checkpoint, tmp_path):
    summary = export_model(tiny_checkpoint, tmp_path / "model", ExportOptions(dtype="float16", max_context=32))
    assert summary.verification.passed
    session = ModelSession(tmp_path / "model", SessionOptions(provider="cpu"))
    assert session.manifest.kv_cache.dtype == "float16"
    ids = np.random.default_rng(4).integers(0, session.config.vocab_size, size=(1, 12))
    expected = hf_logits(tiny_checkpoint, ids)[0, -1]
    got = session.run(ids, session.new_cache(length=16))[0]
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() <= 3e-2 * np.abs(expected).max()


def test_bf16_saved_finetune_exports_equal_to_transformers(tmp_path):
    """Fine-tunes usually arrive in bf16; both sides upcast the same bf16 weights to float32."""
    from transformers import GptOssForCausalLM

    ckpt = make_checkpoint(tmp_path / "f32", TinySpec(seed=9))
    bf16 = tmp_path / "bf16"
    GptOssForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16).save_pretrained(bf16)
    (bf16 / "tokenizer.json").write_bytes((ckpt / "tokenizer.json").read_bytes())
    assert export_model(bf16, tmp_path / "model", ExportOptions(max_context=32)).verification.passed
    session = ModelSession(tmp_path / "model", SessionOptions(provider="cpu"))
    ids = np.random.default_rng(6).integers(0, session.config.vocab_size, size=(1, 12))
    expected = hf_logits(bf16, ids)[0, -1]
    assert np.abs(session.run(ids, session.new_cache(length=16))[0] - expected).max() <= 1e-4
