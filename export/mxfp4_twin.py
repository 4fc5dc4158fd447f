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

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from tqdm import tqdm

from export import mxfp4
from export.errors import VerificationError
from export.graph_common import GraphWeights, LayerWeights
from export.graph_contrib import fc1_layout, fc2_layout
from export.layer_pieces import layered_logits as twin_logits
from export.stored import stored_array
from export.verify import (DECODE_STEPS, VerificationReport, compare, judge_verification, prompt_ids, prompt_length,
                           reference_runs)

log = logging.getLogger(__name__)

TWIN_FOLDER = "cpu-twin"
PROVIDER = "CPUExecutionProvider (cpu twin, a layer at a time)"


class TwinWeights(GraphWeights):
    """Float experts; remembers the layer last read, so its experts are compared without reading it twice."""

    last: LayerWeights | None = None

    def layer(self, n: int) -> LayerWeights:
        self.last = super().layer(n)
        return self.last


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
    """The twin's logits over the verification prompt and DECODE_STEPS more tokens, checking the written
    graph in `folder` as it goes: its QMoE nodes' wiring, and each layer's fp4 experts against the float
    experts the twin ran with."""
    cfg = twin.cfg
    prompt = prompt_length(cfg)
    ids = prompt_ids(tokenizer_file, prompt + DECODE_STEPS, cfg.vocab_size)
    stored = check_wiring(folder, cfg)
    checked = 0

    def check(n: int) -> None:
        nonlocal checked
        for fc, weights in (("fc1", fc1_layout(twin.last.gate_up)), ("fc2", fc2_layout(twin.last.down))):
            p = f"layers.{n}.{fc}"
            codes, scales = stored_array(folder, stored[p + ".fp4"]), stored_array(folder, stored[p + ".e8m0"])
            for e in range(cfg.num_local_experts):  # one expert at a time: the temporaries stay small
                decoded = mxfp4.decode_rows(codes[e:e + 1], scales[e:e + 1])[0]
                if decoded.shape != weights[e].shape or not np.array_equal(decoded, weights[e].astype(np.float32)):
                    hint = (" (a float16 twin holds only MXFP4 values within float16's range: export in float32 "
                            "to verify this checkpoint)" if twin.value_dtype == np.float16 else "")
                    raise VerificationError(f"layer {n} {fc} expert {e}: the fp4 experts written do not decode to the "
                                            f"weights the twin was verified with{hint}; the model folder was not written")
            checked += 1
        twin.last = None  # this layer's float experts can go

    work = folder / TWIN_FOLDER
    try:
        logits = twin_logits(twin, ids, prompt, work, cache_length=len(ids) + 1, on_layer=check, progress=progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return TwinRun(logits, ids, prompt, checked)


def check_wiring(folder: Path, cfg) -> dict[str, onnx.TensorProto]:
    """Every layer has one QMoE node that reads its own fp4 experts, e8m0 scales, biases and unit global
    scales at the schema's input positions, with the attributes gpt-oss needs. Returns the graph's
    external initializers by name (descriptions only; nothing is read)."""
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    stored = {t.name: t for t in model.graph.initializer}
    nodes = [node for node in model.graph.node if node.op_type == "QMoE"]
    if len(nodes) != cfg.num_hidden_layers:
        raise VerificationError(f"the graph has {len(nodes)} QMoE nodes for {cfg.num_hidden_layers} layers")
    want_attrs = {"quant_type": b"fp4", "expert_weight_bits": 4, "block_size": mxfp4.BLOCK, "swiglu_fusion": 1,
                  "k": cfg.num_experts_per_tok, "activation_type": b"swiglu", "normalize_routing_weights": 1}
    for n, node in enumerate(nodes):
        p = f"layers.{n}."
        want = [p + "fc1.fp4", p + "fc1.e8m0", p + "fc1.bias", p + "fc2.fp4", p + "fc2.e8m0", p + "fc2.bias",
                "", "", "", "", "", "", "", p + "fc1.global_scale", p + "fc2.global_scale"]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if list(node.input[2:]) != want or any(attrs.get(k) != v for k, v in want_attrs.items()):
            raise VerificationError(f"layer {n}: the QMoE node's inputs or attributes are not the fp4 experts' "
                                    f"({list(node.input[2:])}, {attrs})")
        for name in want[-2:]:
            if not np.array_equal(stored_array(folder, stored[name]), np.ones(cfg.num_local_experts, np.float32)):
                raise VerificationError(f"{name}: the global scales must all be 1 (e8m0 scales carry the exponent)")
    return stored


def verify_through_twin(folder: Path, twin: TwinWeights, tensors, float_tensors, quantized: str, progress: bool,
                        stages: dict[str, float], lookup=None) -> tuple[VerificationReport, dict | None, dict]:
    """Verify an MXFP4 export in `folder` through its twin: against the torch reference on `tensors` (a
    failure raises; `lookup`: what its embedding lookup reads, if not `tensors`), then, when the experts were
    rounded from float ones, how far it is from those (`float_tensors`). Returns the report, that distance,
    and the manifest's verification entry."""
    clock = time.perf_counter()
    cfg = twin.cfg
    with tqdm(total=cfg.num_hidden_layers, desc="verify: cpu twin", unit="layer", disable=not progress) as bar:
        run = run_twin(folder, twin, folder / "tokenizer.json", bar)
    stages["verify: cpu twin"] = time.perf_counter() - clock

    def against(reference, table=None, routing=None, swap=None, exact=False) -> VerificationReport:
        start = time.perf_counter()
        ref, wide, differs = reference_runs(cfg, reference, run.ids, DECODE_STEPS + 1, progress, table, routing, swap,
                                            exact)
        return compare(run.logits, ref, twin_dtype(twin), run.prompt, [int(x.argmax()) for x in run.logits[:-1]],
                       PROVIDER, start, wide, differs)

    def judge(routing, swap, exact=False):
        report = against(tensors, lookup, routing, swap, exact)
        stages["verify: torch reference"] = stages.get("verify: torch reference", 0.0) + report.seconds
        return report, None

    report, _ = judge_verification(judge, float32=twin_dtype(twin) == "float32")
    log.info(report.summary())
    if not report.passed:
        raise VerificationError(report.summary() + "; the model folder was not written")
    verification = {"status": "passed", "method": "cpu twin", "twin": run.description(), **report.to_dict()}
    effect = None
    if float_tensors is not None:
        r = against(float_tensors)
        effect = verification["vs_checkpoint"] = {"quantized": quantized, **r.distance()}
        stages["measure vs checkpoint"] = r.seconds
        log.info("%s vs the checkpoint's weights: max |logit diff| %.3g (prompt) %.3g (decode), greedy %s", quantized,
                 r.max_abs_diff_prompt, r.max_abs_diff_decode, "matches" if r.greedy_match else "DIFFERS")
    return report, effect, verification


def twin_dtype(twin: GraphWeights) -> str:
    return "float16" if twin.np_dtype == np.float16 else "float32"
