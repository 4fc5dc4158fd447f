"""Benchmarked systems as child processes that answer timing commands (see worker.py)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path


class SystemFailed(Exception):
    pass


class SystemProcess:
    def __init__(self, name: str, command: list, log_dir: Path):
        """`command` starts the system's worker (an interpreter, its script or -m module, the model)."""
        self.name = name
        self.stderr = (log_dir / f"{name}.log").open("w")
        self.proc = subprocess.Popen([str(part) for part in command], cwd=log_dir, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.peak_rss_mb = self._read()["peak_rss_mb"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemFailed(f"{self.name} exited (code {self.proc.poll()}); see {self.stderr.name}")
        return json.loads(line)

    def ask(self, op: str, **args) -> float:
        self.proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise SystemFailed(f"{self.name} {op}{args}: {answer['error']} (see {self.stderr.name})")
        self.peak_rss_mb = answer["peak_rss_mb"]
        return answer["value"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.stderr.close()
