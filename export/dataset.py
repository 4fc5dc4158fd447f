"""Training examples rendered exactly as Parley serves them: what a studio fine-tunes on.

The prompt comes from the runtime's own code (runtime/prompt.py, which the engine uses for every
reply): the NPC's system and developer messages from its profile, the earlier turns as the engine keeps
them, the player's line with speaker and game state, cut to the profile's limits. The completion is what
the model must write after `<|start|>assistant`: its reasoning in the analysis channel, an action call,
the engine's acknowledgement of the call (not trained on: the engine writes it), and the answer in the
final channel. `labels` is -100 where nothing is trained.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime import harmony, protocol
from runtime import prompt as prompts
from runtime.actions import ActionCalls
from runtime.context_fit import reply_reserve
from runtime.harmony import Turn
from runtime.npc import Npc
from runtime.requests import ReplyRequest
from runtime.dialogues import Example

IGNORE = -100  # the label of a token not trained on (what PyTorch's cross entropy skips)


@dataclass(frozen=True)
class Rendered:
    input_ids: list[int]
    labels: list[int]
    prompt_len: int

    def to_json(self, example: Example) -> str:
        """One JSON line: `labels` for trainers that take them (transformers' Trainer, `parley finetune`),
        `completion_mask` (1 where trained) for those that build labels themselves (TRL's SFTTrainer)."""
        return json.dumps({"npc": example.npc, "file": example.file, "line": example.line,
                           "input_ids": self.input_ids, "labels": self.labels,
                           "completion_mask": [int(label != IGNORE) for label in self.labels]})


def request_for(example: Example, session: bool) -> ReplyRequest:
    """The reply request a game would send for this example's line."""
    return ReplyRequest(npc=example.npc, text=example.say, speaker=example.speaker, game_state=dict(example.state),
                        session_id="training" if session else None)


def history_turns(tok, npc: Npc, example: Example) -> list[Turn]:
    """Earlier turns as the engine keeps them: the user message it rendered (the line cut to the NPC's
    limits, with speaker and game state), and the NPC's spoken reply."""
    turns = []
    for t in example.history:
        req = ReplyRequest(npc=example.npc, text=t.say, speaker=t.speaker, game_state=dict(t.state))
        said = protocol.speakable(t.reply).strip(protocol.REPLY_WHITESPACE)  # as the engine keeps a reply
        turns.append(Turn(prompts.user_message(tok, npc, req)[0], said))
    return turns


def render(tok, npc: Npc, example: Example, max_context: int) -> Rendered:
    force_len = len(harmony.force_final(tok, in_message=True))
    p = prompts.build(tok, npc, request_for(example, bool(example.history)), history_turns(tok, npc, example),
                      max_context, reply_reserve(npc, force_len))
    ids, labels = list(p.ids), [IGNORE] * len(p.ids)

    def add(segment: list[int], trained: bool) -> None:
        ids.extend(segment)
        labels.extend(segment if trained else [IGNORE] * len(segment))

    s = tok.special
    opened = True  # the prompt ends with `<|start|>assistant`: the first message's header comes next
    if example.reasoning:
        add([s("<|channel|>")] + tok.text("analysis") + [s("<|message|>")] + tok.text(example.reasoning)
            + [s("<|end|>")], True)
        opened = False
    if example.action:
        if not opened:
            add(harmony.assistant_open(tok), True)
        args = json.dumps(dict(example.action_args), sort_keys=True)
        add([s("<|channel|>")] + tok.text(f"commentary to=functions.{example.action}") + [s("<|message|>")]
            + tok.text(args) + [s("<|call|>")], True)
        calls = ActionCalls(npc, "")
        calls.last_recipient = f"functions.{example.action}"
        add(calls.acknowledgement(tok), False)  # the engine's own tokens after a call, as it injects them
        opened = True
    if not opened:
        add(harmony.assistant_open(tok), True)
    add([s("<|channel|>")] + tok.text("final") + [s("<|message|>")] + tok.text(example.reply) + [s("<|return|>")],
        True)
    return Rendered(ids, labels, len(p.ids))


class CheckpointTokenizer:
    """The harmony tokenizer's two doors over a Hugging Face checkpoint's tokenizer.json (no model folder
    needed): plain text never becomes special tokens."""

    def __init__(self, tokenizer: Path, vocab_size: int):
        from tokenizers import Tokenizer

        from export.tokenizer_check import special_token_ids

        self._tok = Tokenizer.from_file(str(tokenizer))
        self._tok.encode_special_tokens = True
        self.ids = special_token_ids(tokenizer, vocab_size)

    def special(self, name: str) -> int:
        return self.ids[name]

    def text(self, s: str) -> list[int]:
        return self._tok.encode(s, add_special_tokens=False).ids


DEFAULT_MAX_CONTEXT = 4096  # `parley export`'s default (ExportOptions.max_context; a test keeps them equal)


def budget_warnings(tok, npc: Npc, example: Example) -> list[str]:
    """Where an example would be cut when served: its reasoning over the NPC's max_reasoning_tokens, or its
    answer over max_final_tokens (trained in full, it would never be said in full)."""
    warnings = []
    reasoning = len(tok.text(example.reasoning)) + 4 if example.reasoning else 0  # with its message header
    if reasoning > npc.max_reasoning_tokens:
        warnings.append(f"the reasoning is about {reasoning} tokens; {npc.id}'s max_reasoning_tokens is "
                        f"{npc.max_reasoning_tokens}, so served replies would be cut short of it")
    final = len(tok.text(example.reply)) + 1
    if final > npc.max_final_tokens:
        warnings.append(f"the reply is {final} tokens; {npc.id}'s max_final_tokens is {npc.max_final_tokens}, "
                        "so it would be cut when served")
    return warnings


def load_tokenizer(path: Path) -> tuple[Any, int]:
    """(tokenizer, max context) from a model folder (manifest.json) or a Hugging Face checkpoint (then the
    context `parley export` gives by default, or the model's own if smaller)."""
    if (path / "manifest.json").is_file():
        from runtime.manifest import Manifest
        from runtime.tokenizer import HarmonyTokenizer

        manifest = Manifest.read(path)
        return HarmonyTokenizer(path, manifest), manifest.kv_cache.max_context
    if (path / "config.json").is_file():
        from export.checkpoint_config import is_original, read_config, tokenizer_file

        config, raw = read_config(path)  # either layout; no torch
        found = tokenizer_file(path, is_original(raw))
        if found is not None:
            return CheckpointTokenizer(found, config.vocab_size), min(DEFAULT_MAX_CONTEXT,
                                                                      config.max_position_embeddings)
    raise FileNotFoundError(f"{path}: neither a model folder (manifest.json) nor a checkpoint (tokenizer.json)")
