"""Designers' example conversations, the data a studio fine-tunes its NPCs on.

One TOML file per NPC in the profiles folder's `dialogues/` (`npc_profiles/dialogues/brenna.toml`
for `brenna.toml`), each example an `[[examples]]` table:

    [[examples]]
    say = "How much for an iron sword?"      # the player's line (required)
    reply = "Forty silver, traveller."      # what the NPC says: the final channel (required)
    reasoning = "Iron sword: 40 silver."     # its hidden reasoning first (optional)
    speaker = "Ada"                          # who speaks (default "Player")
    state = { time = "night" }               # game state sent with the line (optional)
    action = { name = "open_shop", args = {} }   # an action the NPC takes before it answers (optional)
    history = [ { say = "Hello.", reply = "Welcome to my forge." } ]   # earlier turns (optional)

Checked like profiles: every problem names the file, the line and what is allowed (docs/training.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.npc import Npc
from runtime.profile_parser import (NAME_PATTERN, ProfileError, ProfileProblem, TableChecker, entry_lines,
                                    load_toml, parse_profile, read_profile_text, state_ok)

MAX_EXAMPLES = 10_000


def _turn_ok(value: Any) -> bool:
    return isinstance(value, dict) and set(value) <= {"say", "reply", "speaker", "state"} \
        and isinstance(value.get("say"), str) and value["say"].strip() != "" \
        and isinstance(value.get("reply"), str) and value["reply"].strip() != "" \
        and isinstance(value.get("speaker", "Player"), str) and 0 < len(value.get("speaker", "Player")) <= 80 \
        and state_ok(value.get("state", {}))


def _json_ok(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):  # a TOML date or time has no JSON form
        return False


def _action_ok(value: dict) -> bool:
    return set(value) <= {"name", "args"} and isinstance(value.get("name"), str) \
        and bool(NAME_PATTERN.match(value["name"])) and isinstance(value.get("args", {}), dict) \
        and _json_ok(value.get("args", {}))


EXAMPLE = {
    "say": (str, True, lambda v: 0 < len(v.strip()) and len(v) <= 4000, "the player's line, 1 to 4000 characters"),
    "reply": (str, True, lambda v: 0 < len(v.strip()) and len(v) <= 4000, "the NPC's answer, 1 to 4000 characters"),
    "reasoning": (str, False, lambda v: len(v) <= 8000, "the hidden reasoning before the answer, up to 8000 characters"),
    "speaker": (str, False, lambda v: 0 < len(v) <= 80, "1 to 80 characters"),
    "state": (dict, False, state_ok, "a table of up to 32 game-state keys with string, number or boolean values, "
                                     "2000 characters in all (keys and values)"),
    "action": (dict, False, _action_ok, "a table { name = \"one_of_its_actions\", args = { ... } } (one action "
                                        "per example; args as JSON has them: no dates or times)"),
    "history": (list, False, lambda v: len(v) <= 64 and all(_turn_ok(t) for t in v),
                "a list of up to 64 tables { say = \"...\", reply = \"...\" } (speaker and state optional)"),
}


@dataclass(frozen=True)
class Turn:
    say: str
    reply: str
    speaker: str = "Player"
    state: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Example:
    npc: str
    say: str
    reply: str
    reasoning: str = ""
    speaker: str = "Player"
    state: tuple[tuple[str, Any], ...] = ()
    action: str = ""
    action_args: tuple[tuple[str, Any], ...] = ()
    history: tuple[Turn, ...] = ()
    file: str = ""
    line: int | None = None


def dialogue_file(profiles: Path, npc_file: Path) -> Path:
    return profiles / "dialogues" / npc_file.name


def orphan_dialogues(profiles: Path) -> list[ProfileProblem]:
    """Dialogue files with no profile of their name (a typo, a renamed NPC): their examples would be lost."""
    folder = profiles / "dialogues"
    return [ProfileProblem(str(path), None, "", f"no profile {path.name} in {profiles} for these examples; name the "
                                                "file after its NPC's profile")
            for path in sorted(folder.glob("*.toml")) if not (profiles / path.name).is_file()] \
        if folder.is_dir() else []


def read_folder(profiles: Path) -> tuple[list[tuple[Npc, Path, list[Example]]], list[ProfileProblem]]:
    """Every NPC that has a dialogue file, with its examples; and the problems: orphan files, the
    profiles of those NPCs that do not parse, the dialogue files' own (`parley lint`, `parley dataset`)."""
    found, problems = [], orphan_dialogues(profiles)
    for profile in sorted(profiles.glob("*.toml")):
        path = dialogue_file(profiles, profile)
        if not path.is_file():
            continue
        try:
            npc = parse_profile(profile)
            found.append((npc, path, parse_dialogues(path, npc)))
        except ProfileError as exc:
            problems += exc.problems
    return found, problems


def parse_dialogues(path: Path, npc: Npc) -> list[Example]:
    """The examples of one NPC's dialogue file, or ProfileError listing every problem with its line."""
    text = read_profile_text(path)
    data = load_toml(path, text)
    c = TableChecker(path, text)
    for key in data:
        if key != "examples":
            c.problem("", key, "unknown key; a dialogue file holds [[examples]] tables only")
    raw = data.get("examples", [])
    if not isinstance(raw, list) or len(raw) > MAX_EXAMPLES:
        c.problem("", "examples", f"must be an array of up to {MAX_EXAMPLES} tables ([[examples]])")
        raw = []
    places = entry_lines(text, "examples")
    actions = {a.name for a in npc.actions}
    out = []
    for index, entry in enumerate(raw):
        start, keys = places[index] if index < len(places) else (None, {})
        if not isinstance(entry, dict):
            c.problems.append(ProfileProblem(str(path), start, "examples", "each entry must be a table"))
            continue
        before = len(c.problems)
        e = c.section(entry, EXAMPLE, "examples")
        for at in range(before, len(c.problems)):  # name the n-th example's own lines
            p = c.problems[at]
            c.problems[at] = ProfileProblem(p.file, keys.get(p.key.split(".")[-1], start), p.key, p.message)
        action = e.get("action", {})
        if action and action["name"] not in actions:
            c.problems.append(ProfileProblem(str(path), keys.get("action", start), "examples.action",
                                             f"{action['name']!r} is not one of {npc.id}'s actions "
                                             f"({', '.join(sorted(actions)) or 'none'})"))
        if len(c.problems) > before or "say" not in e or "reply" not in e:
            continue
        out.append(Example(
            npc=npc.id, say=e["say"], reply=e["reply"], reasoning=e.get("reasoning", ""),
            speaker=e.get("speaker", "Player"), state=tuple(e.get("state", {}).items()),  # in the file's order
            action=action.get("name", ""), action_args=tuple(sorted(action.get("args", {}).items())),
            history=tuple(Turn(t["say"], t["reply"], t.get("speaker", "Player"), tuple(t.get("state", {}).items()))
                          for t in e.get("history", [])),
            file=str(path), line=start))
    if c.problems:
        raise ProfileError(c.problems)
    return out
