"""The physical floor of decoding: every weight a token touches must be read from memory once.

floor tokens/s = measured memory read bandwidth / active weight bytes per token. Active weights are
the attention projections, router and norms of every layer, the top-k experts (not all of them), the
unembedding, and one embedding row.
"""
from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def active_weight_bytes(cfg: dict, bytes_per_weight: int = 4, experts: str = "float") -> int:
    """int8 experts read one byte per weight (plus a float scale per row) instead of four."""
    h, heads, kv, d = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    inter, n_experts, top_k = cfg["intermediate_size"], cfg["num_local_experts"], cfg["num_experts_per_tok"]
    q, k = heads * d, kv * d
    attention = h * q + q + 2 * (h * k + k) + q * h + h + heads  # q, k, v, o with biases; sinks
    router = n_experts * h + n_experts
    expert = h * 2 * inter + 2 * inter + inter * h + h  # gate_up and down, with biases
    expert_bytes = expert * bytes_per_weight
    if experts == "int8":  # the matrices at a byte each; biases and the per-row scales stay float
        expert_bytes = h * 2 * inter + inter * h + (2 * inter + h) * 2 * bytes_per_weight
    layer = (attention + router + 2 * h) * bytes_per_weight + top_k * expert_bytes  # two RMSNorms
    dense = h + cfg["vocab_size"] * h + h  # final norm, lm_head, embedding row
    return cfg["num_hidden_layers"] * layer + dense * bytes_per_weight


def read_bandwidth(threads: int, mib: int = 512, repeats: int = 7) -> float:
    """Bytes/s that `threads` threads read from main memory (numpy sums release the GIL)."""
    data = np.ones(mib * 2**20 // 4, dtype=np.float32)
    chunks = np.array_split(data, threads)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(np.sum, chunks))  # warm-up: page in, spin threads up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(np.sum, chunks))
            times.append(time.perf_counter() - start)
    return data.nbytes / statistics.median(times)


def floor(cfg: dict, threads: int, experts: str = "float") -> dict:
    active = active_weight_bytes(cfg, experts=experts)
    bandwidth = read_bandwidth(threads)
    return {"decode_tok_s": bandwidth / active, "memory_bandwidth_gb_s": bandwidth / 1e9,
            "active_weight_mb": active / 1e6}
