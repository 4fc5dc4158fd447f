"""ModelSession.step keeps a decode step's bindings with the cache (runtime/session.py _StepBinding): the
outputs of an earlier step must survive later steps, and reused bindings must compute what fresh ones do."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.session import ModelSession, SessionOptions


def test_an_earlier_steps_outputs_are_not_overwritten_by_later_steps(tiny_model):
    ms = ModelSession(tiny_model, SessionOptions(provider="cpu"))
    cache = ms.new_cache(batch=2, length=64)
    ms.step(np.arange(3, 9, dtype=np.int64).reshape(2, 3), cache)
    first = ms.step(np.array([[5], [7]], dtype=np.int64), cache)
    values, ids = (a.copy() for a in first.candidates())
    logits = first.logits().copy()
    for token in (11, 12, 13):
        later = ms.step(np.array([[token], [token + 1]], dtype=np.int64), cache)
        assert not np.array_equal(later.logits(), logits)
    np.testing.assert_array_equal(first.candidates()[0], values)
    np.testing.assert_array_equal(first.candidates()[1], ids)
    np.testing.assert_array_equal(first.logits(), logits)


def test_decoding_through_kept_bindings_equals_one_run_over_the_whole_sequence(tiny_model):
    ms = ModelSession(tiny_model, SessionOptions(provider="cpu"))
    seq = np.array([[4, 9, 2, 17, 5, 30, 8, 1, 22, 6, 3, 14]], dtype=np.int64)
    stepped = ms.new_cache(length=32)
    ms.step(seq[:, :3], stepped)
    for i in range(3, seq.shape[1]):
        out = ms.step(seq[:, i:i + 1], stepped)  # rows 0..0 each time: one kept binding, inputs rewritten
    assert len(stepped._decode_bindings) == 1
    whole = ms.step(seq, ms.new_cache(length=32))
    np.testing.assert_allclose(out.logits(), whole.logits(), atol=1e-4)
    assert int(stepped.lengths[0]) == seq.shape[1]


def test_a_kept_binding_lets_its_steps_outputs_go(tiny_model):
    """The logits of a step belong to its StepOutput only: the kept binding holds no tensors between runs
    (at a 201,088-token vocabulary they are 0.8 MiB a row, in GPU memory on a GPU, for every stored cache)."""
    ms = ModelSession(tiny_model, SessionOptions(provider="cpu"))
    cache = ms.new_cache(length=32)
    ms.step(np.array([[3, 4, 5]], dtype=np.int64), cache)
    ms.step(np.array([[6]], dtype=np.int64), cache)
    (kept,) = cache._decode_bindings.values()
    with pytest.raises(RuntimeError, match="Tensors"):
        kept.binding.get_outputs()[0].shape()  # a placeholder for the next run to allocate, not the last logits


def test_a_cache_stepped_by_another_session_gets_bindings_of_that_session(tiny_model):
    first, second = (ModelSession(tiny_model, SessionOptions(provider="cpu")) for _ in range(2))
    cache = first.new_cache(length=32)
    first.step(np.array([[3, 4, 5]], dtype=np.int64), cache)
    a = first.step(np.array([[6]], dtype=np.int64), cache).logits().copy()
    cache.lengths[:] = 3
    b = second.step(np.array([[6]], dtype=np.int64), cache).logits()  # would raise with first's binding
    np.testing.assert_array_equal(a, b)
    (kept,) = cache._decode_bindings.values()
    assert kept.session is second.session
