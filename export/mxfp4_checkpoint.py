"""A float checkpoint rounded to MXFP4 experts, in gpt-oss's released layout, beside a float twin that holds
exactly the rounded values (MXFP4 values are exact in float32).

The pair makes the 4-bit path checkable end to end: the MXFP4 copy exports with `--experts mxfp4` (served on
a GPU only), the twin with `--experts float` (served anywhere), and the two folders must give the same
tokens. Tests use it on tiny checkpoints, tools/experiments/gpu_check.py on the demo model.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from export import mxfp4

EXPERT_SUFFIXES = ("gate_up_proj", "down_proj")
SIDE_FILES = ("config.json", "tokenizer.json", "generation_config.json")


def round_to_mxfp4(src: Path, root: Path) -> tuple[Path, Path]:
    """Write root/mxfp4 (experts as `*_blocks`/`*_scales`) and root/twin (float32, the same values); return both.

    `src` is a single-file float checkpoint (model.safetensors), as a small fine-tune or a test writes it."""
    from safetensors.torch import load_file, save_file

    weights = Path(src) / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: round_to_mxfp4 reads a single-file float checkpoint")
    tensors = load_file(weights)
    quantized = dict(tensors)
    for name in [n for n in tensors if n.endswith(EXPERT_SUFFIXES)]:
        blocks, scales = mxfp4.quantize(tensors[name])
        quantized.pop(name)
        quantized[name + "_blocks"] = blocks.reshape(*scales.shape, 16)
        quantized[name + "_scales"] = scales
        tensors[name] = mxfp4.dequantize(quantized[name + "_blocks"], scales)
    q, twin = Path(root) / "mxfp4", Path(root) / "twin"
    for folder in (q, twin):
        folder.mkdir(parents=True, exist_ok=True)
        for side in SIDE_FILES:
            if (Path(src) / side).is_file():
                shutil.copyfile(Path(src) / side, folder / side)
    save_file(tensors, twin / "model.safetensors", metadata={"format": "pt"})
    cfg = json.loads((Path(src) / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn"]}
    (q / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file(quantized, q / "model.safetensors", metadata={"format": "pt"})
    return q, twin
