"""What a quantized export costs the trained demo model: export its checkpoint with the given flags, then
score it and the exact folder on free-form sets A and B (the shipped profiles, unsure replies on) and count
the replies that stay word for word the same. Scores only, never the blind sets (C, D, E).

    .venv/bin/python -m tools.experiments.demo_quantized OUT_FOLDER [--experts int4] [--dense int4] [--block-size 64]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from export.exporter import ExportOptions, export_model
from tools.demo import freeform, freeform_blind
from tools.demo.evaluate import export_demo


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--checkpoint", type=Path, default=Path("tools/demo/checkpoint"))
    ap.add_argument("--exact", type=Path, default=Path(".cache/demo-model"), help="the exact folder (made if stale)")
    ap.add_argument("--experts", default="int4")
    ap.add_argument("--dense", default="int4")
    ap.add_argument("--block-size", type=int, default=32)
    args = ap.parse_args()
    exact = export_demo(args.checkpoint, args.exact)
    summary = export_model(args.checkpoint, args.out, ExportOptions(max_context=2048, force=True, experts=args.experts,
                                                                    dense=args.dense, block_size=args.block_size))
    d = summary.vs_checkpoint
    print(f"{d['quantized']}: max |logit diff| from the checkpoint {d['max_abs_diff_prompt']:.3g} (prompt) "
          f"{d['max_abs_diff_decode']:.3g} (decode); weights {summary.graph_bytes / 2**20:.2f} MiB")
    for name, lines in (("A", freeform.LINES), ("B", freeform_blind.LINES)):
        a, q = freeform.evaluate(exact, lines), freeform.evaluate(args.out, lines)
        same = sum(x["answer"] == y["answer"] for x, y in zip(a["rows"], q["rows"]))
        print(f"set {name}: exact {a['right']:.1%} right / {a['wrong']:.1%} wrong; quantized {q['right']:.1%} / "
              f"{q['wrong']:.1%}; {same}/{a['n']} replies word for word the same")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
