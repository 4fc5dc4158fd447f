"""How much memory serving a model folder takes: said before it is loaded (`parley inspect`) and when
`parley serve` starts, so a studio knows whether it fits beside the game.

Weights: the graph's weights file as exported (onnxruntime maps or copies it onto the device whole).
KV cache: the full-attention layers keep keys and values for every position of a row; the sliding-window
layers their window only, where the folder was exported with a window cache (the default for contrib
graphs; older folders and the standard op set span the context with every layer, the standard op set in
two copies). The decode batch holds `max_batch` rows of `max_context`; conversations keep their own caches
on top, up to the engine's cap. Activations and onnxruntime's own arenas come on top of this and are not
estimated.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.manifest import Manifest

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def kv_bytes_per_token(cfg, dtype: str, in_place: bool = True, window: int = 0) -> int:
    """Keys and values of one position in every layer spanning the context (twice where the graph keeps two
    copies): all of them, or the full-attention ones with a window cache."""
    copies = 1 if in_place else 2
    layers = sum(1 for n in range(cfg.num_hidden_layers) if not (window and cfg.is_sliding(n)))
    return 2 * copies * layers * cfg.num_key_value_heads * cfg.head_dim * DTYPE_BYTES[dtype]


def kv_window_bytes(cfg, dtype: str, window: int) -> int:
    """Keys and values a row's windowed (sliding) layers keep, whatever its length: 0 without a window cache."""
    if not window:
        return 0
    layers = sum(1 for n in range(cfg.num_hidden_layers) if cfg.is_sliding(n))
    return 2 * layers * window * cfg.num_key_value_heads * cfg.head_dim * DTYPE_BYTES[dtype]


@dataclass(frozen=True)
class MemoryPlan:
    weights_bytes: int
    kv_bytes_per_token: int  # per row, the layers spanning the context, keys and values (both copies if two)
    max_context: int
    max_batch: int
    conversation_cache_cap: int  # the engine's cap on the conversations' own caches
    kv_window_bytes: int = 0  # per row, the windowed layers (their window, at any length)
    window: int = 0

    @classmethod
    def for_folder(cls, folder: Path | str, max_batch: int = 8, conversation_cache_cap: int = 1 << 30,
                   manifest: Manifest | None = None) -> "MemoryPlan":
        folder = Path(folder)
        manifest = manifest or Manifest.read(folder)
        cfg, kv = manifest.config, manifest.kv_cache
        per_token = kv_bytes_per_token(cfg, kv.dtype, kv.in_place, kv.window)
        weights = folder / manifest.weights_file
        return cls(weights.stat().st_size if weights.is_file() else 0, per_token, kv.max_context, max_batch,
                   conversation_cache_cap, kv_window_bytes(cfg, kv.dtype, kv.window), kv.window)

    @property
    def batch_kv_bytes(self) -> int:
        return (self.kv_bytes_per_token * self.max_context + self.kv_window_bytes) * self.max_batch

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.batch_kv_bytes + self.conversation_cache_cap

    def lines(self) -> list[str]:
        mib = lambda n: f"{n / 2**20:,.1f} MiB"  # noqa: E731
        window = (f" (+ {self.kv_window_bytes / 1024:,.1f} KiB a row: the sliding layers keep their {self.window} "
                  "positions)") if self.window else ""
        return [f"weights            {mib(self.weights_bytes)}",
                f"KV cache           {self.kv_bytes_per_token / 1024:,.1f} KiB per token{window}; "
                f"{mib(self.batch_kv_bytes)} for the decode batch ({self.max_batch} x {self.max_context} tokens)",
                f"conversations      up to {mib(self.conversation_cache_cap)} of their own KV caches",
                f"total              {mib(self.total_bytes)} at most, before activations (on the GPU with "
                "CUDA, in RAM on the CPU)",
                "not counted        onnxruntime's working memory and, on a GPU, the CUDA context (for gpt-oss-20b "
                "on an H100 about 1.3 GiB together; docs/performance.md)"]


def over_gpu_cap(weights_bytes: int, kv_bytes: int, cap_mb: int) -> str | None:
    """Why a GPU memory cap (`--gpu-mem-mb`) cannot hold the model, or None. onnxruntime's own cap bounds only
    its working memory: the weights (placed outside its arena) and the KV caches are allocated regardless,
    so the cap is checked here, before anything is loaded."""
    mib = lambda n: f"{n / 2**20:,.0f} MiB"  # noqa: E731
    if weights_bytes + kv_bytes <= cap_mb * 2**20:
        return None
    kv = f" and the decode batch's KV cache {mib(kv_bytes)}" if kv_bytes else ""
    return (f"the model's weights take {mib(weights_bytes)}{kv}, more than the {cap_mb:,} MiB cap "
            "(--gpu-mem-mb); raise the cap, lower --max-batch, or export a smaller model (--dense int4)")
