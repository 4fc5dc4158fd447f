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
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    for name in ("../brenna.toml", "/etc/passwd", "sub/x.toml", "brenna.txt", ".hidden.toml", "-x.toml"):
        status, answer = call(url, "/api/save", {"file": name, "text": 'name = "x"'})
        assert status == 400 and "profile file name" in answer["error"], (name, answer)
        status, answer = call(url, f"/api/profile?file={urllib.request.quote(name)}")
        assert status == 400, name
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert not (folder.parent / "brenna.toml").exists()
    for name in ("con.toml", "aux.toml", "COM1.toml", "lpt9.toml"):  # no such file can exist on Windows
        status, answer = call(url, "/api/save", {"file": name, "text": 'name = "x"'})
        assert status == 400 and "Windows reserves that name" in answer["error"], (name, answer)
        assert not (folder / name).exists()


def raw(url: str, request: bytes) -> bytes:
    """Bytes to the studio's port, its answer back: for requests urllib will not make."""
    import socket

    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_other_sites_cannot_read_or_write_not_even_by_pointing_their_name_at_loopback(studio):
    url, folder = studio
    before = (folder / "brenna.toml").read_text()
    status, answer = call(url, "/api/save", {"file": "brenna.toml", "text": "name = 1"},
                          headers={"Origin": "http://evil.example"})
    assert status == 403 and (folder / "brenna.toml").read_text() == before
    port = url.rstrip("/").rsplit(":", 1)[1]
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}  # DNS rebinding
    assert call(url, "/api/profile?file=brenna.toml", headers=rebound)[0] == 403
    assert call(url, "/api/save", {"file": "pwn.toml", "text": "x"}, headers=rebound)[0] == 403
    form = raw(url, b"POST /api/save HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: 40\r\n\r\n" + b'{"file": "pwn.toml", "text": "name=1"}  ')
    assert form.startswith(b"HTTP/1.0 415")  # a form post (no CORS preflight) is not JSON: refused
    assert not (folder / "pwn.toml").exists()
    page = raw(url, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert b"X-Frame-Options: DENY" in page and b"frame-ancestors 'none'" in page


def test_a_negative_length_or_a_bad_talk_request_is_refused_at_once(studio):
    url, _ = studio
    answer = raw(url, b"POST /api/lint HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: -1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 400")
    status, answer = call(url, "/api/talk", {"npc": "brenna", "text": "Hi", "state": [1]})
    assert status == 400 and "'state'" in answer["error"]  # before any stream starts


def test_a_save_keeps_the_files_permissions_and_refuses_to_overwrite_an_edit_made_on_disk(studio):
    url, folder = studio
    path = folder / "marta.toml"
    path.chmod(0o640)
    opened = call(url, "/api/profile?file=marta.toml")[1]
    status, saved = call(url, "/api/save", {"file": "marta.toml", "text": opened["text"] + "\n",
                                            "mtime_ns": opened["mtime_ns"]})
    assert status == 200 and (path.stat().st_mode & 0o777) == 0o640
    path.write_text(path.read_text() + "# edited in another editor\n")
    status, answer = call(url, "/api/save", {"file": "marta.toml", "text": opened["text"],
                                             "mtime_ns": saved["mtime_ns"]})
    assert status == 409 and "changed on disk" in answer["error"]
    assert path.read_text().endswith("# edited in another editor\n")


def test_a_read_only_profile_is_not_overwritten_and_line_ends_are_kept(studio):
    """Perforce keeps files read-only until they are checked out: a save over one (os.replace takes it on
    Linux) would lose the edit at the next sync. A file written with CRLF keeps its line ends."""
    url, folder = studio
    path = folder / "marta.toml"
    opened = call(url, "/api/profile?file=marta.toml")[1]
    before = path.read_bytes()
    path.chmod(0o444)
    status, answer = call(url, "/api/save", {"file": "marta.toml", "text": opened["text"] + "# mine\n",
                                             "mtime_ns": opened["mtime_ns"]})
    assert status == 400 and "read-only: check it out" in answer["error"]
    assert path.read_bytes() == before and not list(folder.glob(".studio-*"))
    path.chmod(0o644)
    crlf = opened["text"].replace("\n", "\r\n")
    status, _ = call(url, "/api/save", {"file": "marta.toml", "text": crlf, "mtime_ns": str(path.stat().st_mtime_ns)})
    assert status == 200 and path.read_bytes() == crlf.encode()


def test_a_pipe_named_like_a_profile_cannot_hang_the_page(studio):
    import os

    url, folder = studio
    os.mkfifo(folder / "pipe.toml")
    status, answer = call(url, "/api/profile?file=pipe.toml")
    assert status == 400 and "regular file" in answer["error"]
    status, npcs = call(url, "/api/npcs")
    row = next(r for r in npcs["files"] if r["file"] == "pipe.toml")
    assert status == 200 and row["problems"] and not row["serving"]


def test_an_npc_whose_id_is_not_its_file_name_is_listed_by_its_id(studio):
    url, folder = studio
    text = (folder / "brenna.toml").read_text()
    status, _ = call(url, "/api/save", {"file": "smith.toml", "text": 'id = "smith"\n' + text})
    status, npcs = call(url, "/api/npcs")
    row = next(r for r in npcs["files"] if r["file"] == "smith.toml")
    assert row["npc"] == "smith" and row["serving"] and row["status"] == "loaded"


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


def talk(url: str, body: dict) -> list[dict]:
    """The frames of one /api/talk stream (server-sent events), in order."""
    request = urllib.request.Request(url.rstrip("/") + "/api/talk", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return [json.loads(line[len(b"data: "):]) for line in response.read().split(b"\n")
                if line.startswith(b"data: ")]


def test_a_conversation_in_a_named_session_goes_on_past_its_first_line(studio):
    """An outside probe: each talk opened a client of its own with a new session token, so the session's
    second line was refused as someone else's (`forbidden`)."""
    url, _ = studio
    for text in ("How much for an iron sword?", "And a steel one?", "Thanks."):
        frames = talk(url, {"npc": "brenna", "text": text, "session": "studio-s1"})
        assert [f["type"] for f in frames if f["type"] in ("done", "error")] == ["done"], frames
    other = talk(url, {"npc": "marta", "text": "A room, please.", "session": "studio-s1"})
    assert other[-1]["type"] == "done", other  # the same name at another NPC is another session


def test_deep_json_huge_numbers_and_a_host_that_only_starts_like_loopback_are_refused(studio):
    """An outside probe: deeply nested JSON was a 500 (RecursionError), a state number past 64 bits an
    error after the stream had started, and Host `[::1]evil.example` passed for loopback."""
    url, _ = studio
    deep = b"[" * 100_000 + b"]" * 100_000
    answer = raw(url, b"POST /api/lint HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: " + str(len(deep)).encode() + b"\r\n\r\n" + deep)
    assert answer.startswith(b"HTTP/1.0 400") and b"nests too deeply" in answer
    status, body = call(url, "/api/talk", {"npc": "brenna", "text": "Hi", "state": {"gold": 2 ** 70}})
    assert status == 400 and "64 bits" in body["error"]
    assert call(url, "/api/npcs", headers={"Host": "[::1]evil.example"})[0] == 403
    status, body = call(url, "/api/npcs")
    assert status == 200 and "brenna.toml" in {f["file"] for f in body["files"]}
