"""What the studio does with profile files: list them with their live status, lint text as it is typed
(the same checks as `parley lint`), and save it atomically, only inside the profiles folder."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from runtime.context_fit import ContextFit
from runtime.profile_parser import ProfileError, ProfileProblem, parse_profile

FILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.toml$")
MAX_TEXT = 64 * 1024  # a profile may be at most this large (the parser's own limit)


class BadFile(ValueError):
    pass


class Profiles:
    def __init__(self, folder: Path, fit: ContextFit | None):
        self.folder, self.fit = folder.resolve(), fit

    def path(self, name: str) -> Path:
        """The file `name` in the profiles folder; BadFile for anything else (no paths, no other folders)."""
        if not isinstance(name, str) or not FILE_NAME.match(name):
            raise BadFile(f"{name!r} is not a profile file name (lowercase letters, digits, '-', '_', then .toml)")
        path = (self.folder / name).resolve()
        if path.parent != self.folder:
            raise BadFile(f"{name!r} is not inside the profiles folder")
        return path

    def files(self) -> list[str]:
        return sorted(p.name for p in self.folder.glob("*.toml") if FILE_NAME.match(p.name))

    def read(self, name: str) -> dict[str, Any]:
        path = self.path(name)
        try:
            st = path.stat()
            text = path.read_bytes()[:MAX_TEXT].decode("utf-8", errors="replace")
        except FileNotFoundError:
            raise BadFile(f"no file {name} in the profiles folder") from None
        return {"file": name, "text": text, "mtime_ns": st.st_mtime_ns}

    def lint(self, name: str, text: str) -> list[dict[str, Any]]:
        """Problems of `text` as the file `name` (it is not written): the parser's, and whether the NPC
        fits the model's context, as `parley lint --model` reports them."""
        self.path(name)
        if len(text.encode()) > MAX_TEXT:
            return [{"file": name, "line": None, "key": "", "message": f"more than {MAX_TEXT} bytes"}]
        with tempfile.TemporaryDirectory() as tmp:
            draft = Path(tmp) / name
            draft.write_text(text, encoding="utf-8")
            try:
                npc = parse_profile(draft)
                misfit = self.fit.problem(npc) if self.fit is not None else None
                problems = [ProfileProblem(str(draft), None, "", misfit)] if misfit else []
            except ProfileError as exc:
                problems = exc.problems
        return [{**p.to_dict(), "file": name, "message": p.message.replace(str(draft), name)} for p in problems]

    def save(self, name: str, text: str) -> dict[str, Any]:
        """Write the file atomically (a reader sees the old text or the new, never half); its problems."""
        path = self.path(name)
        if len(text.encode()) > MAX_TEXT:
            raise BadFile(f"a profile may be at most {MAX_TEXT} bytes")
        fd, tmp = tempfile.mkstemp(prefix=".studio-", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return {"file": name, "mtime_ns": path.stat().st_mtime_ns, "problems": self.lint(name, text)}
