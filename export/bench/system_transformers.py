"""Hugging Face transformers (eager attention, its own KV cache) as a benchmarked peer.

    python -m export.bench.system_transformers CHECKPOINT_DIR
"""
from __future__ import annotations

import sys
import time

import torch
from transformers import GptOssForCausalLM

from export.bench.worker import prompt_ids, serve


class Transformers:
    def __init__(self, checkpoint: str):
        self.model = GptOssForCausalLM.from_pretrained(checkpoint, dtype=torch.float32,
                                                       attn_implementation="eager").eval()
        self.vocab = self.model.config.vocab_size

    def _ids(self, n: int, seed: int) -> torch.Tensor:
        return torch.from_numpy(prompt_ids(n, seed, self.vocab)).unsqueeze(0)

    @torch.inference_mode()
    def _forward(self, ids: torch.Tensor, cache=None):
        out = self.model(input_ids=ids, past_key_values=cache, use_cache=True)
        return int(out.logits[0, -1].argmax()), out.past_key_values

    def greedy(self, n: int, steps: int, seed: int) -> list[int]:
        token, cache = self._forward(self._ids(n, seed))
        tokens = [token]
        while len(tokens) < steps:
            token, cache = self._forward(torch.tensor([[token]]), cache)
            tokens.append(token)
        return tokens

    def ttft(self, n: int, seed: int) -> float:
        ids = self._ids(n, seed)
        start = time.perf_counter()
        self._forward(ids)
        return (time.perf_counter() - start) * 1000

    def warm_ttft(self, prefix: int, n: int, seed: int) -> float:
        _, cache = self._forward(self._ids(prefix, seed))
        line = self._ids(n, seed + 1)
        start = time.perf_counter()
        self._forward(line, cache)
        return (time.perf_counter() - start) * 1000

    def decode(self, prompt: int, steps: int, seed: int) -> float:
        token, cache = self._forward(self._ids(prompt, seed))
        start = time.perf_counter()
        for _ in range(steps):
            token, cache = self._forward(torch.tensor([[token]]), cache)
        return steps / (time.perf_counter() - start)


if __name__ == "__main__":
    torch.manual_seed(0)
    serve(Transformers(sys.argv[1]))
