"""`parley finetune`: LoRA-fine-tune a gpt-oss checkpoint on `parley dataset` data (export/finetune.py)."""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from runtime.cli_errors import CommandFailed

EXAMPLES = """examples:
  parley dataset npc_profiles --tokenizer ./gpt-oss-20b --out train.jsonl
  parley finetune ./gpt-oss-20b --data train.jsonl --out ./my-adapter
  parley export ./gpt-oss-20b ./models/my-npcs --lora ./my-adapter
  parley test npc_profiles --model ./models/my-npcs
"""


def register_finetune(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("finetune", help="LoRA-fine-tune a gpt-oss checkpoint on `parley dataset` data",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("checkpoint", type=Path, help="Hugging Face gpt-oss checkpoint folder")
    f.add_argument("--data", type=Path, required=True, help="JSON lines from `parley dataset`")
    f.add_argument("--out", type=Path, required=True, help="folder for the LoRA adapter (PEFT format)")
    f.add_argument("--rank", type=int, default=8)
    f.add_argument("--alpha", type=int, default=16)
    f.add_argument("--lr", type=float, default=2e-4, help="learning rate (cosine schedule)")
    f.add_argument("--epochs", type=float, default=3.0)
    f.add_argument("--steps", type=int, default=-1, help="stop after this many steps (overrides --epochs)")
    f.add_argument("--batch-size", type=int, default=4)
    f.add_argument("--grad-accum", type=int, default=1, help="batches per optimizer step")
    f.add_argument("--gradient-checkpointing", action="store_true", help="less memory, more time")
    f.add_argument("--dtype", choices=["auto", "bfloat16", "float32"], default="auto",
                   help="weights while training (auto: bfloat16 on a GPU, float32 on the CPU)")
    f.add_argument("--attention-only", action="store_true", help="leave the experts' weights alone")
    f.add_argument("--seed", type=int, default=0)
    f.set_defaults(run=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    missing = [m for m in ("torch", "transformers", "peft", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise CommandFailed(f"parley finetune needs {', '.join(missing)}: pip install 'parley-npc[finetune]'")
    from export.finetune import FinetuneOptions, finetune

    if not (args.checkpoint / "config.json").is_file():
        raise CommandFailed(f"{args.checkpoint}: not a Hugging Face checkpoint folder (no config.json)")
    opts = FinetuneOptions(rank=args.rank, alpha=args.alpha, learning_rate=args.lr, epochs=args.epochs,
                           max_steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum,
                           gradient_checkpointing=args.gradient_checkpointing, dtype=args.dtype,
                           experts=not args.attention_only, seed=args.seed)
    try:
        finetune(args.checkpoint, args.data, args.out, opts)
    except (ValueError, OSError) as exc:
        raise CommandFailed(str(exc)) from exc
    return 0
