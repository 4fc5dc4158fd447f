"""Where a float16 graph leaves its float32 twin: layer by layer, on the same input, with the routing shown.

    python -m tools.experiments.float16_layer_errors CHECKPOINT [--layers N] [--provider cuda] [--json OUT]

A `--dtype float16` export and its float32 twin (the same values: export/float16_twin.py) are built a
layer at a time from the checkpoint (export/layer_pieces.py); every layer of both runs on the twin's
input for that layer (the verification prompt at once, then DECODE_STEPS tokens one at a time through
its KV cache), the float16 one on --provider, the twin on the CPU. Printed per layer: the float16
layer's error against the twin's output (max |diff| of the residual stream, at the positions whose
expert choice agrees and at those where it does not), and the positions where the float16 router's
top-k set differs from the twin's (or ties at its k-th place), with the twin's gap between its k-th and (k+1)-th router logit there.

What it showed (docs/performance.md, "On an NVIDIA H100"): the float16 layers are within float16's
rounding of the twin wherever they choose the same experts; a position whose k-th and (k+1)-th router
logits are closer than float16's rounding of them picks another expert, its output changes by the whole
difference between two experts, and attention carries that to later positions and layers. With random
weights a few such ties in a prompt take a full-depth model's logits away from the twin's: a property
of float16 routing, not of a kernel.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from export import verify
from export.checkpoint import load_checkpoint
from export.exporter import ExportOptions, _cache_window, _round_trips, resolve_experts
from export.graph_common import GraphWeights
from export.layer_pieces import embed_piece, layer_piece, piece_cache_length, piece_session, run_layer
from export.tensor_source import Transformed
from runtime import manifest as m

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def weights(checkpoint: Path, max_context: int) -> tuple[GraphWeights, GraphWeights]:
    """The float16 graph's weights and its float32 twin's, as `parley export --dtype float16` builds them."""
    ckpt = load_checkpoint(checkpoint, progress=False, lazy=True)
    cfg = ckpt.config
    opts, _ = resolve_experts(ExportOptions(dtype="float16"), ckpt.quantization)
    held = Transformed(ckpt.tensors, _round_trips(opts, cfg, ckpt.quantization))
    window = bool(_cache_window(cfg, opts, max_context))  # the sliding layers' caches as the export lays them out
    f16 = GraphWeights(cfg, ckpt.tensors, "float16", max_context, opts.experts, opts.dense, lookup_tensors=held,
                       window_cache=window)
    twin = GraphWeights(cfg, ckpt.tensors, "float32", max_context, opts.experts, opts.dense, lookup_tensors=held,
                        values="float16", window_cache=window)
    return f16, twin


def embedded(w: GraphWeights, ids: list[int], work: Path) -> tuple[np.ndarray, np.ndarray]:
    out = piece_session(work / "embed", "embed", embed_piece(w)).run(None, {m.INPUT_IDS: np.array([ids], dtype=np.int64)})
    shutil.rmtree(work / "embed")
    return out[0], out[1]


def layer(w: GraphWeights, n: int, provider: str, inputs, prompt: int, total: int, work: Path):
    """Layer n of w on the given input: its normed and residual outputs, and its router logits per position."""
    taps: dict[str, str] = {}
    session = piece_session(work / f"{w.np_dtype.__name__}-{n}", f"layer{n}", layer_piece(w, n, taps), provider)
    if session.get_providers()[0] != provider:  # onnxruntime falls back to the CPU quietly
        raise SystemExit(f"{provider} did not load (providers: {session.get_providers()})")
    normed, residual, tapped = run_layer(session, n, *(x.astype(w.np_dtype) for x in inputs), prompt, w.cfg,
                                         w.np_dtype, piece_cache_length(w, n, total + 1))
    del session
    shutil.rmtree(work / f"{w.np_dtype.__name__}-{n}")
    return normed, residual, np.concatenate([t[0] for t in tapped]).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--layers", type=int, help="the first N layers only")
    ap.add_argument("--provider", default="cpu", choices=sorted(PROVIDERS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    start = time.monotonic()
    f16, twin = weights(args.checkpoint, 4096)
    cfg, k = twin.cfg, twin.cfg.num_experts_per_tok
    prompt = verify.prompt_length(cfg)
    ids = verify.prompt_ids(args.checkpoint / "tokenizer.json", prompt + verify.DECODE_STEPS, cfg.vocab_size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="float16-layers-") as tmp:
        work = Path(tmp)
        state = embedded(twin, ids, work)
        for n in range(min(args.layers or cfg.num_hidden_layers, cfg.num_hidden_layers)):
            *twin_out, twin_router = layer(twin, n, PROVIDERS["cpu"], state, prompt, len(ids), work)
            _, residual, router = layer(f16, n, PROVIDERS[args.provider], state, prompt, len(ids), work)
            chosen = np.argsort(-twin_router, -1)[:, :k], np.argsort(-router, -1)[:, :k]
            mine = -np.sort(-router, -1)
            # a float16 tie between the k-th and k+1-th expert: the kernel's choice is not observable here
            flipped = [i for i in range(len(ids))
                       if set(chosen[0][i]) != set(chosen[1][i]) or mine[i, k - 1] == mine[i, k]]
            ranked = -np.sort(-twin_router, -1)
            gap = ranked[:, k - 1] - ranked[:, k]
            diff = np.abs(residual.astype(np.float32) - twin_out[1])[0].max(-1)
            same = np.ones(len(ids), bool)
            same[flipped] = False
            row = {"layer": n, "max_abs_residual": float(np.abs(twin_out[1]).max()),
                   "max_abs_diff_same_experts": float(diff[same].max()),
                   "max_abs_diff_other_experts": float(diff[~same].max()) if flipped else None,
                   "router_max_abs_diff": float(np.abs(router - twin_router).max()),
                   "positions_with_other_experts": flipped, "twin_gap_there": gap[flipped].round(6).tolist(),
                   "median_gap": float(np.median(gap))}
            rows.append(row)
            print(f"layer {n:2d}: residual up to {row['max_abs_residual']:.3g}; float16 off by "
                  f"{row['max_abs_diff_same_experts']:.3g} where it picks the twin's experts"
                  + (f", {row['max_abs_diff_other_experts']:.3g} at {flipped} where it does not (the twin's "
                     f"k-th/k+1-th router gap there: {row['twin_gap_there']}; median {row['median_gap']:.3g})"
                     if flipped else "") + f"; router logits off by {row['router_max_abs_diff']:.3g}", flush=True)
            state = twin_out[0], twin_out[1]
    result = {"provider": args.provider, "positions": len(ids), "prompt": prompt, "layers": rows,
              "seconds": time.monotonic() - start}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
