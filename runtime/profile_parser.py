"""One NPC profile file (TOML that designers edit) validated into an Npc.

Validation reports every problem at once, each with the file, the line, the key,
what was wrong and what is allowed, so a designer fixes a file in one pass.
"""
from __future__ import annotations

import json
import os
import re
import stat
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.npc import EFFORTS, ActionSpec, BehaviourTest, Npc
from runtime.protocol import MAX_STATE_CHARS, MAX_STATE_ENTRIES, shown, speakable
from runtime.sampler import SamplingParams
from runtime.toml_key_depth import MAX_KEY_PARTS, longest_dotted_run

MAX_PROFILE_BYTES = 256 * 1024
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# File names Windows reserves for devices (with any extension): a profile so named cannot exist on a
# designer's or a player's Windows machine, however well it works where it was written.
WINDOWS_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                             *(f"lpt{i}" for i in range(1, 10))})


@dataclass(frozen=True)
class ProfileProblem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "key": self.key, "message": self.message}


class ProfileError(ValueError):
    def __init__(self, problems: list[ProfileProblem]):
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


def _table_header(line: str) -> str | None:
    """'[a.b]' or '[[a]]' -> 'a.b' / 'a'; None for other lines. String methods, not a regex: a line of
    '[' and thousands of spaces (valid inside a multi-line string) must not cost seconds."""
    stripped = line.strip()
    if not stripped.startswith("["):
        return None
    end = stripped.find("]")
    return stripped[1:end].strip("[ \t") if end > 0 else None


def line_index(text: str) -> dict[tuple[str, str], int]:
    """(table, key) -> the first line setting key inside [table] ('' for the top level), and
    (table, '') -> the table's header line: one pass, for every problem a file has."""
    index: dict[tuple[str, str], int] = {}
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _table_header(line)
        if header is not None:
            current = header
            index.setdefault((current, ""), number)
            continue
        key = _KEY.match(line)
        if key:
            index.setdefault((current, key.group(1)), number)
    return index


def entry_lines(text: str, table: str) -> list[tuple[int, dict[str, int]]]:
    """For each `[[table]]` entry, in order: its header line and the line of each key it sets (problems
    in the n-th entry name their own lines, not the first entry's)."""
    entries: list[tuple[int, dict[str, int]]] = []
    current: dict[str, int] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _table_header(line)
        if header is not None:
            current = None
            if header == table and line.strip().startswith("[["):
                current = {}
                entries.append((number, current))
            continue
        key = _KEY.match(line)
        if key and current is not None:
            current.setdefault(key.group(1), number)
    return entries


MAX_PROBLEMS = 50  # per file: a designer fixes the first ones; thousands would only slow the server


# key -> (type, required, check, allowed-values text)
def _positive(v) -> bool:
    return v > 0


def _spoken_line(x) -> bool:
    """A line the runtime says as it is (fallback, unsure): the game gets what the designer wrote."""
    # saying something: a letter, digit, punctuation mark or symbol (a zero-width space alone is said invisibly)
    return isinstance(x, str) and 0 < len(x) <= 300 and speakable(x) == x and \
        any(unicodedata.category(c)[0] in "LNPS" for c in x)


def _display_name(v: str) -> bool:
    """A name games show as it is (list_npcs): one line, no control or invisible format characters (a NUL cut
    it short in C), and something to see."""
    return 0 < len(v) <= 80 and not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for c in v) \
        and any(unicodedata.category(c)[0] in "LNPS" for c in v)


TOP = {
    "id": (str, False, lambda v: bool(ID_PATTERN.match(v)), "lowercase letters, digits, '-' and '_' (max 64)"),
    "name": (str, True, _display_name, "1 to 80 characters on one line, with a letter, digit, punctuation mark or "
                                       "symbol and no control or invisible format characters"),
    "persona": (str, True, lambda v: 0 < len(v) <= 4000, "1 to 4000 characters"),
    "knowledge": (list, False, lambda v: len(v) <= 64 and all(isinstance(x, str) and 0 < len(x) <= 500 for x in v),
                  "a list of up to 64 strings of 1 to 500 characters"),
    "reasoning_effort": (str, False, lambda v: v in EFFORTS, " | ".join(EFFORTS)),
    "fallback_lines": (list, True, lambda v: 0 < len(v) <= 32 and all(_spoken_line(x) for x in v),
                       "a list of 1 to 32 strings of 1 to 300 characters, each saying something (a letter, digit, "
                       "punctuation mark or symbol), with no control "
                       "characters but tab and line breaks"),
    "min_confidence": ((int, float), False, lambda v: 0 <= v < 1, "a number from 0 (off) up to, not including, 1"),
    "unsure_lines": (list, False, lambda v: 0 < len(v) <= 32 and all(_spoken_line(x) for x in v),
                     "a list of 1 to 32 strings of 1 to 300 characters, each saying something (a letter, digit, "
                     "punctuation mark or symbol), with no control "
                     "characters but tab and line breaks"),
    "world": (str, False, lambda v: len(v) <= 2000, "up to 2000 characters"),
}
STYLE = {
    "description": (str, False, lambda v: len(v) <= 2000, "up to 2000 characters"),
    "sample_lines": (list, False, lambda v: len(v) <= 16 and all(isinstance(x, str) and 0 < len(x) <= 300 for x in v),
                     "a list of up to 16 strings of 1 to 300 characters"),
}
BUDGET = {
    "deadline_ms": ((int, float), False, lambda v: 50 <= v <= 60000, "a number of milliseconds, 50 to 60000"),
    "max_reasoning_tokens": (int, False, lambda v: 0 <= v <= 2048, "an integer, 0 to 2048"),
    "max_final_tokens": (int, False, lambda v: 1 <= v <= 1024, "an integer, 1 to 1024"),
    "expected_final_tokens": (int, False, lambda v: 1 <= v <= 1024, "an integer, 1 to 1024"),
    "max_input_chars": (int, False, lambda v: 1 <= v <= 4000, "an integer, 1 to 4000"),
    "max_input_tokens": (int, False, lambda v: 1 <= v <= 2000, "an integer, 1 to 2000"),
}
SAMPLING = {
    "temperature": ((int, float), False, lambda v: 0 <= v <= 2, "a number, 0 (greedy) to 2"),
    "top_k": (int, False, lambda v: 0 <= v <= 1000, "an integer, 0 (no limit) to 1000"),
    "top_p": ((int, float), False, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "seed": (int, False, lambda v: 0 <= v < 2**63, "a non-negative integer"),
}
MAX_ACTIONS = 16
MAX_PARAMETER_DEPTH = 6
MAX_PARAMETER_CHARS = 2000


def _depth(value: Any, limit: int) -> int:
    """How deeply tables and lists nest in value, counting no further than limit + 1 (no recursion)."""
    deepest, level = 0, [value]
    while level and deepest <= limit:
        deepest += 1
        level = [x for v in level for x in (v.values() if isinstance(v, dict) else v if isinstance(v, list) else ())
                 if isinstance(x, (dict, list))]
    return deepest


def _parameters_ok(value: dict) -> bool:
    return (_depth(value, MAX_PARAMETER_DEPTH) <= MAX_PARAMETER_DEPTH
            and len(json.dumps(value, sort_keys=True, default=str)) <= MAX_PARAMETER_CHARS)


ACTION = {
    "name": (str, True, lambda v: bool(NAME_PATTERN.match(v)), "an identifier: letters, digits and '_'"),
    "description": (str, True, lambda v: 0 < len(v) <= 500, "1 to 500 characters"),
    "parameters": (dict, False, _parameters_ok,
                   f"a table describing the arguments (JSON-schema-like), nested at most {MAX_PARAMETER_DEPTH} "
                   f"deep and at most {MAX_PARAMETER_CHARS} characters as JSON"),
}


def _strings(limit: int, chars: int):
    return lambda v: len(v) <= limit and all(isinstance(x, str) and 0 < len(x) <= chars for x in v)


def state_ok(value: dict) -> bool:
    """A game-state table as requests carry it: up to 32 string keys, string/number/boolean values, at most
    2000 characters rendered (what the server accepts: a case beyond it would fail every run `too_large`)."""
    return isinstance(value, dict) and len(value) <= MAX_STATE_ENTRIES and all(
        isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in value.items()) and \
        sum(len(k) + len(str(v)) for k, v in value.items()) <= MAX_STATE_CHARS


TEST = {
    "say": (str, True, lambda v: 0 < len(v.strip()) and len(v) <= 1000, "the player's line, 1 to 1000 characters"),
    "expect": (list, False, _strings(16, 200), "a list of up to 16 strings: the reply contains at least one"),
    "reject": (list, False, _strings(16, 200), "a list of up to 16 strings: the reply contains none"),
    "action": (str, False, lambda v: bool(NAME_PATTERN.match(v)), "the name of one of the NPC's actions"),
    "allow_fallback": (bool, False, lambda v: True, "true or false (default false: a fallback line fails)"),
    "speaker": (str, False, lambda v: 0 < len(v) <= 80, "1 to 80 characters"),
    "state": (dict, False, state_ok, "a table of up to 32 game-state keys with string, number or boolean values, "
                                     "2000 characters in all (keys and values)"),
    "runs": (int, False, lambda v: 1 <= v <= 100, "an integer, 1 to 100"),
    "pass_rate": ((int, float), False, lambda v: 0 < v <= 1, "a number in (0, 1]"),
}
MAX_TESTS = 64
TABLES = {"style": STYLE, "budget": BUDGET, "sampling": SAMPLING}


class TableChecker:
    """Checks tables against a schema of key -> (type, required, check, what is allowed), collecting every
    problem with its line (profiles here; dialogue files in runtime/dialogues.py)."""

    def __init__(self, path: Path, text: str):
        self.file, self.text = str(path), text
        self.lines = line_index(text)
        self.problems: list[ProfileProblem] = []

    def problem(self, table: str, key: str, message: str) -> None:
        line = self.lines.get((table, key.split(".")[-1])) if key else None
        label = f"{table}.{key}" if table and key else (key or table)
        self.problems.append(ProfileProblem(self.file, line, label, message))

    def section(self, data: dict, schema: dict, table: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in data:
            if key not in schema:
                self.problem(table, key, f"unknown key; allowed here: {', '.join(schema)}")
        for key, (kind, required, check, allowed) in schema.items():
            if key not in data:
                if required:
                    self.problems.append(ProfileProblem(self.file, self.lines.get((table, "")) if table else None,
                                                        f"{table}.{key}" if table else key,
                                                        f"missing; expected {allowed}"))
                continue
            value = data[key]
            if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):  # True is no number
                self.problem(table, key, f"{shown(value)} has the wrong type; expected {allowed}")
            elif not check(value):
                self.problem(table, key, f"{shown(value)} is not allowed; expected {allowed}")
            else:
                out[key] = value
        return out


def toml_error_line(exc: "tomllib.TOMLDecodeError") -> int | None:
    """The line a TOML syntax error names (its `lineno` attribute exists only from Python 3.14)."""
    match = re.search(r"line (\d+)", str(exc))
    return int(match.group(1)) if match else None


def _key_line(places: list[tuple[int, dict[str, int]]], index: int, key: str) -> int | None:
    """The line of `key` in the index-th `[[table]]` entry (its header line if the key is not written there)."""
    if index >= len(places):
        return None
    start, keys = places[index]
    return keys.get(key, start)


def _in_entry(c: "TableChecker", before: int, places: list[tuple[int, dict[str, int]]], index: int) -> None:
    """The problems found since `before` are in the index-th entry: its own lines, not the first entry's."""
    for at in range(before, len(c.problems)):
        problem = c.problems[at]
        c.problems[at] = ProfileProblem(problem.file, _key_line(places, index, problem.key.split(".")[-1]),
                                        problem.key, problem.message)


def _read_profile_bytes(path: Path) -> bytes:
    """The file's bytes, if it is a regular file of at most MAX_PROFILE_BYTES. Opened without blocking
    and checked after opening: a FIFO or device named *.toml must not hang the server that reads it."""
    def problem(message: str) -> ProfileError:
        return ProfileError([ProfileProblem(str(path), None, "", message)])

    try:
        # O_BINARY: Windows' default text mode would end the file at a stray Ctrl-Z byte
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise problem(f"cannot read the file ({exc.strerror})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise problem("not a regular file (a folder, pipe, device or socket); a profile must be a plain text file")
        if st.st_size > MAX_PROFILE_BYTES:
            raise problem(f"file is {st.st_size} bytes; a profile may be at most {MAX_PROFILE_BYTES} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise problem(f"cannot read the file ({exc.strerror})") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_PROFILE_BYTES:
        raise problem(f"file is over {MAX_PROFILE_BYTES} bytes; a profile may be at most {MAX_PROFILE_BYTES} bytes")
    return data


def read_profile_text(path: Path) -> str:
    """A profile's text, with the same guards as parsing (regular file, size, UTF-8)."""
    try:
        return _read_profile_bytes(Path(path)).decode("utf-8-sig")  # a BOM (Windows editors write one) is no text
    except UnicodeDecodeError as exc:
        raise ProfileError([ProfileProblem(str(path), None, "", f"not UTF-8 text ({exc.reason})")]) from exc


def parse_profile(path: Path) -> Npc:
    """One profile file -> Npc, or ProfileError listing every problem."""
    path = Path(path)
    raw_bytes = _read_profile_bytes(path)
    try:
        text = raw_bytes.decode("utf-8-sig")  # a byte order mark, as some Windows editors save, is not the text
    except UnicodeDecodeError as exc:
        raise ProfileError([ProfileProblem(str(path), None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                                                 "save the file as UTF-8")]) from exc
    return parse_profile_text(path, text)


def load_toml(path: Path, text: str) -> dict:
    """A profile's (or dialogue file's) TOML, or ProfileError: a syntax error with its line, or a text
    that would cost tomllib too much (a key of thousands of parts, values nested past its recursion)."""
    parts, line = longest_dotted_run(text)
    if parts > MAX_KEY_PARTS:
        raise ProfileError([ProfileProblem(str(path), line, "", f"a key or table name of {parts} dotted parts; "
                                                               f"a profile's have at most {MAX_KEY_PARTS}")])
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError([ProfileProblem(str(path), toml_error_line(exc), "", f"TOML syntax error: {exc}")]) from exc
    except RecursionError as exc:  # tomllib recurses once per level of [[[...]]] or {a = {b = ...}}
        raise ProfileError([ProfileProblem(str(path), None, "", "values are nested too deeply for a profile; "
                                                                "use plain strings, lists and tables")]) from exc


def parse_profile_text(path: Path, text: str) -> Npc:
    """A profile's text, as if read from `path` (which names it in problems and gives the default id)."""
    path = Path(path)
    data = load_toml(path, text)
    c = TableChecker(path, text)
    top = c.section({k: v for k, v in data.items() if k not in TABLES and k not in ("actions", "tests")}, TOP, "")
    tables: dict[str, dict] = {}
    for name, schema in TABLES.items():
        value = data.get(name, {})
        if not isinstance(value, dict):
            c.problem("", name, f"must be a table ([{name}])")
            value = {}
        tables[name] = c.section(value, schema, name)
    actions = []
    raw_actions = data.get("actions", [])
    if not isinstance(raw_actions, list):
        c.problem("", "actions", "must be an array of tables ([[actions]])")
        raw_actions = []
    if len(raw_actions) > MAX_ACTIONS:
        c.problem("", "actions", f"{len(raw_actions)} actions; an NPC may have at most {MAX_ACTIONS} (each one is "
                                 "described in every prompt)")
        raw_actions = []
    action_places = entry_lines(c.text, "actions")
    for index, action in enumerate(raw_actions):
        if not isinstance(action, dict):
            c.problem("", "actions", "each entry must be a table ([[actions]])")
            continue
        before = len(c.problems)
        a = c.section(action, ACTION, "actions")
        _in_entry(c, before, action_places, index)
        if "name" in a and "description" in a:
            actions.append(ActionSpec(a["name"], a["description"], a.get("parameters", {})))
    tests = _tests(c, data.get("tests", []), {a.name for a in actions})
    npc_id = top.get("id", path.stem)
    if "id" not in data and not ID_PATTERN.match(npc_id):
        c.problem("", "id", f"the file name {path.stem!r} is not a valid NPC id; rename the file or set id "
                            f"(lowercase letters, digits, '-' and '_')")
    budget, style, sampling = tables["budget"], tables["style"], tables["sampling"]
    if budget.get("expected_final_tokens", 32) > budget.get("max_final_tokens", 80):
        c.problem("budget", "expected_final_tokens", "must not exceed max_final_tokens")
    if top.get("min_confidence", 0) and budget.get("max_reasoning_tokens", 96) == 0:
        c.problem("", "min_confidence", "judges the NPC's hidden reasoning, and max_reasoning_tokens = 0 leaves it "
                                        "none, so every reply would be unsure: remove one of the two")
    if c.problems:
        shown = c.problems[:MAX_PROBLEMS]
        if len(c.problems) > MAX_PROBLEMS:
            shown.append(ProfileProblem(str(path), None, "", f"... and {len(c.problems) - MAX_PROBLEMS} more "
                                                             "problems; fix these first"))
        raise ProfileError(shown)
    return Npc(
        id=npc_id, name=top["name"], persona=top["persona"], knowledge=tuple(top.get("knowledge", ())),
        style=style.get("description", ""), sample_lines=tuple(style.get("sample_lines", ())),
        reasoning_effort=top.get("reasoning_effort", "low"), deadline_ms=float(budget.get("deadline_ms", 3000)),
        max_reasoning_tokens=budget.get("max_reasoning_tokens", 96), max_final_tokens=budget.get("max_final_tokens", 80),
        expected_final_tokens=budget.get("expected_final_tokens", 32),
        max_input_chars=budget.get("max_input_chars", 400), max_input_tokens=budget.get("max_input_tokens", 256),
        sampling=SamplingParams(temperature=float(sampling.get("temperature", 0.7)), top_k=sampling.get("top_k", 40),
                                top_p=float(sampling.get("top_p", 0.95)), seed=sampling.get("seed")),
        fallback_lines=tuple(top["fallback_lines"]), min_confidence=float(top.get("min_confidence", 0.0)),
        unsure_lines=tuple(top.get("unsure_lines", ())), actions=tuple(actions), world=top.get("world", ""),
        tests=tests)


def _tests(c: "TableChecker", raw: Any, actions: set[str]) -> tuple[BehaviourTest, ...]:
    """The profile's [[tests]]: each checked like any table; an action must be one the NPC has."""
    if not isinstance(raw, list):
        c.problem("", "tests", "must be an array of tables ([[tests]])")
        return ()
    if len(raw) > MAX_TESTS:
        c.problem("", "tests", f"{len(raw)} test cases; a profile may hold at most {MAX_TESTS}")
        return ()
    places = entry_lines(c.text, "tests")
    out = []
    for index, case in enumerate(raw):
        if not isinstance(case, dict):
            c.problem("", "tests", "each entry must be a table ([[tests]])")
            continue
        before = len(c.problems)
        t = c.section(case, TEST, "tests")
        line = places[index][0] if index < len(places) else None
        _in_entry(c, before, places, index)
        if t.get("action") and t["action"] not in actions:
            c.problems.append(ProfileProblem(c.file, _key_line(places, index, "action"), "tests.action", f"{t['action']!r} is not one of this "
                                             f"NPC's actions ({', '.join(sorted(actions)) or 'none'})"))
            continue
        if "say" not in t or len(c.problems) > before:
            continue
        out.append(BehaviourTest(
            say=t["say"], expect=tuple(t.get("expect", ())), reject=tuple(t.get("reject", ())),
            action=t.get("action", ""), allow_fallback=t.get("allow_fallback", False),
            speaker=t.get("speaker", "Player"), state=tuple(t.get("state", {}).items()),
            runs=t.get("runs", 5), pass_rate=float(t.get("pass_rate", 0.8)), line=line))
    return tuple(out)
