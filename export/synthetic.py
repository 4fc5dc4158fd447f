"""Random gpt-oss checkpoints in Hugging Face layout, for benchmarks and smoke tests (no transformers needed)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from export.checkpoint import expected_shapes
from runtime.harmony_tokens import OPTIONAL, REQUIRED
from runtime.model_config import FULL, SLIDING, ModelConfig

# The standard benchmark checkpoint (`parley bench` with no checkpoint): small enough for a laptop
# CPU, shaped like gpt-oss.
BENCH_SHAPE = dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2,
                   head_dim=64, num_local_experts=16, num_experts_per_tok=4, intermediate_size=512,
                   vocab_size=32000, sliding_window=128)
# gpt-oss-20b's shape, for GPU measurements.
GPT_OSS_20B_SHAPE = dict(hidden_size=2880, num_hidden_layers=24, num_attention_heads=64, num_key_value_heads=8,
                         head_dim=64, num_local_experts=32, num_experts_per_tok=4, intermediate_size=2880,
                         vocab_size=201088, sliding_window=128)

TOKENIZER_TEXT = ("The blacksmith hammers steel while the guard watches the northern gate. Travellers ask "
                  "about prices, rumours, quests and the road ahead; the innkeeper pours ale and listens. ")


def hf_config(shape: dict) -> dict:
    layers = shape["num_hidden_layers"]
    return {
        "model_type": "gpt_oss", "architectures": ["GptOssForCausalLM"], **shape,
        "layer_types": [SLIDING if i % 2 == 0 else FULL for i in range(layers)],
        "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "swiglu_limit": 7.0, "swiglu_alpha": 1.702,
        "attention_bias": True, "tie_word_embeddings": False,
        "rope_parameters": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                            "truncate": False, "original_max_position_embeddings": 4096, "rope_theta": 150000.0},
    }


def harmony_tokenizer(path: Path, vocab_size: int) -> None:
    """A byte-level BPE with the harmony special tokens (ids well inside vocab_size)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=min(vocab_size, 1000), special_tokens=list(REQUIRED + OPTIONAL),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([TOKENIZER_TEXT] * 50, trainer)
    tok.save(str(path))


def make_random_checkpoint(folder: Path, shape: dict, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """Random weights with non-zero sinks and biases, written as a Hugging Face folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    raw = hf_config(shape)
    cfg = ModelConfig.from_hf(raw)
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, dims in expected_shapes(cfg).items():
        if name.endswith("norm.weight") or "layernorm" in name:
            t = 1.0 + 0.1 * torch.randn(dims, generator=gen)
        elif name.endswith("sinks"):
            t = torch.randn(dims, generator=gen)
        else:
            fan_in = dims[-2] if name.endswith(("gate_up_proj", "down_proj")) else dims[-1]
            std = 0.02 if name.endswith("bias") else fan_in ** -0.5
            t = std * torch.randn(dims, generator=gen)
        tensors[name] = t.to(dtype)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    harmony_tokenizer(folder / "tokenizer.json", cfg.vocab_size)
    # as gpt-oss's own config does: end of generation is <|return|>, padding <|endoftext|>
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    raw.update(eos_token_id=vocab["<|return|>"], pad_token_id=vocab["<|endoftext|>"])
    (folder / "config.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")
    return folder


def make_released_layout_checkpoint(folder: Path, shape: dict, seed: int = 0, progress: bool = False) -> Path:
    """A random checkpoint laid out as gpt-oss is released: one safetensors shard per layer (plus one for the
    embedding and unembedding) with an index, experts as MXFP4 `*_blocks`/`*_scales`, everything else bf16.
    Written a shard at a time, so a full gpt-oss-20b shape (13 GB) needs a layer's worth of memory."""
    import numpy as np
    from tqdm import tqdm

    from export.mxfp4 import BLOCK

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    raw = hf_config(shape)
    raw["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    cfg = ModelConfig.from_hf(raw)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    shapes = expected_shapes(cfg)
    weight_map: dict[str, str] = {}

    def dense(name: str) -> torch.Tensor:
        dims = shapes[name]
        if name.endswith("norm.weight") or "layernorm" in name:
            t = 1.0 + 0.1 * torch.randn(dims, generator=gen)
        elif name.endswith("sinks"):
            t = torch.randn(dims, generator=gen)
        else:
            t = (0.02 if name.endswith("bias") else dims[-1] ** -0.5) * torch.randn(dims, generator=gen)
        return t.to(torch.bfloat16)

    def mxfp4_experts(name: str) -> dict[str, torch.Tensor]:
        experts, fan_in, rows = shapes[name]  # stored transposed: [E, rows, fan_in/32, 16]
        groups = fan_in // BLOCK
        blocks = rng.integers(0, 256, size=(experts, rows, groups, BLOCK // 2), dtype=np.uint8)
        # E2M1 codes average |2.6|: a scale of 2^-7 (code 120) gives weights of about fan_in^-0.5 at 2880
        scales = (120 + rng.integers(-1, 2, size=(experts, rows, groups))).astype(np.uint8)
        return {name + "_blocks": torch.from_numpy(blocks), name + "_scales": torch.from_numpy(scales)}

    def write(shard: str, tensors: dict[str, torch.Tensor]) -> None:
        save_file(tensors, folder / shard, metadata={"format": "pt"})
        weight_map.update({name: shard for name in tensors})

    top = [n for n in shapes if not n.startswith("model.layers.")]
    write("model-embeddings.safetensors", {name: dense(name) for name in top})
    for n in tqdm(range(cfg.num_hidden_layers), desc="writing layers", unit="layer", disable=not progress):
        tensors: dict[str, torch.Tensor] = {}
        for name in [s for s in shapes if s.startswith(f"model.layers.{n}.")]:
            tensors.update(mxfp4_experts(name) if name.endswith(("gate_up_proj", "down_proj")) else {name: dense(name)})
        write(f"model-layer-{n:02d}.safetensors", tensors)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}), encoding="utf-8")
    harmony_tokenizer(folder / "tokenizer.json", cfg.vocab_size)
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    raw.update(eos_token_id=vocab["<|return|>"], pad_token_id=vocab["<|endoftext|>"])
    (folder / "config.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")
    return folder
