"""Write the demo checkpoint's model card (MODEL_CARD.md) and loss curve (loss.png) from its training log
and a fresh evaluation.

    .venv/bin/python -m tools.demo.model_card --checkpoint tools/demo/checkpoint
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools.demo.evaluate import evaluate, export_demo


def plot(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], color="#b5562b")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_yscale("log")
    ax.set_title("Parley demo model: training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def share(rows: list[dict], which: str | None = None) -> str:
    rows = [r for r in rows if which is None or r["set"] == which]
    right = sum(r["correct"] for r in rows)
    return f"{right / len(rows):.1%} ({right}/{len(rows)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=Path("tools/demo/checkpoint"))
    ap.add_argument("--model", type=Path, default=Path(".cache/demo-model"))
    args = ap.parse_args()
    info = json.loads((args.checkpoint / "training_log.json").read_text())
    plot(info["log"], args.checkpoint / "loss.png")
    report = evaluate(export_demo(args.checkpoint, args.model))
    shipped, dev, unseen = report["shipped"], report["shipped_dev"], report["unseen"]
    size_mb = (args.checkpoint / "model.safetensors").stat().st_size / 2**20
    examples = "\n".join(f"| {r['npc']} | {r['question']} | {r['answer']} | {'yes' if r['correct'] else 'no'} |"
                         for r in shipped["rows"][::8] + unseen["rows"][::2])
    card = f"""# Parley demo model

A small gpt-oss-architecture model trained by Parley itself so that the demo NPCs really talk on a
laptop CPU. It is a Hugging Face gpt-oss checkpoint, the same kind of folder a studio's fine-tune is,
and goes through `parley export` like one.

| | |
| --- | --- |
| architecture | gpt-oss: {info['shape']['num_hidden_layers']} layers (alternating sliding-window {info['shape']['sliding_window']} / full), hidden {info['shape']['hidden_size']}, {info['shape']['num_attention_heads']} heads / {info['shape']['num_key_value_heads']} kv heads, {info['shape']['num_local_experts']} experts top-{info['shape']['num_experts_per_tok']}, attention sinks, YaRN RoPE |
| parameters | {info['parameters'] / 1e6:.2f}M ({size_mb:.1f} MiB float32) |
| tokenizer | byte-level BPE, {info['vocab']} tokens, harmony special tokens |
| data | {info['examples']} synthetic harmony conversations (tools/demo/dataset.py): the three shipped NPCs and random training-only NPCs; greetings, prices, hours, rumours, rules, rewards, people, food, work, insults, off-topic, farewells, actions; 0–2 earlier turns; reasoning length by effort |
| training | {info['steps']} steps, {info['epochs']} epochs, {info['minutes']} min on a 2-core CPU; AdamW, cosine schedule; loss on assistant tokens only |
| command | `{info['command']}` |

![training loss](loss.png)

## Measured behaviour

Held-out question phrasings (excluded from the training data, also as substrings), greedy decoding,
through the real engine (`.venv/bin/python -m tools.demo.evaluate`). A reply counts as correct when
the final channel states the fact's key phrase, no fallback line was used, and no reasoning leaked into
it. History of this figure: the first training run (10 fixed phrasings per topic) scored 36% on the
first held-out set; a phrasing grammar raised that to 73%; looking at those misses, indirect questions
and synonyms were added to the grammar (82.8% on a second, fresh set). That second set's misses led to
more synonyms; both earlier sets then became the "earlier held-out" line below. Two test sets were
never used to shape the data: the third, written before this checkpoint's training run, and the
fourth, written after it and before the model was ever run on it (it was checked against the
regenerated training data: one phrasing that occurred there was replaced before evaluation).

| NPCs | questions | accuracy | answered through the final channel |
| --- | --- | --- | --- |
| the three shipped NPCs (brenna, aldric, marta) | both test sets | **{share(shipped['rows'])}** | {shipped['final_channel_rate']:.0%} |
| | third test set | {share(shipped['rows'], 'test3')} | |
| | fourth test set | {share(shipped['rows'], 'test4')} | |
| the same NPCs | the two earlier held-out sets (looked at while improving the training grammar) | {share(dev['rows'])} | {dev['final_channel_rate']:.0%} |
| a profile never seen in training (oswin, facts only in its prompt) | all four sets | **{share(unseen['rows'])}** | {unseen['final_channel_rate']:.0%} |

Parley's target for the shipped NPCs is 90% on fresh phrasings. The misses are questions whose wording
points at another topic (e.g. "Will the forge still be open tonight?" answered with a price, "Any
gossip worth hearing?" with the wrong fact) or that the grammar has no word for ("What's for supper?").
A new NPC's facts must be read from its developer message, which a model this small does only partly
(the figure above is what it is). For your own NPCs, fine-tune a real gpt-oss checkpoint on your
world and export it.

| NPC | question | answer | correct |
| --- | --- | --- | --- |
{examples}
"""
    (args.checkpoint / "MODEL_CARD.md").write_text(card)
    print(f"wrote {args.checkpoint / 'MODEL_CARD.md'} and loss.png: shipped {shipped['accuracy']:.1%}, "
          f"unseen {unseen['accuracy']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
