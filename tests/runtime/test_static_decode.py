"""Decode steps through bindings made once (tools/experiments/cuda_graph_decode.py, what a GPU session
replays as a CUDA graph) give the same greedy tokens as ModelSession.step, here on the CPU provider."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.session import ModelSession, SessionOptions
from tools.experiments.cuda_graph_decode import StaticDecode, graph_session, greedy_plain, greedy_static, prompts


@pytest.mark.parametrize("rows", [1, 3])
def test_static_bindings_decode_the_same_tokens_as_todays_steps_past_the_window(tiny_model, rows):
    plain = ModelSession(tiny_model, SessionOptions(provider="cpu"))
    static = graph_session(tiny_model, "cpu", cuda_graph=True)  # no graph on a CPU: the same bindings
    rows_prompts = prompts(plain.config.vocab_size, rows, seed=rows)
    steps = 24  # the tiny model's window is 5: its sliding layers evict many times
    a, _ = greedy_plain(plain, rows_prompts, steps, length=64)
    b, _ = greedy_static(static, rows_prompts, steps, length=64)
    assert a.shape == (rows, steps + 1)
    assert len(set(a.ravel().tolist())) > 2  # a real continuation, not one repeated token
    np.testing.assert_array_equal(a, b)


def test_a_full_cache_is_refused_before_the_run(tiny_model):
    ms = graph_session(tiny_model, "cpu", cuda_graph=False)
    cache = ms.new_cache(batch=1, length=8)
    ms.step(np.arange(3, 11, dtype=np.int64).reshape(1, -1), cache)
    with pytest.raises(ValueError, match="context full"):
        StaticDecode(ms, cache).step(np.array([5]))
    assert int(cache.lengths[0]) == 8
