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


def active_weight_bytes(cfg: dict, bytes_per_weight: int = 4, experts: str = "float", dense: str = "float",
                        rows: int = 1) -> int:
    """Weight bytes a decode step of `rows` rows reads (export.weight_bytes counts them as the graph
    builders lay them out: int8 experts at a byte per weight plus a float scale per row, int4 ones and
    quantized dense weights at half a byte or a byte plus a scale per block of 32)."""
    from types import SimpleNamespace

    from export.weight_bytes import ExportChoice, active_bytes_per_token

    shape = SimpleNamespace(**{k: cfg[k] for k in KEYS}, q_size=cfg["num_attention_heads"] * cfg["head_dim"],
                            kv_size=cfg["num_key_value_heads"] * cfg["head_dim"],
                            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)))
    dtype = {4: "float32", 2: "float16"}[bytes_per_weight]
    return active_bytes_per_token(shape, ExportChoice(dtype, experts, dense, embed_bfloat16=False), rows)


KEYS = ("hidden_size", "vocab_size", "num_local_experts", "intermediate_size", "num_experts_per_tok",
        "num_hidden_layers", "num_attention_heads")


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


def floor(cfg: dict, threads: int, experts: str = "float", dense: str = "float") -> dict:
    active = active_weight_bytes(cfg, experts=experts, dense=dense)
    bandwidth = read_bandwidth(threads)
    return {"decode_tok_s": bandwidth / active, "memory_bandwidth_gb_s": bandwidth / 1e9,
            "active_weight_mb": active / 1e6}
