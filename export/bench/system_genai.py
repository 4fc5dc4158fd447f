"""onnxruntime-genai as a benchmarked peer: its own model builder's graph, its own generator loop.

Runs inside the peer virtual environment (peers.py makes it), never in Parley's, and by path, so that
Python puts this folder first on sys.path and `worker` (standard library and numpy only) imports
without Parley installed there:

    PEER_PYTHON .../export/bench/system_genai.py GENAI_MODEL_FOLDER
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import onnxruntime_genai as og
from worker import prompt_ids, serve


CONTEXT = 1024


class Genai:
    def __init__(self, folder: str):
        self.model = og.Model(folder)
        self.vocab = json.loads((Path(folder) / "genai_config.json").read_text())["model"]["vocab_size"]

    def _generator(self, needed: int) -> og.Generator:
        params = og.GeneratorParams(self.model)
        # greedy, with the 1024-token context Parley's benchmark export has (the generator is made
        # outside the timed region, like Parley's conversation cache)
        params.set_search_options(do_sample=False, max_length=max(needed, CONTEXT), batch_size=1)
        return og.Generator(self.model, params)

    def greedy(self, n: int, steps: int, seed: int) -> list[int]:
        gen = self._generator(n + steps + 2)
        gen.append_tokens(prompt_ids(n, seed, self.vocab))
        tokens = []
        while len(tokens) < steps:
            gen.generate_next_token()
            tokens.append(int(gen.get_next_tokens()[0]))
        return tokens

    def ttft(self, n: int, seed: int) -> float:
        ids = prompt_ids(n, seed, self.vocab)
        gen = self._generator(n + 2)
        start = time.perf_counter()
        gen.append_tokens(ids)
        gen.generate_next_token()
        gen.get_next_tokens()
        return (time.perf_counter() - start) * 1000

    def warm_ttft(self, prefix: int, n: int, seed: int) -> float:
        """genai's own continuation: append a line to a generator that already holds the prefix."""
        gen = self._generator(prefix + n + 2)
        gen.append_tokens(prompt_ids(prefix, seed, self.vocab))
        line = prompt_ids(n, seed + 1, self.vocab)
        start = time.perf_counter()
        gen.append_tokens(line)
        gen.generate_next_token()
        gen.get_next_tokens()
        return (time.perf_counter() - start) * 1000

    def decode(self, prompt: int, steps: int, seed: int) -> float:
        gen = self._generator(prompt + steps + 2)
        gen.append_tokens(prompt_ids(prompt, seed, self.vocab))
        gen.generate_next_token()  # the first token comes from the prompt's logits
        start = time.perf_counter()
        for _ in range(steps):
            gen.generate_next_token()  # one forward pass on the previous token, then sampling
        gen.get_next_tokens()
        return steps / (time.perf_counter() - start)


if __name__ == "__main__":
    serve(Genai(sys.argv[1]))
