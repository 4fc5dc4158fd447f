"""The gpt-oss architecture's hyper-parameters, read from a Hugging Face config.json.

Pure Python on purpose: the exporter builds graphs from it and the runtime reads
it back from the manifest, and the runtime must never need torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SLIDING = "sliding_attention"
FULL = "full_attention"
SUPPORTED_MODEL_TYPES = ("gpt_oss",)


class ConfigError(ValueError):
    """A config.json that does not describe a gpt-oss model we can run."""


@dataclass(frozen=True)
class YarnScaling:
    factor: float
    beta_fast: float
    beta_slow: float
    original_max_position_embeddings: int
    truncate: bool


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    num_local_experts: int
    num_experts_per_tok: int
    sliding_window: int
    layer_types: tuple[str, ...]
    rms_norm_eps: float
    swiglu_alpha: float
    swiglu_limit: float
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    yarn: YarnScaling | None = None

    @property
    def q_size(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_key_value_heads * self.head_dim

    def is_sliding(self, layer: int) -> bool:
        return self.layer_types[layer] == SLIDING

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layer_types"] = list(self.layer_types)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Inverse of to_dict (the manifest's form)."""
        d = dict(d)
        yarn = d.pop("yarn", None)
        return cls(**{**d, "layer_types": tuple(d["layer_types"]),
                      "yarn": YarnScaling(**yarn) if yarn else None})

    @classmethod
    def from_hf(cls, raw: dict[str, Any], source: str = "config.json") -> "ModelConfig":
        """Parse a Hugging Face gpt-oss config.json; errors name the file and key."""

        def need(key: str, kind: type = int) -> Any:
            if key not in raw:
                raise ConfigError(f"{source}: missing key '{key}' (a gpt-oss config needs it)")
            value = raw[key]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
                raise ConfigError(f"{source}: key '{key}' must be {kind.__name__}, got {value!r}")
            return value

        model_type = raw.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(
                f"{source}: model_type is {model_type!r}; Parley exports "
                f"{' or '.join(map(repr, SUPPORTED_MODEL_TYPES))} checkpoints only")
        if raw.get("attention_bias", True) is not True:
            raise ConfigError(f"{source}: attention_bias must be true for gpt-oss")

        layers = need("num_hidden_layers")
        heads = need("num_attention_heads")
        hidden = need("hidden_size")
        layer_types = raw.get("layer_types") or [SLIDING if i % 2 == 0 else FULL for i in range(layers)]
        if len(layer_types) != layers or any(t not in (SLIDING, FULL) for t in layer_types):
            raise ConfigError(
                f"{source}: layer_types must list {layers} entries, each '{SLIDING}' or '{FULL}'")
        kv_heads = need("num_key_value_heads")
        if heads % kv_heads:
            raise ConfigError(f"{source}: num_attention_heads ({heads}) must be a multiple of "
                              f"num_key_value_heads ({kv_heads})")
        experts = need("num_local_experts")
        top_k = need("num_experts_per_tok")
        if not 1 <= top_k <= experts:
            raise ConfigError(f"{source}: num_experts_per_tok ({top_k}) must be in 1..{experts}")

        rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
        rope_theta = float(rope.get("rope_theta", raw.get("rope_theta", 10000.0)))
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        yarn = None
        if rope_type == "yarn":
            yarn = YarnScaling(
                factor=float(rope["factor"]),
                beta_fast=float(rope.get("beta_fast") or 32.0),
                beta_slow=float(rope.get("beta_slow") or 1.0),
                original_max_position_embeddings=int(rope["original_max_position_embeddings"]),
                # transformers defaults truncate to True when the key is absent.
                truncate=bool(rope.get("truncate", True)),
            )
        elif rope_type != "default":
            raise ConfigError(f"{source}: rope type {rope_type!r} is not supported "
                              "(gpt-oss uses 'yarn'; 'default' is accepted too)")

        return cls(
            vocab_size=need("vocab_size"),
            hidden_size=hidden,
            intermediate_size=need("intermediate_size"),
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=int(raw.get("head_dim") or hidden // heads),
            num_local_experts=experts,
            num_experts_per_tok=top_k,
            sliding_window=int(raw.get("sliding_window") or 0) or need("sliding_window"),
            layer_types=tuple(layer_types),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-5)),
            swiglu_alpha=float(raw.get("swiglu_alpha", 1.702)),
            swiglu_limit=float(raw.get("swiglu_limit", 7.0)),
            rope_theta=rope_theta,
            max_position_embeddings=need("max_position_embeddings"),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            yarn=yarn,
        )
