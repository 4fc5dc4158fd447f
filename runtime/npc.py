"""What the engine needs to know about one NPC. Profiles (TOML files) are parsed into this."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from runtime.sampler import SamplingParams

EFFORTS = ("low", "medium", "high")


@dataclass(frozen=True)
class ActionSpec:
    """Something the NPC may do in the game, offered to the model as a harmony tool."""
    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)  # JSON-schema-like


@dataclass(frozen=True)
class BehaviourTest:
    """A test case a profile holds (`[[tests]]`): a player line, and what every reply to it must (or must
    not) hold; run `runs` times with the NPC's sampling, it passes if `pass_rate` of the runs do
    (runtime/behaviour_tests.py, `parley test`)."""
    say: str
    expect: tuple[str, ...] = ()  # the reply contains at least one of these (case and accents aside)
    reject: tuple[str, ...] = ()  # ... and none of these
    action: str = ""  # the NPC takes this action
    allow_fallback: bool = False  # a fallback line passes (else it fails the run)
    speaker: str = "Player"
    state: tuple[tuple[str, Any], ...] = ()  # game state, as (key, value) pairs
    runs: int = 5
    pass_rate: float = 0.8
    line: int | None = None  # where it starts in its file


@dataclass(frozen=True)
class Npc:
    id: str
    name: str
    persona: str
    knowledge: tuple[str, ...] = ()
    style: str = ""
    sample_lines: tuple[str, ...] = ()
    reasoning_effort: str = "low"
    deadline_ms: float = 3000.0
    max_reasoning_tokens: int = 96
    max_final_tokens: int = 80
    expected_final_tokens: int = 32
    max_input_chars: int = 400
    max_input_tokens: int = 256
    sampling: SamplingParams = SamplingParams()
    fallback_lines: tuple[str, ...] = ("Hm. Give me a moment.",)
    # When the hidden reasoning was unsure (a token it chose had a probability below min_confidence), the
    # NPC says one of unsure_lines (else a fallback line) instead of the answer it reasoned towards: a
    # wrong fact said with confidence is worse than "I couldn't say". 0 turns it off.
    min_confidence: float = 0.0
    unsure_lines: tuple[str, ...] = ()
    actions: tuple[ActionSpec, ...] = ()
    world: str = ""
    tests: tuple[BehaviourTest, ...] = field(default=(), compare=False)

    def developer_text(self) -> str:
        """The developer message: who the NPC is, what it knows, how it talks, what it can do."""
        parts = [f"# Instructions\nYou are {self.name}. {self.persona}".rstrip()]
        if self.knowledge:
            parts.append("# Knowledge\n" + "\n".join(f"- {fact}" for fact in self.knowledge))
        if self.style:
            parts.append("# Speaking style\n" + self.style)
        if self.sample_lines:
            parts.append("# Sample lines\n" + "\n".join(f"- {line}" for line in self.sample_lines))
        if self.actions:
            lines = ["# Tools", "## functions", "namespace functions {"]
            for a in self.actions:
                lines.append(f"// {a.description}")
                lines.append(f"type {a.name} = (_: {json.dumps(a.parameters, sort_keys=True)}) => any;")
            lines.append("} // namespace functions")
            parts.append("\n".join(lines))
        return "\n\n".join(parts)
