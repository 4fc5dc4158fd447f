"""The CPU twin that verifies an MXFP4 export (`--experts mxfp4`), a layer at a time.

onnxruntime 1.31 runs QMoE with quant_type fp4 on CUDA only. So verification runs a twin: the same graph,
built by the same functions, but with float MoE experts holding exactly the values the fp4 bytes decode
to (every MXFP4 value is exact in float32), one piece at a time (export/layer_pieces.py), so memory holds
one layer even for gpt-oss-20b, whose float experts would take 76 GiB. Its logits are checked against
the torch reference like any export's, and each layer's fp4 codes and e8m0 scales, read back from the
written graph, must decode to the twin's expert weights bit for bit. The manifest says what was checked
how.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from export import mxfp4
from export.errors import VerificationError
from export.graph_common import GraphWeights, LayerWeights
from export.graph_contrib import fc1_layout, fc2_layout
from export.layer_pieces import layered_logits
from export.verify import DECODE_STEPS, prompt_ids, prompt_length

TWIN_FOLDER = "cpu-twin"
PROVIDER = "CPUExecutionProvider (cpu twin, a layer at a time)"


class TwinWeights(GraphWeights):
    """Float experts; remembers the layer last read, so its experts are compared without reading it twice."""

    last: LayerWeights | None = None

    def layer(self, n: int) -> LayerWeights:
        self.last = super().layer(n)
        return self.last


def initializers(folder: Path) -> dict[str, np.ndarray]:
    """The folder's external initializers as read-only memory maps (nothing is read until used)."""
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    out = {}
    for t in model.graph.initializer:
        info = {e.key: e.value for e in t.external_data}
        if not info:
            continue
        dtype = np.uint8 if t.data_type in (onnx.TensorProto.UINT8, onnx.TensorProto.FLOAT8E8M0) else \
            onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
        count = int(np.prod(t.dims)) if t.dims else 1
        out[t.name] = np.memmap(folder / info["location"], dtype=dtype, mode="r", offset=int(info["offset"]),
                                shape=(count,)).reshape(tuple(t.dims))
    return out


@dataclass
class TwinRun:
    logits: list[np.ndarray]  # at the prompt's last position and each later one
    ids: list[int]
    prompt: int
    checked: int  # expert matrices whose fp4 bytes decode to the twin's weights

    def description(self) -> str:
        return (f"QMoE fp4 runs on CUDA only (onnxruntime 1.31): verified on the CPU through the same graph with "
                f"float experts holding the MXFP4 values exactly, run a layer at a time and teacher-forced on "
                f"{len(self.ids) - self.prompt} tokens after the prompt; the fp4 codes and e8m0 scales of all "
                f"{self.checked} expert matrices in the written graph decode to the twin's weights bit for bit")


def run_twin(folder: Path, twin: TwinWeights, tokenizer_file: Path, progress=None) -> TwinRun:
    """The twin's logits over the verification prompt and DECODE_STEPS more tokens, checking each layer's
    fp4 experts in `folder` (the written graph) against the float experts the twin ran with."""
    cfg = twin.cfg
    prompt = prompt_length(cfg)
    ids = prompt_ids(tokenizer_file, prompt + DECODE_STEPS, cfg.vocab_size)
    written = initializers(folder)
    checked = 0

    def check(n: int) -> None:
        nonlocal checked
        for fc, weights in (("fc1", fc1_layout(twin.last.gate_up)), ("fc2", fc2_layout(twin.last.down))):
            p = f"layers.{n}.{fc}"
            decoded = mxfp4.decode_rows(np.asarray(written[p + ".fp4"]), np.asarray(written[p + ".e8m0"]))
            if decoded.shape != weights.shape or not np.array_equal(decoded, weights.astype(np.float32)):
                raise VerificationError(f"layer {n} {fc}: the fp4 experts written do not decode to the weights the "
                                        f"twin was verified with; the model folder was not written")
            checked += 1

    work = folder / TWIN_FOLDER
    try:
        logits = layered_logits(twin, ids, prompt, work, cache_length=len(ids) + 1, on_layer=check,
                                progress=progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return TwinRun(logits, ids, prompt, checked)
