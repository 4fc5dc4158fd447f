"""The server's log on standard error without ever blocking the server. A game that starts `parley serve`
and does not read its stderr pipe fills it (64 KiB on Linux, 4 KiB on Windows), and a plain StreamHandler
then blocks whichever thread logs next, the main loop or the engine, and the NPCs stop answering. Here log
lines go to a bounded queue that a thread of its own writes out; when the pipe is full the lines wait, and
past the queue's bound they are dropped and counted, never waited for.
"""
from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time


class NonBlockingStderr(logging.Handler):
    def __init__(self, formatter: logging.Formatter | None = None, capacity: int = 10_000, fd: int = 2):
        super().__init__()
        self.setFormatter(formatter)
        self._lines: queue.Queue[str] = queue.Queue(capacity)
        self._fd = fd
        self._encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
        # a console never fills, and Python's own writer speaks to it in its characters (Windows' console
        # would read the raw bytes in its code page): there the lines go through sys.stderr
        self._console = sys.stderr is not None and _isatty(fd)
        self.dropped = 0
        threading.Thread(target=self._write_forever, name="parley-log-writer", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:  # noqa: BLE001 - logging's own contract: a bad record is reported, not raised
            self.handleError(record)
            return
        try:
            self._lines.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout_s: float = 2.0) -> None:
        """Wait a moment for queued lines to be written (at exit); never longer than timeout_s."""
        if self.dropped:
            try:
                self._lines.put_nowait(f"({self.dropped} log lines were dropped: standard error was not read; "
                                       "--log-file keeps them)\n")
                self.dropped = 0
            except queue.Full:
                pass
        until = time.monotonic() + timeout_s
        while self._lines.unfinished_tasks and time.monotonic() < until:
            time.sleep(0.01)

    def _write_forever(self) -> None:
        while True:
            line = self._lines.get()
            try:
                if self._console:
                    sys.stderr.write(line)
                    sys.stderr.flush()
                    continue
                data = line.encode(self._encoding, "backslashreplace")
                while data:  # os.write may take part of it; blocks only this thread while the pipe is full
                    data = data[os.write(self._fd, data):]
            except (OSError, ValueError):
                pass  # stderr closed: the line is lost, the server goes on
            finally:
                self._lines.task_done()


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def send_log_to(handler: logging.Handler) -> None:
    """The root logger's one handler from now on, in the format of the one it replaces."""
    root = logging.getLogger()
    if root.handlers and handler.formatter is None:
        handler.setFormatter(root.handlers[0].formatter)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)


def flush_log(timeout_s: float) -> None:
    """What the log still holds, written out (a file's buffer, this module's queue for up to timeout_s). Never
    logging.shutdown, nor a plain stream handler: either may wait for a pipe nobody reads."""
    for handler in logging.getLogger().handlers:
        try:
            if isinstance(handler, NonBlockingStderr):
                handler.flush(timeout_s=timeout_s)
            elif isinstance(handler, logging.FileHandler):
                handler.flush()
        except Exception:  # noqa: BLE001 - the caller is on its way out
            pass
