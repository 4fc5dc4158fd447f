"""Parley's wire protocol (docs/protocol.md is the spec): msgpack maps over ZeroMQ ROUTER/DEALER.

This module owns the constants and checks every incoming map strictly; `decode` turns a map into
a typed request (runtime/requests.py), so nothing past it sees a raw dict.
"""
from __future__ import annotations

import re
import reprlib
import unicodedata
from typing import Any

import msgpack

from runtime.deadlines import MIN_DEADLINE_MS
from runtime.requests import CancelRequest, QueryRequest, ReplyRequest, Request, SessionRequest

VERSION = 1
MAX_REQUEST_BYTES = 64 * 1024  # larger requests get `too_large`
MAX_FRAME_BYTES = 128 * 1024  # ZeroMQ's MAXMSGSIZE: a peer sending a larger frame is disconnected
MAX_ID_CHARS = 64
MAX_TEXT_CHARS = 4000  # hard cap; each NPC profile's max_input_chars is usually far lower
MAX_STATE_ENTRIES = 32
MAX_STATE_CHARS = 2000  # of all game-state keys and values, rendered
MAX_BLOB_BYTES = 48 * 1024
STREAM_UNITS = ("sentence", "token")  # runtime/speech.py
MIN_TOKEN_CHARS = 16  # a session token a client makes up: long enough not to be guessed
# What `done.text` is stripped of at both ends: ASCII only, so every client language agrees on it.
REPLY_WHITESPACE = " \t\n\r\f\v"
# Control characters a model may emit (a byte-level tokenizer can spell any byte) that no game wants in
# an NPC's line: a NUL ends a C string early, the others garble text boxes. Only tab and newline stay.
_UNSPEAKABLE = {c: None for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if chr(c) not in "\t\n"}


# Values from the wire are shown in error messages through this: a list nested 1,000 deep (msgpack
# allows it) would blow the stack in repr(); reprlib stops at a few levels and a few dozen characters.
_shown = reprlib.Repr()  # keyword arguments arrive only in Python 3.12
_shown.maxlevel, _shown.maxstring, _shown.maxother, _shown.maxlist, _shown.maxdict = 2, 40, 40, 4, 4


def shown(value: Any) -> str:
    """A short, safe rendering of any decoded wire value, for error messages (in msgpack's words where
    Python's would mean nothing to a client in another language)."""
    if isinstance(value, msgpack.ExtType):
        return f"an ext value (ext type {value.code})"
    if isinstance(value, msgpack.Timestamp):
        return "a timestamp (ext type -1)"
    if isinstance(value, (bytes, bytearray)):
        return f"a bin value ({len(value)} bytes)"
    return _shown.repr(value)


def loggable(value: Any) -> str:
    """A client-chosen string (an id, a session name) as it may appear in a log line: control characters
    escaped, so a newline or a terminal escape in an id cannot forge or hide log lines."""
    return str(value).translate(_ESCAPED_IN_LOGS)


_ESCAPED_IN_LOGS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def speakable(text: str) -> str:
    """Reply text as it goes to the game: without control characters other than tab and newline."""
    return text.translate(_UNSPEAKABLE)

REQUEST_TYPES = ("reply", "cancel", "reset_session", "export_session", "import_session", "list_npcs",
                 "health", "stats", "reload_profiles")

# stable error codes
BAD_MESSAGE = "bad_message"
DUPLICATE_ID = "duplicate_id"  # its own code: the refusal carries the id of a request that goes on
UNSUPPORTED_VERSION = "unsupported_version"
UNKNOWN_TYPE = "unknown_type"
UNKNOWN_NPC = "unknown_npc"
UNKNOWN_SESSION = "unknown_session"
SESSION_EVICTED = "session_evicted"
FORBIDDEN = "forbidden"
BUSY = "busy"
RATE_LIMITED = "rate_limited"
TOO_LARGE = "too_large"
DEADLINE_IMPOSSIBLE = "deadline_impossible"
PROMPT_TOO_LONG = "prompt_too_long"
CANCELLED = "cancelled"
SHUTTING_DOWN = "shutting_down"
INTERNAL = "internal"


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, request_id: str | None = None):
        super().__init__(message)
        self.code, self.message, self.request_id = code, message, request_id


def pack(obj: dict[str, Any]) -> bytes:
    return msgpack.packb({"v": VERSION, **obj}, use_bin_type=True)


def frame(request_id: str | None, kind: str, **fields: Any) -> bytes:
    return pack({"id": request_id, "type": kind, **fields})


def error_frame(request_id: str | None, code: str, message: str) -> bytes:
    return frame(request_id, "error", code=code, message=message)


def _str(body: dict, key: str, required: bool, max_chars: int, rid: str | None) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise ProtocolError(BAD_MESSAGE, f"'{key}' is required (a string)", rid)
        return None
    if not isinstance(value, str):
        raise ProtocolError(BAD_MESSAGE, f"'{key}' must be a string, got {type(value).__name__}", rid)
    if len(value) > max_chars:
        raise ProtocolError(TOO_LARGE, f"'{key}' has {len(value)} characters; the limit is {max_chars}", rid)
    return value


class _OtherKeys(dict):
    """A map that had keys other than strings, with those left out: ignored in an unknown key, as any
    unknown key is (an outside client's `future: {1: "x"}` once failed the whole request, its id unread);
    refused where a map of strings is asked for (`state`, `sampling`)."""


def _string_keys(pairs: list) -> dict:
    strings = [(k, v) for k, v in pairs if isinstance(k, str)]
    kept = dict(strings)  # a repeated key: its last value, as msgpack's own maps do
    return kept if len(strings) == len(pairs) else _OtherKeys(kept)


# A request holds a handful of maps; a frame of thousands of empty ones would only cost decoding time.
MAX_MAPS = 256


class _TooManyMaps(ValueError):
    """Valid msgpack with more maps than a request may hold: named as such, not as unreadable bytes."""


def _unpack(payload: bytes, unicode_errors: str = "strict"):
    maps = 0

    def string_keyed(pairs: list) -> dict:
        nonlocal maps
        maps += 1
        if maps > MAX_MAPS:
            raise _TooManyMaps(f"more than {MAX_MAPS} maps")
        return _string_keys(pairs)
    # maps come as pairs, so keys other than strings are never hashed (colliding keys would make a
    # 64 KiB map cost seconds) and can be left out
    return msgpack.unpackb(payload, raw=False, strict_map_key=False, object_pairs_hook=string_keyed,
                           unicode_errors=unicode_errors)


def _id_despite_bad_utf8(payload: bytes) -> str | None:
    """The request's id when the request is valid msgpack whose only fault is bad UTF-8 somewhere else, so
    that the refusal names the request it refuses; None when the id itself is not valid UTF-8."""
    try:
        body = _unpack(payload, unicode_errors="surrogateescape")  # bad bytes become lone surrogates
    except Exception:  # noqa: BLE001 - not readable this way either: nil, as for any unreadable frame
        return None
    rid = body.get("id") if isinstance(body, dict) else None
    if not isinstance(rid, str) or not 0 < len(rid) <= MAX_ID_CHARS:
        return None
    try:
        rid.encode("utf-8")  # a lone surrogate here: the bad bytes were the id's own
    except UnicodeEncodeError:
        return None
    return rid


def _without_nils(body: dict, key: str):
    """body[key] (a map: state, sampling) with its nil values left out, as the spec says of every key."""
    value = body.get(key, {})
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if v is not None}
        value = body[key] = _OtherKeys(kept) if isinstance(value, _OtherKeys) else kept
    return value


def decode(payload: bytes) -> Request:
    """bytes from the wire -> a typed request, or ProtocolError with the code to answer."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise ProtocolError(TOO_LARGE, f"request is {len(payload)} bytes; the limit is {MAX_REQUEST_BYTES}")
    try:
        body = _unpack(payload)  # its size was checked above
    except UnicodeDecodeError as exc:  # a JavaScript string cut inside a surrogate pair, say
        raise ProtocolError(BAD_MESSAGE, "a string in the request is not valid UTF-8 (in JavaScript or C#, a "
                                         "string cut inside a surrogate pair is: cut text at code points)",
                            _id_despite_bad_utf8(payload)) from exc
    except _TooManyMaps as exc:
        raise ProtocolError(BAD_MESSAGE, f"the request holds more than {MAX_MAPS} maps (over every level); a request "
                                         "has a handful") from exc
    except Exception as exc:  # msgpack raises several types for malformed data
        raise ProtocolError(BAD_MESSAGE, f"not a valid msgpack message ({type(exc).__name__})") from exc
    if not isinstance(body, dict):
        raise ProtocolError(BAD_MESSAGE, f"a request must be a msgpack map, got {type(body).__name__}")
    body = {k: v for k, v in body.items() if v is not None}  # nil means absent, for every key
    rid = body.get("id")
    if not isinstance(rid, str) or not rid:
        raise ProtocolError(BAD_MESSAGE, f"'id' must be a string of 1 to {MAX_ID_CHARS} characters")
    if len(rid) > MAX_ID_CHARS:  # like npc and session over their limit; echoed, so its sender can match it
        raise ProtocolError(TOO_LARGE, f"'id' has {len(rid)} characters; the limit is {MAX_ID_CHARS}", rid)
    if type(body.get("v")) is not int or body.get("v") != VERSION:  # not true, not 1.0: the integer 1
        raise ProtocolError(UNSUPPORTED_VERSION, f"protocol version {shown(body.get('v'))} is not supported; "
                                                 f"this server speaks v={VERSION}", rid)
    kind = body.get("type")
    if kind not in REQUEST_TYPES:
        raise ProtocolError(UNKNOWN_TYPE, f"unknown request type {shown(kind)}; known: {', '.join(REQUEST_TYPES)}", rid)
    checks = {"reply": _check_reply, "cancel": _check_cancel, "reset_session": _check_session,
              "export_session": _check_session, "import_session": _check_import}
    if kind in checks:
        checks[kind](body, rid)
    return _typed(kind, rid, body)


def reads_as_state_label(speaker: str) -> bool:
    """Whether a speaker's name, before any colon, is 'Game state' in any case, spacing or punctuation: its
    line ("Game state: gold=9999") would read as the game's own state line (runtime/prompt.py)."""
    label = re.split(r"[:\ufe13\ua789\u2236]", unicodedata.normalize("NFKC", speaker), maxsplit=1)[0]
    return re.sub(r"[\W_]+", "", label.casefold()) == "gamestate"


def _typed(kind: str, rid: str, body: dict) -> Request:
    """A checked map as the request it stands for; absent optional values take their defaults."""
    if kind == "reply":
        return ReplyRequest(npc=body["npc"], text=body["text"], session_id=body.get("session") or None,
                            speaker=(body.get("speaker") or "").strip() or "Player", game_state=body.get("state") or {},
                            deadline_ms=body.get("deadline_ms"), request_id=rid, stream=body.get("stream", True),
                            stream_unit=body.get("stream_unit", "sentence"),
                            sampling_overrides=body.get("sampling") or {}, session_token=body.get("session_token"),
                            from_wire=True)
    if kind == "cancel":
        return CancelRequest(target=body["target"], request_id=rid)
    if kind in ("reset_session", "export_session", "import_session"):
        return SessionRequest(kind, body["npc"], body["session"], rid, body.get("blob"), body.get("session_token"),
                              from_wire=True)
    return QueryRequest(kind, rid)


def _check_reply(body: dict, rid: str) -> None:
    _str(body, "npc", True, MAX_ID_CHARS, rid)
    if not _str(body, "text", True, MAX_TEXT_CHARS, rid).strip():
        raise ProtocolError(BAD_MESSAGE, "'text' must say something (it is empty or only whitespace)", rid)
    _str(body, "session", False, MAX_ID_CHARS, rid)
    _check_token(body, rid)
    speaker = _str(body, "speaker", False, 80, rid)
    if speaker and reads_as_state_label(speaker):
        raise ProtocolError(BAD_MESSAGE, "'speaker' reads as the label of the game's state line ('Game state'): "
                                         "rename the speaker (a player-chosen name, say)", rid)
    state = _without_nils(body, "state")
    if not isinstance(state, dict):
        raise ProtocolError(BAD_MESSAGE, "'state' must be a map of game-state keys to values", rid)
    if isinstance(state, _OtherKeys):
        raise ProtocolError(BAD_MESSAGE, "'state' keys must be strings and values strings, numbers or booleans", rid)
    if len(state) > MAX_STATE_ENTRIES:
        raise ProtocolError(TOO_LARGE, f"'state' has {len(state)} entries; the limit is {MAX_STATE_ENTRIES}", rid)
    size = 0
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
            raise ProtocolError(BAD_MESSAGE, "'state' keys must be strings and values strings, numbers or "
                                             "booleans", rid)
        size += len(key) + len(str(value))
    if size > MAX_STATE_CHARS:
        raise ProtocolError(TOO_LARGE, f"'state' renders to {size} characters; the limit is {MAX_STATE_CHARS}", rid)
    deadline = body.get("deadline_ms")
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float))):
        raise ProtocolError(BAD_MESSAGE, "'deadline_ms' must be a number of milliseconds", rid)
    if deadline is not None and not 0 < deadline <= 600_000:
        raise ProtocolError(DEADLINE_IMPOSSIBLE if deadline <= 0 else BAD_MESSAGE,
                            f"'deadline_ms' must be in (0, 600000], got {deadline}", rid)
    if deadline is not None and deadline < MIN_DEADLINE_MS:
        raise ProtocolError(DEADLINE_IMPOSSIBLE, f"a {deadline} ms deadline cannot be met: not even a fallback "
                                                 f"line can be answered in under {MIN_DEADLINE_MS} ms", rid)
    if not isinstance(body.get("stream", True), bool):
        raise ProtocolError(BAD_MESSAGE, "'stream' must be a boolean", rid)
    if body.get("stream_unit", "sentence") not in STREAM_UNITS:
        raise ProtocolError(BAD_MESSAGE, f"'stream_unit' must be one of {', '.join(STREAM_UNITS)}", rid)
    sampling = _without_nils(body, "sampling")
    if not isinstance(sampling, dict) or isinstance(sampling, _OtherKeys) or \
            set(sampling) - {"temperature", "top_k", "top_p", "seed"}:
        raise ProtocolError(BAD_MESSAGE, "'sampling' must be a map with temperature, top_k, top_p and/or seed", rid)
    rules = {"temperature": ((int, float), 0, 2), "top_k": (int, 0, 1000), "top_p": ((int, float), 1e-6, 1),
             "seed": (int, 0, 2**63 - 1)}
    if isinstance(sampling.get("top_k"), float) and sampling["top_k"].is_integer():
        sampling["top_k"] = int(sampling["top_k"])  # 40.0: a client whose numbers are all doubles means 40
    for key, value in sampling.items():
        kind, low, high = rules[key]
        if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
            what = "a whole number" if kind is int else "a number"
            raise ProtocolError(BAD_MESSAGE, f"'sampling.{key}' must be {what} in [{low}, {high}]", rid)


def _check_token(body: dict, rid: str) -> None:
    token = _str(body, "session_token", False, MAX_ID_CHARS, rid)
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ProtocolError(BAD_MESSAGE, f"'session_token' must have at least {MIN_TOKEN_CHARS} characters (a new "
                                         "session's token must not be guessable)", rid)


def _check_cancel(body: dict, rid: str) -> None:
    _str(body, "target", True, MAX_ID_CHARS, rid)


def _check_session(body: dict, rid: str) -> None:
    _str(body, "npc", True, MAX_ID_CHARS, rid)
    if not _str(body, "session", True, MAX_ID_CHARS, rid):  # "" is a reply's one-off line: no session to name
        raise ProtocolError(BAD_MESSAGE, "'session' must name a session (\"\" is a one-off reply's, stored nowhere)",
                            rid)
    _check_token(body, rid)


def _check_import(body: dict, rid: str) -> None:
    _check_session(body, rid)
    blob = body.get("blob")
    if not isinstance(blob, bytes):
        raise ProtocolError(BAD_MESSAGE, "'blob' must be the binary value export_session returned", rid)
    if len(blob) > MAX_BLOB_BYTES:
        raise ProtocolError(TOO_LARGE, f"'blob' is {len(blob)} bytes; the limit is {MAX_BLOB_BYTES}", rid)
