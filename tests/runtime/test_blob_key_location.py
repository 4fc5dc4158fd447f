"""Where the session-signing key lives when no --blob-key or --keys says: each system's own config folder,
and on Windows and macOS the ~/.config key of earlier versions while it is there (saves signed with it)."""
from __future__ import annotations

from pathlib import Path

import pytest

from runtime.blob_key import BlobKeyError, default_path


def test_beside_the_curve_keys_when_the_server_has_them(tmp_path):
    assert default_path(tmp_path / "server.key_secret", "win32", {}) == tmp_path / "blob.key"


@pytest.mark.parametrize("platform,expected", [
    ("linux", ".config/parley/blob.key"),
    ("darwin", "Library/Application Support/parley/blob.key"),
    ("win32", "AppData/Roaming/parley/blob.key"),
])
def test_each_systems_config_folder(tmp_path, platform, expected):
    env = {"HOME": str(tmp_path), "USERPROFILE": str(tmp_path), "APPDATA": str(tmp_path / "AppData" / "Roaming")}
    assert default_path(None, platform, env) == tmp_path / expected


def test_xdg_config_home_wins_everywhere(tmp_path):
    for platform in ("linux", "darwin", "win32"):
        assert default_path(None, platform, {"XDG_CONFIG_HOME": str(tmp_path), "HOME": "/nowhere"}) == \
            tmp_path / "parley" / "blob.key"


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_a_key_made_by_an_earlier_version_keeps_its_place(tmp_path, platform):
    earlier = tmp_path / ".config" / "parley" / "blob.key"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("ab" * 32 + "\n")
    env = {"HOME": str(tmp_path), "USERPROFILE": str(tmp_path), "APPDATA": str(tmp_path / "AppData")}
    assert default_path(None, platform, env) == earlier


def test_no_home_at_all_says_to_pass_a_file(monkeypatch):
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError("no home"))))
    with pytest.raises(BlobKeyError, match="--blob-key FILE"):
        default_path(None, "linux", {})


def test_a_key_file_left_empty_by_a_process_that_ended_while_making_it_is_made_again(tmp_path):
    from runtime.blob_key import KEY_BYTES, load_or_create

    path = tmp_path / "blob.key"
    path.write_bytes(b"")  # created, then the process ended before writing: it signed nothing
    key = load_or_create(path)
    assert len(key) == KEY_BYTES and load_or_create(path) == key
