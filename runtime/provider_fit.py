"""Which provider serves a model folder: refused, with what to do, where a provider would not compute its
experts right (measured on an H200, docs/performance.md) or it cannot fit the GPU memory cap."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.manifest import Manifest
from runtime.memory_plan import MemoryPlan, over_gpu_cap

if TYPE_CHECKING:
    from runtime.session import SessionOptions

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model folder exists but onnxruntime cannot load it."""


def providers_for(folder: Path, manifest: Manifest, options: "SessionOptions", providers: list) -> list:
    """The providers this folder is served with, given the ones the options chose: refused, with what to do,
    where they would not compute it right or it cannot fit the GPU memory cap."""
    on_gpu = providers[0] != "CPUExecutionProvider"
    if on_gpu and older_integer_experts(manifest) and options.provider == "auto":
        # a folder a studio already shipped keeps serving, on the CPU
        log.warning("%s: its integer experts were exported by an older Parley, which onnxruntime's GPU kernels "
                    "read wrongly; serving it on the CPU (export it again to use the GPU)", folder)
        providers, on_gpu = ["CPUExecutionProvider"], False
    check_provider_fits(folder, manifest, providers[0], options.experimental_mxfp4)
    if on_gpu and options.gpu_mem_limit_mb:
        problem = over_gpu_cap(MemoryPlan.for_folder(folder, 0, 0, manifest).weights_bytes, 0,
                               options.gpu_mem_limit_mb)
        if problem:
            raise ModelLoadError(f"{folder}: {problem}")
    if manifest.export_options.get("timing_only"):
        log.warning("%s: a timing-only folder (tools/experiments/int4_timing_folder.py): its outputs mean "
                    "nothing", folder)
    return providers


def older_integer_experts(manifest: Manifest) -> bool:
    """Integer experts from before the export declared their codes raw (QMoE weights_prepacked=0)."""
    opts = manifest.export_options
    return opts.get("experts") in ("int4", "int8") and opts.get("qmoe_weights_prepacked") != 0


def check_provider_fits(folder: Path, manifest: Manifest, provider, experimental_mxfp4: bool = False) -> None:
    """Refuse, with what to do, a folder whose experts this provider would not compute right."""
    opts, on_cpu = manifest.export_options, provider == "CPUExecutionProvider"
    if opts.get("experts") == "mxfp4" and on_cpu:
        raise ModelLoadError(f"{folder}: this model's experts are MXFP4 (onnxruntime's QMoE fp4), which "
                             "onnxruntime has no CPU kernel for; export the checkpoint again with "
                             "--experts int4, which serves on the CPU and on a GPU")
    if opts.get("experts") == "mxfp4" and not experimental_mxfp4:
        # Measured on an H200 with onnxruntime-gpu 1.31.1: the fp4 QMoE kernel's outputs are off by 1-2x the
        # output's own size (either nibble order), where int4 and int8 match the CPU to 1e-3. Lift this when
        # tools/experiments/qmoe_cuda_check.py says a newer onnxruntime gets it right.
        raise ModelLoadError(f"{folder}: this model's experts are MXFP4, and onnxruntime's GPU kernel for them "
                             "computed wrong results when measured (onnxruntime-gpu 1.31.1, docs/performance.md);"
                             " export the checkpoint again with --experts int4 (4-bit too), which serves on a "
                             "GPU and on the CPU")
    if not on_cpu and older_integer_experts(manifest):
        # Such a folder does not say its expert codes are raw; onnxruntime's CUDA QMoE would read them as
        # its own prepacked layout and answer garbage (measured on an H200). The CPU reads them right.
        raise ModelLoadError(f"{folder}: this model's {opts['experts']} experts were exported by an older "
                             "Parley, whose graph onnxruntime's GPU kernels read wrongly; export the checkpoint "
                             "again (same options) to serve it on a GPU, or serve this folder with "
                             "--provider cpu")
