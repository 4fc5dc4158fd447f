"""LoRA fine-tuning of a gpt-oss checkpoint on `parley dataset` data, with PEFT and the transformers
Trainer: the adapter it writes is what `parley export --lora` takes.

The adapter covers the attention projections and, through PEFT's `target_parameters`, the experts'
weights (gate_up_proj, down_proj): the mixture of experts is most of the model and holds most of what a
fine-tune teaches it. Only the labelled tokens are trained (the data's -100 marks the rest).
"""
from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
EXPERTS = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]


@dataclass(frozen=True)
class FinetuneOptions:
    rank: int = 8
    alpha: int = 16
    learning_rate: float = 2e-4
    epochs: float = 3.0
    max_steps: int = -1  # > 0: stop after this many steps (overrides epochs)
    batch_size: int = 4
    grad_accum: int = 1  # batches per optimizer step (a larger effective batch in the same memory)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, more time
    dtype: str = "auto"  # bfloat16 on a GPU, float32 on the CPU
    experts: bool = True  # adapt the experts too, not only attention
    seed: int = 0
    log_every: int = 10


def load_examples(path: Path, vocab_size: int) -> list[dict]:
    """`parley dataset`'s examples; ValueError naming the file and line of the first bad one (a token id
    past the model's vocabulary means the data was rendered with another tokenizer)."""
    rows = []
    # utf-8-sig: JSONL from Windows tools often starts with a byte-order mark
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
        ids, labels = (row.get("input_ids"), row.get("labels")) if isinstance(row, dict) else (None, None)
        if not (isinstance(ids, list) and isinstance(labels, list) and len(ids) == len(labels) and ids
                and all(isinstance(i, int) and 0 <= i < vocab_size for i in ids)):
            raise ValueError(f"{path}:{number}: not a `parley dataset` example for this model (input_ids and labels "
                             f"of one length, token ids below its vocabulary of {vocab_size}); render the data "
                             "with --tokenizer pointing at this checkpoint")
        rows.append({"input_ids": ids, "labels": labels})
    if not rows:
        raise ValueError(f"{path}: no examples")
    return rows


def collate(rows: list[dict]) -> dict:
    """A batch, right-padded: padding is masked out of attention and of the loss."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def finetune(checkpoint: Path, data: Path, out: Path, opts: FinetuneOptions = FinetuneOptions(),
             log: Callable[[str], None] = print) -> dict:
    """Train a LoRA adapter on the examples in `data` and save it to `out` (PEFT's format); the losses."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    config_json = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    rows = load_examples(data, int(config_json["vocab_size"]))
    torch.manual_seed(opts.seed)
    cuda = torch.cuda.is_available()
    dtype = {"auto": torch.bfloat16 if cuda else torch.float32, "bfloat16": torch.bfloat16,
             "float32": torch.float32}[opts.dtype]
    extra = {}
    if config_json.get("quantization_config", {}).get("quant_method") == "mxfp4":
        from transformers import Mxfp4Config
        extra["quantization_config"] = Mxfp4Config(dequantize=True)  # LoRA trains on the experts' real weights
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype, **extra)
    if opts.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    config = LoraConfig(r=opts.rank, lora_alpha=opts.alpha, lora_dropout=0.0, target_modules=ATTENTION,
                        target_parameters=EXPERTS if opts.experts else None, task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    steps = opts.max_steps if opts.max_steps > 0 else \
        math.ceil(len(rows) / (opts.batch_size * opts.grad_accum) * opts.epochs)
    log(f"fine-tuning {checkpoint.name}: {len(rows)} examples, {trainable:,} trainable parameters (LoRA rank "
        f"{opts.rank}{' on attention and experts' if opts.experts else ' on attention'}), {steps} steps")
    losses: list[float] = []

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))
                log(f"  step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}")

    # the trainer's scratch folder; a file Windows still holds in it must not cost the trained adapter
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as work:
        args = TrainingArguments(output_dir=work, per_device_train_batch_size=opts.batch_size,
                                 gradient_accumulation_steps=opts.grad_accum, bf16=dtype == torch.bfloat16,
                                 num_train_epochs=opts.epochs, max_steps=opts.max_steps,
                                 learning_rate=opts.learning_rate, lr_scheduler_type="cosine",
                                 warmup_steps=max(1, steps // 20),
                                 logging_steps=opts.log_every, save_strategy="no", report_to=[], seed=opts.seed,
                                 disable_tqdm=True, remove_unused_columns=False, use_cpu=not cuda)
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate, callbacks=[Progress()])
        trainer.remove_callback(PrinterCallback)  # Progress prints the loss, one line a log step
        trainer.train()
    model.save_pretrained(out)
    log(f"wrote the adapter to {out} (parley export CHECKPOINT OUT --lora {out})")
    return {"steps": steps, "losses": losses}
