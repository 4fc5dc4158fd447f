"""The studio's web server: the page, and a small JSON API over the profiles folder and a real Parley
server (the same engine and scheduler a game talks to; the page's replies come through the ordinary
client over ZeroMQ). Loopback only; it writes only profile files inside the profiles folder."""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import msgpack

from runtime.behaviour_tests import run_case
from runtime.client import ParleyClient, ParleyError
from runtime.studio.profiles_api import MAX_TEXT, BadFile, Conflict, Profiles

log = logging.getLogger(__name__)

MAX_BODY = 2 * MAX_TEXT + 4096  # a profile's text, JSON-escaped
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SECURITY_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
                    "Referrer-Policy": "no-referrer"}
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/studio.js": ("studio.js", "text/javascript"),
          "/studio.css": ("studio.css", "text/css")}


class Studio:
    """The studio's state: the profiles, the Parley server's endpoint, and the in-process server's
    answers (for the hidden reasoning designers may see)."""

    def __init__(self, profiles: Profiles, endpoint: str, answers=None):
        self.profiles, self.endpoint, self.answers = profiles, endpoint, answers
        # Each talk opens a client of its own; a session's token must outlive it, or the server refuses
        # the session's second line as someone else's (the page's Session field would hold no conversation).
        self._session_tokens: dict[tuple[str, str], str] = {}

    def client(self, timeout_s: float = 60.0) -> ParleyClient:
        return ParleyClient(self.endpoint, timeout_s=timeout_s, retries=0)

    def npcs(self, reload: bool = False) -> dict[str, Any]:
        """Every profile file with its live status: what the server serves (after making it reload, when
        asked: a save), and the file's own problems (the same checks, read from disk)."""
        with self.client() as c:
            if reload:
                c.reload_profiles()
            live = {n["id"]: n for n in c.list_npcs()}
        rows = []
        for name in self.profiles.files():
            npc, problems = self.profiles.status(name)
            serving = npc in live
            status = ("broken, last good version serving" if problems else "loaded") if serving \
                else "broken, not serving" if problems else "not loaded yet"
            rows.append({"file": name, "npc": npc, "serving": serving, "status": status, "problems": problems,
                         "deadline_ms": live[npc]["deadline_ms"] if serving else None})
        return {"files": rows, "serving": sorted(live)}

    @staticmethod
    def talk_request(body: dict) -> dict:
        """The fields of a talk request, checked before the stream starts (BadFile says what is wrong)."""
        npc, text, state = body.get("npc"), body.get("text"), body.get("state") or {}
        if not isinstance(npc, str) or not npc or not isinstance(text, str) or not text.strip():
            raise BadFile("'npc' and 'text' must be non-empty strings")
        if not isinstance(state, dict):
            raise BadFile("'state' must be an object of game-state keys to values")
        try:
            msgpack.packb(state)
        except (OverflowError, ValueError, TypeError) as exc:
            raise BadFile(f"'state' cannot be sent to the server ({exc}): numbers must fit in 64 bits") from None
        deadline = body.get("deadline_ms")
        if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float))):
            raise BadFile("'deadline_ms' must be a number")
        return body

    def talk(self, body: dict, emit) -> None:
        """One reply through the real protocol; each frame to `emit` as it arrives, and the reasoning last."""
        npc, text = body["npc"], body["text"]
        state = {k: v for k, v in (body.get("state") or {}).items() if isinstance(k, str) and k}
        with self.client() as c:
            rid = c.new_id()
            session = body.get("session") or None
            if isinstance(session, str):
                token = self._session_tokens.setdefault((npc, session), c.session_token(npc, session))
                c.set_session_token(npc, session, token)
            try:
                for frame in c.reply(npc, text, session=session,
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

    def run_tests(self, file: str) -> list[dict[str, Any]]:
        """The saved file's behaviour tests against the NPC it defines, as the server serves it."""
        from runtime.profile_parser import parse_profile

        npc = parse_profile(self.profiles.path(file))
        with self.client() as c:
            return [run_case(c, npc.id, case).to_dict() for case in npc.tests]


class Handler(BaseHTTPRequestHandler):
    studio: Studio  # set on the subclass made by make_server
    allowed_hosts: tuple[str, ...] = ()  # Host names besides loopback ones (a --insecure address)
    server_version = "ParleyStudio"
    timeout = 30  # seconds a read or write on the connection may take: a client that sends half a request
    # and waits holds a thread for that long, not forever

    def log_message(self, fmt: str, *args) -> None:  # quiet: the terminal is the designer's
        log.debug("%s %s", self.address_string(), fmt % args)

    # ---- plumbing --------------------------------------------------------------------------------

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

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
        if not 0 <= length <= MAX_BODY:
            raise BadFile(f"a request body of {length} bytes: 0 to {MAX_BODY} are allowed")
        value = json.loads(self.rfile.read(length) or b"{}")
        if not isinstance(value, dict):
            raise BadFile("expected a JSON object")
        return value

    def _guarded(self, work) -> None:
        """A bad request gets a 400 with why, a failure a 500; the studio itself keeps running."""
        try:
            work()
        except Conflict as exc:
            self._json(409, {"error": str(exc)})
        except (BadFile, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            self._json(400, {"error": str(exc)})
        except RecursionError:
            self._json(400, {"error": "the request nests too deeply"})
        except ParleyError as exc:
            self._json(502, {"error": f"{exc.code}: {exc.message}"})
        except ConnectionError:  # BrokenPipe, ConnectionReset, and Windows' ConnectionAborted (10053)
            pass
        except Exception as exc:  # noqa: BLE001
            log.exception("studio request failed")
            self._json(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _for_us(self) -> bool:
        """Only the studio's own address, by a name that means this machine: a web page whose DNS name
        was pointed at 127.0.0.1 (DNS rebinding) sends its own name as Host, and is refused; so is a
        cross-site request, by its Origin."""
        header = self.headers.get("Host") or ""
        if header.startswith("["):  # an IPv6 address: [addr] or [addr]:port, nothing else after it
            end = header.find("]") + 1
            host = header[:end] if end and (header[end:] == "" or header[end:end + 1] == ":") else ""
        else:
            host = header.split(":")[0]  # the port aside
        allowed = LOOPBACK_NAMES + tuple(self.allowed_hosts)
        origin = self.headers.get("Origin")
        ok = host in allowed and (origin is None or urlparse(origin).netloc == self.headers.get("Host"))
        if not ok:
            self._json(403, {"error": "this studio answers only its own page, at a loopback address"})
        return ok

    # ---- routes ------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._for_us():
            return
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
        if not self._for_us():
            return
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            self._json(415, {"error": "send JSON (Content-Type: application/json)"})  # no form posts
            return
        path = urlparse(self.path).path
        if path == "/api/lint":
            self._guarded(lambda: self._json(200, {"problems": self._lint(self._body())}))
        elif path == "/api/save":
            self._guarded(lambda: self._json(200, self._save(self._body())))
        elif path == "/api/tests":
            self._guarded(lambda: self._json(200, {"results": self.studio.run_tests(self._body()["file"])}))
        elif path == "/api/talk":
            self._guarded(self._talk)
        else:
            self._json(404, {"error": f"no such call: {path}"})

    def _lint(self, body: dict) -> list:
        return self.studio.profiles.lint(body["file"], str(body["text"]))

    def _save(self, body: dict) -> dict:
        base = body.get("mtime_ns")
        saved = self.studio.profiles.save(body["file"], str(body["text"]), base if isinstance(base, str) else None)
        return {**saved, **self.studio.npcs(reload=True)}  # the server reloads at once: its status comes back

    def _talk(self) -> None:
        """Server-sent events: one `data:` line per frame, as the reply streams. The request is checked
        before the stream starts; a failure after that is an `error` event, never a broken stream."""
        body = self.studio.talk_request(self._body())
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

        def emit(frame: dict) -> None:
            self.wfile.write(b"data: " + json.dumps(frame).encode() + b"\n\n")
            self.wfile.flush()
        try:
            self.studio.talk(body, emit)
        except ConnectionError:  # BrokenPipe, ConnectionReset, and Windows' ConnectionAborted (10053)
            raise
        except Exception as exc:  # noqa: BLE001 - the stream is open: say it there
            log.exception("studio talk failed")
            emit({"type": "error", "code": "studio", "message": f"{type(exc).__name__}: {exc}"})


def make_server(studio: Studio, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """The HTTP server; a non-loopback `host` (the caller checked --insecure) is also accepted as Host."""
    extra = () if host in ("127.0.0.1", "::1", "localhost") else (host, f"[{host}]")
    handler = type("StudioHandler", (Handler,), {"studio": studio, "allowed_hosts": extra})
    # SO_REUSEADDR on Windows lets a second server bind a port in use: a second studio would share the page
    server_class = type("StudioHTTPServer", (ThreadingHTTPServer,), {"allow_reuse_address": os.name != "nt"})
    if ":" in host:  # an IPv6 address
        server_class = type("StudioHTTPServer6", (server_class,), {"address_family": socket.AF_INET6})
    httpd = server_class((host.strip("[]"), port), handler)
    httpd.daemon_threads = True
    return httpd


def static_folder() -> Path:
    return Path(str(resources.files("runtime.studio").joinpath("static")))
