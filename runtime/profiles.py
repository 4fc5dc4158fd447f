"""NPC profiles: TOML files that designers edit, validated into Npc objects.

This is the module to import: `load_profiles` reads a folder once (what `parley lint` checks), with the
same rules the server's ProfileRegistry reloads by; one file is parsed by runtime/profile_parser.py,
whose names are available here too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.npc import Npc
from runtime.profile_parser import (MAX_PROFILE_BYTES, ProfileError, ProfileProblem, line_index, parse_profile,
                                    read_profile_text)
from runtime.profile_registry import ProfileRegistry

if TYPE_CHECKING:
    from runtime.context_fit import ContextFit

__all__ = ["MAX_PROFILE_BYTES", "LoadReport", "ProfileError", "ProfileProblem", "line_index", "load_profiles",
           "parse_profile", "read_profile_text"]


@dataclass
class LoadReport:
    npcs: dict[str, Npc]
    problems: list[ProfileProblem]


def load_profiles(folder: Path, fit: "ContextFit | None" = None) -> LoadReport:
    """Every *.toml in folder, once (what `parley lint` checks); good profiles load despite broken ones.
    With `fit` (a model's ContextFit), NPCs whose prompt cannot fit that model's context are problems."""
    registry = ProfileRegistry(folder, fit)
    result = registry.reload()
    return LoadReport(registry.npcs, result.problems)
