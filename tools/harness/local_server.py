"""Start `parley serve` on the demo model in a subprocess, for tools that need a server to hit."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Iterator


@contextlib.contextmanager
def demo_server(*extra: str) -> Iterator[tuple[str, int]]:
    """Yields (endpoint, pid); the server is stopped with SIGTERM afterwards."""
    from tools.demo.run import export_once, free_port

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "serve", "--model", str(export_once()),
                             "--bind", endpoint, "--rate-limit", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        if "ready" not in proc.stdout.readline():
            raise RuntimeError("parley serve did not start")
        yield endpoint, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)
