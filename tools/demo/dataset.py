"""Synthetic NPC conversations, rendered for training by `parley dataset`'s own renderer
(export/dataset.py), which renders prompts with the runtime's code: the demo model is the first user
of the path studios fine-tune with.

A conversation: the NPC's prefix (system + developer, from its profile), earlier turns (final answers
only), the player's line, then the assistant's analysis (brief reasoning), an optional action call,
and the final answer. Only the assistant's own tokens are trained on.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from runtime import dialogues
from export.dataset import Rendered, render
from runtime.prompt import user_content as prompt_user_content
from runtime.requests import ReplyRequest
from runtime.npc import ActionSpec, Npc
from runtime.profiles import parse_profile
from tools.demo import phrasing
from tools.demo.facts import HELD_OUT_SETS, QUESTIONS, SHIPPED, DemoNpc, Fact, random_npc

PROFILES = Path(__file__).resolve().parents[2] / "npc_profiles"
ACTION_REQUESTS = {"open_shop": ["Show me your wares.", "What do you have for sale?", "Let me see what you sell."],
                   "rent_room": ["I'd like a room for the night.", "Can I rent a room?", "A bed for tonight, please."],
                   "open_gate": ["Open the gate, I have a writ.", "Let me through, here is my writ."]}
ACTION_ARGS = {"open_shop": "{}", "rent_room": '{"nights": 1}', "open_gate": '{"reason": "writ"}'}
ACTION_FINAL = {"open_shop": "Have a look, {address}.", "rent_room": "Your room is upstairs, {address}. 8 silver.",
                "open_gate": "Open the gate! Pass, {address}."}


@dataclass(frozen=True)
class Reply:
    analysis: str
    final: str
    action: str | None = None


# The context the demo model is exported with (tools/demo/evaluate.py): prompts are cut to it as served.
MAX_CONTEXT = 2048


@dataclass(frozen=True)
class Example:
    npc: Npc
    history: tuple[dialogues.Turn, ...]
    say: str  # the player's line
    reply: Reply
    key: str | None  # for fact questions: what the final answer must contain
    state: tuple[tuple[str, str], ...] = ()  # game state sent with the line

    @property
    def user(self) -> str:
        """The user message as the engine renders it (for checks on the text)."""
        return prompt_user_content(ReplyRequest(npc=self.npc.id, text=self.say, game_state=dict(self.state)), self.say)

    def as_dialogue(self) -> dialogues.Example:
        """The example as a designer would write it in a dialogue file."""
        r = self.reply
        return dialogues.Example(npc=self.npc.id, say=self.say, reply=r.final, reasoning=r.analysis,
                                 state=self.state, action=r.action or "",
                                 action_args=tuple(sorted(json.loads(ACTION_ARGS.get(r.action, "{}")).items()))
                                 if r.action else (), history=self.history)


def npc_from_demo(d: DemoNpc) -> Npc:
    """Training-only NPCs get a profile built the same way a designer would write one."""
    return Npc(id=d.id, name=d.name, persona=d.persona, knowledge=tuple(dict.fromkeys(f.sentence for f in d.facts)),
               style=d.style, sample_lines=d.sample_lines, reasoning_effort=d.effort,
               fallback_lines=("One moment.",),
               actions=tuple(ActionSpec(n, desc, {"type": "object"}) for n, desc in d.actions))


def shipped_npcs() -> dict[str, tuple[DemoNpc, Npc]]:
    return {d.id: (d, parse_profile(PROFILES / f"{d.id}.toml")) for d in SHIPPED}


def articles(text: str) -> str:
    """'a iron sword' -> 'an iron sword'."""
    return re.sub(r"\b([Aa]) ([aeiouAEIOU])", lambda m: f"{m.group(1)}n {m.group(2)}", text)


HELD_OUT = {articles(t.format(**f.slots)) for d in SHIPPED for f in d.facts
            for templates in HELD_OUT_SETS.values() for t in templates(f.topic)}


def question(fact: Fact, rng: random.Random, held_out: bool) -> str:
    train, held = QUESTIONS[fact.topic]
    if held_out:
        return articles(rng.choice(held).format(**fact.slots))
    if rng.random() < 0.3:
        return articles(rng.choice(train).format(**fact.slots))
    return phrasing.phrase(fact.topic, rng, HELD_OUT, articles, **fact.slots)


def _topic_words(fact: Fact) -> str:
    if fact.slots:
        return f"{fact.topic} of the {next(iter(fact.slots.values()))}"
    return {"rumour": "rumours", "food": "the food", "job": "work"}.get(fact.topic, fact.topic)


def answer(d: DemoNpc, fact: Fact, rng: random.Random) -> str:
    if fact.topic == "price":
        item = fact.slots["item"]
        return articles(rng.choice([f"A {item} is {fact.key}, {d.address}.", f"That'll be {fact.key} for a {item}, {d.address}.",
                           f"{fact.key[0].upper() + fact.key[1:]} for a {item}, {d.address}."]))
    sentence = fact.sentence.replace("Her apprentice", "My apprentice")
    return rng.choice([f"{sentence}", f"{sentence[:-1]}, {d.address}."])


def reasoning(effort: str, what: str, known: str | None, style: str) -> str:
    parts = [f"They ask about {what}."]
    if known:
        parts.append(f"I know: {known}")
    if effort in ("medium", "high"):
        parts.append("Answer briefly, in my own voice.")
    if effort == "high":
        parts.append(f"My style: {style}")
    return " ".join(parts)


def one_turn(d: DemoNpc, npc: Npc, rng: random.Random, held_out: bool) -> tuple[str, Reply, str | None]:
    kind = rng.choices(["fact", "greet", "bye", "insult", "offtopic", "action"], [14, 2, 1, 1, 1, 2])[0]
    if kind == "action" and npc.actions:
        name = npc.actions[0].name
        return (rng.choice(ACTION_REQUESTS.get(name, ["Help me."])),
                Reply(reasoning(npc.reasoning_effort, f"using {name}", None, d.style),
                      ACTION_FINAL.get(name, "Done, {address}.").format(address=d.address), name), None)
    if kind == "fact" or kind == "action":
        fact = rng.choice(d.facts)
        return (question(fact, rng, held_out),
                Reply(reasoning(npc.reasoning_effort, _topic_words(fact), fact.sentence, d.style), answer(d, fact, rng)),
                fact.key)
    if kind == "greet":
        return phrasing.chitchat(phrasing.GREETINGS, rng), Reply(reasoning(npc.reasoning_effort, "nothing; a greeting", None, d.style),
                                            d.greeting), None
    if kind == "bye":
        return phrasing.chitchat(phrasing.FAREWELLS, rng), Reply(reasoning(npc.reasoning_effort, "nothing; a farewell", None, d.style),
                                            d.farewell), None
    line = phrasing.chitchat(phrasing.INSULTS if kind == "insult" else phrasing.OFF_TOPIC, rng)
    return line, Reply(reasoning(npc.reasoning_effort, "something I will not discuss", None, d.style), d.refusal), None


def game_state(rng: random.Random) -> tuple[tuple[str, str], ...]:
    """Now and then a line comes with some game state."""
    if rng.random() < 0.2:
        return (rng.choice([("time", "night"), ("weather", "rain"), ("player_gold", "12"), ("location", "square")]),)
    return ()


def make_examples(n: int, seed: int, held_out: bool = False, shipped_share: float = 0.6,
                  only: list[tuple[DemoNpc, Npc]] | None = None) -> list[Example]:
    rng = random.Random(seed)
    shipped = list(shipped_npcs().values()) if only is None else only
    out = []
    for i in range(n):
        if only is not None or rng.random() < shipped_share:
            d, npc = rng.choice(shipped)
        else:
            d = random_npc(rng, i)
            npc = npc_from_demo(d)
        history = []
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            text, reply, _ = one_turn(d, npc, rng, held_out)
            history.append(dialogues.Turn(text, reply.final, state=game_state(rng)))
        text, reply, key = one_turn(d, npc, rng, held_out)
        while only is not None and key is None:  # evaluation sets ask about facts only
            text, reply, key = one_turn(d, npc, rng, held_out)
        out.append(Example(npc, tuple(history), text, reply, key, game_state(rng)))
    return out


def rendered(tok, ex: Example) -> Rendered:
    """The example as `parley dataset` renders it: input_ids and labels."""
    return render(tok, ex.npc, ex.as_dialogue(), MAX_CONTEXT)


def prompt_ids(tok, ex: Example) -> list[int]:
    """Exactly what runtime/engine.py sends the model for this request."""
    r = rendered(tok, ex)
    return r.input_ids[:r.prompt_len]


class TextRecorder:
    """Stands in for the tokenizer to collect every text piece (to train the BPE on)."""

    def __init__(self):
        self.pieces: list[str] = []

    def special(self, name: str) -> int:
        return 0

    def text(self, s: str) -> list[int]:
        self.pieces.append(s)
        return [0]


class RawHarmonyTokenizer:
    """runtime.tokenizer.HarmonyTokenizer's interface over a bare tokenizers.Tokenizer (before export)."""

    def __init__(self, tokenizer):
        from runtime.harmony_tokens import OPTIONAL, REQUIRED
        self._tok = tokenizer
        self._tok.encode_special_tokens = True
        self.ids = {n: tokenizer.token_to_id(n) for n in REQUIRED + OPTIONAL}

    def special(self, name: str) -> int:
        return self.ids[name]

    def text(self, s: str) -> list[int]:
        return self._tok.encode(s, add_special_tokens=False).ids
