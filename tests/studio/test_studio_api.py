"""The studio's API keeps to the profiles folder and to loopback, and a bad request changes nothing."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def call(url: str, path: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, headers={"Content-Type": "application/json",
                                                                                  **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_files_outside_the_profiles_folder_are_out_of_reach(studio):
    url, folder = studio
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for name in ("../brenna.toml", "/etc/passwd", "sub/x.toml", "brenna.txt", ".hidden.toml", "BRENNA.toml"):
        status, answer = call(url, "/api/save", {"file": name, "text": 'name = "x"'})
        assert status == 400 and "profile file name" in answer["error"], (name, answer)
        status, answer = call(url, f"/api/profile?file={urllib.request.quote(name)}")
        assert status == 400, name
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not (folder.parent / "brenna.toml").exists()


def test_a_page_from_another_site_cannot_write(studio):
    url, folder = studio
    before = (folder / "brenna.toml").read_text()
    status, answer = call(url, "/api/save", {"file": "brenna.toml", "text": "name = 1"},
                          headers={"Origin": "http://evil.example"})
    assert status == 403 and (folder / "brenna.toml").read_text() == before


def test_a_hostile_profile_is_reported_and_the_studio_and_server_keep_going(studio):
    url, folder = studio
    status, saved = call(url, "/api/save", {"file": "mallory.toml", "text": "[[[[[[" * 2000})
    assert status == 200 and saved["problems"]
    row = next(r for r in saved["files"] if r["file"] == "mallory.toml")
    assert row["status"] == "broken, not serving" and not row["serving"]
    status, npcs = call(url, "/api/npcs")
    assert status == 200 and set(npcs["serving"]) == {"aldric", "brenna", "marta"}


def test_the_studio_refuses_a_non_loopback_address_without_insecure(demo_model, tmp_path):
    run = subprocess.run([sys.executable, "-m", "runtime.cli", "studio", "--model", str(demo_model), "--profiles",
                          str(ROOT / "npc_profiles"), "--host", "0.0.0.0"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1 and "--insecure" in run.stderr
