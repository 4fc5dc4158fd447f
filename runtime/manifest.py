"""The model folder's manifest: everything the runtime needs, so it never guesses.

The exporter writes it (export may import runtime); the runtime validates it on load.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runtime.model_config import ModelConfig

MANIFEST_FILE = "manifest.json"
FORMAT = "parley-model"
FORMAT_VERSION = 1

# Graph I/O names; both op sets (contrib and standard) use the same contract.
INPUT_IDS = "input_ids"
SEQLENS_K = "seqlens_k"  # int32 [batch]: tokens in the cache after this step, minus one
TOTAL_SEQ_LEN = "total_sequence_length"  # int32 scalar: max over the batch of seqlens_k + 1
LOGITS = "logits"  # float32 [batch, vocab]: the last position of each row only
TOP_VALUES = "top_logits"  # float32 [batch, K]: the K best logits, best first
TOP_IDS = "top_ids"  # int64 [batch, K]: their token ids (on a GPU only these cross to the host)


def past_key(layer: int) -> str:
    return f"past_key_values.{layer}.key"


def past_value(layer: int) -> str:
    return f"past_key_values.{layer}.value"


def present_key(layer: int) -> str:
    return f"present.{layer}.key"


def present_value(layer: int) -> str:
    return f"present.{layer}.value"


class ManifestError(ValueError):
    """A model folder whose manifest is missing, malformed or does not match its files."""


@dataclass(frozen=True)
class KvCacheLayout:
    # [batch, kv_heads, max_context, head_dim] buffers; new tokens are written at
    # rows seqlens_k+1-T .. seqlens_k of each batch row.
    layout: str
    max_context: int
    dtype: str
    # True: present_* may be bound to the same buffer as past_* (updated in place).
    # False: present_* is a fresh tensor of the same shape (the runtime ping-pongs two buffers).
    in_place: bool
    # > 0: the sliding-window layers' buffers hold this many positions, the most recent in position order at
    # rows [0, min(length, window)) (GroupQueryAttention evicts as it appends); 0: they span the context too.
    window: int = 0


@dataclass(frozen=True)
class Manifest:
    config: ModelConfig
    graph_file: str
    weights_file: str
    op_set: str  # "contrib" or "standard"
    dtype: str  # weights and activations: "float32" or "float16"
    kv_cache: KvCacheLayout
    tokenizer_file: str
    special_tokens: dict[str, int]
    source: dict[str, Any]
    export_options: dict[str, Any]
    verification: dict[str, Any]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    candidates: int = 0  # K of top_logits/top_ids

    def to_json(self) -> str:
        d = asdict(self)
        d["config"] = self.config.to_dict()
        return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **d}, indent=2)

    def write(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST_FILE
        path.write_text(self.to_json() + "\n", encoding="utf-8", newline="\n")  # the same bytes on Windows
        return path

    @classmethod
    def read(cls, folder: Path | str) -> "Manifest":
        folder = Path(folder)
        path = folder / MANIFEST_FILE
        if folder.is_file():
            raise ManifestError(f"{folder}: a file; a model is the folder `parley export` wrote (the one holding "
                                f"{MANIFEST_FILE}{', ' + str(folder.parent) if folder.name == MANIFEST_FILE else ''})")
        if not path.is_file():
            raise ManifestError(f"{folder}: no {MANIFEST_FILE}; this is not a Parley model folder "
                                "(make one with `parley export CHECKPOINT_DIR OUT_DIR`)")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path}: not valid JSON ({exc})") from exc
        if d.get("format") != FORMAT:
            raise ManifestError(f"{path}: 'format' is {d.get('format')!r}, expected {FORMAT!r}")
        if d.get("format_version") != FORMAT_VERSION:
            raise ManifestError(f"{path}: format_version {d.get('format_version')!r} is not supported "
                                f"by this runtime (it reads {FORMAT_VERSION}); re-export the model")
        try:
            manifest = cls(
                config=ModelConfig.from_dict(d["config"]),
                graph_file=d["graph_file"], weights_file=d["weights_file"], op_set=d["op_set"],
                dtype=d["dtype"], kv_cache=KvCacheLayout(**d["kv_cache"]),
                tokenizer_file=d["tokenizer_file"], special_tokens=dict(d["special_tokens"]),
                source=d["source"], export_options=d["export_options"],
                verification=d["verification"], inputs=list(d["inputs"]), outputs=list(d["outputs"]),
                candidates=int(d["candidates"]))
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"{path}: malformed manifest ({exc!r}); re-export the model") from exc
        window = manifest.kv_cache.window
        if window and (window != manifest.config.sliding_window or not manifest.kv_cache.in_place):
            raise ManifestError(f"{path}: kv_cache.window {window} must be 0 or the model's sliding window "
                                f"({manifest.config.sliding_window}) on an in-place cache; re-export the model")
        for name in (manifest.graph_file, manifest.weights_file, manifest.tokenizer_file):
            if not (folder / name).is_file():
                raise ManifestError(f"{path}: lists '{name}' but {folder / name} does not exist")
        return manifest
