"""Tie a server's life to the game that started it: the game keeps a pipe to the server's standard input, and
when that pipe closes (the game quit, or crashed: the operating system closes a dead process's handles, on
Windows as on POSIX) the server stops. No process ids are polled, so no recycled id can keep it alive.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Callable

from runtime.log_outlet import flush_log

log = logging.getLogger(__name__)

# How long a server has to stop by itself once the pipe closed; then the process ends regardless (a server
# wedged on a full stderr pipe, or in a driver call, must not outlive the game).
GRACE_S = 15.0


def watch(fd: int, on_close: Callable[[], None]) -> threading.Thread:
    """Read and discard `fd` on a daemon thread; call on_close once it ends (EOF or a read error). Raw reads
    (os.read): a daemon thread blocked in sys.stdin's buffered reader holds its lock, and interpreter
    shutdown aborts on that lock (exit -6 instead of the command's own code)."""

    def read_until_closed() -> None:
        try:
            while os.read(fd, 4096):
                pass  # what the game writes is ignored: only the pipe's end means something
        except OSError:  # a broken or closed handle ends the game's side too
            pass
        log.info("standard input closed: the process that started this server has gone or closed its pipe "
                 "(with --exit-with-stdin the server's standard input must be a pipe the game keeps open)")
        on_close()

    thread = threading.Thread(target=read_until_closed, name="parley-stdin-lifeline", daemon=True)
    thread.start()
    return thread


class Lifeline:
    """Until a server is serving, the pipe's end exits the process at once (a model may take minutes to load,
    and nothing is bound or written yet); from then on it asks the server to stop as SIGTERM would, and ends
    the process if the server has not stopped within `grace_s`."""

    def __init__(self, grace_s: float = GRACE_S):
        self._lock = threading.Lock()
        self._stop: Callable[[], None] | None = None
        self._closed = False
        self.grace_s = grace_s

    def start(self, fd: int) -> threading.Thread:
        return watch(fd, self._on_close)

    def serving(self, stop: Callable[[], None]) -> None:
        """The server is up: stop it with `stop` when the pipe ends (at once if it already has)."""
        with self._lock:
            self._stop = stop
            closed = self._closed
        if closed:
            self._stop_or_end(stop)

    def _on_close(self) -> None:
        with self._lock:
            self._closed = True
            stop = self._stop
        if stop is not None:
            self._stop_or_end(stop)
            return
        _end_process("standard input closed before the server was serving: exiting (with --exit-with-stdin it "
                     "must be a pipe the game keeps open)")

    def _stop_or_end(self, stop: Callable[[], None]) -> None:
        end_if_not_stopped_within(self.grace_s)
        stop()


STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, n))


def end_on_signals_while_loading() -> Callable[[], None]:
    """SIGTERM or Ctrl-C (CTRL_BREAK_EVENT on Windows) before the server serves ends the process at once, 0:
    nothing is bound or written yet. A Python signal handler would run only once the main thread is back from
    the C call it is in (loading a model takes minutes), so the signal's wake-up byte is read on a thread of
    its own. Returns the function to call once the server's own handlers are installed."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    for number in STOP_SIGNALS:
        signal.signal(number, lambda *_: None)  # the thread below acts; the default action would kill (-15)
    serving = threading.Event()

    def wait_for_signal() -> None:
        try:
            while True:  # every signal with a Python handler writes its byte: only a stop signal ends
                got = reader.recv(1)
                if not got or got[0] in STOP_SIGNALS:
                    break
        except OSError:
            return
        finally:
            reader.close()
        if got and not serving.is_set():
            _end_process(f"stopped by signal {got[0]} before serving")

    threading.Thread(target=wait_for_signal, name="parley-loading-signals", daemon=True).start()

    def now_serving() -> None:
        serving.set()
        signal.set_wakeup_fd(previous)
        writer.close()  # the thread's recv returns b"" and it ends
    return now_serving


def end_if_not_stopped_within(grace_s: float) -> None:
    """Asked to stop (the pipe closed, a signal): if the process is still here after grace_s, it ends."""
    timer = threading.Timer(grace_s, _end_process, args=(f"the server did not stop within {grace_s:.0f} s of "
                                                          "being asked; ending the process",))
    timer.daemon = True
    timer.start()


# Set once the command is already ending with its own exit code (an error said on stderr's last line).
_ending_with: int | None = None


def ending(code: int) -> None:
    """The command is ending with `code`, its reason already said or being said: a pipe that closes or a stop
    signal from now on (a game closes the pipe as soon as it reads the error) ends the process with that code
    and says nothing more, so the error stays the last line and the exit code stays the error's."""
    global _ending_with
    _ending_with = code


def _end_process(why: str) -> None:
    """Say why in the log (its handlers never block: a file, or log_outlet's queue), give it half a second to
    go out, and end now with 0: not logging.shutdown, which would wait for what is stuck."""
    if _ending_with is not None:
        os._exit(_ending_with)
    log.info(why)
    flush_log(timeout_s=0.5)
    os._exit(0)
