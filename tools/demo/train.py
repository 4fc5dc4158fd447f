"""Train Parley's demo NPC model: a small gpt-oss, saved as a Hugging Face checkpoint like a studio's fine-tune.

    .venv/bin/python -m tools.demo.train --out tools/demo/checkpoint --minutes 25

Synthetic harmony conversations (tools/demo/dataset.py) about the shipped NPCs plus random
training-only NPCs; a byte-level BPE tokenizer with the harmony special tokens; loss on the
assistant's tokens only. Writes config.json, model.safetensors, tokenizer.json and training_log.json.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

from runtime.harmony_tokens import OPTIONAL, REQUIRED
from tools.demo import dataset
from tools.demo.grow import layer_types

def model_shape(hidden: int, layers: int, experts: int) -> dict:
    """A small gpt-oss: heads of 32, two query heads per kv head, experts as wide as the model, top-2."""
    heads = hidden // 32
    return dict(hidden_size=hidden, intermediate_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                num_key_value_heads=max(1, heads // 2), head_dim=32, num_local_experts=experts,
                num_experts_per_tok=2, sliding_window=128)
VOCAB = 2048


def train_tokenizer(examples, path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    rec = dataset.TextRecorder()
    for ex in examples:
        dataset.rendered(rec, ex)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=list(REQUIRED + OPTIONAL), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(rec.pieces, trainer)
    tok.save(str(path))


def encode(tok, ex) -> tuple[list[int], list[int]]:
    r = dataset.rendered(tok, ex)
    return r.input_ids, r.labels


def batches(data, batch_tokens: int, rng: random.Random):
    """Length-bucketed batches of about batch_tokens tokens, shuffled."""
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]))
    out, cur = [], []
    for i in order:
        cur.append(i)
        if len(cur) * len(data[i][0]) >= batch_tokens:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def collate(data, idx, pad: int):
    width = max(len(data[i][0]) for i in idx)
    ids = torch.full((len(idx), width), pad, dtype=torch.long)
    labels = torch.full((len(idx), width), -100, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        x, y = data[i]
        ids[row, :len(x)], labels[row, :len(y)], mask[row, :len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, labels, mask


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("tools/demo/checkpoint"))
    ap.add_argument("--examples", type=int, default=12000)
    ap.add_argument("--minutes", type=float, default=25.0, help="wall-clock training budget")
    ap.add_argument("--batch-tokens", type=int, default=6144)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=30, help="steps of linear learning-rate warm-up")
    ap.add_argument("--min-lr", type=float, default=0.1, help="the cosine schedule's floor, as a share of --lr")
    ap.add_argument("--init", type=Path, help="continue training this checkpoint (its shape and tokenizer)")
    ap.add_argument("--grow-width", type=int, default=0,
                    help="make --init this wide first (more heads, wider experts), computing the same logits")
    ap.add_argument("--grow-layers", type=int, default=0,
                    help="with --init: first add this many layers (sliding/full pairs) that start as the identity")
    ap.add_argument("--average-with-init", action="store_true",
                    help="with --init: save the mean of the trained weights and the --init ones (tools/demo/soup.py)")
    ap.add_argument("--average-from", type=float, default=0.0,
                    help="save the mean of the weights taken every --average-every steps from this share of the "
                         "budget on (0: the last weights)")
    ap.add_argument("--average-every", type=int, default=50)
    ap.add_argument("--hard-pool", type=int, default=0,
                    help="with --init: score this many fresh conversations of the shipped NPCs with the starting "
                         "weights (tools/demo/hard_examples.py) ...")
    ap.add_argument("--hard-keep", type=int, default=0,
                    help="... and train on the ones with the least sure reasoning, this many, beside --examples")
    ap.add_argument("--label-smoothing", type=float, default=0.0,
                    help="spread this share of each trained token's target over the vocabulary (0: plain loss)")
    ap.add_argument("--data-version", type=int, default=dataset.DATA_VERSION, choices=sorted(dataset.WEIGHTS),
                    help="the data generator's version (an older one regenerates an older checkpoint's data)")
    args = ap.parse_args()
    if (args.grow_layers or args.grow_width) and not args.init:
        ap.error("--grow-layers and --grow-width need --init (the checkpoint to grow)")
    if args.average_with_init and not args.init:
        ap.error("--average-with-init needs --init")
    if not 0 <= args.average_from < 1 or args.average_every < 1:
        ap.error("--average-from is a share of the budget in [0, 1), --average-every a positive number of steps")
    if (args.hard_pool or args.hard_keep) and not (args.init and 0 < args.hard_keep <= args.hard_pool):
        ap.error("--hard-pool N --hard-keep K need --init (the weights that judge them) and 0 < K <= N")
    if args.threads:
        torch.set_num_threads(args.threads)
    from tokenizers import Tokenizer
    from transformers import GptOssConfig, GptOssForCausalLM

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    examples = dataset.make_examples(args.examples, seed=args.seed, version=args.data_version)
    if args.init:
        (args.out / "tokenizer.json").write_bytes((args.init / "tokenizer.json").read_bytes())
    else:
        train_tokenizer(examples, args.out / "tokenizer.json")
    tok = dataset.RawHarmonyTokenizer(Tokenizer.from_file(str(args.out / "tokenizer.json")))
    data = [encode(tok, ex) for ex in examples]
    lengths = sorted(len(x) for x, _ in data)
    print(f"{len(data)} conversations, tokens per conversation: median {lengths[len(lengths) // 2]}, "
          f"max {lengths[-1]}", flush=True)

    shape = model_shape(args.hidden, args.layers, args.experts)
    vocab = Tokenizer.from_file(str(args.out / "tokenizer.json")).get_vocab_size()
    config = GptOssConfig(vocab_size=vocab, max_position_embeddings=4096, **shape,
                          layer_types=layer_types(args.layers),
                          rope_parameters={"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                                           "truncate": False, "original_max_position_embeddings": 4096,
                                           "rope_theta": 150000.0},
                          router_aux_loss_coef=0.01, output_router_logits=True)
    model = GptOssForCausalLM.from_pretrained(args.init, dtype=torch.float32) if args.init else GptOssForCausalLM(config)
    if args.init:
        for p in model.parameters():  # in memory, not mapped from the file: --init may be --out
            p.data = p.data.clone()
        if args.grow_layers:
            from tools.demo.grow import grow_depth

            model = grow_depth(model, args.grow_layers)
            print(f"grown from {args.init}: {model.config.num_hidden_layers} layers", flush=True)
        if args.grow_width:
            from tools.demo.grow import grow_width

            model = grow_width(model, args.grow_width)
            print(f"grown from {args.init}: {model.config.hidden_size} wide", flush=True)
        # a grown start computes what --init does, so the mean with it is the mean with --init's function
        init_state = {k: v.clone() for k, v in model.state_dict().items()} if args.average_with_init else None
        model.config.output_router_logits, model.config.router_aux_loss_coef = True, 0.01
        config = model.config
        args.layers, args.hidden = config.num_hidden_layers, config.hidden_size  # what the log records: the shape trained
        shape = model_shape(config.hidden_size, config.num_hidden_layers, config.num_local_experts)
    hard = None
    if args.hard_pool:  # judged by the weights training starts from (grown, if grown), then kept beside the rest
        from tools.demo.hard_examples import hardest, hardness

        pool = dataset.make_examples(args.hard_pool, seed=args.seed + 1000, version=args.data_version,
                                     shipped_share=1.0)
        pool_data = [encode(tok, ex) for ex in pool]
        scores = hardness(model, pool_data, tok, pad=tok.special("<|endoftext|>"))
        kept = hardest(scores, args.hard_keep)
        data += [pool_data[i] for i in kept]
        hard = {"pool": args.hard_pool, "kept": len(kept), "least_kept": round(min(scores[i] for i in kept), 4),
                "pool_unsure_at_0.80": round(sum(s > math.log(1 / 0.8) for s in scores) / len(scores), 4)}
        print(f"hard examples: {len(kept)} of {len(pool)} kept (reasoning's least sure token at most "
              f"{math.exp(-hard['least_kept']):.3f} likely); {len(data)} conversations in all", flush=True)
    earlier = json.loads((args.init / "training_log.json").read_text()) if args.init else None
    model.train()
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.2f}M parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    pad = tok.special("<|endoftext|>")
    budget_s = args.minutes * 60
    start = time.monotonic()
    log, step, epoch = [], 0, 0
    from tools.demo.soup import RunningMean

    trajectory = RunningMean()
    warmup = args.warmup
    while time.monotonic() - start < budget_s:
        epoch += 1
        for idx in batches(data, args.batch_tokens, rng):
            elapsed = time.monotonic() - start
            if elapsed >= budget_s:
                break
            progress = elapsed / budget_s
            lr = args.lr * min(1.0, (step + 1) / warmup) * (args.min_lr + (1 - args.min_lr) * 0.5 * (1 + math.cos(math.pi * progress)))
            for group in opt.param_groups:
                group["lr"] = lr
            ids, labels, mask = collate(data, idx, pad)
            out = model(input_ids=ids, attention_mask=mask, labels=labels)
            loss = out.loss if not args.label_smoothing else smoothed_loss(out, labels, args.label_smoothing,
                                                                          config.router_aux_loss_coef)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if args.average_from and progress >= args.average_from and step % args.average_every == 0:
                trajectory.add(model.state_dict())
            if step % 10 == 0:
                lm = float(out.loss) - config.router_aux_loss_coef * float(out.aux_loss or 0)
                log.append({"step": step, "epoch": epoch, "seconds": round(elapsed, 1), "loss": round(lm, 4),
                            "lr": round(lr, 6)})
                print(f"step {step} epoch {epoch} {elapsed / 60:.1f} min loss {lm:.3f} lr {lr:.2e}", flush=True)
    model.eval()
    if args.average_from:
        if not trajectory.count or step % args.average_every:
            trajectory.add(model.state_dict())  # the last point too, once
        model.load_state_dict(trajectory.state(model.state_dict()))
        print(f"the run's weights: the mean of {trajectory.count} snapshots from {args.average_from:.0%} of the "
              "budget on", flush=True)
    if args.average_with_init:  # then the run's weights (averaged or last) with its start, as soup.py does
        from tools.demo.soup import average_states

        model.load_state_dict(average_states(model.state_dict(), init_state))
    model.config.output_router_logits = False
    model.save_pretrained(args.out)
    (args.out / "training_log.json").write_text(json.dumps(
        {"examples": len(data), "parameters": params, "steps": step, "epochs": epoch,
         "minutes": round((time.monotonic() - start) / 60, 1), "shape": shape, "vocab": vocab,
         "command": reproduce_command(args), "data_version": args.data_version, "continued_from": earlier,
         **({"averaged_with_init": True} if args.average_with_init else {}),
         **({"averaged_snapshots": trajectory.count} if args.average_from else {}),
         **({"hard_examples": hard} if hard else {}),
         "log": log}, indent=1))
    print(f"saved {args.out} after {step} steps", flush=True)
    return 0


def smoothed_loss(out, labels, smoothing: float, aux_coef: float):
    """The next-token loss on the labelled tokens with label smoothing, plus the router's balance term as the
    model's own loss adds it. Tried so that unsure replies would separate better; they did not (the model card's
    fourteenth run: every confidence drops, the wrong facts' with the right ones')."""
    logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1])
    lm = torch.nn.functional.cross_entropy(logits.float(), labels[:, 1:].reshape(-1), ignore_index=-100,
                                           label_smoothing=smoothing)
    return lm + aux_coef * (out.aux_loss if out.aux_loss is not None else 0)


def reproduce_command(args: argparse.Namespace) -> str:
    """The command that trains this checkpoint again into the shipped folder (no paths of this machine)."""
    init = " --init tools/demo/checkpoint" if args.init else ""
    init += f" --grow-layers {args.grow_layers}" if args.grow_layers else ""
    init += f" --grow-width {args.grow_width}" if args.grow_width else ""
    return (f".venv/bin/python -m tools.demo.train --out tools/demo/checkpoint{init} --examples {args.examples} "
            f"--minutes {args.minutes:g} --batch-tokens {args.batch_tokens} --lr {args.lr:g} --seed {args.seed} "
            f"--hidden {args.hidden} --layers {args.layers} --experts {args.experts} --warmup {args.warmup} "
            f"--min-lr {args.min_lr:g} --data-version {args.data_version}"
            + (f" --label-smoothing {args.label_smoothing:g}" if args.label_smoothing else "")
            + (f" --hard-pool {args.hard_pool} --hard-keep {args.hard_keep}" if args.hard_pool else "")
            + (" --average-with-init" if args.average_with_init else "")
            + (f" --average-from {args.average_from:g} --average-every {args.average_every}" if args.average_from
               else ""))


if __name__ == "__main__":
    sys.exit(main())
