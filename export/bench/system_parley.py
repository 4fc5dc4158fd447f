"""Parley's runtime as a benchmarked system: the same session, KV cache and sampler calls the engine makes.

    python -m export.bench.system_parley MODEL_FOLDER      (then JSON commands on stdin, see worker.py)
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from export.bench.concurrency import BENCH_NPC
from export.bench.worker import prompt_ids, serve
from runtime.engine import Engine, ReplyRequest, ReplyResult
from runtime.profiles import parse_profile
from runtime.sampler import GREEDY, Sampler
from runtime.session import ModelSession


class Parley:
    def __init__(self, folder: str):
        self.session = ModelSession(folder)
        self.vocab = self.session.config.vocab_size
        # One conversation-sized cache, made once, as the engine keeps one per conversation.
        self.cache = self.session.new_cache()
        self.sampler = Sampler(GREEDY)
        self.on_device = self.session.device != "cpu"
        self.folder = folder
        self._engine: Engine | None = None

    def _next(self, ids: np.ndarray) -> int:
        out = self.session.step(ids.reshape(1, -1), self.cache)
        return self.sampler.from_step(out, 0, prefer_candidates=self.on_device)

    def greedy(self, n: int, steps: int, seed: int) -> list[int]:
        """The greedy continuation of a prompt: every system must give the same one (same model, same input)."""
        self.cache.lengths[:] = 0
        tokens = [self._next(prompt_ids(n, seed, self.vocab))]
        while len(tokens) < steps:
            tokens.append(self._next(np.array(tokens[-1:], dtype=np.int64)))
        return tokens

    def ttft(self, n: int, seed: int) -> float:
        """Milliseconds from an empty cache and n prompt tokens to the first sampled token."""
        ids = prompt_ids(n, seed, self.vocab)
        self.cache.lengths[:] = 0
        start = time.perf_counter()
        self._next(ids)
        return (time.perf_counter() - start) * 1000

    def warm_ttft(self, prefix: int, n: int, seed: int) -> float:
        """Milliseconds to the first token of an n-token line appended to a cached prefix (the NPC's prompt)."""
        self.cache.lengths[:] = 0
        self._next(prompt_ids(prefix, seed, self.vocab))
        line = prompt_ids(n, seed + 1, self.vocab)
        start = time.perf_counter()
        self._next(line)
        return (time.perf_counter() - start) * 1000

    def decode(self, prompt: int, steps: int, seed: int) -> float:
        """Tokens per second over `steps` greedy tokens after a `prompt`-token prefill."""
        self.cache.lengths[:] = 0
        token = self._next(prompt_ids(prompt, seed, self.vocab))
        start = time.perf_counter()
        for _ in range(steps):
            token = self._next(np.array([token], dtype=np.int64))
        return steps / (time.perf_counter() - start)

    def python_share(self, seed: int) -> float:
        """Percent of a whole reply's time (render, prefill, 128 decode steps, harmony parsing, sampling,
        detokenizing) spent outside onnxruntime's graph runs, through the real engine."""
        if self._engine is None:
            profile = Path(tempfile.mkdtemp(prefix="parley-bench-")) / "bench.toml"
            profile.write_text(BENCH_NPC)
            self._engine = Engine(self.folder, {"bench": parse_profile(profile)})
            run = self._engine.session.session.run_with_iobinding

            def timed(*args, **kw):
                start = time.perf_counter()
                try:
                    return run(*args, **kw)
                finally:
                    self._in_graph += time.perf_counter() - start

            self._engine.session.session.run_with_iobinding = timed
        self._in_graph = 0.0
        start = time.perf_counter()
        for event in self._engine.reply(ReplyRequest(npc="bench", text=f"Tell me about road {seed}.")):
            if isinstance(event, ReplyResult):
                break
        wall = time.perf_counter() - start
        return 100 * (wall - self._in_graph) / wall


if __name__ == "__main__":
    serve(Parley(sys.argv[1]))
