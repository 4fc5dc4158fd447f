"""Merge a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) into the base weights.

Supported: LoRA on the linear projections (q/k/v/o_proj) and, through PEFT's
`target_parameters`, on the expert tensors (mlp.experts.gate_up_proj / down_proj).
"""
from __future__ import annotations

import hashlib
import json
import math
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from export.checkpoint import Checkpoint, read_safetensors
from export.errors import CheckpointError
from export.tensor_source import Transformed, shape_of

UNSUPPORTED_FLAGS = {"use_dora": "DoRA", "lora_bias": "LoRA biases", "fan_in_fan_out": "fan_in_fan_out"}


def _adapter_files(adapter: Path) -> list[Path]:
    files = sorted(adapter.glob("adapter_model*.safetensors"))
    if not files:
        raise CheckpointError(f"{adapter}: no adapter_model.safetensors (a PEFT LoRA adapter folder has one)")
    return files


def _read_config(adapter: Path) -> dict:
    path = adapter / "adapter_config.json"
    if not path.is_file():
        raise CheckpointError(f"{adapter}: no adapter_config.json; expected a PEFT LoRA adapter folder")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if cfg.get("peft_type", "LORA") != "LORA":
        raise CheckpointError(f"{path}: peft_type is {cfg.get('peft_type')!r}; only LORA adapters can be merged")
    for key, what in UNSUPPORTED_FLAGS.items():
        if cfg.get(key):
            raise CheckpointError(f"{path}: {key} is set; {what} adapters are not supported, merge them with "
                                  "peft's merge_and_unload() and export the merged checkpoint instead")
    for key in ("alpha_pattern", "rank_pattern"):
        if cfg.get(key):
            raise CheckpointError(f"{path}: {key} is not supported yet; use one r and lora_alpha for all modules")
    if cfg.get("modules_to_save"):
        raise CheckpointError(f"{path}: modules_to_save is not supported; save the merged model instead")
    return cfg


def _module_path(key: str) -> str:
    """'base_model.model.model.layers.0.mlp.experts.base_layer.lora_A.weight' -> 'model.layers.0.mlp.experts'"""
    path = key[: key.index(".lora_A.")]
    path = path.removeprefix("base_model.model.")
    return ".".join(part for part in path.split(".") if part != "base_layer")


def fingerprint_lora(adapter: Path) -> str:
    digest = hashlib.sha256()
    for path in [adapter / "adapter_config.json", *_adapter_files(adapter)]:
        digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()


def merge_lora(ckpt: Checkpoint, adapter: Path) -> None:
    """Add every adapter delta to ckpt.tensors: the deltas are kept as their low-rank factors and added
    to each tensor as it is read (float32), so a merged 20B model is never held in memory."""
    cfg = _read_config(adapter)
    tensors = read_safetensors(_adapter_files(adapter))
    alpha = float(cfg.get("lora_alpha", 8))
    pairs = [(k, k.replace(".lora_A.", ".lora_B.")) for k in tensors if ".lora_A." in k]
    if not pairs:
        raise CheckpointError(f"{adapter}: the adapter holds no lora_A/lora_B tensors")
    deltas: dict[str, list[Callable[[], torch.Tensor]]] = {}
    for key_a, key_b in pairs:
        if key_b not in tensors:
            raise CheckpointError(f"{adapter}: tensor '{key_b}' is missing (it pairs with '{key_a}')")
        a, b = tensors[key_a].to(torch.float32), tensors[key_b].to(torch.float32)
        module = _module_path(key_a)
        if module.endswith("mlp.experts"):
            target, delta = _expert_delta(ckpt, module, a, b, alpha, cfg, key_a)
        else:
            target = module + ".weight"
            if target not in ckpt.tensors:
                raise CheckpointError(f"{adapter}: '{key_a}' targets '{target}', which the base checkpoint "
                                      "does not have; was the adapter trained on a different model?")
            rank = a.shape[0]
            shape = (b.shape[0], a.shape[1])
            if shape != shape_of(ckpt.tensors, target):
                raise CheckpointError(f"{adapter}: '{key_a}' gives a delta of shape {list(shape)} for "
                                      f"'{target}' of shape {list(shape_of(ckpt.tensors, target))}")
            delta = partial(_dense_delta, a, b, _scaling(alpha, rank, cfg))
        deltas.setdefault(target, []).append(delta)

    def add_deltas(name: str, tensor: torch.Tensor) -> torch.Tensor:
        for delta in deltas.get(name, ()):
            tensor = tensor + delta()
        return tensor

    ckpt.tensors = Transformed(ckpt.tensors, add_deltas)


def _dense_delta(a: torch.Tensor, b: torch.Tensor, scaling: float) -> torch.Tensor:
    return (b @ a) * scaling


def _scaling(alpha: float, rank: int, cfg: dict) -> float:
    return alpha / math.sqrt(rank) if cfg.get("use_rslora") else alpha / rank


def _expert_delta(ckpt: Checkpoint, module: str, a: torch.Tensor, b: torch.Tensor, alpha: float,
                  cfg: dict, key: str) -> tuple[str, Callable[[], torch.Tensor]]:
    experts = ckpt.config.num_local_experts
    # PEFT stacks experts' ranks: A [E*r, in], B [out, r*E]; which tensor is told by its shape.
    for name in ("gate_up_proj", "down_proj"):
        target = f"{module}.{name}"
        _, fan_in, fan_out = shape_of(ckpt.tensors, target)
        if a.shape[1] == fan_in and b.shape[0] == fan_out:
            rank = a.shape[0] // experts
            a3 = a.reshape(experts, rank, fan_in)
            b3 = b.reshape(fan_out, rank, experts)
            scaling = _scaling(alpha, rank, cfg)
            return target, lambda: torch.einsum("ore,eri->eio", b3, a3) * scaling
    raise CheckpointError(f"'{key}': shapes A {list(a.shape)} and B {list(b.shape)} match neither "
                          f"{module}.gate_up_proj nor {module}.down_proj")
