"""Sampling rules on hand-made logits."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.sampler import GREEDY, Sampler, SamplingParams

LOGITS = np.array([0.0, 5.0, 4.9, -1.0, 3.0], dtype=np.float32)


def draws(params, n=400):
    s = Sampler(params)
    return [s(LOGITS) for _ in range(n)]


def test_greedy_takes_the_argmax():
    assert set(draws(GREEDY, 10)) == {1}


def test_top_k_keeps_only_the_k_best():
    assert set(draws(SamplingParams(temperature=1.0, top_k=2, top_p=1.0, seed=0))) == {1, 2}


def test_top_p_keeps_the_smallest_set_over_p():
    # softmax of [5, 4.9, 3, 0, -1]: the best two hold ~0.89 of the mass
    assert set(draws(SamplingParams(temperature=1.0, top_k=0, top_p=0.8, seed=0))) == {1, 2}


def test_logit_bias_can_ban_a_token():
    assert set(draws(SamplingParams(temperature=0.0, top_k=0, logit_bias={1: float("-inf")}), 5)) == {2}


def test_same_seed_same_draws_different_seed_different_draws():
    a = draws(SamplingParams(temperature=2.0, top_k=0, top_p=1.0, seed=3), 50)
    assert a == draws(SamplingParams(temperature=2.0, top_k=0, top_p=1.0, seed=3), 50)
    assert a != draws(SamplingParams(temperature=2.0, top_k=0, top_p=1.0, seed=4), 50)


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_k=-2), dict(top_p=0.0)])
def test_invalid_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        Sampler(SamplingParams(**bad))
