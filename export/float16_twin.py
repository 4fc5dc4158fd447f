"""Verifying a float16 export through a float32 twin that holds exactly its weights.

A float16 folder is for CUDA. onnxruntime's CPU kernels for float16 with 4-bit weights drift at
gpt-oss-20b's width (docs/performance.md: 24 layers, max |logit diff| 4.5 against 0.1 for the same
weights in float32), so running the float16 graph on the CPU cannot tell a wrong export from a drifting
kernel. Instead every float the export stores is a float16 value (quantization scales included: codes
are computed against the float16 scale, export/quantize.py), the torch reference runs on those same
values, and a float32 twin built by the same functions from those values runs a layer at a time
(export/layer_pieces.py) and must match the reference at float32's tolerance. Each piece's weights
are then compared with the written graph's, value for value, so the folder holds what was verified.
What stays unverified is float16 arithmetic itself, which the GPU computes: the float16 graph's own
distance on this CPU goes into the manifest as information.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from export.errors import ExportError, VerificationError
from export.graph_common import GraphWeights
from export.layer_pieces import layered_logits
from export.verify import DECODE_STEPS, prompt_ids, prompt_length

TWIN_FOLDER = "float32-twin"
ROWS_AT_ONCE = 8192  # weights are compared a slab at a time: the embedding of a 20B model is 1.2 GB
# Tables the graph computes rather than reads from the checkpoint: part of its arithmetic, so the twin keeps
# them in float32 (as the torch reference computes them) and the float16 graph in float16.
COMPUTED = {"rope.cos", "rope.sin"}


def float16_round_trip(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """A float tensor as float16 holds it, in float32 (integer tensors as they are). A per-tensor change:
    see tensor_source.Transformed."""
    if not tensor.is_floating_point():
        return tensor
    narrow = tensor.detach().to(torch.float32).to(torch.float16)
    if not torch.isfinite(narrow).all():
        biggest = float(tensor.detach().abs().max())
        raise ExportError(f"{name}: float16 cannot hold this tensor (largest |value| {biggest:.4g}, float16 "
                          f"stops at 65504): export with --dtype float32")
    return narrow.to(torch.float32)


def twin_of(weights: GraphWeights, tensors) -> GraphWeights:
    """The float32 twin of a float16 graph's weights: the same shapes and op choices, float16's values."""
    return GraphWeights(weights.cfg, tensors, "float32", len(weights.cos), weights.experts, weights.dense,
                        lookup_tensors=tensors, values="float16")


@dataclass
class Float16TwinRun:
    logits: list[np.ndarray]
    ids: list[int]
    prompt: int
    checked: int  # weight tensors of the written graph equal to the twin's

    def description(self) -> str:
        return (f"float16 weights verified through a float32 twin holding exactly their values, run a layer at a "
                f"time and teacher-forced on {len(self.ids) - self.prompt} tokens after the prompt; all "
                f"{self.checked} weight tensors of the written graph equal the twin's, value for value. float16 "
                f"arithmetic is the provider's (see float16_graph_on_cpu)")


def _decode(folder: Path, tensor: onnx.TensorProto) -> np.ndarray:
    """An external initializer, memory-mapped; bfloat16 as its uint16 bits."""
    info = {e.key: e.value for e in tensor.external_data}
    bf16 = tensor.data_type == onnx.TensorProto.BFLOAT16
    dtype = np.uint16 if bf16 else onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    shape = tuple(tensor.dims)
    if not shape or not int(np.prod(shape)):
        return np.fromfile(folder / info["location"], dtype=dtype, count=int(np.prod(shape)),
                           offset=int(info["offset"])).reshape(shape)
    return np.memmap(folder / info["location"], dtype=dtype, mode="r", offset=int(info["offset"]), shape=shape)


def _values(part: np.ndarray, tensor: onnx.TensorProto, graph_dtype) -> np.ndarray:
    """What the graph computes with: bfloat16 bits widened (and cast to the graph's dtype, as the lookup
    does), floats in float32, integer codes as they are."""
    if tensor.data_type == onnx.TensorProto.BFLOAT16:
        wide = (part.astype(np.uint32) << 16).view(np.float32)
        return wide.astype(graph_dtype).astype(np.float32)
    return part.astype(np.float32) if part.dtype.kind == "f" else np.asarray(part)


def weights_match(piece_file: Path, folder: Path, stored: dict[str, onnx.TensorProto]) -> int:
    """Every weight of one twin piece equals the written graph's weight of that name. Returns the count."""
    piece = onnx.load(str(piece_file), load_external_data=False)
    count = 0
    for mine in piece.graph.initializer:
        if mine.data_location != onnx.TensorProto.EXTERNAL or mine.name in COMPUTED:
            continue  # inline constants (shapes, indices) and computed tables belong to the arithmetic
        theirs = stored.get(mine.name)
        if theirs is None or tuple(theirs.dims) != tuple(mine.dims):
            raise VerificationError(f"{mine.name}: the written graph has no weight of the twin's shape "
                                    f"{tuple(mine.dims)}; the model folder was not written")
        a, b = _decode(piece_file.parent, mine), _decode(folder, theirs)
        for start in range(0, max(a.shape[0] if a.ndim else 1, 1), ROWS_AT_ONCE):
            rows = slice(start, start + ROWS_AT_ONCE) if a.ndim else ()
            if not np.array_equal(_values(a[rows], mine, np.float32), _values(b[rows], theirs, np.float16)):
                raise VerificationError(f"{mine.name}: the written float16 graph does not hold the values the "
                                        f"float32 twin was verified with; the model folder was not written")
        count += 1
    return count


def run_float16_twin(folder: Path, twin: GraphWeights, tokenizer_file: Path, progress=None) -> Float16TwinRun:
    """The twin's logits over the verification prompt and DECODE_STEPS more tokens, comparing each piece's
    weights with the float16 graph written in `folder` as it goes."""
    cfg = twin.cfg
    prompt = prompt_length(cfg)
    ids = prompt_ids(tokenizer_file, prompt + DECODE_STEPS, cfg.vocab_size)
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    stored = {t.name: t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
    checked = 0

    def compare(piece_file: Path) -> None:
        nonlocal checked
        checked += weights_match(piece_file, folder, stored)

    work = folder / TWIN_FOLDER
    try:
        logits = layered_logits(twin, ids, prompt, work, cache_length=len(ids) + 1, progress=progress,
                                on_piece=compare)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Float16TwinRun(logits, ids, prompt, checked)
