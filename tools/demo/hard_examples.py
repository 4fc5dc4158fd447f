"""Hard examples: the generated conversations whose hidden reasoning the model being trained gets most wrong.

The demo's reasoning is a function of what the player meant ("They ask about the price of the steel sword. I
know: ..."), so its tokens carry no free choice: a reasoning token the model gives a low probability is a
misunderstanding, and exactly what the runtime's unsure check (runtime/confidence.py) reads. The final
answer's tokens are left out: its wording is chosen at random among equals, and would rank conversations
by that chance instead. `train.py --hard-pool N --hard-keep K` scores N fresh conversations with the
starting checkpoint and trains on the K hardest beside its usual data.
"""
from __future__ import annotations

import sys
import time

import torch

from runtime.harmony import ANALYSIS


def reasoning_positions(tok, input_ids: list[int]) -> list[int]:
    """Positions of the tokens inside analysis messages (each `<|channel|>analysis<|message|>` up to its
    `<|end|>`, not the `<|end|>` itself)."""
    channel, message, end = tok.special("<|channel|>"), tok.special("<|message|>"), tok.special("<|end|>")
    name = tok.text(ANALYSIS)
    out, inside, i = [], False, 0
    while i < len(input_ids):
        t = input_ids[i]
        if inside:
            if t == end:
                inside = False
            else:
                out.append(i)
        elif t == channel and input_ids[i + 1:i + 1 + len(name)] == name and \
                input_ids[i + 1 + len(name):i + 2 + len(name)] == [message]:
            inside, i = True, i + 1 + len(name)  # past the name; the message token is skipped below
        i += 1
    return out


def hardness(model, data, tok, batch_tokens: int = 8192, pad: int = 0, progress: bool = True) -> list[float]:
    """For each (input_ids, labels) conversation: the largest negative log-probability the model gives a
    reasoning token it should write (a label), 0 where it writes none."""
    positions = [[p for p in reasoning_positions(tok, x) if y[p] != -100] for x, y in data]
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]))
    scores = [0.0] * len(data)
    start, done, shown = time.monotonic(), 0, time.monotonic()
    model.eval()
    with torch.no_grad():
        i = 0
        while i < len(order):
            width = len(data[order[i]][0])
            rows = max(1, batch_tokens // width)
            idx = order[i:i + rows]
            width = max(len(data[j][0]) for j in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, j in enumerate(idx):
                ids[r, :len(data[j][0])], mask[r, :len(data[j][0])] = torch.tensor(data[j][0]), 1
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
            for r, j in enumerate(idx):
                if positions[j]:
                    # a label at position p is predicted by the logits at p - 1
                    at = torch.tensor(positions[j])
                    chosen = logp[r, at - 1, torch.tensor([data[j][1][p] for p in positions[j]])]
                    scores[j] = float(-chosen.min())
            i += len(idx)
            done += len(idx)
            if progress and time.monotonic() - shown >= 30:  # a line every half minute
                shown = time.monotonic()
                rate = done / max(time.monotonic() - start, 1e-9)
                print(f"scored {done}/{len(data)} conversations, {rate:.0f}/s, "
                      f"about {(len(data) - done) / rate / 60:.1f} min left", file=sys.stderr, flush=True)
    return scores


def hardest(scores: list[float], keep: int) -> list[int]:
    """Indices of the `keep` highest scores (ties: the earlier first), in their original order."""
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:keep]
    return sorted(ranked)
