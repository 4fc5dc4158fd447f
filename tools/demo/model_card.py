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


def _offsets(info: dict):
    """Each run with the steps before it, so a continued run's curve follows the first."""
    offset = 0
    for run in runs(info):
        yield offset, run
        offset += run["steps"]


def runs(info: dict) -> list[dict]:
    """The training runs behind a checkpoint, first first (a run may continue an earlier one)."""
    chain = []
    while info:
        chain.insert(0, info)
        info = info.get("continued_from")
    return chain


def training_row(info: dict) -> str:
    def one(r: dict) -> str:
        averaged = (f", its weights the mean of {r['averaged_snapshots']} points taken as it trained"
                    if r.get("averaged_snapshots") else "")
        averaged += ", its weights then averaged with its start (tools/demo/soup.py)" if r.get("averaged_with_init") else ""
        return f"{r['steps']} steps on {r['examples']} conversations ({r['minutes']} min){averaged}"
    return ", then ".join(one(r) for r in runs(info)) + " on a 2-core CPU"


def commands_row(info: dict) -> str:
    return " then ".join(f"`{r['command']}`" for r in runs(info))


def freeform_line(report: dict) -> str:
    return (f"{report['right']:.1%} | {report['wrong']:.1%} | {report['partial']:.1%} | {report['deflection']:.1%} | "
            f"{report['unsure']:.1%} | {report['follow_up_right']:.0%} | {report['unknown_right']:.0%}")


def targets(report: dict) -> str:
    """Which of the demo model's targets a set's figures meet."""
    checks = [("at least 85% right", report["right"] >= 0.85), ("at most 3% wrong", report["wrong"] <= 0.03),
              ("follow-ups at least 80% right", report["follow_up_right"] >= 0.8)]
    met = [name for name, ok in checks if ok]
    missed = [name for name, ok in checks if not ok]
    return (f"targets met: {', '.join(met) or 'none'}; missed: {', '.join(missed) or 'none'}")


def together(reports: tuple) -> dict:
    """Several sets' replies as one set's figures (what targets() reads)."""
    from tools.demo.freeform import figures

    return figures([r for report in reports for r in report["rows"]])


def count(reports: tuple, score: str) -> int:
    return sum(r["score"] == score for report in reports for r in report["rows"])


def wrong_unknown(report: dict) -> int:
    """Wrong facts stated for questions the NPC cannot answer."""
    return sum(r["score"] == "wrong" and r["fact"] is None for r in report["rows"])


def sweep_table(path: Path) -> str:
    if not path.is_file():
        return "(no sweep recorded)"
    rows = ["| candidate | parameters | steps | final loss | dev right | dev wrong | template |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in json.loads(path.read_text()).items():
        rows.append(f"| {name} ({r['minutes']:g} min) | {r['parameters'] / 1e6:.2f}M | {r['steps']} | {r['final_loss']:.3f} | "
                    f"{r['dev_right']:.1%} | {r['dev_wrong']:.1%} | {r['template']:.1%} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=Path("tools/demo/checkpoint"))
    ap.add_argument("--model", type=Path, default=Path(".cache/demo-model"))
    ap.add_argument("--json", type=Path, help="also write every figure and reply here")
    ap.add_argument("--from-json", type=Path, help="write the card again from the figures an earlier --json holds, "
                                                    "without scoring anything (the card's own text changed)")
    args = ap.parse_args()
    from tools.demo import (freeform, freeform_blind, freeform_blind_c, freeform_blind_d, freeform_blind_e,
                            freeform_blind_f, freeform_blind_g, freeform_blind_h, freeform_blind_i,
                            freeform_blind_j, freeform_blind_k, freeform_blind_l, freeform_blind_m,
                            freeform_blind_n)

    info = json.loads((args.checkpoint / "training_log.json").read_text())
    plot([dict(r, step=r["step"] + offset) for offset, run in _offsets(info) for r in run["log"]],
         args.checkpoint / "loss.png")
    sets = (("d", freeform_blind_d), ("e", freeform_blind_e), ("f", freeform_blind_f), ("g", freeform_blind_g),
            ("h", freeform_blind_h), ("i", freeform_blind_i), ("j", freeform_blind_j), ("k", freeform_blind_k),
            ("l", freeform_blind_l), ("m", freeform_blind_m), ("n", freeform_blind_n))
    if args.from_json:  # the blind sets are scored once for a checkpoint; its card's text may change after
        saved = json.loads(args.from_json.read_text())
        report, free, blind, blind_c = saved["template"], saved["freeform"], saved["blind"], saved["blind_c"]
        with_unsure = {name: saved[f"blind_{name}"] for name, _ in sets}
        without = {name: saved[f"blind_{name}_without_unsure_replies"] for name, _ in sets}
    else:
        model = export_demo(args.checkpoint, args.model)
        report = evaluate(model)
        free, blind = freeform.evaluate(model), freeform.evaluate(model, freeform_blind.LINES)
        blind_c = freeform.evaluate(model, freeform_blind_c.LINES)
        # sets D to M, with the profiles' unsure replies and without them
        with_unsure, without = {}, {}
        for name, module in sets:
            with_unsure[name] = freeform.evaluate(model, module.LINES)
            without[name] = freeform.evaluate(model, module.LINES, min_confidence=0.0)
    blind_d, blind_e, blind_f, blind_g, blind_h, blind_i, blind_j, blind_k, blind_l, blind_m, blind_n = with_unsure.values()
    sure_d, sure_e, sure_f, sure_g, sure_h, sure_i, sure_j, sure_k, sure_l, sure_m, sure_n = without.values()
    honest = (blind_n, blind_m, blind_l, blind_k, blind_j, blind_i, blind_h, blind_g)  # never used to choose it
    seven = together(honest[1:])  # G to M, as the checkpoints before were measured
    eight = together(honest)
    if args.json:
        args.json.write_text(json.dumps({"template": report, "freeform": free, "blind": blind, "blind_c": blind_c,
                                         **{f"blind_{k}": v for k, v in with_unsure.items()},
                                         **{f"blind_{k}_without_unsure_replies": v for k, v in without.items()}},
                                        indent=1))
    shipped, dev, unseen = report["shipped"], report["shipped_dev"], report["unseen"]
    size_mb = (args.checkpoint / "model.safetensors").stat().st_size / 2**20
    examples = "\n".join(f"| {r['npc']} | {r['say']} | {r['answer']} | {r['score']} |"
                         for r in free["rows"][::4] + blind["rows"][::6])
    card = f"""# Parley demo model

A small gpt-oss-architecture model trained by Parley itself so that the demo NPCs really talk on a
laptop CPU. It is a Hugging Face gpt-oss checkpoint, the same kind of folder a studio's fine-tune is,
and goes through `parley export` like one.

| | |
| --- | --- |
| architecture | gpt-oss: {info['shape']['num_hidden_layers']} layers (alternating sliding-window {info['shape']['sliding_window']} / full), hidden {info['shape']['hidden_size']}, {info['shape']['num_attention_heads']} heads / {info['shape']['num_key_value_heads']} kv heads, {info['shape']['num_local_experts']} experts top-{info['shape']['num_experts_per_tok']}, attention sinks, YaRN RoPE |
| parameters | {info['parameters'] / 1e6:.2f}M ({size_mb:.1f} MiB float32) |
| tokenizer | byte-level BPE, {info['vocab']} tokens, harmony special tokens |
| data | {' + '.join(str(r['examples']) for r in runs(info))} synthetic harmony conversations (tools/demo/dataset.py; the runs use different seeds): the three shipped NPCs and random training-only NPCs. Player lines are composed from meaning (tools/demo/player_talk.py, lexicon.py): other names for each thing, many question frames, context clauses, greetings, chat-box noise and typos; from data version 3, 45% of the shipped NPCs' questions are lines written by two outside writers who read only the profiles (tools/demo/player_lines/, 1,440 lines for their facts, 240 they cannot answer, follow-ups, two-part questions), typos added now and then, and each NPC is asked the others' questions (answered honestly); from version 4, a fifth of those questions come after something the player tells about other things, and a follow-up may name the other sword by comparison ("the better one"); from version 5, 60% of those questions come from people's lines, now also from two more writers (2,080 fact lines, 400 unanswerable ones in all, many of them long, role-played or close to a real fact), and unanswerable questions come more often; from version 6, three more writers' lines (bank_4*: 25 a fact, unanswerable questions, follow-ups and two-part questions for each NPC), 65% of the questions from people's lines and follow-ups asked twice as often; version 7 is version 6 less people's follow-up and two-part lines that hold a phrasing the template test sets hold out; version 9 (the eleventh run's; version 8, of a tenth run not shipped, was 7 with follow-ups that ask what the NPC does not know) adds to those follow-ups single questions that name one of the NPC's things but ask what its fact does not hold ("When will Tomas be back?", "How much is a writ?", a steel axe from a smith who sells steel swords; tools/demo/near_miss.py), answered honestly; version 10 (the twelfth run's, a thirty-second of this checkpoint) asks questions the NPC cannot answer a third more often, 60% of them next to one of its facts; version 11 checks people's lines against the sets' after typos are added; version 12 (the sixteenth run's, a sixteenth of this checkpoint) shouts 6% of the player lines in capitals, which the tokenizer spells letter by letter; version 13 (the twenty-second run's, an eighth of this checkpoint) also draws from three more outside writers' lines aimed at what the checkpoint before it got wrong (bank_5*: a line that names one thing and asks another, a question after a story, an indirect ask, an unanswerable question next to a fact) and ends in a follow-up a quarter of the time; version 14 (the twenty-third run's, a quarter of this checkpoint) ends in a follow-up 35% of the time, 40% of those asking what the NPC does not know; version 15 (the twenty-fourth run's, half of this checkpoint) asks a fifth of its composed questions about one of several prices while setting another aside ("Not the steel one. What's an iron sword?"); two questions in one line (both answered); questions about what the NPC does not know or sell (answered honestly, in character); follow-ups that need the previous turn; the template grammar of earlier versions for a third of the questions; greetings, farewells, insults, off-topic lines, actions asked for in many words; 0–3 earlier turns |
| training | {training_row(info)}; AdamW, warm-up then cosine schedule; loss on assistant tokens only |
| commands | {commands_row(info)} |

![training loss](loss.png)

(The loss of each run as it trained; the shipped weights, the mean of the last run's start and of the points
of its second half, were not trained as such.)

## Measured behaviour

Greedy decoding through the real engine, each reply scored by what its final channel states
(`.venv/bin/python -m tools.demo.model_card`), with the shipped profiles: their unsure replies at
`min_confidence = 0.80` (docs/profiles.md, "Unsure replies"; chosen for this checkpoint on sets C to F by
the rule that chose it, below; it was 0.80 for the checkpoint before too, 0.85 for the one before that, 0.80 for the one before that, 0.85 for the one before that, 0.80 for the eleventh, and 0.85 before that). **Right**: the fact asked for (for a
question the NPC cannot answer: no fact at all). **Wrong**: another of the NPC's facts in its place, a
wrong fact said with confidence, the worst outcome. **Other half only**: a line that asks two things,
answered only on the second with the true fact (`also` in the sets; neither right nor wrong; the rows in
italics from the seventh run down were scored before it existed and count such replies as wrong). **Deflection**: none of these (an
honest "I couldn't say", an unsure line, a greeting); **unsure**: the share of replies that were unsure lines.

| player lines | right | wrong fact | other half only | deflection | unsure | follow-ups right | unknowable answered honestly |
| --- | --- | --- | --- | --- | --- | --- | --- |
| **free-form set N: {blind_n['n']} lines by a fifteenth outside writer, written for follow-ups while the twenty-fourth run trained, before anyone scored a model on it, used for nothing; {sum(r['follow_up'] for r in blind_n['rows'])} follow-ups were left once lines the training data held went (tools/demo/freeform_blind_n.py)** | {freeform_line(blind_n)} |
| set N, unsure replies off | {freeform_line(sure_n)} |
| **free-form set M: {blind_m['n']} lines by a fourteenth outside writer, written while a twentieth run trained (not shipped), before anyone scored a model on it, used for nothing; only {sum(r['follow_up'] for r in blind_m['rows'])} follow-ups were left once lines the training data held went (tools/demo/freeform_blind_m.py)** | {freeform_line(blind_m)} |
| set M, unsure replies off | {freeform_line(sure_m)} |
| **free-form set L: {blind_l['n']} lines by a thirteenth outside writer, written while a nineteenth run trained (not shipped), before anyone scored a model on it, used for nothing; only {sum(r['follow_up'] for r in blind_l['rows'])} follow-ups were left once lines the training data held went (tools/demo/freeform_blind_l.py)** | {freeform_line(blind_l)} |
| set L, unsure replies off | {freeform_line(sure_l)} |
| **free-form set K: {blind_k['n']} lines by a twelfth outside writer, written after the checkpoint shipped before the last two, while a seventeenth run trained (not shipped), before anyone scored a model on it, used for nothing (tools/demo/freeform_blind_k.py)** | {freeform_line(blind_k)} |
| set K, unsure replies off | {freeform_line(sure_k)} |
| **free-form set J: {blind_j['n']} lines by an eleventh outside writer, written while the sixteenth run trained, before anyone scored a model on it, used for nothing (tools/demo/freeform_blind_j.py)** | {freeform_line(blind_j)} |
| set J, unsure replies off | {freeform_line(sure_j)} |
| **free-form set I: {blind_i['n']} lines by a tenth outside writer, written after the eleventh checkpoint shipped and before data version 10 (which keeps its lines out), used for nothing (tools/demo/freeform_blind_i.py)** | {freeform_line(blind_i)} |
| set I, unsure replies off | {freeform_line(sure_i)} |
| **free-form set H: {blind_h['n']} lines by a ninth outside writer, written after the eleventh checkpoint was chosen, used for nothing (tools/demo/freeform_blind_h.py)** | {freeform_line(blind_h)} |
| set H, unsure replies off | {freeform_line(sure_h)} |
| free-form set G: {blind_g['n']} lines by an eighth outside writer, written before data version 8, never used to choose; its figures for earlier runs were seen; one line withdrawn, the twelfth run's data held it (tools/demo/freeform_blind_g.py) | {freeform_line(blind_g)} |
| set G, unsure replies off | {freeform_line(sure_g)} |
| free-form set F: {blind_f['n']} lines by a seventh outside writer (tools/demo/freeform_blind_f.py); its misses were read to design data version 8; used to choose this checkpoint | {freeform_line(blind_f)} |
| set F, unsure replies off | {freeform_line(sure_f)} |
| free-form set E: {blind_e['n']} lines by a sixth outside writer, written after the sixth checkpoint, alongside and apart from data version 6 (tools/demo/freeform_blind_e.py); used to choose this checkpoint | {freeform_line(blind_e)} |
| set E, unsure replies off | {freeform_line(sure_e)} |
| free-form set D: {blind_d['n']} lines by a fifth outside writer, written after the fourth checkpoint (tools/demo/freeform_blind_d.py); used to choose this checkpoint | {freeform_line(blind_d)} |
| set D, unsure replies off | {freeform_line(sure_d)} |
| free-form set A: {free['n']} lines by Parley's developers (tools/demo/freeform.py) | {freeform_line(free)} |
| free-form set B: {blind['n']} lines by an outside writer who saw only the profiles (tools/demo/freeform_blind.py) | {freeform_line(blind)} |
| free-form set C: {blind_c['n']} lines by another outside writer (tools/demo/freeform_blind_c.py); used to choose this checkpoint | {freeform_line(blind_c)} |
| *the checkpoint shipped before this one (the mean of the one before it and a twenty-third run; data version 14), sets A / B / C / D / E / F / G / H / I / J / K / L / M / N, unsure replies at 0.80 (its setting; N scored for it after this checkpoint was chosen)* | *100.0 / 86.1 / 91.5 / 86.2 / 90.2 / 91.2 / 87.4 / 88.7 / 92.4 / 86.9 / 84.6 / 96.4 / 87.4 / 85.8%* | *0.0 / 4.6 / 0.9 / 1.6 / 2.3 / 2.2 / 3.7 / 4.8 / 4.2 / 2.9 / 1.4 / 1.8 / 3.1 / 3.7%* | *0.0 / 0.9 / 1.9 / 0.0 / 0.0 / 0.0 / 0.7 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.7%* | *0.0 / 8.3 / 5.7 / 12.2 / 7.5 / 6.6 / 8.1 / 6.5 / 3.4 / 10.2 / 14.0 / 1.8 / 9.4 / 9.7%* | *0.0 / 7.4 / 6.6 / 9.8 / 11.3 / 11.8 / 13.3 / 12.1 / 7.6 / 17.5 / 18.2 / 1.8 / 11.8 / 10.4%* | *100 / 100 / 83 / 60 / 92 / 86 / 73 / 91 / 100 / 78 / 62 / 100 / 91 / 74%* | *100 / 83 / 100 / 95 / 94 / 92 / 88 / 82 / 83 / 94 / 96 / 93 / 80 / 90%* |
| *the checkpoint shipped before this one, sets D / E / F / G / H / I / J / K / L / M / N, unsure replies off* | *89.4 / 94.7 / 94.9 / 89.6 / 88.7 / 94.1 / 87.6 / 93.0 / 97.3 / 92.9 / 90.3%* | *4.9 / 4.5 / 3.7 / 7.4 / 9.7 / 5.1 / 8.0 / 5.6 / 2.7 / 5.5 / 5.2%* | *0.8 / 0.0 / 0.0 / 1.5 / 1.6 / 0.0 / 2.2 / 0.0 / 0.0 / 0.0 / 0.7%* | *4.9 / 0.8 / 1.5 / 1.5 / 0.0 / 0.8 / 2.2 / 1.4 / 0.0 / 1.6 / 3.7%* | *0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0%* | *100 / 100 / 81 / 91 / 55 / 86 / 87 / 85 / 100 / 100 / 84%* | *85 / 90 / 86 / 75 / 67 / 78 / 74 / 88 / 93 / 75 / 83%* |
| *a twenty-fourth run (100 minutes from the checkpoint shipped before this one on data version 15, 4,934 steps, its weights the mean of 49 points of its second half; not shipped alone: 73 on sets C to F at 0.80, where its rule asked for below 70; this checkpoint is its mean with its start), sets C / D / E / F, unsure replies at 0.80 (computed from its replies without unsure lines and their confidence); without unsure replies it was right 455 times and stated 21 wrong facts on C to F* | *86.8 / 85.4 / 91.7 / 89.7%* | *1.9 / 0.0 / 1.5 / 2.9%* | *0.9 / 1.6 / 0.0 / 0.0%* | *10.4 / 13.0 / 6.8 / 7.4%* | *10.4 / 13.0 / 9.8 / 11.0%* | *50 / 100 / 77 / 71%* | *93 / 100 / 97 / 92%* |
| *the checkpoint shipped before the last one (the mean of the one before it and a twenty-second run; data version 13), sets A / B / C / D / E / F / G / H / I / J / K / L / M, unsure replies at 0.85 (its setting)* | *99.0 / 85.2 / 87.7 / 81.3 / 90.2 / 90.4 / 86.7 / 88.7 / 89.8 / 85.4 / 86.0 / 93.6 / 89.0%* | *0.0 / 1.9 / 0.9 / 0.8 / 0.8 / 1.5 / 2.2 / 4.8 / 4.2 / 2.2 / 1.4 / 2.7 / 2.4%* | *0.0 / 0.9 / 0.9 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.7 / 0.0 / 0.0 / 0.0%* | *1.0 / 12.0 / 10.4 / 17.9 / 9.0 / 8.1 / 11.1 / 6.5 / 5.9 / 11.7 / 12.6 / 3.6 / 8.7%* | *1.0 / 13.0 / 12.3 / 16.3 / 14.3 / 14.0 / 17.0 / 12.1 / 11.0 / 19.7 / 16.8 / 3.6 / 13.4%* | *100 / 89 / 50 / 60 / 92 / 81 / 82 / 91 / 100 / 70 / 69 / 90 / 91%* | *100 / 92 / 100 / 95 / 100 / 94 / 92 / 85 / 83 / 94 / 96 / 93 / 85%* |
| *the checkpoint shipped before the last one, sets D / E / F / G / H / I / J / K / L / M, unsure replies off* | *86.2 / 91.0 / 94.1 / 91.1 / 88.7 / 93.2 / 90.5 / 91.6 / 97.3 / 92.9%* | *6.5 / 7.5 / 4.4 / 6.7 / 9.7 / 5.9 / 5.8 / 4.9 / 2.7 / 4.7%* | *1.6 / 0.0 / 0.0 / 0.7 / 1.6 / 0.0 / 1.5 / 0.7 / 0.0 / 0.8%* | *5.7 / 1.5 / 1.5 / 1.5 / 0.0 / 0.8 / 2.2 / 2.8 / 0.0 / 1.6%* | *–* | *80 / 92 / 76 / 91 / 64 / 86 / 87 / 81 / 100 / 100%* | *85 / 84 / 83 / 79 / 70 / 78 / 84 / 88 / 93 / 75%* |
| *a twenty-third run (100 minutes from the checkpoint shipped before the last one on data version 14, 4,693 steps, its weights the mean of 47 points of its second half; not shipped alone: 74 on sets C to F at 0.88, where its rule asked for at most 72; the last checkpoint is its mean with its start), sets C / D / E / F, unsure replies at 0.88 (computed from its replies without unsure lines and their confidence); without unsure replies it was right 459 times and stated 21 wrong facts on C to F* | *85.8 / 84.6 / 88.0 / 89.7%* | *0.9 / 0.8 / 0.8 / 1.5%* | *1.9 / 0.0 / 0.0 / 0.0%* | *11.3 / 14.6 / 11.3 / 8.8%* | *13.2 / 15.4 / 14.3 / 16.2%* | *67 / 60 / 77 / 81%* | *100 / 95 / 97 / 94%* |
| *the checkpoint shipped before the last two (the mean of the one before it and a sixteenth run; data version 12), sets A / B / C / D / E / F / G / H / I / J / K / L / M, unsure replies at 0.80 (its setting)* | *99.0 / 87.0 / 89.6 / 82.9 / 91.7 / 90.4 / 85.2 / 87.1 / 86.4 / 87.6 / 86.0 / 94.5 / 89.0%* | *0.0 / 1.9 / 0.9 / 3.3 / 3.0 / 1.5 / 5.2 / 6.5 / 4.2 / 3.6 / 2.8 / 2.7 / 4.7%* | *0.0 / 0.9 / 1.9 / 0.8 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0%* | *1.0 / 10.2 / 7.5 / 13.0 / 5.3 / 8.1 / 9.6 / 6.5 / 9.3 / 8.8 / 11.2 / 2.7 / 6.3%* | *1.0 / 9.3 / 9.4 / 10.6 / 9.0 / 14.0 / 12.6 / 9.7 / 13.6 / 13.1 / 14.7 / 2.7 / 9.4%* | *100 / 100 / 67 / 60 / 92 / 81 / 82 / 82 / 86 / 78 / 58 / 90 / 100%* | *100 / 92 / 100 / 95 / 97 / 94 / 83 / 78 / 83 / 90 / 96 / 93 / 75%* |
| *the checkpoint shipped before the last two, sets D / E / F / G / H / I / J / K / L / M, unsure replies off* | *85.4 / 91.0 / 90.4 / 88.9 / 89.5 / 92.4 / 86.1 / 90.9 / 97.3 / 90.6%* | *7.3 / 6.8 / 6.6 / 8.9 / 8.9 / 5.9 / 8.8 / 7.0 / 2.7 / 7.1%* | *0.8 / 0.0 / 0.0 / 1.5 / 1.6 / 0.0 / 2.2 / 0.0 / 0.0 / 0.0%* | *6.5 / 2.3 / 2.9 / 0.7 / 0.0 / 1.7 / 2.9 / 2.1 / 0.0 / 2.4%* | *0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0%* | *60 / 92 / 81 / 91 / 73 / 86 / 83 / 81 / 100 / 91%* | *85 / 84 / 83 / 71 / 74 / 74 / 74 / 88 / 93 / 65%* |
| *a twenty-second run (105 minutes from the checkpoint shipped before the last two on data version 13, 5,229 steps, its weights the mean of 58 points of its second half; not shipped alone: 76 on sets C to F, where its rule asked for 72; the last checkpoint is its mean with its start), sets C / D / E / F, unsure replies at 0.85 (computed from its replies without unsure lines and their confidence); without unsure replies it was right 453 times and stated 27 wrong facts on C to F* | *87.7 / 82.9 / 88.7 / 90.4%* | *0.9 / 1.6 / 0.0 / 2.9%* | *0.9 / 0.8 / 0.0 / 0.0%* | *10.4 / 14.6 / 11.3 / 6.6%* | *12.3 / 14.6 / 17.3 / 13.2%* | *83 / 60 / 85 / 81%* | *100 / 95 / 100 / 92%* |
| *a twenty-first run (75 more minutes from the twentieth on data version 13, 3,798 steps, its weights the mean of the points of its second half; it met its rule, 69 against 78 on sets C to F, where 72 was asked for (its mean with its start 80), but never shipped: kept outside the repository until its blind-set figures and this card were done, it was lost with the machine first), sets C / D / E / F, unsure replies at 0.80 (computed from its replies without unsure lines and their confidence); without unsure replies it was right 457 times and stated 24 wrong facts on C to F* | *90.6 / 83.7 / 91.7 / 89.7%* | *0.9 / 0.8 / 2.3 / 1.5%* | *0.9 / 0.8 / 0.0 / 0.0%* | *7.5 / 14.6 / 6.0 / 8.8%* | *9.4 / 13.8 / 9.8 / 14.0%* | *83 / 40 / 92 / 81%* | *100 / 100 / 97 / 94%* |
| *the checkpoint shipped before the last three (the mean of the eleventh and a twelfth run; data version 10), sets A / B / C / D / E / F / G / H / I / J, unsure replies at 0.85 (its setting)* | *98.1 / 83.3 / 85.8 / 83.7 / 88.7 / 90.4 / 85.9 / 87.9 / 86.4 / 82.5%* | *0.0 / 2.8 / 1.9 / 3.3 / 3.0 / 2.2 / 3.0 / 4.0 / 4.2 / 3.6%* | *0.0 / 0.9 / 0.0 / 0.8 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0%* | *1.9 / 13.0 / 12.3 / 12.2 / 8.3 / 7.4 / 11.1 / 8.1 / 9.3 / 13.9%* | *1.9 / 13.0 / 13.2 / 13.8 / 12.8 / 14.7 / 17.0 / 12.1 / 15.3 / 19.0%* | *83 / 67 / 17 / 60 / 85 / 81 / 82 / 82 / 86 / 70%* | *100 / 92 / 93 / 95 / 97 / 94 / 92 / 85 / 83 / 90%* |
| *the checkpoint shipped before the last three, sets D / E / F / G / H / I / J, unsure replies off* | *84.6 / 87.2 / 93.4 / 85.9 / 91.1 / 92.4 / 89.1%* | *8.1 / 7.5 / 4.4 / 10.4 / 7.3 / 5.1 / 7.3%* | *1.6 / 0.0 / 0.0 / 2.2 / 1.6 / 0.0 / 0.7%* | *5.7 / 5.3 / 2.2 / 1.5 / 0.0 / 2.5 / 2.9%* | *0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0%* | *60 / 85 / 86 / 91 / 82 / 100 / 83%* | *85 / 84 / 89 / 67 / 78 / 78 / 77%* |
| *a sixteenth run (65 minutes from the checkpoint shipped before the last three on data version 12, its weights the mean of 42 points of its second half; not shipped alone: the last checkpoint was its mean with its start), sets C / D / E / F, unsure replies at 0.80 (computed from its replies without unsure lines and their confidence)* | *85.8 / 79.7 / 91.0 / 89.0%* | *0.9 / 4.9 / 1.5 / 3.7%* | *0.9 / 0.8 / 0.0 / 0.0%* | *12.3 / 14.6 / 7.5 / 7.4%* | *11.3 / 13.8 / 10.5 / 11.0%* | *67 / 60 / 92 / 76%* | *100 / 95 / 97 / 86%* |
| *a twentieth run (80 minutes from the checkpoint shipped before the last two on data version 13: three more outside writers' lines, aimed at the kinds behind its wrong facts on sets C to F; 5,085 steps, its weights the mean of 54 points of its second half; not shipped: 75 against 78 on sets C to F, where its rule asked for 72; its mean with that checkpoint 79), sets C / D / E / F, unsure replies at 0.80 (computed from its replies without unsure lines and their confidence); without unsure replies it was right 458 times and stated 20 wrong facts on C to F, against that checkpoint's 447 and 32* | *87.7 / 82.1 / 91.7 / 89.0%* | *0.9 / 0.8 / 1.5 / 2.2%* | *1.9 / 1.6 / 0.0 / 0.0%* | *9.4 / 15.4 / 6.8 / 8.8%* | *10.4 / 13.8 / 10.5 / 12.5%* | *83 / 60 / 92 / 76%* | *100 / 100 / 97 / 92%* |
| *a nineteenth run (90 minutes from the checkpoint shipped before the last two on data version 12, 4,462 steps, beside 8,000 hard examples: the conversations of the shipped NPCs, of 24,000 fresh ones, whose reasoning that checkpoint was least sure of (tools/demo/hard_examples.py); its weights the mean of 49 points of its second half, then averaged with that checkpoint; not shipped: 88 against 78 on sets C to F, where its rule asked for 72), sets C / D / E / F, unsure replies at 0.80 (computed from its replies without unsure lines and their confidence)* | *85.8 / 81.3 / 91.0 / 91.2%* | *0.9 / 4.9 / 3.0 / 1.5%* | *0.9 / 0.0 / 0.0 / 0.0%* | *12.3 / 13.8 / 6.0 / 7.4%* | *14.2 / 13.8 / 7.5 / 14.0%* | *50 / 60 / 92 / 86%* | *100 / 95 / 90 / 94%* |
| *a seventeenth run (the checkpoint shipped before the last two made 192 wide, 4.80M parameters, computing the same logits (tools/demo/grow.py), then 100 minutes on data version 12, 3,673 steps, its weights the mean of 38 points of its second half and then averaged with its widened start; not shipped: 81 against that checkpoint's 78 on sets C to F, where its rule asked for 72), sets C / D / E / F, unsure replies at 0.80 (computed from its replies without unsure lines and their confidence)* | *89.6 / 80.5 / 91.7 / 90.4%* | *0.9 / 4.1 / 2.3 / 1.5%* | *1.9 / 0.0 / 0.0 / 0.0%* | *7.5 / 15.4 / 6.0 / 8.1%* | *8.5 / 13.0 / 8.3 / 13.2%* | *83 / 60 / 85 / 86%* | *100 / 95 / 94 / 94%* |
| *the checkpoint shipped before the last three at 0.80 (the setting it was chosen at, before its threshold was re-chosen), sets A / B / C / D / E / F / G / H / I* | *99.0 / 85.2 / 85.8 / 84.6 / 88.0 / 90.4 / 85.2 / 87.9 / 87.3%* | *0.0 / 3.7 / 2.8 / 3.3 / 3.8 / 2.2 / 4.4 / 5.6 / 4.2%* | *0.0 / 0.9 / 0.9 / 0.8 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0%* | *1.0 / 10.2 / 10.4 / 11.4 / 8.3 / 7.4 / 10.4 / 6.5 / 8.5%* | *1.0 / 9.3 / 10.4 / 13.0 / 11.3 / 14.7 / 15.6 / 8.1 / 13.6%* | *100 / 89 / 17 / 60 / 85 / 81 / 82 / 82 / 86%* | *100 / 92 / 93 / 95 / 94 / 94 / 88 / 78 / 83%* |
| *the eleventh checkpoint (shipped before the last four; data version 9), sets A / B / C / D / E / F / G / H / I, unsure replies at 0.80 (G on its 136 lines then)* | *96.2 / 81.5 / 86.8 / 82.1 / 86.5 / 89.0 / 85.3 / 87.1 / 86.4%* | *0.0 / 0.9 / 2.8 / 4.1 / 3.0 / 0.7 / 4.4 / 4.8 / 4.2%* | *0.0 / 0.9 / 0.0 / 0.8 / 0.0 / 0.0 / 0.7 / 0.0 / 0.0%* | *3.8 / 16.7 / 10.4 / 13.0 / 10.5 / 10.3 / 9.6 / 8.1 / 9.3%* | *3.8 / 16.7 / 10.4 / 13.0 / 14.3 / 19.9 / 16.9 / 12.9 / 12.7%* | *83 / 78 / 50 / 60 / 85 / 76 / 91 / 82 / 86%* | *100 / 92 / 93 / 95 / 94 / 97 / 88 / 82 / 83%* |
| *the eleventh checkpoint, sets D / E / F / G / H / I, unsure replies off* | *85.4 / 88.7 / 90.4 / 86.0 / 90.3 / 90.7%* | *8.1 / 6.0 / 7.4 / 11.0 / 8.1 / 5.9%* | *1.6 / 0.0 / 0.0 / 0.7 / 0.8 / 0.0%* | *4.9 / 5.3 / 2.2 / 2.2 / 0.8 / 3.4%* | *0.0 / 0.0 / 0.0 / 0.0 / 0.0 / 0.0%* | *60 / 92 / 81 / 82 / 73 / 100%* | *85 / 87 / 83 / 58 / 74 / 74%* |
| *the eleventh checkpoint with the earlier setting, unsure replies at 0.85, sets A / B / C / D / E / F / G / H* | *95.2 / 77.8 / 85.8 / 81.3 / 85.7 / 89.0 / 86.0 / 87.1%* | *0.0 / 0.9 / 2.8 / 4.1 / 3.0 / 0.7 / 1.5 / 4.0%* | *0.0 / 0.9 / 0.0 / 0.0 / 0.0 / 0.0 / 0.7 / 0.0%* | *4.8 / 20.4 / 11.3 / 14.6 / 11.3 / 10.3 / 11.8 / 8.9%* | *4.8 / 20.4 / 12.3 / 14.6 / 16.5 / 19.9 / 20.6 / 15.3%* | *83 / 67 / 50 / 60 / 85 / 76 / 91 / 91%* | *100 / 92 / 93 / 95 / 94 / 97 / 96 / 85%* |
| *a twelfth run (60 more minutes from the eleventh checkpoint on data version 10; not shipped alone: the checkpoint shipped before the last three was its mean with the eleventh), sets C / D / E / F, unsure replies at 0.80* | *85.8 / 84.6 / 86.5 / 88.2%* | *0.9 / 3.3 / 4.5 / 2.9%* | *0.0 / 0.8 / 0.0 / 0.0%* | *13.2 / 11.4 / 9.0 / 8.8%* | *12.3 / 9.8 / 11.3 / 14.7%* | *50 / 60 / 77 / 71%* | *100 / 95 / 90 / 94%* |
| *a thirteenth run (the eleventh checkpoint grown to 6 layers, 70 more minutes on data version 9; not shipped), sets C / D / E / F, unsure replies at 0.80* | *86.8 / 81.3 / 87.2 / 89.0%* | *1.9 / 6.5 / 6.0 / 0.7%* | *0.9 / 0.8 / 0.0 / 0.0%* | *10.4 / 11.4 / 6.8 / 10.3%* | *11.3 / 9.8 / 7.5 / 16.9%* | *67 / 80 / 85 / 67%* | *93 / 90 / 87 / 97%* |
| *the ninth checkpoint (shipped before the eleventh; data version 7), sets A / B / C / D / E / F / G / H, unsure replies at 0.85* | *96.2 / 79.6 / 85.8 / 81.3 / 85.7 / 84.6 / 86.0 / 84.7%* | *0.0 / 1.9 / 0.9 / 4.1 / 2.3 / 3.7 / 4.4 / 4.8%* | *0.0 / 0.9 / 0.9 / 0.8 / 0.0 / 0.0 / 0.0 / 1.6%* | *3.8 / 17.6 / 12.3 / 13.8 / 12.0 / 11.8 / 9.6 / 8.9%* | *3.8 / 16.7 / 10.4 / 12.2 / 12.8 / 15.4 / 14.7 / 11.3%* | *100 / 89 / 83 / 60 / 69 / 76 / 91 / 73%* | *100 / 100 / 100 / 95 / 94 / 89 / 79 / 78%* |
| *the ninth checkpoint, sets D / E / F / G / H, unsure replies off* | *85.4 / 88.0 / 90.4 / 89.7 / 89.5%* | *8.1 / 8.3 / 5.9 / 8.8 / 8.9%* | *1.6 / 0.0 / 0.0 / 0.0 / 1.6%* | *4.9 / 3.8 / 3.7 / 1.5 / 0.0%* | *–* | *80 / 85 / 71 / 91 / 55%* | *85 / 81 / 83 / 67 / 70%* |
| *the sixth checkpoint (shipped before the ninth; data version 5), sets A / B / C / D / E / F, unsure replies at 0.85* | *98.1 / 82.4 / 86.8 / 76.4 / 85.7 / 87.5%* | *0.0 / 0.9 / 0.9 / 5.7 / 4.5 / 3.7%* | *0.0 / 1.9 / 0.0 / 0.8 / 0.0 / 0.0%* | *1.9 / 14.8 / 12.3 / 17.1 / 9.8 / 8.8%* | *2.9 / 15.7 / 12.3 / 18.7 / 14.3 / 16.9%* | *83 / 56 / 83 / 60 / 85 / 81%* | *100 / 100 / 100 / 95 / 90 / 89%* |
| *the sixth checkpoint, sets D / E / F, unsure replies off* | *83.7 / 86.5 / 85.3%* | *8.9 / 9.0 / 11.0%* | *3.3 / 0.0 / 0.0%* | *4.1 / 4.5 / 3.7%* | *–* | *60 / 85 / 71%* | *90 / 77 / 69%* |
| *a tenth run (60 more minutes from the ninth checkpoint on data version 8; not shipped), sets A / B / C / D / E / F / G, unsure replies at 0.85* | *99.0 / 83.3 / 84.9 / 78.9 / 88.7 / 87.5 / 86.0%* | *0.0 / 5.6 / 1.9 / 4.9 / 3.8 / 5.1 / 3.7%* | *0.0 / 1.9 / 0.9 / 1.6 / 0.0 / 0.0 / 0.7%* | *1.0 / 9.3 / 12.3 / 14.6 / 7.5 / 7.4 / 9.6%* | *1.0 / 8.3 / 12.3 / 13.0 / 10.5 / 11.0 / 15.4%* | *100 / 78 / 83 / 80 / 77 / 71 / 82%* | *100 / 92 / 100 / 95 / 94 / 86 / 83%* |
| *the tenth run, sets D / E / F / G, unsure replies off* | *84.6 / 89.5 / 91.2 / 86.0%* | *9.8 / 6.8 / 5.9 / 9.6%* | *1.6 / 0.0 / 0.0 / 2.2%* | *4.1 / 3.8 / 2.9 / 2.2%* | *–* | *80 / 92 / 76 / 91%* | *90 / 84 / 86 / 62%* |
| *a seventh run (data version 6, 70 more minutes; not shipped), sets A / B / C / D / E, unsure replies at 0.85* | *97.1 / 85.2 / 87.7 / 79.7 / 88.0%* | *0.0 / 3.7 / 1.9 / 5.7 / 5.3%* | *–* | *2.9 / 11.1 / 10.4 / 14.6 / 6.8%* | *2.9 / 12.0 / 10.4 / 11.4 / 8.3%* | *100 / 89 / 67 / 60 / 62%* | *100 / 100 / 100 / 95 / 90%* |
| *the seventh run, sets D / E, unsure replies off* | *82.1 / 89.5%* | *10.6 / 8.3%* | *–* | *7.3 / 2.3%* | *–* | *60 / 85%* | *90 / 84%* |
| *an eighth run (30 more minutes from the seventh, data version 6; not shipped), sets A / B / C / D / E, unsure replies at 0.85* | *97.1 / 83.3 / 86.8 / 78.9 / 87.2%* | *0.0 / 3.7 / 1.9 / 3.3 / 4.5%* | *–* | *2.9 / 13.0 / 11.3 / 17.9 / 8.3%* | *2.9 / 13.9 / 12.3 / 16.3 / 11.3%* | *100 / 89 / 67 / 80 / 62%* | *100 / 100 / 100 / 95 / 94%* |
| *the eighth run, sets D / E, unsure replies off* | *84.6 / 88.0%* | *9.8 / 9.0%* | *–* | *5.7 / 3.0%* | *–* | *80 / 77%* | *90 / 81%* |
| *the fifth checkpoint (data version 5), sets A / B / C / D, unsure replies at 0.85* | *99.0 / 83.3 / 89.6 / 77.2%* | *0.0 / 6.5 / 1.9 / 4.1%* | *–* | *1.0 / 10.2 / 8.5 / 18.7%* | *1.9 / 11.1 / 7.5 / 16.3%* | *83 / 56 / 83 / 60%* | *100 / 100 / 100 / 95%* |
| *the fifth checkpoint, set D, unsure replies off* | *82.9%* | *9.8%* | *–* | *7.3%* | *–* | *60%* | *90%* |
| *the fourth checkpoint (data version 4), sets A / B / C / D, unsure replies at 0.85* | *95.2 / 76.9 / 81.1 / 69.9%* | *0.0 / 5.6 / 2.8 / 9.8%* | *–* | *4.8 / 17.6 / 16.0 / 20.3%* | *6.7 / 20.4 / 17.0 / 24.4%* | *83 / 56 / 67 / 40%* | *100 / 92 / 100 / 85%* |
| *the fourth checkpoint, unsure replies off* | *99.0 / 83.3 / 91.5 / 74.0%* | *0.0 / 13.9 / 6.6 / 20.3%* | *–* | *1.0 / 2.8 / 1.9 / 5.7%* | *–* | *100 / 78 / 83 / 60%* | *100 / 83 / 100 / 55%* |
| *the third checkpoint (data version 3), sets A / B / C* | *98.1 / 84.3 / 89.6%* | *1.9 / 13.9 / 8.5%* | *–* | *0.0 / 1.9 / 1.9%* | *–* | *83 / 67 / 83%* | *100 / 75 / 93%* |
| *the second checkpoint (data version 2), sets A / B / C* | *93.3 / 75.9 / 66.0%* | *1.0 / 18.5 / 21.7%* | *–* | *5.8 / 5.6 / 12.3%* | *–* | *100 / 78 / 67%* | *100 / 75 / 36%* |
| *the first checkpoint (templates only), sets A / B* | *62.5 / 45.4%* | *20.2 / 28.7%* | *–* | *17.3 / 25.9%* | *–* | *83 / 44%* | *67 / 50%* |

Parley's targets for this model are at least 85% right and at most 3% wrong facts, and follow-ups
right at least 80% of the time. Sets N, M, L, K, J, I, H and G are the honest figures for this checkpoint: none was
used to choose it or its threshold (G to M were written before its run started, N while it trained; each was scored
for it once, after it was chosen; their lines are kept out of the data). Over the eight together ({eight['n']} lines):
{eight['right']:.1%} right, {eight['wrong']:.1%} wrong ({count(honest, 'wrong')} wrong facts), follow-ups
{eight['follow_up_right']:.1%} right ({sum(r['score'] == 'right' for r in eight['rows'] if r['follow_up'])} of {sum(r['follow_up'] for r in eight['rows'])}); {targets(eight)}. Over G to M, as the
checkpoints before were measured ({seven['n']} lines): {seven['right']:.1%} right, {seven['wrong']:.1%} wrong ({count(honest[1:], 'wrong')} wrong facts), follow-ups
{seven['follow_up_right']:.1%} right ({sum(r['score'] == 'right' for r in seven['rows'] if r['follow_up'])} of {sum(r['follow_up'] for r in seven['rows'])}); {targets(seven)}. The follow-ups are what is left
short: N, written for them, has {sum(r['follow_up'] for r in blind_n['rows'])} and gets {blind_n['follow_up_right']:.0%} of them right, {sure_n['follow_up_right']:.0%} without unsure replies; over G to N
{sum(r['score'] == 'right' for r in together(tuple(without[k] for k in 'ghijklmn'))['rows'] if r['follow_up'])} follow-ups are right without unsure replies: the threshold turns follow-ups, whose reasoning is less
sure as it reaches back for what "it" is, into unsure lines more often than other questions. On N:
{blind_n['right']:.1%} right, {blind_n['wrong']:.1%} wrong, unanswerable questions answered honestly {blind_n['unknown_right']:.0%};
{targets(blind_n)}. Set by set (below), G, H, I and M miss the wrong-fact target, G, K and N the follow-ups'
and K and N the right answers'. On L:
{blind_l['right']:.1%} right, {blind_l['wrong']:.1%} wrong, follow-ups {blind_l['follow_up_right']:.0%} right (only
{sum(r['follow_up'] for r in blind_l['rows'])} of them: most of its writer's follow-ups began with a line the training data held), unanswerable
questions answered honestly {blind_l['unknown_right']:.0%}; {targets(blind_l)}; its writer's lines were
close to the training data's (45 of the 155 not arguable were in it, word for word), so L is likely the
easiest of the seven. On M: {blind_m['right']:.1%} right, {blind_m['wrong']:.1%} wrong, follow-ups
{blind_m['follow_up_right']:.0%} right ({sum(r['follow_up'] for r in blind_m['rows'])} of them), unanswerable questions answered honestly
{blind_m['unknown_right']:.0%}; {targets(blind_m)}. On K:
{blind_k['right']:.1%} right, {blind_k['wrong']:.1%} wrong, follow-ups {blind_k['follow_up_right']:.0%} right
({sum(r['follow_up'] for r in blind_k['rows'])} of them; {sure_k['follow_up_right']:.0%} with unsure replies off: the
threshold turns follow-ups into unsure lines more than other questions), unanswerable questions answered honestly
{blind_k['unknown_right']:.0%}; {targets(blind_k)}. On J: {blind_j['right']:.1%} right,
{blind_j['wrong']:.1%} wrong, follow-ups {blind_j['follow_up_right']:.0%} right ({sum(r['follow_up'] for r in blind_j['rows'])} of them),
unanswerable questions answered honestly {blind_j['unknown_right']:.0%}; {targets(blind_j)}. On I:
{blind_i['right']:.1%} right, {blind_i['wrong']:.1%} wrong,
follow-ups {blind_i['follow_up_right']:.0%} right ({sum(r['follow_up'] for r in blind_i['rows'])} of them), unanswerable
questions answered honestly {blind_i['unknown_right']:.0%}; {targets(blind_i)}. On H: {blind_h['right']:.1%} right, {blind_h['wrong']:.1%} wrong,
follow-ups {blind_h['follow_up_right']:.0%} right ({sum(r['follow_up'] for r in blind_h['rows'])} of them: most of its
follow-ups' earlier lines were already in the training data and went), unanswerable questions answered
honestly {blind_h['unknown_right']:.0%}; {targets(blind_h)}. On G (never used to choose, but its figures for
the ninth and tenth runs were seen, and that most of its wrong facts answered unanswerable questions
steered data version 9): {blind_g['right']:.1%} / {blind_g['wrong']:.1%} / {blind_g['follow_up_right']:.0%}; {targets(blind_g)}.
Against the checkpoint shipped before it (its rows in italics), on the {seven['n']} lines of G to M together: right
{count(honest[1:], 'right')} times against 794, {count(honest[1:], 'wrong')} wrong facts against 28, follow-ups right
{sum(r['score'] == 'right' for r in seven['rows'] if r['follow_up'])} times of 99 against 79; on N, {count((blind_n,), 'right')} right against 115, {count((blind_n,), 'wrong')} wrong facts against 5, follow-ups
{sum(r['score'] == 'right' for r in blind_n['rows'] if r['follow_up'])} of 51 against 38. Without unsure replies it is right {count(tuple(without[k] for k in 'ghijklm'), 'right')} times and states {count(tuple(without[k] for k in 'ghijklm'), 'wrong')} wrong
facts on G to M, against 820 and 57. The blind sets rate it much as the one before: a few fewer wrong facts, as
many right answers on G to M and a few fewer on N. It was chosen on sets C to F by 66 against 70 (three
deflections per wrong fact), by a rule fixed before its run started; the blind sets, scored after, are reported
as they came out.
On F (a development set): {blind_f['right']:.1%} / {blind_f['wrong']:.1%} / {blind_f['follow_up_right']:.0%}; on E:
{blind_e['right']:.1%} / {blind_e['wrong']:.1%} / {blind_e['follow_up_right']:.0%}; on D: {blind_d['right']:.1%} /
{blind_d['wrong']:.1%} / {blind_d['follow_up_right']:.0%}. The profiles' unsure replies (`min_confidence = 0.80`,
chosen with this checkpoint on sets C to F by three deflections per wrong fact, below) turn J's
{sure_j['wrong']:.1%} wrong facts into {blind_j['wrong']:.1%} and H's {sure_h['wrong']:.1%} into {blind_h['wrong']:.1%}.
For the eleventh checkpoint the earlier 0.85 gave 87.1% / 4.0% on H and 86.0% / 1.5% on G against
0.80's 87.1% / 4.8% and 85.3% / 4.4%: the re-chosen setting was worse on both blind
sets, by one and four lines, and kept because the rule fixed before looking said so. What it still gets wrong: {wrong_unknown(blind_h)} of H's
{sum(r['score'] == 'wrong' for r in blind_h['rows'])} wrong facts and {wrong_unknown(blind_j)} of J's {sum(r['score'] == 'wrong' for r in blind_j['rows'])} answer a question the NPC cannot answer with the
nearest fact it knows; long lines with the question buried; a model of 2.3M parameters with no
pretraining reads a long line poorly.

No line of any set (normalized) occurs in any run's training data (tests/demo). Set A was written by
the same developers who then wrote the generator (they had read it). Set B was written by a helper
that read only the three profile files; its misses were read by the developers after the second run
(and again after the sixth, which is how the "other half only" score came about: two of its three wrong
facts were true answers to a two-part line's second question). Set C was written by a fourth helper
from the profiles alone before the third run's data existed; its replies were never read, but its
overall figures were seen after the third and fourth runs and steered one choice (an unsure threshold
of 0.93, set aside when C gave 79% right with it, for 0.85 chosen on sets A and B), and a CI failure
printed two of its lines and replies. Set D was written by a fifth helper from the profiles alone after
the fourth run, and before the fifth run's data: the two writers of data version 5's lines
(tools/demo/player_lines/bank_3*.json) read only the profiles and never saw it; 27 of its 150 lines
that earlier runs' data already held were taken out unseen. Nobody has read D's replies; its overall
figures on the fourth checkpoint were seen before version 5 was written and moved it towards more
people's lines and more unanswerable questions. Set E was written by a sixth helper from the profiles
alone, at the same time as three more helpers wrote data version 6's lines
(tools/demo/player_lines/bank_4*.json), none seeing the others' work; three lines whose labels its
writer called arguable were taken out before any scoring, and the 24 that earlier runs' data held were
taken out unseen; nobody has read its replies. Set F was written by a seventh helper from the profiles
alone after data version 7 existed; the 34 of its 170 lines that the data of the sixth checkpoint's runs
or of the ninth held were taken out unseen; its figures for both were seen, not used to choose the ninth, and
in the seventh session its misses were read (two of its wrong facts were follow-ups asking what the NPC
does not know, a kind of follow-up no data version had), which shaped data version 8: F is a development
set since, one of the four that decided against the tenth run and for the eleventh checkpoint, its threshold and this checkpoint.
Set G was written by an eighth helper from the profiles, the facts each NPC knows and the
sets' format alone, before data version 8 existed; the 36 of its 172 lines that the shipped checkpoints'
data held were taken out unseen (which left 11 of its 34 follow-ups); nobody has read its replies, but its
figures for the ninth and tenth runs (and the eleventh's at 0.85, before its threshold was re-chosen) were seen,
and the finding that five of the ninth's six wrong facts
there answered unanswerable questions with the nearest fact steered data version 9. Set H was written by a
ninth helper from the profiles, the facts each NPC knows and the sets' format alone, after the eleventh checkpoint
was chosen; 13 lines whose labels its writer called arguable were taken out before any scoring and the 43
that the eleventh's data held were taken out unseen, leaving 124 (11 of its 35 follow-ups); nobody has
read its replies, and its figures at 0.85 were seen before the threshold was re-chosen (on C to F only).
Set I was written by a tenth helper from the profiles and the sets' format alone, after the eleventh checkpoint
shipped and before data version 10 existed; 36 lines whose labels its writer called arguable were taken
out before any scoring, then, unseen, the 25 that the eleventh's data held and one its generator
composes, leaving 118 (7 of its 37 follow-ups); nobody has read its replies, and it was scored for the
eleventh checkpoint alone, after the twelfth run was judged, for the checkpoint shipped before the last three after it
was chosen (at 0.80, then at 0.85 when its threshold was re-chosen), for the one before the last once, after it was
chosen, for the last one once, after it was chosen, and for this one once, after it was chosen. One line of G ("shild price") was withdrawn unseen when the checkpoint shipped before the last three was made: the twelfth run's
data held it (the earlier line of a people's follow-up, "shield price?", typed with a typo after it had been checked;
data version 11 checks what is typed), so G scores 135 lines since. A helper that saw no reply or score marked the
two-part lines' second questions in sets A to D (`also`; E and F have none; G's, H's and I's writers
marked their own). Set J was written by an eleventh helper from the profiles and the sets' format alone,
while the sixteenth run trained; 10 lines whose labels its writer called arguable were taken out before any
scoring, then, unseen, the 33 that the data of the checkpoint shipped before the last three or of the sixteenth run held, leaving
137 (23 of its 36 follow-ups); nobody has read its replies; it was scored for that checkpoint as soon
as it existed, for the one before the last after it was chosen: once at its threshold, 0.80 (first, by a slip, at 0.85:
85.4% / 3.6%), for the last one once, and for this one once, after each was chosen. Set K was written the same way by a twelfth helper, after the checkpoint before the last shipped and
while the seventeenth run trained; 14 lines whose labels its writer called arguable were taken out before
any scoring, then, unseen, the 23 that the data of that checkpoint's runs or of the seventeenth run held,
leaving 143 (26 of its 36 follow-ups); nobody has read its replies; it was scored once for that checkpoint,
after the seventeenth run was judged, and once each for the last one and this one, after each was chosen, and chose nothing. Sets L and M were written the same way by a
thirteenth and a fourteenth helper, while the nineteenth and the twentieth runs trained, filtered the same
way against every run's data (their own modules say how many lines went), and scored once each for the checkpoint
before the last after those runs were judged, and once each for the last one and this one after each was chosen; nobody
has read their replies, and they chose nothing. Set N was written the same way by a fifteenth helper, for follow-ups
above all, while the twenty-fourth run trained, and filtered the same way against the data of the last checkpoint's
runs and of the twenty-fourth (its module says how many lines went: 134 lines, 51 follow-ups, were left); it was
scored once for this checkpoint after it was chosen, and then for the last one (its row in italics), and chose nothing.

How each shipped checkpoint was chosen, by a rule fixed before its run finished: the fifth over the
fourth and the sixth (25 more minutes on the same data) over the fifth on sets A and B with unsure
replies, three deflections for a wrong fact; a seventh run (70 minutes from the sixth on data version 6)
tied the sixth by that rule (27 against 27) and an eighth (30 more minutes from the seventh) scored 29,
so neither shipped (their rows above: scored before "other half only" existed; version 6 also let 17
of people's follow-up and two-part lines through that hold a template phrasing the template test sets
hold out, which version 7 leaves out). The ninth run, 65 minutes from the sixth on data version 7 with
60,000 generated conversations (twice as many distinct ones as before, fewer repeats), was chosen over
the sixth on sets C, D and E together, 1.7 times as many lines as A and B, their replies unread (two of C's aside):
three deflections for a wrong fact, an "other half only" reply counted as a deflection. It scored 75
(9 wrong facts, 46 deflections, 2 other halves) against the sixth's 90 (14, 47, 1). A tenth run, 60
minutes from the ninth checkpoint on data version 8 (version 7 plus follow-ups that ask what the NPC does not
know, answered honestly), was held to the same rule on sets C, D, E and F together (F's misses had been
read to design version 8): it scored 114 against the ninth's 106 (20 wrong facts and 51 deflections
against 14 and 62: more right answers, more wrong facts), so the ninth stayed. On set G it gave 86.0% right
and 3.7% wrong against the ninth's 86.0% and 4.4%. The eleventh run, 60 minutes from the ninth on data
version 9 (seed 11, 3,209 steps), was held to the same rule on sets C to F, written down before it
finished: it scored 98 (13 wrong facts, 59 deflections, no other halves) against the ninth's 106, and
shipped. Then, since the threshold had been chosen for the fourth checkpoint, by a rule written down after
its G and H figures at 0.85 were seen and before any other setting was tried, the unsure
threshold was re-chosen among 0.80, 0.85, 0.88, 0.90 and 0.93 by the same
cost on sets C to F: 95, 98, 103, 106 and 113, so 0.80 (docs/training.md, "Unsure replies"). A twelfth
run, 60 minutes from the eleventh on data version 10 (unanswerable questions a third more often, 60% of
them next to a fact; seed 12, 3,572 steps), was held to the same rule at 0.80, written down before it
started: it scored 98 (15 wrong facts, 52 deflections, one other half) against the eleventh's 95 (13,
55, 1), so it did not ship alone. A thirteenth run tried a bigger model without starting over: the
eleventh grown from 4 to 6 layers (tools/demo/grow.py: a sliding/full pair in the middle whose output
projections start at zero, so it computes exactly what the eleventh does), then 70 minutes on the
eleventh's data version 9 (seed 13, 3,305 steps, 3.21M parameters). Held to the same rule at 0.80,
written down before it started, it scored 107 (19 wrong facts, 48 deflections, 2 other halves) against
95: as many right answers (429), but surer of itself (fewer unsure replies on three of the four sets) and
wrong more often, so it did not ship. The checkpoint shipped before the last three was the mean of the eleventh's weights and the
twelfth run's, no training of its own (tools/demo/soup.py; the twelfth started from the eleventh, so both
lie in one basin; `train.py --average-with-init` trains and averages in one command). Held to the same
rule at 0.80, written down before it was made, it scored 93 (15 wrong facts, 46 deflections, 2 other
halves; 435 right) against the eleventh's 95 (13, 55, 1; 429 right), and shipped: six more right answers
and two more wrong facts on those 498 lines, a thinner margin than the eleventh's (2 against 8). Sets G, H and I were
scored for it after that (at 0.80: I 87.3% / 4.2%, H 87.9% / 5.6%, G 85.2% / 4.4%; the row in italics
above). Then its threshold was re-chosen as the eleventh's had been, by a rule written down before any
figure at another setting was computed: the least cost on sets C to F among 0.80, 0.85, 0.88, 0.90 and
0.93, from its replies without unsure lines and each reply's confidence (0.80 so computed gives 92, one
line from the measured 93): 92, 88, 89, 91 and 100, so 0.85 (its rows in italics above). A fourteenth run tried
a model less sure of every token: 30 minutes from that checkpoint on data version 11 with label smoothing
0.1 (`train.py --label-smoothing 0.1`; seed 14, 1,990 steps). Judged by a rule written down before it
started, its least cost on sets C to F over the same thresholds against that checkpoint's 88: 97 (at 0.80;
448 right and 28 wrong facts without unsure replies, against 444 and 31), and no better than 92 at any
threshold from 0.50 to 0.75 either (looked at after, not part of the rule): smoothing squeezes every
confidence towards 0.9, the wrong facts with the right ones. Not shipped. A fifteenth run taught it to read
capitals: data version 12 shouts 6% of the player lines (the tokenizer spells capitals letter by letter,
and six of that checkpoint's 31 wrong facts on sets C to F, unsure replies off, came from those sets' 17
lines in capitals); 45 minutes from that checkpoint, seed 15, 2,826 steps. It learned them (11 of the 17
right and 3 wrong, against 8 and 6), but by the same rule, written down before it started, its least cost
was 98 and its mean with that checkpoint's 94, against 88: more right answers without unsure replies (447
against 444), its wrong facts said with more confidence. Not shipped; nor was the uniform mean of that
checkpoint and the fourteenth and fifteenth runs' ends (95 against 88; 450 right and 27 wrong facts
without unsure replies, the best yet, but its confidences lowered by the smoothed run). On that
checkpoint's own replies, the margin between the chosen token and the next, or the entropy over the
candidates, separate wrong facts from right ones no better than the lowest probability (least costs 86
and 88 against 85, at thresholds that make 8% to 20% of replies unsure). A sixteenth run
averaged its own trajectory: 65 minutes from that checkpoint on data version 12, seed 16, 3,992 steps, its
saved weights the mean of 42 points taken every 50 steps through the second half of its budget
(`train.py --average-from 0.5 --average-every 50`, latest weight averaging). Held to a rule written down before
it started, which asked for a margin this time (a least cost on sets C to F of at most 84 against 88, since
every variant since the eleventh had landed within six of it): alone it scored 94 (at 0.88; without unsure
replies the best raw figures yet, 450 right and 24 wrong facts, but its confidences separate them worse), and
did not ship; its mean with that checkpoint, declared the same way before it was made, scored 78 at 0.80
(442 right, 11 wrong facts, 42 deflections, 3 other halves; 81 at 0.85, 82, 84 and 89 above) and was the last
checkpoint, at 0.80. Set J was then scored for it (at 0.80; first, by a slip, at 0.85) and for the checkpoint before it as soon as J existed,
and I, H and G once: the rows in italics above. A seventeenth run made that checkpoint 192 wide
without changing what it computes (tools/demo/grow.py) and trained it 100 minutes on data version 12; by a rule
written before it started (either the run or its mean with its widened start ships at a least cost of at
most 72), neither shipped: 91 and 81 (unsure replies off, the mean: 452 right, 29 wrong facts). Set K, written
while it trained, was then scored once for that checkpoint. An eighteenth run, 40 minutes more from that mean
by the same rule, scored 109 and 92 (without unsure replies, its mean: 452 right, the most yet, and 26 wrong
facts; its confidences separate them worse). A nineteenth run (hard examples) and a twentieth (data version
13: three more outside writers' lines aimed at the last checkpoint's wrong facts) scored 88 and 75 by the same
rule, and did not ship (their rows above). A twenty-first run continued the twentieth 75 minutes (seed 21, 3,798
steps, its weights the mean of its second half's points) and met its rule: 69 at 0.80 (443 right, 7 wrong facts, 46
deflections, 2 other halves). It never shipped: it was kept outside the repository until its blind-set figures and
this card were done, and was lost with the machine before they were. The twenty-second run redid that path in one
run: 105 minutes from the last checkpoint on data version 13 (seed 22, 5,229 steps, its weights the mean of 58
points of its second half). By a rule written down before it started (it or its mean with its start ships at a
least cost on sets C to F of at most 72, computed by `tools/demo/judge.py` from replies without unsure lines and
their confidences), alone it scored 76 (at 0.85 and 0.88), and its mean with its start 72 at 0.85 (436 right, 5 wrong
facts, 56 deflections, 1 other half; 74 at 0.80, 73 at 0.88, 75 at 0.90, 80 at 0.93; without unsure replies 455 right
and 28 wrong facts, against the last checkpoint's 447 and 32). That mean shipped, at 0.85, chosen with no
margin to spare; on sets G to M, scored once for it: 789 right, 25 wrong facts, follow-ups 79 of 99 (its rows in
italics above). The twenty-third run went after the follow-ups: that checkpoint, unsure replies off, answered 37
of C to F's 45 follow-ups right, and four of its five wrong ones answered a follow-up about something the NPC
does not know with the fact just discussed. So data version 14 ends in a follow-up 35% of the time (25% in 13),
40% of them about what the NPC does not know (30%). The run: 100 minutes from that checkpoint (seed 23, 4,693
steps, its weights the mean of 47 points of its second half). The rule, written down before it started: the run
or its mean with its start ships if its least cost on sets C to F is at most 72 and its follow-ups right there,
at that threshold, are at least 35 of 45 (the last checkpoint's), the lower cost first. Alone it scored 74 (at
0.88; 34 follow-ups); its mean with its start 70 at 0.80 (446 right, 9 wrong facts, 41 deflections, 2 other halves;
72 at 0.85 and 0.88, 71 at 0.90, 76 at 0.93; without unsure replies 465 right and 21 wrong facts; 37 follow-ups
right). That mean was the last checkpoint, at 0.80; sets G to M were then scored for it once each (its rows in
italics above: 794 right, 28 wrong facts, follow-ups 79 of 99). The twenty-fourth run went after wrong facts said
with certainty: of the nine that checkpoint left on sets C to F at 0.80, six were chosen with near certainty in its
reasoning (the steel sword's price for "the regular sword, not the steel one" at 0.999; docs/training.md measures a
dozen other confidence measures, none robustly better), so data version 15 sets one of several things aside in a
fifth of the composed questions about prices ("Not the steel one. What's an iron sword?"). The run: 100 minutes from
that checkpoint (seed 24, 4,934 steps, its weights the mean of 49 points of its second half). The rule, written
down before it started: the run or its mean with its start ships if its least cost on sets C to F is below that
checkpoint's 70 and its follow-ups right there, at that threshold, are at least 37 of 45, the lower cost first.
Alone it scored 73 (at 0.80; 33 follow-ups); its mean with its start 66 at 0.80 (448 right, 8 wrong facts, 41
deflections, 1 other half; 73 at 0.85, 75 at 0.88, 79 at 0.90, 80 at 0.93; without unsure replies 464 right and
19 wrong facts; 37 follow-ups right). That mean is this checkpoint, at 0.80; sets G to N were then scored for it
once each, the figures at the top of this card.

| template phrasings (held out from the grammar of earlier versions) | accuracy |
| --- | --- |
| the three shipped NPCs, test sets 3 and 4 | {share(shipped['rows'])} |
| the same NPCs, the earlier held-out sets | {share(dev['rows'])} |
| a profile never seen in training (oswin, facts only in its prompt), all sets | {share(unseen['rows'])} |

### How size and learning rate were chosen

Each candidate trained for the same short budget and scored on a development set of generator lines
with another seed, minus every training line (tools/demo/sweep.py, tools/demo/devset.py; the
free-form sets were never used). Short budgets favour the smaller, faster model; the final run then
trained the chosen one for longer. The first h128 run shared the CPU with a test run (fewer steps); the
second round (r2) trained on the final data, with more questions nobody can answer.

{sweep_table(Path(__file__).with_name("sweep.json"))}

### Replies

A sample from sets A and B (the other sets' replies are left out, so that they stay unread).

| NPC | player | reply | score |
| --- | --- | --- | --- |
{examples}
"""
    (args.checkpoint / "MODEL_CARD.md").write_text(card)
    print(f"wrote {args.checkpoint / 'MODEL_CARD.md'} and loss.png: free-form A right {free['right']:.1%} wrong "
          f"{free['wrong']:.1%}; B right {blind['right']:.1%} wrong {blind['wrong']:.1%}; C right {blind_c['right']:.1%} "
          f"wrong {blind_c['wrong']:.1%}; D right {blind_d['right']:.1%} wrong {blind_d['wrong']:.1%} (without unsure "
          f"replies {sure_d['right']:.1%} / {sure_d['wrong']:.1%}); E right {blind_e['right']:.1%} wrong "
          f"{blind_e['wrong']:.1%} (without {sure_e['right']:.1%} / {sure_e['wrong']:.1%}); F right {blind_f['right']:.1%} "
          f"wrong {blind_f['wrong']:.1%} (without {sure_f['right']:.1%} / {sure_f['wrong']:.1%}); G right {blind_g['right']:.1%} "
          f"wrong {blind_g['wrong']:.1%} (without {sure_g['right']:.1%} / {sure_g['wrong']:.1%}); template {shipped['accuracy']:.1%}, "
          f"unseen {unseen['accuracy']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
