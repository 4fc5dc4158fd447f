"""Verifying a float16 export through a float32 twin that holds exactly its weights.

A float16 folder is for CUDA. Running the float16 graph against the torch model cannot tell a wrong
export from float16's own routing: a token whose k-th and (k+1)-th router logits tie within float16's
rounding gets another expert, and with random weights at gpt-oss-20b's size a few such tokens move the
logits far (docs/performance.md: 24 layers, max |logit diff| 4.5 against 0.1 for the same weights in
float32, on the CPU and on CUDA; tools/experiments/float16_layer_errors.py shows it layer by layer).
Instead every float the export stores is a float16 value (quantization scales too: codes are computed
against the float16 scale, export/quantize.py), the torch reference runs on those values, and a float32
twin built by the same functions from the same checkpoint tensors runs a layer at a time
(export/layer_pieces.py) and must match the reference at float32's tolerance. Each twin piece is then
held against the written graph: every weight equal value for value (computed tables rounded as float16
rounds them), and every node that reads a weight the same op with the same attributes. What stays
unverified is float16 arithmetic itself, which the GPU computes: the float16 graph's own distance on this
CPU, run a layer at a time, goes into the manifest as information when asked (--measure-float16-on-cpu).
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from tqdm import tqdm

from export.errors import ExportError, VerificationError
from export.graph_common import GraphWeights, float16_overflow
from export.layer_pieces import layered_logits
from export.reference import layered_logits as reference_logits
from export.stored import stored_array
from export.tensor_source import Transformed
from export.verify import (DECODE_STEPS, VerificationReport, compare, judge_verification, prompt_ids, prompt_length,
                           reference_runs)

log = logging.getLogger(__name__)

TWIN_FOLDER = "float32-twin"
PIECES_FOLDER = "float16-pieces"
PROVIDER = "CPUExecutionProvider (float32 twin, a layer at a time)"
CHUNK = 1 << 24  # elements compared at once: a 20B layer's experts are 0.6 GB of codes
# Tables the graph computes rather than reads from the checkpoint: the twin keeps them in float32 (as the
# torch reference computes them), the float16 graph holds them rounded to float16.
COMPUTED = {"rope.cos", "rope.sin"}
REPORT = "this is an exporter bug, not the checkpoint's: please report it with the command you ran"


def float16_round_trip(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """A float tensor as float16 holds it, in float32 (integer tensors as they are). A per-tensor change:
    see tensor_source.Transformed."""
    if not tensor.is_floating_point():
        return tensor
    narrow = tensor.detach().to(torch.float32).to(torch.float16)
    if not torch.isfinite(narrow).all():
        raise ExportError(float16_overflow(name, float(tensor.detach().abs().max())))
    return narrow.to(torch.float32)


@dataclass
class Float16TwinRun:
    logits: list[np.ndarray]
    ids: list[int]
    prompt: int
    weights: int  # weight tensors of the written graph equal to the twin's
    nodes: int  # nodes reading them, the same op with the same attributes

    def description(self) -> str:
        return (f"float16 weights verified through a float32 twin holding exactly their values, run a layer at a "
                f"time and teacher-forced on {len(self.ids) - self.prompt} tokens after the prompt; all "
                f"{self.weights} weight tensors of the written graph equal the twin's value for value, and the "
                f"{self.nodes} nodes reading them are the twin's ops with the twin's attributes. float16 "
                f"arithmetic is the provider's (float16_graph_on_cpu: this CPU's)")


def _values(part: np.ndarray, tensor: onnx.TensorProto, rounded: bool) -> np.ndarray:
    """What a graph computes with: bfloat16 bits widened, floats in float32 (rounded through float16 when
    asked), integer codes as they are."""
    if tensor.data_type == onnx.TensorProto.BFLOAT16:
        part = (part.astype(np.uint32) << 16).view(np.float32)
    if part.dtype.kind != "f":
        return np.asarray(part)
    part = part.astype(np.float32)
    return part.astype(np.float16).astype(np.float32) if rounded else part


def _first_difference(a: np.ndarray, b: np.ndarray) -> str:
    where = np.flatnonzero(a != b)
    first = where[0]
    return f"{where.size} values differ, the first at flat index {first}: twin {a[first].item()}, graph {b[first].item()}"


def _same_weight(piece_folder: Path, mine: onnx.TensorProto, folder: Path, theirs: onnx.TensorProto) -> None:
    if tuple(theirs.dims) != tuple(mine.dims):
        raise VerificationError(f"{mine.name}: the written graph's weight has shape {tuple(theirs.dims)}, the "
                                f"verified twin's {tuple(mine.dims)}; {REPORT}")
    a, b = stored_array(piece_folder, mine).reshape(-1), stored_array(folder, theirs).reshape(-1)
    computed = mine.name in COMPUTED  # the float16 graph holds the twin's float32 table rounded
    cast = theirs.data_type == onnx.TensorProto.BFLOAT16  # the float16 graph casts the rows it looks up
    for start in range(0, a.size, CHUNK):
        part = slice(start, start + CHUNK)
        x, y = _values(a[part], mine, computed), _values(b[part], theirs, cast)
        if not np.array_equal(x, y):
            raise VerificationError(f"{mine.name}: the written float16 graph does not hold the values the float32 "
                                    f"twin was verified with ({_first_difference(x, y)}); {REPORT}")


def _attributes(node: onnx.NodeProto) -> dict:
    # a Cast's target is the graph's dtype (float16 there, float32 in the twin): the arithmetic, not a weight
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute
            if not (node.op_type == "Cast" and a.name == "to")}


class GraphCheck:
    """The written float16 graph, held against the twin's pieces one at a time."""

    def __init__(self, folder: Path):
        self.folder = folder
        model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
        self.weights = {t.name: t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
        self.readers = {node.name: node for node in model.graph.node if set(node.input) & set(self.weights)}
        self.seen_weights: set[str] = set()
        self.seen_nodes: set[str] = set()

    def piece(self, piece_file: Path) -> None:
        piece = onnx.load(str(piece_file), load_external_data=False)
        external = {t.name: t for t in piece.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
        for name, mine in external.items():
            if name not in self.weights:
                raise VerificationError(f"{name}: the verified twin has this weight, the written graph does not; "
                                        f"{REPORT}")
            _same_weight(piece_file.parent, mine, self.folder, self.weights[name])
            self.seen_weights.add(name)
        for node in piece.graph.node:
            if not set(node.input) & set(external):
                continue
            theirs = self.readers.get(node.name)
            if theirs is None or (theirs.op_type, theirs.domain) != (node.op_type, node.domain) \
                    or _attributes(theirs) != _attributes(node) \
                    or [i for i in theirs.input if i in self.weights] != [i for i in node.input if i in external]:
                raise VerificationError(f"node {node.name} ({node.op_type}): the written graph's node differs from "
                                        f"the verified twin's; {REPORT}")
            self.seen_nodes.add(node.name)

    def complete(self) -> None:
        """Every weight of the written graph, and every node reading one, was held against the twin."""
        for kind, missed in (("weights", set(self.weights) - self.seen_weights),
                             ("nodes reading weights", set(self.readers) - self.seen_nodes)):
            if missed:
                raise VerificationError(f"the written graph has {kind} no twin piece holds ({', '.join(sorted(missed)[:5])}"
                                        f"{', ...' if len(missed) > 5 else ''}); {REPORT}")


def run_float16_twin(folder: Path, twin: GraphWeights, tokenizer_file: Path, progress=None) -> Float16TwinRun:
    """The twin's logits over the verification prompt and DECODE_STEPS more tokens, holding each piece
    against the float16 graph written in `folder` as it goes."""
    cfg = twin.cfg
    prompt = prompt_length(cfg)
    ids = prompt_ids(tokenizer_file, prompt + DECODE_STEPS, cfg.vocab_size)
    check = GraphCheck(folder)
    work = folder / TWIN_FOLDER
    try:
        logits = layered_logits(twin, ids, prompt, work, cache_length=len(ids) + 1, progress=progress,
                                on_piece=check.piece)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    check.complete()
    return Float16TwinRun(logits, ids, prompt, len(check.seen_weights), len(check.seen_nodes))


def verify_float16(folder: Path, graph: GraphWeights, source, tensors, quantized: str, progress: bool,
                   stages: dict[str, float], on_cpu: bool = False) -> tuple[VerificationReport, dict, dict]:
    """Verify the float16 export in `folder`, built by `graph` from the checkpoint's `source` tensors,
    against the torch reference on `tensors` (what the graph holds: float16's values, quantized weights'
    round trips). A failure raises. Returns the report, the distance from the checkpoint's own weights,
    and the manifest's verification entry (with the float16 graph's own distance on this CPU if `on_cpu`)."""
    cfg = graph.cfg
    # built from the same tensors as the graph, so its codes and scales are the graph's by construction
    twin = GraphWeights(cfg, source, "float32", len(graph.cos), graph.experts, graph.dense,
                        lookup_tensors=tensors, values="float16", window_cache=graph.window_cache,
                        block=graph.block)
    clock = time.perf_counter()
    with tqdm(total=cfg.num_hidden_layers, desc="verify: float32 twin", unit="layer", disable=not progress) as bar:
        run = run_float16_twin(folder, twin, folder / "tokenizer.json", bar)
    stages["verify: float32 twin"] = time.perf_counter() - clock
    greedy = [int(x.argmax()) for x in run.logits[:-1]]
    # a tied table is looked up as float16 holds it and multiplied as the quantized unembedding holds it
    as_stored = Transformed(tensors, float16_round_trip)

    def reference(weights, label: str) -> np.ndarray:
        with tqdm(total=cfg.num_hidden_layers, desc=label, unit="layer", disable=not progress) as bar:
            return reference_logits(cfg, weights, run.ids, DECODE_STEPS + 1, bar)

    def judge(routing, swap, exact=False):
        start = time.perf_counter()
        ref, wide, differs = reference_runs(cfg, tensors, run.ids, DECODE_STEPS + 1, progress, as_stored, routing,
                                            swap, exact)
        report = compare(run.logits, ref, "float32", run.prompt, greedy, PROVIDER, start, wide, differs)
        stages["verify: torch reference"] = stages.get("verify: torch reference", 0.0) + report.seconds
        return report, ref

    report, ref = judge_verification(judge)
    log.info(report.summary())
    if not report.passed:
        raise VerificationError(f"{report.summary()}: the float32 twin of the float16 graph against the torch model "
                                f"on the same float16 values; the model folder was not written")
    verification = {"status": "passed", "method": "float32 twin", "twin": run.description(), **report.to_dict()}
    start = time.perf_counter()
    r = compare(run.logits, reference(source, "measure vs checkpoint"), "float32", run.prompt, greedy, PROVIDER, start)
    effect = verification["vs_checkpoint"] = {"quantized": quantized, **r.distance()}
    stages["measure vs checkpoint"] = r.seconds
    log.info("%s vs the checkpoint's weights: max |logit diff| %.3g (prompt) %.3g (decode), greedy %s", quantized,
             r.max_abs_diff_prompt, r.max_abs_diff_decode, "matches" if r.greedy_match else "DIFFERS")
    verification["float16_graph_on_cpu"] = (_float16_on_cpu(folder, graph, run, ref, greedy, progress, stages)
                                            if on_cpu else {"skipped": "parley export --measure-float16-on-cpu"})
    return report, effect, verification


def _float16_on_cpu(folder: Path, graph: GraphWeights, run: Float16TwinRun, ref: np.ndarray, greedy: list[int],
                    progress: bool, stages: dict[str, float]) -> dict:
    """The float16 graph itself on onnxruntime's CPU kernels, a layer at a time, against the same reference:
    information (routing ties move a random-weight model far at gpt-oss-20b's size; the GPU runs it). A
    failure here is recorded, never fatal: the export is verified."""
    start = time.perf_counter()
    work = folder / PIECES_FOLDER
    try:
        with tqdm(total=graph.cfg.num_hidden_layers, desc="measure float16 on the cpu", unit="layer",
                  disable=not progress) as bar:
            logits = layered_logits(graph, run.ids, run.prompt, work, cache_length=len(run.ids) + 1, progress=bar)
    except Exception as e:  # noqa: BLE001 (an onnxruntime or memory failure must not undo a verified export)
        log.warning("the float16 graph could not be measured on this CPU: %s", e)
        return {"error": str(e)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r = compare(logits, ref, "float16", run.prompt, greedy, "CPUExecutionProvider (float16, a layer at a time)", start)
    stages["measure float16 on the cpu"] = r.seconds
    if not all(np.isfinite(x).all() for x in logits):
        log.warning("the float16 graph gives non-finite logits on this CPU")
        return {"error": "non-finite logits on this CPU"}
    log.info("the float16 graph on this CPU vs the torch reference: max |logit diff| %.3g (prompt) %.3g (decode), "
             "greedy %s", r.max_abs_diff_prompt, r.max_abs_diff_decode, "matches" if r.greedy_match else "DIFFERS")
    return r.distance()
