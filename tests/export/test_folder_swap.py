"""--force puts the new model folder in place of the old without losing either: on Windows a folder in use
(a server with its weights mapped, a console inside it) or read-only cannot be moved or deleted, which left
the old folder half-deleted and the new, verified export deleted too."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from export.errors import ExportError
from export.exporter import ExportOptions, export_model
from export.folder_swap import replace_folder


def folder(path: Path, text: str) -> Path:
    path.mkdir()
    (path / "manifest.json").write_text(text)
    return path


def test_the_old_folder_goes_only_once_the_new_one_is_in_place(tmp_path):
    old, new = folder(tmp_path / "model", "old"), folder(tmp_path / ".model.partial-1", "new")
    (old / "read-only.bin").write_bytes(b"x")
    (old / "read-only.bin").chmod(0o444)
    replace_folder(new, old, force=True)
    assert (old / "manifest.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing aside, nothing staged


def test_an_old_folder_that_cannot_move_keeps_both_and_says_where_the_new_one_is(tmp_path, monkeypatch):
    old, new = folder(tmp_path / "model", "old"), folder(tmp_path / ".model.partial-1", "new")
    real_rename = os.rename

    def in_use(src, dst, *a, **kw):  # what Windows answers for a folder whose weights a server has mapped
        if Path(src) == old:
            raise PermissionError(13, "The process cannot access the file because it is being used")
        return real_rename(src, dst, *a, **kw)

    monkeypatch.setattr(os, "rename", in_use)
    with pytest.raises(ExportError, match=r"could not be replaced .*Nothing was deleted; the new export is complete"
                                          r" in .*\.model\.partial-1"):
        replace_folder(new, old, force=True)
    assert (old / "manifest.json").read_text() == "old" and (new / "manifest.json").read_text() == "new"


def test_a_new_folder_that_cannot_be_placed_is_kept_and_the_old_one_restored(tmp_path, monkeypatch):
    old, new = folder(tmp_path / "model", "old"), folder(tmp_path / ".model.partial-1", "new")
    real_rename = os.rename

    def scanner_holds_it(src, dst, *a, **kw):
        if Path(src) == new:
            raise PermissionError(13, "Access is denied")
        return real_rename(src, dst, *a, **kw)

    monkeypatch.setattr(os, "rename", scanner_holds_it)
    with pytest.raises(ExportError, match=r"could not be moved to .*model .*complete in .*\.model\.partial-1"):
        replace_folder(new, old, force=True)
    assert (old / "manifest.json").read_text() == "old" and (new / "manifest.json").read_text() == "new"


def test_force_replaces_a_real_export_and_leaves_nothing_beside_it(tiny_checkpoint, tmp_path):
    export_model(tiny_checkpoint, tmp_path / "model", ExportOptions(max_context=32))
    first = (tmp_path / "model" / "manifest.json").stat().st_mtime_ns
    export_model(tiny_checkpoint, tmp_path / "model", ExportOptions(max_context=32, force=True))
    assert (tmp_path / "model" / "manifest.json").stat().st_mtime_ns != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_folder_that_appeared_during_the_export_is_not_replaced_without_force(tmp_path):
    old, new = folder(tmp_path / "model", "theirs"), folder(tmp_path / ".model.partial-1", "new")
    with pytest.raises(ExportError, match=r"appeared while this export ran .*complete in .*\.model\.partial-1"):
        replace_folder(new, old, force=False)
    assert (old / "manifest.json").read_text() == "theirs" and (new / "manifest.json").read_text() == "new"


def test_force_over_a_link_replaces_the_link_and_leaves_what_it_pointed_to(tmp_path):
    real = folder(tmp_path / "real", "old")
    mode = real.stat().st_mode
    (tmp_path / "model").symlink_to(real)
    new = folder(tmp_path / ".model.partial-1", "new")
    replace_folder(new, tmp_path / "model", force=True)
    assert not (tmp_path / "model").is_symlink() and (tmp_path / "model" / "manifest.json").read_text() == "new"
    assert (real / "manifest.json").read_text() == "old" and real.stat().st_mode == mode
