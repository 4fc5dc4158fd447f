"""`parley dataset`: NPC profiles and their example dialogues -> training examples (JSON lines with
input_ids and labels), rendered exactly as Parley serves them (export/dataset.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runtime.cli_errors import EXIT_FAILURE, EXIT_OK, CommandFailed

EXAMPLES = """examples:
  parley dataset npc_profiles --tokenizer ./my-finetune --out train.jsonl
  parley dataset npc_profiles --tokenizer models/my-npcs --out train.jsonl   # a model folder's tokenizer
"""


def register_dataset(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("dataset", help="render NPC profiles and example dialogues into training data",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("profiles", type=Path, help="folder of NPC profiles; example dialogues in its dialogues/")
    d.add_argument("--tokenizer", type=Path, required=True,
                   help="the checkpoint you fine-tune (Hugging Face folder) or a model folder made from it")
    d.add_argument("--out", type=Path, help="JSON lines to write (without it: only check the files)")
    d.add_argument("--max-context", type=int, help="the context you will export with (default: parley export's)")
    d.set_defaults(run=run_dataset)


def run_dataset(args: argparse.Namespace) -> int:
    from export.dataset import budget_warnings, load_tokenizer, render
    from runtime.dialogues import read_folder
    from runtime.errors import EngineError

    if not args.profiles.is_dir():
        raise CommandFailed(f"{args.profiles}: not a folder of NPC profiles")
    from export.errors import ExportError

    try:
        tok, max_context = load_tokenizer(args.tokenizer)
    except (FileNotFoundError, ValueError, KeyError, ExportError) as exc:  # ExportError: a broken config.json
        raise CommandFailed(str(exc)) from exc
    max_context = args.max_context or max_context
    dialogues, problems = read_folder(args.profiles)
    rendered, warnings = [], []
    for npc, path, examples in dialogues:
        for example in examples:
            warnings += [f"{path}:{example.line}: warning: {w}" for w in budget_warnings(tok, npc, example)]
            try:
                rendered.append((example, render(tok, npc, example, max_context)))
            except EngineError as exc:  # prompt_too_long: the example cannot fit the context
                problems.append(f"{path}:{example.line}: {exc}")
    for line in [*problems, *warnings]:
        print(f"{line}", file=sys.stderr)
    trained = sum(sum(1 for label in r.labels if label != -100) for _, r in rendered)
    print(f"{len(rendered)} example(s) of {len({e.npc for e, _ in rendered})} NPC(s): "
          f"{sum(len(r.input_ids) for _, r in rendered)} tokens, {trained} of them trained on"
          + (f"; {len(problems)} problem(s)" if problems else ""))
    if args.out and not problems:
        args.out.write_text("".join(r.to_json(e) + "\n" for e, r in rendered), encoding="utf-8", newline="\n")
        print(f"wrote {args.out}")
    return EXIT_FAILURE if problems else EXIT_OK
