"""Start `parley serve` as this process's child the way docs/shipping.md describes, for games and tools
written in Python (the C client's server_process.c does the same for native engines): any free loopback
port, read from the ready line; standard input a pipe only this process holds, so the server ends with it,
a crash included; its output read on a thread of its own, so it never fills.

    with start_server("models/npcs", "npc_profiles", log_file="logs/parley.log") as server:
        with ParleyClient(server.endpoint) as client:
            ...
"""
from __future__ import annotations

import collections
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Sequence

READY = re.compile(r"parley serve: ready on (\S+) with ")


class ServerStartFailed(RuntimeError):
    pass


class ChildServer:
    def __init__(self, proc: subprocess.Popen, endpoint: str, lines: collections.deque, reader: threading.Thread):
        self.proc, self.endpoint, self._lines, self._reader = proc, endpoint, lines, reader

    @property
    def output(self) -> list[str]:
        """Its last lines of output (the log too, without --log-file)."""
        return list(self._lines)

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int:
        """Close its standard input (it stops; replies in flight end `shutting_down`), SIGTERM it halfway
        through timeout_s where there is one, kill it at the end. Its exit code; -1 if it had to be killed."""
        code = self._stop(timeout_s)
        self._reader.join(2)  # its last lines into `output`
        return code

    def _stop(self, timeout_s: float) -> int:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            return self.proc.wait(timeout_s / 2)
        except subprocess.TimeoutExpired:
            pass
        if os.name != "nt":
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout_s / 2)
            except subprocess.TimeoutExpired:
                pass
        self.proc.kill()
        self.proc.wait()
        return -1

    def __enter__(self) -> "ChildServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(model: str | Path, profiles: str | Path, *, log_file: str | Path | None = None,
                 extra_args: Sequence[str] = (), bind: str = "tcp://127.0.0.1:*", python: str | None = None,
                 isolated: bool = False, timeout_s: float = 120.0) -> ChildServer:
    """Start the server and wait up to timeout_s for it to be ready; ServerStartFailed with its own last line
    and exit code if it ends first, or after a timeout (it is then killed). `python`: the interpreter that
    has Parley installed (default: this one); `isolated` adds -I (no PYTHONPATH or user site of the player's)."""
    if python is None:
        if getattr(sys, "frozen", False):  # PyInstaller, Nuitka: sys.executable is the game itself
            raise ServerStartFailed("this program is frozen: pass python=, the interpreter Parley is installed in")
        python = sys.executable
    cmd = [python, *(["-I"] if isolated else []), "-X", "utf8", "-m", "runtime.cli", "serve", "--model", str(model),
           "--profiles", str(profiles), "--bind", bind, "--exit-with-stdin",
           *(["--log-file", str(log_file)] if log_file else []), *extra_args]
    flags = subprocess.CREATE_NO_WINDOW if os.name == "nt" else 0
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            creationflags=flags)
    lines: collections.deque = collections.deque(maxlen=200)
    ready: queue.Queue = queue.Queue()

    def read_output() -> None:  # for its whole life: a pipe nobody reads would fill
        for raw in proc.stdout:
            line = raw.decode("utf-8", "backslashreplace").rstrip("\r\n")
            lines.append(line)
            match = READY.search(line)
            if match:
                ready.put(match.group(1))
        ready.put(None)  # its output ended: it has ended, or is ending

    reader = threading.Thread(target=read_output, name="parley-server-output", daemon=True)
    reader.start()
    try:
        endpoint = ready.get(timeout=timeout_s)
    except queue.Empty:
        proc.kill()
        proc.wait()
        raise ServerStartFailed(f"parley serve was not ready within {timeout_s:g} s (killed)"
                                + (f"; its last line: {lines[-1]}" if lines else "")) from None
    if endpoint is None:
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        raise ServerStartFailed(f"parley serve ended before it was ready (exit code {code})"
                                + (f": {lines[-1]}" if lines else ""))
    return ChildServer(proc, endpoint, lines, reader)
