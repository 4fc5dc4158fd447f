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


def test_candidate_path_chooses_exactly_what_the_full_logits_would():
    """On a GPU only the top-K candidates cross to the host; the choice must not change."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=5000).astype(np.float32)
    order = np.argsort(-logits, kind="stable")[:64]
    values, ids = logits[order], order
    for params in (GREEDY, SamplingParams(temperature=0.8, top_k=40, top_p=0.9, seed=5),
                   SamplingParams(temperature=0.0, top_k=0, logit_bias={int(ids[0]): float("-inf")})):
        full, cand = Sampler(params), Sampler(params)
        for _ in range(20):
            assert cand.from_candidates(values, ids) == full(logits)


def test_candidates_cannot_decide_unlimited_top_k_or_positive_bias():
    values, ids = np.array([2.0, 1.0], np.float32), np.array([7, 3])
    assert Sampler(SamplingParams(temperature=1.0, top_k=0)).from_candidates(values, ids) is None
    assert Sampler(SamplingParams(temperature=0.0, logit_bias={9: 5.0})).from_candidates(values, ids) is None


@pytest.mark.parametrize("temperature", [5e-324, 1e-320, 1e-308, 1e-300])
def test_a_temperature_just_above_zero_is_greedy_not_an_error(temperature):
    """An outside probe's 1e-308: logits divided by it overflowed to inf, inf minus inf made the
    probabilities NaN and the reply an `internal` error."""
    for top_k in (0, 3):
        assert set(draws(SamplingParams(temperature=temperature, top_k=top_k, top_p=0.9, seed=1), 20)) == {1}
