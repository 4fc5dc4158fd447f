"""The server's secret for signing session blobs: a save's conversation comes back only as this server
(or one given the same key) wrote it.

The key is 32 random bytes kept as hex in a file the server creates on first use (owner-only
permissions) and reads ever after: next to the CurveZMQ keys when the server has them, else in the
user's config folder. A studio that moves servers or reinstalls keeps this file, or its players' saves
no longer load (their NPCs start fresh, with a clear error to the game).
"""
from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

KEY_BYTES = 32
FILE_NAME = "blob.key"


class BlobKeyError(ValueError):
    pass


def default_path(curve_secret_file: Path | None, platform: str = sys.platform,
                 environ: Mapping[str, str] = os.environ) -> Path:
    """Beside the CurveZMQ keys, else in the user's config folder: $XDG_CONFIG_HOME or ~/.config on Linux,
    %APPDATA% on Windows, ~/Library/Application Support on macOS (where an existing ~/.config/parley key,
    the only place of earlier versions, is kept: saves signed with it must still load)."""
    if curve_secret_file is not None:
        return Path(curve_secret_file).parent / FILE_NAME
    if environ.get("XDG_CONFIG_HOME"):
        return Path(environ["XDG_CONFIG_HOME"]) / "parley" / FILE_NAME
    home = _home(environ, platform)
    earlier = home / ".config" / "parley" / FILE_NAME
    if platform == "win32" and environ.get("APPDATA"):
        native = Path(environ["APPDATA"]) / "parley" / FILE_NAME
    elif platform == "darwin":
        native = home / "Library" / "Application Support" / "parley" / FILE_NAME
    else:
        return earlier
    return earlier if earlier.is_file() and not native.exists() else native


def _home(environ: Mapping[str, str], platform: str) -> Path:
    """The user's home, as Path.home() finds it; a launcher that passes no HOME (USERPROFILE on Windows)
    gets an error that says what to do."""
    name = "USERPROFILE" if platform == "win32" else "HOME"
    if environ.get(name):
        return Path(environ[name])
    try:
        return Path.home()
    except RuntimeError as exc:
        raise BlobKeyError("no home folder to keep the session-signing key in (HOME or USERPROFILE unset); "
                           "pass --blob-key FILE") from exc


def load_or_create(path: Path) -> bytes:
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        path.unlink()  # made, then the process ended before it was written: it signed nothing, start afresh
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        except FileExistsError:  # another server made it a moment ago: use that one
            return load_or_create(path)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
        return key
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BlobKeyError(f"{path}: not a session-blob key ({exc}); it holds {KEY_BYTES} bytes as hex. Restore "
                           "it from a backup (saves signed with it need it), or move it away to start a new one "
                           "(older saves will not load)") from exc
    if len(key) < KEY_BYTES:
        raise BlobKeyError(f"{path}: the session-blob key is {len(key)} bytes; at least {KEY_BYTES} are needed")
    return key
