"""The studio's web server: the page, and a small JSON API over the profiles folder and a real Parley
server (the same engine and scheduler a game talks to; the page's replies come through the ordinary
client over ZeroMQ). Loopback only; it writes only profile files inside the profiles folder."""
from __future__ import annotations

import json
import logging
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from runtime.behaviour_tests import run_case
from runtime.client import ParleyClient, ParleyError
from runtime.studio.profiles_api import BadFile, Profiles

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/studio.js": ("studio.js", "text/javascript"),
          "/studio.css": ("studio.css", "text/css")}


class Studio:
    """The studio's state: the profiles, the Parley server's endpoint, and the in-process server's
    answers (for the hidden reasoning designers may see)."""

    def __init__(self, profiles: Profiles, endpoint: str, answers=None):
        self.profiles, self.endpoint, self.answers = profiles, endpoint, answers

    def client(self, timeout_s: float = 60.0) -> ParleyClient:
        return ParleyClient(self.endpoint, timeout_s=timeout_s, retries=0)

    def npcs(self) -> dict[str, Any]:
        """Every profile file with its live status, from the server's own reload (what it serves now)."""
        with self.client() as c:
            live = c.reload_profiles()
        problems: dict[str, list] = {}
        for p in live["errors"]:
            problems.setdefault(p["file"], []).append(p)
        rows = []
        for name in self.profiles.files():
            npc = name[:-len(".toml")]
            serving = npc in live["npcs"]
            status = ("broken, last good version serving" if problems.get(name) else "loaded") if serving \
                else "broken, not serving" if problems.get(name) else "not loaded"
            rows.append({"file": name, "npc": npc, "serving": serving, "status": status,
                         "problems": problems.get(name, [])})
        return {"files": rows, "serving": live["npcs"]}

    def talk(self, body: dict, emit) -> None:
        """One reply through the real protocol; each frame to `emit` as it arrives, and the reasoning last."""
        npc, text = body.get("npc"), body.get("text")
        state = {k: v for k, v in (body.get("state") or {}).items() if isinstance(k, str) and k}
        with self.client() as c:
            rid = c.new_id()
            try:
                for frame in c.reply(npc, text, session=body.get("session") or None,
                                     speaker=body.get("speaker") or None, state=state or None,
                                     deadline_ms=body.get("deadline_ms"), request_id=rid,
                                     stream_unit=body.get("stream_unit") or None):
                    emit(frame)
            except ParleyError as exc:
                emit({"type": "error", "code": exc.code, "message": exc.message})
                return
        if body.get("reasoning") and self.answers is not None:
            found = None
            for _ in range(40):  # the worker keeps it just after the done frame went out
                found = self.answers.reasoning(rid)
                if found is not None:
                    break
                time.sleep(0.005)
            emit({"type": "reasoning", "text": found or ""})

    def run_tests(self, npc_id: str) -> list[dict[str, Any]]:
        from runtime.profile_parser import parse_profile

        npc = parse_profile(self.profiles.path(f"{npc_id}.toml"))
        with self.client() as c:
            return [run_case(c, npc.id, case).to_dict() for case in npc.tests]


class Handler(BaseHTTPRequestHandler):
    studio: Studio  # set on the subclass made by make_server
    server_version = "ParleyStudio"

    def log_message(self, fmt: str, *args) -> None:  # quiet: the terminal is the designer's
        log.debug("%s %s", self.address_string(), fmt % args)

    # ---- plumbing --------------------------------------------------------------------------------

    def _json(self, status: int, value: Any) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise BadFile(f"request body over {MAX_BODY} bytes")
        value = json.loads(self.rfile.read(length) or b"{}")
        if not isinstance(value, dict):
            raise BadFile("expected a JSON object")
        return value

    def _guarded(self, work) -> None:
        """A bad request gets a 400 with why, a failure a 500; the studio itself keeps running."""
        try:
            work()
        except (BadFile, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            self._json(400, {"error": str(exc)})
        except ParleyError as exc:
            self._json(502, {"error": f"{exc.code}: {exc.message}"})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001
            log.exception("studio request failed")
            self._json(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _same_origin(self) -> bool:
        """Refuse writes from other sites' pages in the designer's browser (a cross-site POST)."""
        origin = self.headers.get("Origin")
        return origin is None or urlparse(origin).netloc == self.headers.get("Host")

    # ---- routes ------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path in STATIC:
            name, kind = STATIC[url.path]
            data = resources.files("runtime.studio").joinpath("static", name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif url.path == "/api/npcs":
            self._guarded(lambda: self._json(200, self.studio.npcs()))
        elif url.path == "/api/profile":
            name = parse_qs(url.query).get("file", [""])[0]
            self._guarded(lambda: self._json(200, self.studio.profiles.read(name)))
        else:
            self._json(404, {"error": f"no such page: {url.path}"})

    def do_POST(self) -> None:
        if not self._same_origin():
            self._json(403, {"error": "cross-origin requests are refused"})
            return
        path = urlparse(self.path).path
        if path == "/api/lint":
            self._guarded(lambda: self._json(200, {"problems": self._lint(self._body())}))
        elif path == "/api/save":
            self._guarded(lambda: self._json(200, self._save(self._body())))
        elif path == "/api/tests":
            self._guarded(lambda: self._json(200, {"results": self.studio.run_tests(self._body()["npc"])}))
        elif path == "/api/talk":
            self._guarded(self._talk)
        else:
            self._json(404, {"error": f"no such call: {path}"})

    def _lint(self, body: dict) -> list:
        return self.studio.profiles.lint(body["file"], str(body["text"]))

    def _save(self, body: dict) -> dict:
        saved = self.studio.profiles.save(body["file"], str(body["text"]))
        return {**saved, **self.studio.npcs()}  # the server reloads at once: its status comes back

    def _talk(self) -> None:
        """Server-sent events: one `data:` line per frame, as the reply streams."""
        body = self._body()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

        def emit(frame: dict) -> None:
            self.wfile.write(b"data: " + json.dumps(frame).encode() + b"\n\n")
            self.wfile.flush()
        self.studio.talk(body, emit)


def make_server(studio: Studio, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    handler = type("StudioHandler", (Handler,), {"studio": studio})
    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    return httpd


def static_folder() -> Path:
    return Path(str(resources.files("runtime.studio").joinpath("static")))
