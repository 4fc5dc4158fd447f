"""A checkpoint's config.json read as a ModelConfig, in either layout (Hugging Face's, or OpenAI's original/
one). No torch: `parley inspect` of a checkpoint runs on a runtime-only install."""
from __future__ import annotations

import json
from pathlib import Path

from export.errors import CheckpointError
from runtime.model_config import FULL, SLIDING, ConfigError, ModelConfig

CONFIG_KEYS = ("num_experts", "experts_per_token")


def is_original(raw_config: dict) -> bool:
    return "model_type" not in raw_config and all(k in raw_config for k in CONFIG_KEYS)


def hf_config(raw: dict) -> dict:
    layers = raw["num_hidden_layers"]
    return {
        "model_type": "gpt_oss",
        "num_hidden_layers": layers, "num_local_experts": raw["num_experts"],
        "num_experts_per_tok": raw["experts_per_token"], "vocab_size": raw["vocab_size"],
        "hidden_size": raw["hidden_size"], "intermediate_size": raw["intermediate_size"],
        "swiglu_limit": raw.get("swiglu_limit", 7.0), "head_dim": raw["head_dim"],
        "num_attention_heads": raw["num_attention_heads"], "num_key_value_heads": raw["num_key_value_heads"],
        "sliding_window": raw["sliding_window"],
        "layer_types": [SLIDING if i % 2 == 0 else FULL for i in range(layers)],
        "max_position_embeddings": int(raw["initial_context_length"] * raw["rope_scaling_factor"]),
        "rope_parameters": {"rope_type": "yarn", "rope_theta": float(raw["rope_theta"]),
                            "factor": float(raw["rope_scaling_factor"]),
                            "beta_fast": float(raw.get("rope_ntk_beta", 32.0)),
                            "beta_slow": float(raw.get("rope_ntk_alpha", 1.0)),
                            "original_max_position_embeddings": int(raw["initial_context_length"]),
                            "truncate": False},
        "tie_word_embeddings": False, "attention_bias": True,
    }


def tokenizer_file(folder: Path, original: bool) -> Path | None:
    """tokenizer.json beside the weights, or one level up for OpenAI's original/ folder; None if neither."""
    candidates = [folder / "tokenizer.json"] + ([folder.parent / "tokenizer.json"] if original else [])
    return next((path for path in candidates if path.is_file()), None)


def read_config(folder: Path) -> tuple[ModelConfig, dict]:
    """The checkpoint's config and its raw JSON; CheckpointError naming what is wrong."""
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no config.json; expected a Hugging Face gpt-oss checkpoint folder")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if is_original(raw):
        try:
            return ModelConfig.from_hf(hf_config(raw), source=str(path)), raw
        except KeyError as exc:
            raise CheckpointError(f"{path}: missing key {exc} (an original-layout gpt-oss config needs it)") from exc
    try:
        return ModelConfig.from_hf(raw, source=str(path)), raw
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from exc
