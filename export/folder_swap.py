"""Put a finished, verified model folder where the user asked, replacing an older one (`--force`), without
ever losing either. On Windows a folder in use (a server or studio with its weights memory-mapped, a shell
inside it, Perforce's read-only files) cannot be deleted or renamed, and a scanner may hold a file that was
just closed for a moment: the old folder is moved aside first (nothing deleted yet if that fails), the new
one renamed into place with a few retries, and only then is the old one removed.
"""
from __future__ import annotations

import gc
import logging
import os
import shutil
import stat
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable

from export.errors import ExportError
from runtime.held_files import retry_while_held

log = logging.getLogger(__name__)


def replace_folder(stage: Path, out_dir: Path, force: bool, tries: int = 10) -> None:
    """Rename `stage` to `out_dir`, first moving an existing `out_dir` aside (only with `force`: one that
    appeared while the export ran is not replaced without it) and removing it after."""
    aside = None
    if out_dir.exists() or out_dir.is_symlink():
        if not force:
            raise ExportError(f"{out_dir} appeared while this export ran (another export?); the new export is "
                              f"complete in {stage}: move it where you want it, or export again with --force")
        aside = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        aside.rmdir()  # only its unique name is wanted
        try:
            retry_while_held(lambda: out_dir.rename(aside), tries, pause_s=0.1)
        except OSError as exc:
            raise ExportError(f"{out_dir} could not be replaced ({exc.strerror or exc}): something is using it (a "
                              "`parley serve` or `parley studio` serving it, a console or explorer window inside "
                              "it) or it is read-only. Nothing was deleted; the new export is complete in "
                              f"{stage}: stop what uses the old folder and move it there, or export again") from exc
    try:
        retry_while_held(lambda: stage.rename(out_dir), tries, pause_s=0.1)
    except OSError as exc:
        if aside is not None:
            try:
                retry_while_held(lambda: aside.rename(out_dir), tries, pause_s=0.1)
            except OSError:
                pass  # said below: the old folder is where the message says
        raise ExportError(f"the new export could not be moved to {out_dir} ({exc.strerror or exc}); it is "
                          f"complete in {stage}" + (f", the old folder in {aside}" if aside and aside.exists()
                                                    else "")) from exc
    if aside is not None:
        remove_folder(aside, "the replaced model folder")


def remove_folder(folder: Path, what: str) -> bool:
    """Delete a folder of ours, read-only files included; a warning, not an error, if it cannot be. A link
    (an out_dir that pointed elsewhere) is removed, never what it points to."""
    if folder.is_symlink():
        folder.unlink()
        return True
    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=_writable_and_again)
    else:
        shutil.rmtree(folder, onerror=_writable_and_again)
    if folder.exists():
        log.warning("could not remove %s %s (a file in it is still open); delete it yourself", what, folder)
        return False
    return True


def discard_after_failure(folder: Path, error: BaseException) -> None:
    """Remove a half-written folder after `error`. Its traceback still holds the frames, and with them open
    writers, onnxruntime sessions and memory maps of files in the folder, which Windows will not delete."""
    traceback.clear_frames(error.__traceback__)
    gc.collect()
    remove_folder(folder, "the unfinished export")


def _writable_and_again(function: Callable, path: str, _error) -> None:
    """Windows refuses to delete a read-only file: clear the flag and try again. Elsewhere a file's own mode
    never stops its deletion, and nothing is chmodded (a link would carry it to what it points to)."""
    if os.name != "nt" or os.path.islink(path) or not os.path.isfile(path):
        return  # remove_folder says so once
    try:
        os.chmod(path, stat.S_IWRITE | stat.S_IREAD)
        function(path)
    except OSError:
        pass

