"""Parameter counts per component, and what one token actually reads.

Active per token follows OpenAI's gpt-oss model card: attention, router, the k chosen
experts, norms and the unembedding; the embedding table is a lookup, not counted.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from runtime.model_config import ModelConfig


@dataclass(frozen=True)
class ParamCounts:
    embedding: int
    unembedding: int  # 0 when tied to the embedding
    attention: int  # q/k/v/o with biases, sinks
    router: int
    experts: int  # all experts of all layers
    experts_active: int  # the k chosen per token, all layers
    norms: int
    total: int
    active_per_token: int

    def to_dict(self) -> dict:
        return asdict(self)


def count_params(cfg: ModelConfig) -> ParamCounts:
    h, layers = cfg.hidden_size, cfg.num_hidden_layers
    embedding = cfg.vocab_size * h
    unembedding = 0 if cfg.tie_word_embeddings else cfg.vocab_size * h
    attention = layers * (h * (cfg.q_size + 2 * cfg.kv_size) + (cfg.q_size + 2 * cfg.kv_size)
                          + cfg.q_size * h + h + cfg.num_attention_heads)
    router = layers * (cfg.num_local_experts * h + cfg.num_local_experts)
    per_expert = h * 2 * cfg.intermediate_size + 2 * cfg.intermediate_size + cfg.intermediate_size * h + h
    experts = layers * cfg.num_local_experts * per_expert
    experts_active = layers * cfg.num_experts_per_tok * per_expert
    norms = layers * 2 * h + h
    total = embedding + unembedding + attention + router + experts + norms
    # a tied head still reads the [V, H] matrix for every token
    active = attention + router + experts_active + norms + cfg.vocab_size * h
    return ParamCounts(embedding, unembedding, attention, router, experts, experts_active, norms, total, active)
