"""Tie a server's life to the game that started it: the game keeps a pipe to the server's standard input, and
when that pipe closes (the game quit, or crashed: the operating system closes a dead process's handles, on
Windows as on POSIX) the server stops. No process ids are polled, so no recycled id can keep it alive.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from typing import BinaryIO, Callable

log = logging.getLogger(__name__)


def watch_stdin(on_close: Callable[[], None], stream: BinaryIO | None = None) -> threading.Thread:
    """Read and discard standard input on a daemon thread; call on_close once it ends (EOF or a read error)."""
    source = stream if stream is not None else sys.stdin.buffer

    def read_until_closed() -> None:
        try:
            while source.read1(4096) if hasattr(source, "read1") else source.read(4096):
                pass  # what the game writes is ignored: only the pipe's end means something
        except (OSError, ValueError):  # a broken or closed handle ends the game's side too
            pass
        log.info("standard input closed: the process that started this server is gone or let it go")
        on_close()

    thread = threading.Thread(target=read_until_closed, name="parley-stdin-lifeline", daemon=True)
    thread.start()
    return thread


class Lifeline:
    """Until a server is serving, the pipe's end exits the process at once (a model may take minutes to load,
    and nothing is bound or written yet); from then on it asks the server to stop as SIGTERM would."""

    def __init__(self, exit_code: int = 0):
        self._lock = threading.Lock()
        self._stop: Callable[[], None] | None = None
        self._closed = False
        self._exit_code = exit_code

    def start(self, stream: BinaryIO | None = None) -> threading.Thread:
        return watch_stdin(self._on_close, stream)

    def serving(self, stop: Callable[[], None]) -> None:
        """The server is up: stop it with `stop` when the pipe ends (at once if it already has)."""
        with self._lock:
            self._stop = stop
            closed = self._closed
        if closed:
            stop()

    def _on_close(self) -> None:
        with self._lock:
            self._closed = True
            stop = self._stop
        if stop is not None:
            stop()
        else:
            logging.shutdown()
            os._exit(self._exit_code)
