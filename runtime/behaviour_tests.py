"""Behaviour tests: the cases a profile holds (`[[tests]]`, docs/profiles.md), run against a live server
through the ordinary client, so they see exactly what a game gets. `parley test` runs them with an
exit code; Parley Studio shows the same results."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable

from runtime.npc import BehaviourTest, Npc


def fold(text: str) -> str:
    """Text as compared: case, accents and runs of whitespace aside."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def judge(case: BehaviourTest, done: dict[str, Any]) -> str | None:
    """Why one reply (a `done` frame) fails the case, or None if it passes."""
    text = fold(done.get("text", ""))
    if done["stats"].get("fallback_used"):  # the designer's own line: it passes only where the case allows it
        return None if case.allow_fallback else f"fell back to a fallback line: {done['text']!r}"
    if case.expect and not any(fold(word) in text for word in case.expect):
        return f"said none of {list(case.expect)}: {done['text']!r}"
    said = [word for word in case.reject if fold(word) in text]
    if said:
        return f"said {said[0]!r}: {done['text']!r}"
    if case.action and case.action not in [a["name"] for a in done.get("actions", [])]:
        return f"did not take the action {case.action!r}"
    return None


@dataclass
class CaseResult:
    npc: str
    case: BehaviourTest
    passed: int = 0
    runs: int = 0
    failures: list[str] = field(default_factory=list)  # why runs failed, the first few

    @property
    def ok(self) -> bool:
        return self.runs > 0 and self.passed >= self.case.pass_rate * self.runs - 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {"npc": self.npc, "line": self.case.line, "say": self.case.say, "passed": self.passed,
                "runs": self.runs, "pass_rate": self.case.pass_rate, "ok": self.ok, "failures": self.failures}


def run_case(client, npc: str, case: BehaviourTest, runs: int | None = None,
             deadline_ms: float | None = None) -> CaseResult:
    """The case `runs` times (default: its own), each with the NPC's sampling and seed 0, 1, 2, ... so a
    run can be repeated exactly."""
    from runtime.client import ParleyError

    result = CaseResult(npc, case)
    for seed in range(runs or case.runs):
        try:
            done = client.say(npc, case.say, speaker=case.speaker, state=dict(case.state) or None,
                              deadline_ms=deadline_ms, sampling={"seed": seed})
            why = judge(case, done)
        except ParleyError as exc:
            why = f"error {exc.code}: {exc.message}"
        result.runs += 1
        if why is None:
            result.passed += 1
        elif len(result.failures) < 3:
            result.failures.append(why)
    return result


def run_all(client, npcs: list[Npc], runs: int | None = None, deadline_ms: float | None = None,
            on_result: Callable[[CaseResult], None] | None = None) -> list[CaseResult]:
    results = []
    for npc in npcs:
        for case in npc.tests:
            result = run_case(client, npc.id, case, runs, deadline_ms)
            results.append(result)
            if on_result:
                on_result(result)
    return results
