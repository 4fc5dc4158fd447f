"""Profile reloads on a thread of their own.

Reading and checking changed profile files takes time in proportion to how many changed: a branch switch
or a sync that touches a thousand profiles took seconds, and run on the server's loop it held every
connection meanwhile (an outside probe: `health` unanswered for 4.9 s, a 500 ms reply answered after 5 s).
Here the loop only hands over `reload_profiles` requests and picks up their answers; the files are read
on this thread, which alone touches the registry once serving starts. The engine's NPCs are swapped in
whole (Engine.set_npcs), so the loop and the worker always see one consistent set.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)


class ProfileWatcher:
    def __init__(self, reload: Callable[[], dict[str, Any]], has_changes: Callable[[], bool], poll_s: float,
                 on_failure: Callable[[BaseException], None]):
        """`reload` reads the changed files and returns a `reload_profiles` answer's fields; `has_changes`
        tells whether any file changed since (both run on this thread only)."""
        self.reload, self.has_changes, self.poll_s, self.on_failure = reload, has_changes, poll_s, on_failure
        self.answers: queue.SimpleQueue[tuple[bytes, str, dict[str, Any] | BaseException]] = queue.SimpleQueue()
        self._asked: list[tuple[bytes, str]] = []
        self._reading: list[tuple[bytes, str]] = []  # asked, and being read now
        self._closed = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="parley-profiles", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def ask(self, client: bytes, request_id: str) -> None:
        """A `reload_profiles` request: read the folder now; its answer comes out of `answers`. Requests
        that arrive while a reload runs share the next one."""
        with self._lock:
            self._asked.append((client, request_id))
        self._wake.set()

    def close(self) -> list[tuple[bytes, str]]:
        """Stop without waiting for a reload under way; the requests asked and not yet answered (the caller
        answers them `shutting_down`: every request gets one terminal frame). Answers already made stay in
        `answers`."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            self._closed = True
            left, self._asked, self._reading = self._asked + self._reading, [], []
        return left

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stopping.is_set():
                return
            with self._lock:
                asked = self._reading = self._asked
                self._asked = []
            try:
                if not asked and not self.has_changes():
                    continue
                report: dict[str, Any] | BaseException = self.reload()
            except Exception as exc:  # noqa: BLE001 - a vanished folder, no file descriptors: try again later
                self.on_failure(exc)
                report = exc
            with self._lock:
                if self._closed:  # the server answered them as it stopped
                    return
                for client, request_id in asked:
                    self.answers.put((client, request_id, report))
                self._reading = []
