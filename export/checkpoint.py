"""Read a Hugging Face gpt-oss checkpoint folder into canonical float32 tensors.

Canonical names are the Hugging Face ones (model.layers.N.self_attn.q_proj.weight, ...),
whatever the source layout; MXFP4 experts are dequantized here.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from tqdm import tqdm

from export import original_layout
from export.checkpoint_config import read_config, tokenizer_file  # noqa: F401 (read_config: this module's too)
from export.errors import CheckpointError
from export.tensor_source import SafetensorsTensors, shape_of
from runtime.model_config import ModelConfig

log = logging.getLogger(__name__)

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


@dataclass
class Checkpoint:
    folder: Path
    config: ModelConfig
    tensors: Mapping[str, torch.Tensor]  # canonical names -> float32 (read on access when lazy)
    source_files: list[Path]
    quantization: str | None  # "mxfp4" when experts were stored quantized
    layout: str = "huggingface"  # or "original" (OpenAI's original/ folder)

    @property
    def tokenizer_file(self) -> Path | None:
        """tokenizer.json beside the weights, or one level up for an original/ folder."""
        return tokenizer_file(self.folder, self.layout == "original")


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a gpt-oss checkpoint must hold, with its shape."""
    h, e, i = cfg.hidden_size, cfg.num_local_experts, cfg.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (cfg.vocab_size, h),
        "model.norm.weight": (h,),
    }
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (cfg.vocab_size, h)
    for n in range(cfg.num_hidden_layers):
        p = f"model.layers.{n}."
        shapes.update({
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (cfg.q_size, h),
            p + "self_attn.q_proj.bias": (cfg.q_size,),
            p + "self_attn.k_proj.weight": (cfg.kv_size, h),
            p + "self_attn.k_proj.bias": (cfg.kv_size,),
            p + "self_attn.v_proj.weight": (cfg.kv_size, h),
            p + "self_attn.v_proj.bias": (cfg.kv_size,),
            p + "self_attn.o_proj.weight": (h, cfg.q_size),
            p + "self_attn.o_proj.bias": (h,),
            p + "self_attn.sinks": (cfg.num_attention_heads,),
            p + "mlp.router.weight": (e, h),
            p + "mlp.router.bias": (e,),
            p + "mlp.experts.gate_up_proj": (e, h, 2 * i),
            p + "mlp.experts.gate_up_proj_bias": (e, 2 * i),
            p + "mlp.experts.down_proj": (e, i, h),
            p + "mlp.experts.down_proj_bias": (e, h),
        })
    return shapes


def _quantization(raw: dict, path: Path) -> str | None:
    qc = raw.get("quantization_config")
    if not qc:
        return None
    method = qc.get("quant_method")
    if method != "mxfp4":
        raise CheckpointError(f"{path}: quantization_config.quant_method is {method!r}; "
                              "supported: 'mxfp4' (or an unquantized checkpoint)")
    return method


def _weight_files(folder: Path) -> list[Path]:
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index}: expected JSON with a 'weight_map' object ({exc})") from exc
        files = [folder / name for name in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{index}: lists shard(s) that are not in the folder: {', '.join(missing)}")
        return files
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    found = sorted(p.name for p in folder.glob("*.safetensors"))
    if found:
        return [folder / name for name in found]
    raise CheckpointError(f"{folder}: no {SINGLE_FILE}, {INDEX_FILE} or *.safetensors file")


def read_safetensors(files: list[Path], progress: bool = False) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as f:
                names = list(f.keys())
                for name in tqdm(names, desc=f"reading {path.name}", unit="tensor", disable=not progress):
                    tensors[name] = f.get_tensor(name)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: cannot read safetensors file ({exc}); "
                                  "the file is corrupted or not safetensors") from exc
    return tensors


def check_tensors(cfg: ModelConfig, tensors: Mapping[str, torch.Tensor], where: str) -> None:
    for name, shape in expected_shapes(cfg).items():
        if name not in tensors:
            raise CheckpointError(f"tensor '{name}' is missing from {where}; "
                                  f"a gpt-oss checkpoint with this config.json needs it, shape {list(shape)}")
        got = shape_of(tensors, name)
        if got != shape:
            raise CheckpointError(f"tensor '{name}' in {where} has shape {list(got)}; "
                                  f"config.json implies {list(shape)}")


def load_checkpoint(folder: Path | str, progress: bool = False, lazy: bool = True) -> Checkpoint:
    """The checkpoint's config and tensors. With `lazy` (the default) a Hugging Face folder's tensors
    are read one at a time when used (export/tensor_source.py): memory holds about one layer, whatever
    the model's size. `lazy=False` reads them all now (OpenAI's original layout is always read whole)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder; expected a Hugging Face gpt-oss checkpoint folder")
    cfg, raw_cfg = read_config(folder)
    quant = _quantization(raw_cfg, folder / "config.json")
    files = _weight_files(folder)
    where = ", ".join(f.name for f in files)
    if original_layout.is_original(raw_cfg):
        raw = read_safetensors(files, progress)
        quant = "mxfp4" if any(n.endswith(".blocks") for n in raw) else None
        raw = original_layout.to_canonical(raw, cfg.q_size, cfg.kv_size)
        check_tensors(cfg, raw, where)
        tensors = {name: raw[name].to(torch.float32) for name in expected_shapes(cfg)}
        return Checkpoint(folder, cfg, tensors, files, quant, "original")
    source = SafetensorsTensors(files)
    check_tensors(cfg, source, where)
    if lazy:
        return Checkpoint(folder, cfg, source, files, quant)
    tensors = {name: source[name] for name in tqdm(expected_shapes(cfg), desc="reading tensors", unit="tensor",
                                                    disable=not progress)}
    return Checkpoint(folder, cfg, tensors, files, quant)


def fingerprint(folder: Path, files: list[Path]) -> str:
    """sha256 over config.json and the weight files: which checkpoint a model folder came from."""
    digest = hashlib.sha256()
    for path in [folder / "config.json", *files]:
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()
