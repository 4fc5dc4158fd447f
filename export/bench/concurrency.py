"""Aggregate tokens/s with N NPC conversations at once, through a real `parley serve` and real ZeroMQ clients."""
from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from runtime.client import ParleyClient, ServerUnavailable

# The benchmark NPC answers at once (no reasoning budget) and greedily, up to 128 tokens: every
# request asks for the same amount of decoding, so the levels compare batching, not reply lengths.
def bench_npc(final_tokens: int = 128, expected_tokens: int = 64) -> str:
    """The benchmark NPC's profile, answering in up to `final_tokens` tokens."""
    return f"""
name = "Bench"
persona = "A traveller who tells long stories about the road."
fallback_lines = ["..."]
[budget]
deadline_ms = 60000
max_reasoning_tokens = 0
max_final_tokens = {final_tokens}
expected_final_tokens = {expected_tokens}
[sampling]
temperature = 0.0
"""


BENCH_NPC = bench_npc()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchServer:
    """`parley serve` in a child process with the benchmark NPC; stopped with SIGTERM."""

    def __init__(self, model: Path, work: Path, max_batch: int, npc: str = BENCH_NPC, start_timeout_s: float = 120):
        profiles = work / "bench-profiles"
        profiles.mkdir(parents=True, exist_ok=True)
        (profiles / "bench.toml").write_text(npc)
        self.endpoint = f"tcp://127.0.0.1:{_free_port()}"
        self.log = (work / "bench-server.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "serve", "--model", str(model), "--profiles", str(profiles),
             "--bind", self.endpoint, "--max-batch", str(max_batch), "--max-queue", "64", "--rate-limit", "1000"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=work)
        started = time.monotonic()
        deadline = started + start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"parley serve exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with ParleyClient(self.endpoint, timeout_s=1.0, retries=0) as c:
                    c.health()
                self.start_seconds = time.monotonic() - started  # to its first answer: the model's load time
                return
            except ServerUnavailable:
                continue
        raise RuntimeError(f"parley serve did not answer health within {start_timeout_s:.0f} s; see {self.log.name}")

    def peak_rss_mb(self, field: str = "VmHWM") -> float:
        """The server's peak resident memory (VmRSS: its resident memory now)."""
        try:
            lines = Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        except OSError:  # no /proc (Windows, macOS)
            return float("nan")
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stats(self) -> dict:
        with ParleyClient(self.endpoint, timeout_s=10.0, retries=0) as c:
            return c.stats()

    def mean_batch(self, run) -> tuple[object, float]:
        """`run()`'s result and the mean rows of the decode steps it caused (the server's counters before
        and after: its stats' own mean covers every step since it started)."""
        before = self.stats()["batch"]
        result = run()
        after = self.stats()["batch"]
        steps = after["steps"] - before["steps"]
        return result, (after["rows"] - before["rows"]) / steps if steps else 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def aggregate_tok_s(endpoint: str, clients: int, per_client: int, tag: str, stream: bool = True) -> float:
    """`clients` threads, each with its own connection, each sending `per_client` replies back to back."""
    tokens = [0] * clients
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with ParleyClient(endpoint, timeout_s=300.0, retries=0) as c:
                for j in range(per_client):
                    done = c.say("bench", f"Tell me about road number {i * per_client + j}.",
                                 session=f"{tag}-{i}-{j}", stream=stream)
                    # a random-weight model's tokens may decode to no text (the NPC then says its fallback
                    # line), but they were decoded all the same: count tokens, not text
                    tokens[i] += done["stats"]["reasoning_tokens"] + done["stats"]["final_tokens"]
        except Exception as exc:  # noqa: BLE001 - reported below: a failed reply must not pass as a slow one
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} of {clients} concurrent clients failed ({failures[0]!r}); their "
                           "time would count without their tokens, so no figure is given")
    return sum(tokens) / elapsed


def measure(model: Path, work: Path, levels: tuple[int, ...], repeats: int, per_client: int, log) -> dict:
    server = BenchServer(model, work, max_batch=max(levels))
    try:
        aggregate_tok_s(server.endpoint, 1, 1, "warm")  # warm-up: first runs allocate
        runs: dict[int, list[float]] = {n: [] for n in levels}
        batches: dict[int, list[float]] = {n: [] for n in levels}
        for r in range(repeats):
            for n in levels:
                tok_s, batch = server.mean_batch(lambda: aggregate_tok_s(server.endpoint, n, per_client, f"r{r}n{n}"))
                runs[n].append(tok_s)
                batches[n].append(batch)
                log(f"  concurrent {n}: {tok_s:.1f} tok/s, mean batch {batch:.2f}")
        result = {f"concurrent_tok_s_{n}": statistics.median(v) for n, v in runs.items()}
        result["mean_batch_size"] = statistics.median(batches[max(levels)])  # at the most concurrent level
        result["server_peak_rss_mb"] = server.peak_rss_mb()
        return result
    finally:
        server.stop()
