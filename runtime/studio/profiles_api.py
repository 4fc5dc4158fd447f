"""What the studio does with profile files: list them with their live status, lint text as it is typed
(the same checks as `parley lint`), and save it atomically, only inside the profiles folder."""
from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from runtime.context_fit import ContextFit
from runtime.held_files import retry_while_held
from runtime.profile_parser import (MAX_PROFILE_BYTES, WINDOWS_DEVICES, ProfileError, ProfileProblem,
                                    parse_profile_text, read_profile_text)

FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.toml$")
MAX_TEXT = MAX_PROFILE_BYTES  # a profile may be at most this large (the parser's own limit)


class BadFile(ValueError):
    pass


class Conflict(ValueError):
    """The file changed on disk since the editor read it."""


class Profiles:
    def __init__(self, folder: Path, fit: ContextFit | None):
        self.folder, self.fit = folder.resolve(), fit

    def path(self, name: str) -> Path:
        """The file `name` in the profiles folder; BadFile for anything else (no paths, no other folders)."""
        if not isinstance(name, str) or not FILE_NAME.match(name):
            raise BadFile(f"{name!r} is not a profile file name (lowercase letters, digits, '-', '_', then .toml)")
        if name[:-len(".toml")].lower() in WINDOWS_DEVICES:  # no such file can exist on a Windows machine
            raise BadFile(f"{name!r}: Windows reserves that name for a device; a profile made here would not "
                          "check out on a designer's Windows machine. Choose another name")
        path = (self.folder / name).resolve()
        if path.parent != self.folder:
            raise BadFile(f"{name!r} is not inside the profiles folder")
        return path

    def files(self) -> list[str]:
        return sorted(p.name for p in self.folder.glob("*.toml") if FILE_NAME.match(p.name))

    def read(self, name: str) -> dict[str, Any]:
        """The file's text and modification time. The parser's reader: a regular file only (a pipe named
        like a profile cannot hang the page), at most MAX_TEXT bytes (never cut: a save would truncate it)."""
        path = self.path(name)
        try:
            st = path.stat()
            text = read_profile_text(path)
        except FileNotFoundError:
            raise BadFile(f"no file {name} in the profiles folder") from None
        except ProfileError as exc:
            raise BadFile(f"{name}: {exc.problems[0].message}") from None
        return {"file": name, "text": text, "mtime_ns": str(st.st_mtime_ns)}  # a string: JavaScript numbers lose it

    def status(self, name: str) -> tuple[str, list[dict[str, Any]]]:
        """The NPC the file on disk defines (its `id` if it parses, else the file name's: what the server
        uses) and the file's problems, from one read and one parse."""
        try:
            return self._check(name, self.read(name)["text"])
        except BadFile as exc:
            return name[:-len(".toml")], [{"file": name, "line": None, "key": "", "message": str(exc)}]

    def lint(self, name: str, text: str) -> list[dict[str, Any]]:
        """Problems of `text` as the file `name` (it is not written): the parser's, and whether the NPC
        fits the model's context, as `parley lint --model` reports them."""
        return self._check(name, text)[1]

    def _check(self, name: str, text: str) -> tuple[str, list[dict[str, Any]]]:
        self.path(name)
        npc_id = name[:-len(".toml")]
        if len(text.encode()) > MAX_TEXT:
            return npc_id, [{"file": name, "line": None, "key": "", "message": f"more than {MAX_TEXT} bytes"}]
        # parsed from the text itself: no draft file on disk for a virus scanner or indexer to hold open
        try:
            npc = parse_profile_text(Path(name), text)
            npc_id = npc.id
            misfit = self.fit.problem(npc) if self.fit is not None else None
            problems = [ProfileProblem(name, None, "", misfit)] if misfit else []
        except ProfileError as exc:
            problems = exc.problems
        return npc_id, [{**p.to_dict(), "file": name} for p in problems]

    def save(self, name: str, text: str, base_mtime_ns: str | None = None) -> dict[str, Any]:
        """Write the file atomically (a reader sees the old text or the new, never half), keeping its
        permissions; Conflict if it changed on disk since `base_mtime_ns` (what the editor read)."""
        path = self.path(name)
        if len(text.encode()) > MAX_TEXT:
            raise BadFile(f"a profile may be at most {MAX_TEXT} bytes")
        try:
            old = path.stat()
        except FileNotFoundError:
            old = None
        if base_mtime_ns is not None and old is not None and str(old.st_mtime_ns) != str(base_mtime_ns):
            raise Conflict(f"{name} changed on disk since it was opened; reload it (or copy your edit) first")
        if old is not None and not stat.S_ISREG(old.st_mode):
            raise BadFile(f"{name} is not a regular file")
        if old is not None and not old.st_mode & 0o222:  # Perforce keeps files read-only until checked out
            raise BadFile(f"{name} is read-only: check it out (or make it writable) first, then save again")
        mode = stat.S_IMODE(old.st_mode) if old is not None else 0o666 & ~_UMASK
        fd, tmp = tempfile.mkstemp(prefix=".studio-", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:  # the editor's line ends, kept
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            retry_while_held(lambda: os.replace(tmp, path))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return {"file": name, "mtime_ns": str(path.stat().st_mtime_ns), "problems": self.lint(name, text)}


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_UMASK = _umask()  # read once, at import: setting it later would race with the server's other threads
