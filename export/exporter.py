"""checkpoint folder -> verified model folder, or nothing at all.

Everything is written into a staging folder beside OUT_DIR; it becomes OUT_DIR only
after the graph has been checked against the torch model.
"""
from __future__ import annotations

import functools
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from export import float16_twin, graph_contrib, graph_standard, mxfp4
from export.checkpoint import Checkpoint, fingerprint, load_checkpoint, read_config
from export.original_layout import is_original
from export.errors import CheckpointError, ExportError, VerificationError
from export.folder_swap import discard_after_failure, replace_folder
from export.dense_quantize import DENSE_PRECISIONS, dense_round_trip
from export.graph_common import DTYPES, GraphWeights, candidates
from export.int8_activations import set_accuracy_level
from export.lora import fingerprint_lora, merge_lora
from export.onnx_builder import GraphBuilder
from export.param_count import ParamCounts, count_params
from export.quantize import BLOCK_SIZES, EXPERT_PRECISIONS, INT4_BLOCK, ROUND_TRIPS, mxfp4_round_trip
from export.tensor_source import Transformed
from export.tokenizer_check import special_token_ids
from export.verify import (DECODE_STEPS, VerificationReport, context_needed, prompt_length, swap_of, verify,
                           verify_prompt)
from export.weight_bytes import blocked_axes
from export.mxfp4_twin import TwinWeights, verify_through_twin
from runtime.manifest import KvCacheLayout, Manifest

log = logging.getLogger(__name__)

GRAPH_FILE = "model.onnx"
WEIGHTS_FILE = "model.onnx.data"
TOKENIZER_FILE = "tokenizer.json"
OP_SETS = {"contrib": graph_contrib, "standard": graph_standard}


@dataclass(frozen=True)
class ExportOptions:
    dtype: str = "float32"
    op_set: str = "contrib"
    max_context: int = 4096
    verify: bool = True
    lora: Path | None = None
    force: bool = False
    # "int8" (per row) or "int4" (per block of block_size): QMoE, 1/4 or 1/8 of the float bytes. "auto": 4-bit for a
    # checkpoint whose experts are MXFP4 (as gpt-oss is released) where the target allows it, else float
    experts: str = "auto"
    # "int8"/"int4": the attention projections and the unembedding as block-quantized MatMulNBits (block_size)
    dense: str = "float"
    # Read the checkpoint a tensor at a time (the default; memory holds about one layer). False reads it
    # whole first: the same bytes come out (a test compares them), at the whole model's memory.
    stream: bool = True
    # The CPU's 4-bit kernels with int8 activations (accuracy_level 4): faster decode, verified at level 0
    # first and the difference measured (export/int8_activations.py)
    int8_activations: bool = False
    # A float16 export also runs its float16 graph on this CPU, as information (export/float16_twin.py): the
    # GPU's arithmetic is what counts, and at gpt-oss-20b's size it took 16 of the export's 59 minutes
    measure_float16_on_cpu: bool = False
    # Sliding-window layers keep only their window's keys and values (contrib graphs): half of gpt-oss's
    # layers then hold 128 positions rather than the whole context. False keeps full-length buffers.
    window_cache: bool = True
    # The inputs sharing one scale in int4 experts and int8/int4 dense weights (MXFP4 experts keep their 32)
    block_size: int = INT4_BLOCK

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lora"] = Path(self.lora).name if self.lora else None  # not the studio machine's own path
        for key in ("stream", "measure_float16_on_cpu"):  # how the folder was made and checked, not what it holds
            d.pop(key)
        return d


@dataclass
class ExportSummary:
    out_dir: Path
    params: ParamCounts
    graph_bytes: int
    verification: VerificationReport | None
    seconds: float
    op_set: str
    dtype: str
    experts: str = "float"
    vs_checkpoint: dict | None = None  # quantized weights: how far the graph is from the checkpoint's
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage
    peak_memory_mb: float | None = None  # the process's peak resident memory
    experts_choice: str = ""  # why these experts, when --experts auto chose them
    dense: str = "float"
    block_size: int = INT4_BLOCK


def peak_memory_mb() -> float | None:
    """The process's peak resident set (None where the platform does not say)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def _check_options(opts: ExportOptions) -> None:
    if opts.dtype not in DTYPES:
        raise ExportError(f"dtype {opts.dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
    if opts.op_set not in OP_SETS:
        raise ExportError(f"op set {opts.op_set!r} is not supported; choose one of {', '.join(OP_SETS)}")
    if opts.experts not in (*EXPERT_PRECISIONS, "auto"):
        raise ExportError(f"experts {opts.experts!r} is not supported; choose one of {', '.join(EXPERT_PRECISIONS)}")
    if opts.experts in ("int8", "int4", "mxfp4") and opts.op_set != "contrib":
        raise ExportError(f"{opts.experts} experts need the contrib op set (onnxruntime's QMoE); got "
                          f"{opts.op_set} ops")
    if opts.dense not in DENSE_PRECISIONS:
        raise ExportError(f"dense {opts.dense!r} is not supported; choose one of {', '.join(DENSE_PRECISIONS)}")
    if opts.dense != "float" and opts.op_set != "contrib":
        raise ExportError(f"{opts.dense} dense weights need the contrib op set (onnxruntime's MatMulNBits); "
                          f"got {opts.op_set} ops")
    if opts.int8_activations and (opts.op_set != "contrib" or opts.experts == "mxfp4"
                                  or (opts.experts == "float" and opts.dense == "float")):
        raise ExportError("--int8-activations applies to onnxruntime's CPU kernels for 4-bit and 8-bit weights "
                          "(int4/int8 experts or dense weights, contrib ops); this export has none of them")
    if opts.block_size not in BLOCK_SIZES:
        raise ExportError(f"--block-size {opts.block_size} is not supported; choose one of "
                          f"{', '.join(map(str, BLOCK_SIZES))}")
    if opts.max_context < 16:
        raise ExportError(f"max context {opts.max_context} is too small (at least 16 tokens)")
    if opts.measure_float16_on_cpu and not (_through_float32_twin(opts) and opts.verify):
        raise ExportError("--measure-float16-on-cpu applies to a verified --dtype float16 export with contrib ops "
                          "and int4, int8 or float experts (its check runs the float16 graph beside the twin)")


def _experts_by_config(opts: ExportOptions, raw: dict) -> str:
    """What `--experts auto` will resolve to, from the config alone: int4 where it names MXFP4 experts (a
    Hugging Face quantization_config, or OpenAI's original layout, which always has them) and the op set
    allows it; the rest is settled once the checkpoint is opened."""
    if opts.experts != "auto":
        return opts.experts
    mxfp4_experts = (raw.get("quantization_config") or {}).get("quant_method") == "mxfp4" or is_original(raw)
    return "int4" if mxfp4_experts and opts.op_set == "contrib" else "float"


def resolve_experts(opts: ExportOptions, quantization: str | None) -> tuple[ExportOptions, str]:
    """`--experts auto` made concrete, and why: an MXFP4 checkpoint never silently becomes a float model
    eight times its size."""
    if opts.experts != "auto":
        return opts, ""
    if quantization != "mxfp4":
        return replace(opts, experts="float"), "the checkpoint's experts are not quantized"
    if opts.op_set == "contrib":
        return replace(opts, experts="int4"), ("the checkpoint's experts are MXFP4: kept at 4 bits; "
                                               "--experts float for the float experts")
    log.warning("the checkpoint's experts are MXFP4, but 4-bit experts need the contrib op set; "
                "they become %s, about %dx their size", opts.dtype, 8 if opts.dtype == "float32" else 4)
    return replace(opts, experts="float"), f"4-bit experts need contrib ops, not {opts.op_set} ops"


def _check_block_size(opts: ExportOptions, cfg) -> None:
    """Block-quantized weights need every axis the blocks split to be a multiple of the block size, and a
    block size other than 32 needs such weights to apply to. Called with `--experts auto` resolved, or before
    any weight is read with it taken as the checkpoint's config says it will resolve."""
    axes = blocked_axes(cfg, opts.experts, opts.dense)
    if not axes and opts.block_size != INT4_BLOCK:
        raise ExportError(f"--block-size applies to int4 experts and int8/int4 dense weights; this export has "
                          f"{opts.experts} experts and float dense weights")
    uneven = {what: n for what, n in axes.items() if n % opts.block_size}
    if uneven:
        fits = [str(b) for b in BLOCK_SIZES if all(n % b == 0 for n in axes.values())]
        raise ExportError(f"--block-size {opts.block_size} does not divide this model's "
                          + ", ".join(f"{what} ({n})" for what, n in uneven.items())
                          + f"; block sizes that fit: {', '.join(fits) or 'none'}")


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not force:
        raise ExportError(f"{out_dir} already exists; choose another OUT_DIR or pass --force to replace it")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder")


def export_model(checkpoint_dir: Path | str, out_dir: Path | str, opts: ExportOptions = ExportOptions(),
                 progress: bool = False) -> ExportSummary:
    start = time.perf_counter()
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    _check_options(opts)
    _check_out_dir(out_dir, opts.force)

    if checkpoint_dir.is_dir():  # before any weight is read: what the config alone can refute
        cfg, raw = read_config(checkpoint_dir)
        _check_block_size(replace(opts, experts=_experts_by_config(opts, raw)), cfg)
    if opts.verify and checkpoint_dir.is_dir():
        needed = min(context_needed(cfg), cfg.max_position_embeddings)
        if min(opts.max_context, cfg.max_position_embeddings) < needed:
            raise ExportError(f"--max-context {opts.max_context} is too small to verify this model: verification "
                              f"runs a {prompt_length(cfg)}-token prompt (longer than its {cfg.sliding_window}-token "
                              f"sliding window) and {DECODE_STEPS} decode steps, so it needs at least {needed}")
    if opts.dense == "int8":
        log.warning("int8 dense weights: onnxruntime's CPU kernel for them is slow in float32 (5 to 36x float32 "
                    "MatMul, tools/experiments/bench_dense_ops.py) and loses precision in float16 (gpt-oss-20b's full size fails "
                    "verification); --dense int4 is faster and closer on both")
    if opts.experts == "mxfp4":
        log.warning("mxfp4 experts: no onnxruntime provider serves them right today (no CPU kernel; onnxruntime-gpu "
                    "1.31's CUDA kernel computes wrong results, measured on an H200), so `parley serve` refuses "
                    "this folder; --experts int4 is 4-bit too and serves on CPUs and GPUs")
    ckpt = load_checkpoint(checkpoint_dir, progress, lazy=opts.stream)
    opts, why = resolve_experts(opts, ckpt.quantization)
    if why:
        log.info("experts: %s (%s)", opts.experts, why)
    _check_block_size(opts, ckpt.config)
    if opts.lora:
        merge_lora(ckpt, Path(opts.lora))
    if ckpt.tokenizer_file is None:
        raise CheckpointError(f"{checkpoint_dir}: no tokenizer.json; the model folder needs the "
                              "checkpoint's tokenizer to render and parse the harmony format")
    specials = special_token_ids(ckpt.tokenizer_file, ckpt.config.vocab_size)
    max_context = min(opts.max_context, ckpt.config.max_position_embeddings)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own (never an earlier export's, which a failed swap may have left complete for the user)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    stages: dict[str, float] = {}
    try:
        report, graph_bytes, effect = _write_folder(ckpt, stage, opts, specials, max_context, progress, stages)
    except BaseException as exc:
        discard_after_failure(stage, exc)
        raise
    replace_folder(stage, out_dir, opts.force)  # a verified export is never deleted: on failure the message says where it is
    return ExportSummary(out_dir, count_params(ckpt.config), graph_bytes, report,
                         time.perf_counter() - start, opts.op_set, opts.dtype, opts.experts, effect, stages,
                         peak_memory_mb(), why, opts.dense, opts.block_size)


def _write_folder(ckpt: Checkpoint, stage: Path, opts: ExportOptions, specials: dict[str, int],
                  max_context: int, progress: bool, stages: dict[str, float]) -> tuple[VerificationReport | None, int,
                                                                                      dict | None]:
    cfg = ckpt.config
    float_tensors, tensors = None, ckpt.tensors
    change = _round_trips(opts, cfg, ckpt.quantization, lora=opts.lora is not None)
    if change is not None:
        # the reference gets the same quantization round trip, so verification stays exact; what
        # quantizing costs is measured separately against the checkpoint's weights, into the manifest
        float_tensors, tensors = tensors, Transformed(tensors, change)
    # The graph quantizes the checkpoint's own values (rounding them twice would give the same codes at
    # twice the cost); only a float lookup of a tied embedding whose unembedding is rounded (float16's
    # twin) must read the rounded table. A quantized lookup (dense int8/int4) quantizes the source too.
    source = float_tensors if float_tensors is not None else tensors
    window = _cache_window(cfg, opts, max_context)
    weights = GraphWeights(cfg, source, opts.dtype, max_context, opts.experts, opts.dense, lookup_tensors=tensors,
                           window_cache=bool(window), block=opts.block_size)
    manifest, weight_bytes = _write_graph(ckpt, stage, opts, weights, specials, max_context, progress, stages)

    report = effect = None
    if opts.verify and opts.experts == "mxfp4":
        # the twin's experts: the values the fp4 codes decode to (an MXFP4 checkpoint's own values are exact)
        rounded = ckpt.quantization != "mxfp4" or opts.lora is not None
        exact = Transformed(source, mxfp4_round_trip) if rounded else source
        # a float16 graph's twin holds its float16 values in float32 (onnxruntime's float16 CPU kernels for 4-bit
        # dense weights drift), against a reference on the same values (_round_trips), at float32's tolerance
        values = "float16" if _float16_values_in_float32(opts) else None
        twin = TwinWeights(cfg, exact, "float32" if values else opts.dtype, max_context, "float", opts.dense,
                           lookup_tensors=tensors, values=values, window_cache=weights.window_cache,
                           block=weights.block)
        codes = ("the checkpoint's own MXFP4 bytes" if mxfp4.stores_bytes(source, "model.layers.0.mlp.experts.gate_up_proj")
                 else "rounded to MXFP4 here" + (" (equal in value to the checkpoint's)" if not rounded else ""))
        parts = ", ".join(p for p in ("float16 weights" if values else "", quantized_parts(opts.experts, opts.dense, opts.block_size)) if p)
        # a quantized table is looked up as the float16 graph holds its rows: rounded to float16 (a float one
        # was rounded before quantizing; rounding again changes nothing)
        lookup = Transformed(tensors, float16_twin.float16_round_trip) if values else None
        report, effect, verification = verify_through_twin(stage, twin, tensors, float_tensors, parts, progress, stages,
                                                           lookup)
        verification["codes"] = codes
        if values:
            verification["twin"] += ("; the twin in float32, holding the float16 graph's values (its other weights "
                                     "built by the same functions from the same tensors as the graph's, not compared "
                                     "one by one; the float16 arithmetic is the serving provider's)")
    elif opts.verify and _through_float32_twin(opts):
        parts = ", ".join(p for p in ("float16 weights", quantized_parts(opts.experts, opts.dense, opts.block_size)) if p)
        report, effect, verification = float16_twin.verify_float16(stage, weights, source, tensors, parts, progress,
                                                                   stages, opts.measure_float16_on_cpu)
    elif opts.verify:
        clock = time.perf_counter()
        report = verify(stage, cfg, tensors, stage / TOKENIZER_FILE, opts.dtype, progress=progress)
        stages["verify"] = time.perf_counter() - clock
        log.info(report.summary())
        if not report.passed:
            raise VerificationError(report.summary() + "; the model folder was not written")
        verification = {"status": "passed", **report.to_dict()}
        if float_tensors is not None:
            clock = time.perf_counter()
            effect = verification["vs_checkpoint"] = _quantization_effect(cfg, float_tensors, stage, opts,
                                                                          progress)
            stages["measure vs checkpoint"] = time.perf_counter() - clock
    else:
        log.warning("verification SKIPPED (--no-verify): nobody checked this graph against the torch model")
        verification = {"status": "skipped"}
    if opts.int8_activations:
        verification["int8_activations"] = _switch_to_int8_activations(stage, cfg, tensors, opts, report, progress,
                                                                       stages)
    manifest = replace(manifest, verification=verification)
    manifest.write(stage)
    return report, weight_bytes, effect


def _cache_window(cfg, opts: ExportOptions, max_context: int) -> int:
    """The sliding layers' cache length, or 0 where they keep the whole context: a standard-op graph, no sliding
    layers, or a window as long as the context (nothing to save)."""
    sliding = any(cfg.is_sliding(n) for n in range(cfg.num_hidden_layers))
    use = opts.window_cache and opts.op_set == "contrib" and sliding and cfg.sliding_window < max_context
    return cfg.sliding_window if use else 0


def _write_graph(ckpt: Checkpoint, folder: Path, opts: ExportOptions, weights: GraphWeights, specials: dict[str, int],
                 max_context: int, progress: bool, stages: dict[str, float]) -> tuple[Manifest, int]:
    """The graph, its weights, the tokenizer and a manifest whose verification is still pending."""
    clock = time.perf_counter()
    cfg = ckpt.config
    builder = GraphBuilder(folder / WEIGHTS_FILE)
    OP_SETS[opts.op_set].build(builder, weights, progress=progress)
    model = builder.finish(folder / GRAPH_FILE, graph_name=f"gpt-oss-{opts.op_set}",
                           doc="Exported by parley-export; see manifest.json")
    shutil.copyfile(ckpt.tokenizer_file, folder / TOKENIZER_FILE)
    stages["read, convert and write"] = time.perf_counter() - clock
    manifest = Manifest(
        config=cfg, graph_file=GRAPH_FILE, weights_file=WEIGHTS_FILE, op_set=opts.op_set, dtype=opts.dtype,
        kv_cache=KvCacheLayout(layout="batch,kv_heads,position,head_dim", max_context=max_context,
                               dtype=opts.dtype, in_place=opts.op_set == "contrib",
                               window=cfg.sliding_window if weights.window_cache else 0),
        tokenizer_file=TOKENIZER_FILE, special_tokens=specials,
        source={"checkpoint": ckpt.folder.name, "hash": fingerprint(ckpt.folder, ckpt.source_files),
                "quantization": ckpt.quantization, "layout": ckpt.layout,
                "lora": {"adapter": opts.lora.name, "hash": fingerprint_lora(opts.lora)} if opts.lora else None},
        export_options=dict(opts.to_dict(), experts=weights.experts, window_cache=weights.window_cache,
                            **integer_expert_layout(weights.experts)),
        verification={"status": "pending"},
        inputs=[i.name for i in model.graph.input], outputs=[o.name for o in model.graph.output],
        candidates=candidates(cfg))
    manifest.write(folder)
    return manifest, builder.weight_bytes


def _switch_to_int8_activations(stage: Path, cfg, tensors, opts: ExportOptions, report: VerificationReport | None,
                                progress: bool, stages: dict[str, float]) -> dict:
    """The verified graph's 4-bit kernels switched to int8 activations, and how far that moves it from the
    torch model (information, like the distance from the checkpoint: the exact graph was the gate)."""
    nodes = set_accuracy_level(stage)
    if report is None:  # not verified: nothing to measure against
        return {"nodes": nodes}
    clock = time.perf_counter()
    # against the reference verification passed against (a near-tie judged the other way stays so)
    r = verify_prompt(stage, cfg, tensors, stage / TOKENIZER_FILE, opts.dtype, progress=progress,
                      swap=swap_of(report))
    stages["measure int8 activations"] = time.perf_counter() - clock
    log.info("int8 activations (%d nodes) vs the torch model: max |logit diff| %.3g (prompt) %.3g (decode), greedy %s",
             nodes, r.max_abs_diff_prompt, r.max_abs_diff_decode, "matches" if r.greedy_match else "DIFFERS")
    return {"nodes": nodes, **r.distance()}


def integer_expert_layout(experts: str) -> dict:
    """What the runtime needs to know before putting integer experts on a GPU: that QMoE reads raw codes."""
    return {"qmoe_weights_prepacked": graph_contrib.QMOE_WEIGHTS_PREPACKED} if experts in ("int4", "int8") else {}


def _through_float32_twin(opts: ExportOptions) -> bool:
    """A float16 contrib graph is verified through a float32 twin of its values (export/float16_twin.py);
    MXFP4 experts have their own twin, the standard op set runs as it is."""
    return _float16_values_in_float32(opts) and opts.experts != "mxfp4"


def _float16_values_in_float32(opts: ExportOptions) -> bool:
    """A float16 contrib graph is checked through a float32 graph holding its float16 values: float16_twin's
    for float, int8 and int4 experts, mxfp4_twin's for MXFP4 experts."""
    return opts.dtype == "float16" and opts.op_set == "contrib"


def _round_trips(opts: ExportOptions, cfg, quantization: str | None = None, lora: bool = False):
    """What the graph does to the checkpoint's values, as one per-tensor change for the torch reference, or
    None when it stores them as they are: float16's rounding (for a twin-verified float16 export), then the
    quantized weights' round trip (experts, dense weights or both; scales in the graph's precision); MXFP4
    experts are rounded before float16. MXFP4 experts from an MXFP4 checkpoint are its own values: no change."""
    narrow = _float16_values_in_float32(opts)
    scale_dtype = np.float16 if opts.dtype == "float16" else np.float32  # as the graph stores them
    kept = opts.experts == "mxfp4" and quantization == "mxfp4" and not lora
    experts = None if kept else ROUND_TRIPS.get(opts.experts)
    if experts is not None and opts.experts == "int8":
        experts = functools.partial(experts, scale_dtype=scale_dtype)
    if experts is not None and opts.experts == "int4":
        experts = functools.partial(experts, scale_dtype=scale_dtype, block=opts.block_size)
    dense = dense_round_trip(opts.dense, cfg, scale_dtype, opts.block_size) if opts.dense != "float" else None
    f16 = float16_twin.float16_round_trip if narrow else None
    # int8/int4 codes are computed from float16's values, MXFP4 codes from the checkpoint's own (the values they
    # decode to are exact in float16, so rounding after changes nothing)
    order = (experts, f16, dense) if opts.experts == "mxfp4" else (f16, experts, dense)
    changes = [c for c in order if c is not None]
    if not changes:
        return None

    def change(name, tensor):
        for each in changes:
            tensor = each(name, tensor)
        return tensor
    return change


def quantized_parts(experts: str, dense: str, block: int = INT4_BLOCK) -> str:
    """'int4 experts, int8 dense weights' and the like, for summaries and logs (with the block size where it
    is not 32 and applies)."""
    parts = [f"{experts} experts" if experts != "float" else "", f"{dense} dense weights" if dense != "float" else ""]
    blocked = experts == "int4" or dense != "float"
    return ", ".join(p for p in parts if p) + (f" (blocks of {block})" if blocked and block != INT4_BLOCK else "")


def _quantization_effect(cfg, float_tensors: dict, stage: Path, opts: ExportOptions, progress: bool) -> dict:
    """The quantized graph against the checkpoint's own weights: logit differences and whether the
    greedy tokens agree (information for the studio, not a pass/fail gate: measured once, a near-tie or not)."""
    r = verify_prompt(stage, cfg, float_tensors, stage / TOKENIZER_FILE, opts.dtype, progress=progress)
    effect = {"quantized": quantized_parts(opts.experts, opts.dense, opts.block_size), **r.distance()}
    log.info("%s vs the checkpoint's weights: max |logit diff| %.3g (prompt) %.3g (decode), greedy %s",
             effect["quantized"], r.max_abs_diff_prompt, r.max_abs_diff_decode, "matches" if r.greedy_match else "DIFFERS")
    return effect
