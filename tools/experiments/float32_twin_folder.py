"""A float32 model folder holding exactly the values of a `--dtype float16` export: what float16 arithmetic
is measured against on a GPU.

    python -m tools.experiments.float32_twin_folder CHECKPOINT OUT [--experts int4] [--dense int4]

`parley export --dtype float16` verifies its folder on the CPU a layer at a time through a float32 twin
(export/float16_twin.py) and never keeps that twin. This writes the whole twin as a servable folder:
the same builder on the same checkpoint tensors with every stored value rounded as float16 holds it
(quantization scales included, so the int4 codes are the float16 export's own). Run it on the CPU
beside the float16 folder on CUDA (tools/experiments/float16_depth_check.py) and any difference is the
GPU's float16 arithmetic, not the weights. Unverified (its verification entry says so); the float16
export it mirrors carries the verification.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from export.checkpoint import load_checkpoint
from export.exporter import ExportOptions, _cache_window, _round_trips, _write_graph, resolve_experts
from export.graph_common import GraphWeights
from export.tensor_source import Transformed
from export.tokenizer_check import special_token_ids


def write_twin(checkpoint: Path, out: Path, experts: str, dense: str, max_context: int) -> None:
    ckpt = load_checkpoint(checkpoint, progress=True, lazy=True)
    opts, _ = resolve_experts(ExportOptions(dtype="float16", experts=experts, dense=dense,
                                            max_context=max_context), ckpt.quantization)
    cfg = ckpt.config
    context = min(max_context, cfg.max_position_embeddings)
    # as the float16 export's own check builds its twin: a tied table is looked up as the graph holds it
    held = Transformed(ckpt.tensors, _round_trips(opts, cfg, ckpt.quantization))
    weights = GraphWeights(cfg, ckpt.tensors, "float32", context, opts.experts, opts.dense, lookup_tensors=held,
                           values="float16", window_cache=bool(_cache_window(cfg, opts, context)))
    twin_opts = ExportOptions(dtype="float32", experts=opts.experts, dense=opts.dense, max_context=max_context,
                              verify=False)
    out.mkdir(parents=True, exist_ok=False)
    manifest, _ = _write_graph(ckpt, out, twin_opts, weights, special_token_ids(ckpt.tokenizer_file, cfg.vocab_size),
                               context, progress=True, stages={})
    replace(manifest, verification={"status": "skipped", "float32_twin_of": f"--dtype float16 --experts "
                                    f"{opts.experts} --dense {opts.dense}: that export's values, one for one"}).write(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--experts", default="auto", help="as given to the float16 export (auto: int4 from MXFP4)")
    ap.add_argument("--dense", default="float", help="as given to the float16 export")
    ap.add_argument("--max-context", type=int, default=4096)
    args = ap.parse_args()
    start = time.monotonic()
    write_twin(args.checkpoint, args.out, args.experts, args.dense, args.max_context)
    print(f"wrote the float32 twin {args.out} in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
