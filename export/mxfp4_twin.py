"""The CPU twin that verifies an MXFP4 export (`--experts mxfp4`).

onnxruntime 1.31 runs QMoE with quant_type fp4 on CUDA only. The exporter therefore also writes a twin:
the same graph, but with float MoE experts holding exactly the values the fp4 bytes decode to (every
MXFP4 value is exact in float32). The twin is verified against the torch model as every export is, and
then each layer's fp4 codes and e8m0 scales, read back from the written file, must decode to the twin's
expert weights bit for bit. The twin is deleted afterwards; the manifest says what was checked how.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from export import mxfp4
from export.errors import ExportError, VerificationError

TWIN_FOLDER = "cpu-twin"
# The twin's float32 experts must fit on disk and in the verifier's memory map; beyond this a layer-at-a-time
# twin is needed (not built yet), and the export says so instead of filling the disk.
MAX_TWIN_EXPERT_BYTES = 8 * 2**30


def twin_expert_bytes(cfg) -> int:
    per_expert = 3 * cfg.hidden_size * cfg.intermediate_size  # gate and up (fused), then down
    return cfg.num_hidden_layers * cfg.num_local_experts * per_expert * 4


def check_twin_fits(cfg) -> None:
    need = twin_expert_bytes(cfg)
    if need > MAX_TWIN_EXPERT_BYTES:
        raise ExportError(f"--experts mxfp4 is verified through a CPU twin with float32 experts, which for this "
                          f"model would take {need / 2**30:.1f} GiB (at most {MAX_TWIN_EXPERT_BYTES / 2**30:.0f} GiB "
                          f"is allowed); a layer-at-a-time twin is not built yet. Export with --experts int4 (verified "
                          f"on the CPU), or with --experts mxfp4 --no-verify and check it on the GPU")


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


def same_experts(folder: Path, twin: Path, cfg) -> int:
    """Check every layer's fp4 experts in `folder` against the twin's float experts; returns the number of
    expert matrices checked."""
    ours, theirs = initializers(folder), initializers(twin)
    checked = 0
    for n in range(cfg.num_hidden_layers):
        for fc in ("fc1", "fc2"):
            p = f"layers.{n}.{fc}"
            decoded = mxfp4.decode_rows(np.asarray(ours[p + ".fp4"]), np.asarray(ours[p + ".e8m0"]))
            float_weights = np.asarray(theirs[p + ".weight"], dtype=np.float32)
            if decoded.shape != float_weights.shape or not np.array_equal(decoded, float_weights):
                raise VerificationError(f"layer {n} {fc}: the fp4 experts written do not decode to the verified "
                                        f"twin's weights; the model folder was not written")
            checked += 1
    return checked


def twin_description(checked: int) -> str:
    return (f"QMoE fp4 runs on CUDA only (onnxruntime 1.31): verified the same graph with float experts holding "
            f"the MXFP4 values exactly, on the CPU; the fp4 codes and e8m0 scales of all {checked} expert "
            f"matrices decode to the twin's weights bit for bit")
