"""The live set of NPC profiles: reloads edited files, keeps the last good version of a broken one."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from runtime.context_fit import ContextFit
from runtime.npc import Npc
from runtime.profile_parser import ProfileError, ProfileProblem, line_index, parse_profile, read_profile_text
from runtime.protocol import loggable

log = logging.getLogger(__name__)


@dataclass
class ReloadResult:
    loaded: list[str] = field(default_factory=list)  # NPCs (re)loaded from changed files
    kept: list[str] = field(default_factory=list)  # NPCs whose file is broken: the last good version serves
    removed: list[str] = field(default_factory=list)
    problems: list[ProfileProblem] = field(default_factory=list)  # every current problem, changed or not

    @property
    def changed(self) -> bool:
        return bool(self.loaded or self.removed)


class ProfileRegistry:
    def __init__(self, folder: Path | str, fit: ContextFit | None = None):
        self.folder = Path(folder)
        self.fit = fit  # when the model is known: NPCs that can never fit its context are refused
        self.npcs: dict[str, Npc] = {}
        self._id_of: dict[Path, str] = {}  # file -> the NPC it last defined successfully
        self._stamp: dict[Path, tuple[int, int]] = {}
        self._problems: dict[Path, list[ProfileProblem]] = {}
        self._wants_id: dict[Path, str] = {}  # files refused because another file holds their id

    def check_against(self, fit: ContextFit) -> ReloadResult:
        """Start checking NPCs against a model's context: every file is read again, and NPCs loaded
        before that no longer fit are dropped (there is no good version of them to keep)."""
        self.fit, self.npcs, self._id_of, self._stamp, self._problems = fit, {}, {}, {}, {}
        self._wants_id = {}
        return self.reload()

    def _stamps(self) -> dict[Path, tuple[int, int]]:
        stamps = {}
        for path in sorted(self.folder.glob("*.toml")) if self.folder.is_dir() else []:
            try:
                st = path.stat()
            except OSError:
                try:  # there, but not to be followed (a link to itself or to nothing): a broken file
                    st = path.lstat()
                except OSError:
                    continue  # vanished between listing and stat: treated as deleted this round
                stamps[path] = (st.st_mtime_ns, -1)  # -1: never a real size, so it is read (and refused)
                continue
            stamps[path] = (st.st_mtime_ns, st.st_size)
        return stamps

    def has_changes(self) -> bool:
        if not self.folder.is_dir():  # gone: said once, then quiet until it is back
            return self.folder not in self._problems
        return self.folder in self._problems or self._stamps() != self._stamp

    def reload(self) -> ReloadResult:
        result = self._scan(ReloadResult())
        # a file refused for another's id is read again once that id is free (its owner deleted or renamed):
        # its own stamp has not changed, so no scan would (an NPC vanished for good this way)
        while freed := [p for p, want in self._wants_id.items() if want not in self._id_of.values()]:
            for path in freed:
                del self._wants_id[path]
                self._stamp.pop(path, None)
            result = self._scan(result)
        result.removed = [i for i in result.removed if i not in self.npcs]  # its id came back from another file
        result.problems = [p for problems in self._problems.values() for p in problems]
        for p in result.problems:
            log.warning("profile problem: %s", loggable(p))  # a file named "x\n<forged line>.toml" stays one line
        if result.kept:
            log.warning("keeping the last good version of %s until their files are fixed", ", ".join(result.kept))
        return result

    def _scan(self, result: ReloadResult) -> ReloadResult:
        """Read the files whose stamp changed; the result gathers what happened."""
        stamps = self._stamps()  # first: a folder gone while it was listed must not read as every file deleted
        if not self.folder.is_dir():
            if self._stamp:  # it was there: renamed away or mid-checkout; its NPCs serve until it is back
                self._problems[self.folder] = [ProfileProblem(str(self.folder), None, "", "the profiles folder is "
                                                              "gone; its NPCs keep serving until it is back")]
                return result
            self._problems = {self.folder: [ProfileProblem(str(self.folder), None, "",
                                                           "not a folder of NPC profiles (*.toml)")]}
        else:
            self._problems.pop(self.folder, None)
        for path in [p for p in self._stamp if p not in stamps]:  # deleted files
            npc_id = self._id_of.pop(path, None)
            self._problems.pop(path, None)
            self._wants_id.pop(path, None)
            if npc_id and npc_id not in self._id_of.values():
                self.npcs.pop(npc_id, None)
                result.removed.append(npc_id)
        for path, stamp in stamps.items():
            if self._stamp.get(path) == stamp:
                continue
            try:
                npc = parse_profile(path)
                misfit = self.fit.problem(npc) if self.fit is not None else None
                if misfit:
                    raise ProfileError([ProfileProblem(str(path), None, "", misfit)])
            except Exception as exc:  # noqa: BLE001 - a file no check foresaw must not stop the others
                self._problems[path] = exc.problems if isinstance(exc, ProfileError) else [
                    ProfileProblem(str(path), None, "", f"could not be loaded ({type(exc).__name__}: {exc})")]
                self._wants_id.pop(path, None)
                if path in self._id_of:
                    result.kept.append(self._id_of[path])
                continue
            owner = next((p for p, i in self._id_of.items() if i == npc.id and p != path), None)
            if owner is not None:
                try:
                    line = line_index(read_profile_text(path)).get(("", "id"))
                except ProfileError:  # replaced since it was parsed: the next scan reads it again
                    line = None
                self._problems[path] = [ProfileProblem(str(path), line, "id", f"NPC id {npc.id!r} is already "
                                                       f"used by {owner}; ids must be unique")]
                self._wants_id[path] = npc.id
                if path in self._id_of:  # a broken edit like any other: its last good version serves
                    result.kept.append(self._id_of[path])
                continue
            old = self._id_of.get(path)
            if old and old != npc.id:
                self.npcs.pop(old, None)
                result.removed.append(old)
            self._problems.pop(path, None)
            self._wants_id.pop(path, None)
            self._id_of[path] = npc.id
            self.npcs[npc.id] = npc
            result.loaded.append(npc.id)
        self._stamp = stamps
        return result
