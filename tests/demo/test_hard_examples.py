"""Hard examples (tools/demo/hard_examples.py): the shipped demo checkpoint and tokenizer ranking conversations by
how sure their hidden reasoning is."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tokenizers import Tokenizer  # noqa: E402

from tools.demo import dataset  # noqa: E402
from tools.demo.hard_examples import hardest, hardness, reasoning_positions  # noqa: E402
from tools.demo.train import encode  # noqa: E402

CHECKPOINT = Path(__file__).resolve().parents[2] / "tools" / "demo" / "checkpoint"


@pytest.fixture(scope="module")
def tok():
    return dataset.RawHarmonyTokenizer(Tokenizer.from_file(str(CHECKPOINT / "tokenizer.json")))


def fact_questions(n: int = 6) -> list[dataset.Example]:
    """Brenna's first fact questions with no earlier turns, each about a different fact."""
    brenna = dataset.shipped_npcs()["brenna"]
    seen, out = set(), []
    for ex in dataset.make_examples(200, seed=7, held_out=True, only=[brenna]):
        if not ex.history and ex.key not in seen:
            seen.add(ex.key)
            out.append(ex)
    return out[:n]


def test_the_positions_are_the_analysis_message_and_nothing_else(tok):
    raw = Tokenizer.from_file(str(CHECKPOINT / "tokenizer.json"))
    for ex in fact_questions():
        ids, labels = encode(tok, ex)
        at = reasoning_positions(tok, ids)
        assert raw.decode([ids[p] for p in at]) == ex.reply.analysis
        assert all(labels[p] == ids[p] for p in at)  # the model is trained to write every one of them


def test_reasoning_that_misreads_the_question_is_the_hardest(tok):
    model = transformers.GptOssForCausalLM.from_pretrained(CHECKPOINT, dtype=torch.float32)
    questions = fact_questions()
    assert len(questions) >= 3
    # each question once with its own reasoning, and the first with the second's (another fact named)
    misread = dataclasses.replace(questions[0], reply=questions[1].reply)
    convs = questions + [misread]
    scores = hardness(model, [encode(tok, ex) for ex in convs], tok, pad=tok.special("<|endoftext|>"),
                      progress=False)
    # the same line, its reasoning naming another fact: under 5% likely (e^-3) where its own is over 90%
    assert scores[0] < 0.1 and scores[-1] > 3.0
    assert hardest(scores, 1) == [len(convs) - 1]


def test_hardest_keeps_the_highest_scores_in_their_order_ties_to_the_earlier():
    assert hardest([0.1, 2.0, 0.5, 2.0, 3.0], 3) == [1, 3, 4]
    assert hardest([1.0, 1.0, 1.0], 2) == [0, 1]
