"""OpenAI's original layout (original/ folder) exports equal to the same weights in Hugging Face layout."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from export import mxfp4
from export.exporter import ExportOptions, export_model
from runtime.session import ModelSession, SessionOptions
from tests.helpers.checkpoints import make_mxfp4_twins
from tests.helpers.checkpoints import load_hf


def write_original(hf_folder, out, quantize: bool):
    """The inverse of export/original_layout.py, written independently from the reference's naming."""
    hf = json.loads((hf_folder / "config.json").read_text())
    rope = hf["rope_parameters"]
    cfg = {"num_hidden_layers": hf["num_hidden_layers"], "num_experts": hf["num_local_experts"],
           "experts_per_token": hf["num_experts_per_tok"], "vocab_size": hf["vocab_size"],
           "hidden_size": hf["hidden_size"], "intermediate_size": hf["intermediate_size"],
           "swiglu_limit": hf["swiglu_limit"], "head_dim": hf["head_dim"],
           "num_attention_heads": hf["num_attention_heads"], "num_key_value_heads": hf["num_key_value_heads"],
           "sliding_window": hf["sliding_window"], "initial_context_length": rope["original_max_position_embeddings"],
           "rope_theta": rope["rope_theta"], "rope_scaling_factor": rope["factor"],
           "rope_ntk_alpha": rope["beta_slow"], "rope_ntk_beta": rope["beta_fast"]}
    t = load_file(hf_folder / "model.safetensors")
    o = {"embedding.weight": t["model.embed_tokens.weight"], "norm.scale": t["model.norm.weight"],
         "unembedding.weight": t["lm_head.weight"]}
    for n in range(cfg["num_hidden_layers"]):
        p, b = f"model.layers.{n}.", f"block.{n}."
        o[b + "attn.norm.scale"] = t[p + "input_layernorm.weight"]
        for kind in ("weight", "bias"):
            o[b + f"attn.qkv.{kind}"] = torch.cat([t[p + f"self_attn.{x}_proj.{kind}"] for x in "qkv"])
            o[b + f"attn.out.{kind}"] = t[p + f"self_attn.o_proj.{kind}"]
            o[b + f"mlp.gate.{kind}"] = t[p + f"mlp.router.{kind}"]
        o[b + "attn.sinks"] = t[p + "self_attn.sinks"]
        o[b + "mlp.norm.scale"] = t[p + "post_attention_layernorm.weight"]
        o[b + "mlp.mlp1_bias"] = t[p + "mlp.experts.gate_up_proj_bias"]
        o[b + "mlp.mlp2_bias"] = t[p + "mlp.experts.down_proj_bias"]
        for ours, theirs in (("mlp1_weight", "gate_up_proj"), ("mlp2_weight", "down_proj")):
            w = t[p + f"mlp.experts.{theirs}"]  # [E, in, out]
            if quantize:
                blocks, scales = mxfp4.quantize(w)
                o[b + f"mlp.{ours}.blocks"] = blocks.reshape(*scales.shape, 16)
                o[b + f"mlp.{ours}.scales"] = scales
            else:
                o[b + f"mlp.{ours}"] = w.transpose(1, 2).contiguous()  # original stores [E, out, in]
    original = out / "original"
    original.mkdir(parents=True)
    (original / "config.json").write_text(json.dumps(cfg))
    save_file(o, original / "model.safetensors", metadata={"format": "pt"})
    (out / "tokenizer.json").write_bytes((hf_folder / "tokenizer.json").read_bytes())  # beside, as in the release
    return original


@pytest.mark.parametrize("quantize", [False, True], ids=["bf16-style", "mxfp4"])
def test_original_layout_exports_equal_to_transformers(tmp_path, quantize):
    quantized_hf, twin = make_mxfp4_twins(tmp_path / "hf")
    source = twin if quantize else tmp_path / "hf" / "plain"
    # for mxfp4, quantizing the twin's already-representable experts reproduces its values exactly
    original = write_original(source, tmp_path / "release", quantize)
    summary = export_model(original, tmp_path / "model", ExportOptions(max_context=32, experts="float"))  # vs float math
    assert summary.verification.passed
    session = ModelSession(tmp_path / "model", SessionOptions(provider="cpu"))
    assert session.manifest.source["layout"] == "original"
    ids = np.random.default_rng(5).integers(0, session.config.vocab_size, size=(1, 12))
    with torch.no_grad():
        expected = load_hf(source)(torch.from_numpy(ids)).logits[0, -1].numpy()
    got = session.run(ids, session.new_cache(length=16))[0]
    assert np.abs(got - expected).max() <= 1e-4
