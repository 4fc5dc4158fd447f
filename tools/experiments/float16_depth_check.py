"""Does float16 keep a full-depth model right? The same weights in a float16 and a float32 folder, compared.

    python -m tools.experiments.float16_depth_check F16_FOLDER F32_FOLDER [--provider cuda] [--json OUT]

gpt-oss-20b's full 24 layers fail the export's float16 check on the CPU provider (docs/performance.md)
while 2-layer slices pass. Two folders with identical values (int4 timing folders made by
int4_timing_folder.py from `--dtype float16` and `--dtype float32` exports of one checkpoint: the same
int4 codes, power-of-two scales exact in both, bfloat16 dense weights exact in both) are run on the same
prompt: the float32 one on the CPU is the reference, the float16 one on --provider (cuda: the GPU's
float16 kernels). Logits are teacher-forced on the reference's greedy continuation; printed: max |diff|
against max |reference| at each position, and argmax agreement.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from export.bench.worker import prompt_ids
from runtime.session import ModelSession, SessionOptions
from tools.experiments.gpu_check import greedy, teacher_forced


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("f16", type=Path)
    ap.add_argument("f32", type=Path)
    ap.add_argument("--provider", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--verification-prompt", action="store_true",
                    help="the export's own verification prompt (its sample text, repeated) instead of random ids")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    start = time.monotonic()
    reference = ModelSession(args.f32, SessionOptions(provider="cpu"))
    if args.verification_prompt:
        from export import verify

        cfg = reference.config
        prompt = np.array(verify.prompt_ids(args.f32 / "tokenizer.json", verify.prompt_length(cfg), cfg.vocab_size))
    else:
        prompt = prompt_ids(args.prompt, 0, reference.config.vocab_size)
    tokens = greedy(reference, prompt, args.steps)
    expected = teacher_forced(reference, prompt, tokens)
    del reference
    print(f"float32 reference on the CPU: {time.monotonic() - start:.0f} s", flush=True)
    got = teacher_forced(ModelSession(args.f16, SessionOptions(provider=args.provider)), prompt, tokens)
    diff = np.abs(got - expected).max(axis=-1)
    scale = np.abs(expected).max(axis=-1)
    result = {"provider": args.provider, "positions": len(tokens), "max_abs_diff": diff.tolist(),
              "max_abs_reference": scale.tolist(), "finite": bool(np.isfinite(got).all()),
              "argmax_agree": int((got.argmax(-1) == expected.argmax(-1)).sum()),
              "relative": float(diff.max() / scale.max())}
    print(json.dumps(result, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
