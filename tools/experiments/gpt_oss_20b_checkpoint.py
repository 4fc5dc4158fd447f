"""Write a random checkpoint with gpt-oss-20b's real shapes in its released layout, a shard at a time.

    .venv/bin/python -m tools.experiments.gpt_oss_20b_checkpoint /data/gpt-oss-20b-shape              # 24 layers, 13 GB
    .venv/bin/python -m tools.experiments.gpt_oss_20b_checkpoint /data/gpt-oss-20b-2layers --layers 2  # a slice

Hidden 2880, 64 query and 8 key/value heads of 64, 32 experts top-4, intermediate 2880, vocabulary
201,088, window 128; experts as MXFP4 blocks and scales, everything else bf16, sharded safetensors with
an index. Then measure the export (docs/performance.md has the figures):

    .venv/bin/python -m runtime.cli export /data/gpt-oss-20b-shape /data/20b-int4 --experts int4
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from export.synthetic import GPT_OSS_20B_SHAPE, make_released_layout_checkpoint


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--layers", type=int, default=GPT_OSS_20B_SHAPE["num_hidden_layers"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    start = time.monotonic()
    make_released_layout_checkpoint(args.out, {**GPT_OSS_20B_SHAPE, "num_hidden_layers": args.layers}, args.seed,
                                    progress=True)
    size = sum(p.stat().st_size for p in args.out.iterdir()) / 2**30
    print(f"wrote {args.out}: {args.layers} layers, {size:.1f} GiB in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
