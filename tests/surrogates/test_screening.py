"""Screening with a surrogate and confirming with the true evaluator; the random baseline."""

from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np
import pytest

from mdesign.errors import InputError
from mdesign.evaluators import get_evaluator
from mdesign.surrogates import Prediction
from mdesign.surrogates.screening import screen
from mdesign.surrogates.study import expected_best_of_random, regression_metrics


class Oracle:
    """A 'surrogate' that knows the truth, plus a chosen uncertainty."""

    def __init__(self, mean, std):
        self.mean, self.std = np.asarray(mean, float), np.asarray(std, float)

    def predict(self, images):
        idx = images[:, 0, 0].astype(int)  # candidates carry their index in pixel (0, 0)...
        return Prediction(self.mean[idx], self.std[idx])


class Truth:
    """...and the true evaluator reads the value of the candidate from the same pixel."""

    name = "truth"
    parameters: ClassVar[dict] = {}

    def __init__(self, values, fail=()):
        self.values, self.fail = np.asarray(values, float), set(fail)

    def __call__(self, images):
        idx = images[:, 0, 0].astype(int)
        if self.fail & set(idx.tolist()):
            raise RuntimeError("solver diverged")
        return self.values[idx]


def _candidates(n):
    images = np.zeros((n, 4, 4), np.uint8)
    images[:, 0, 0] = np.arange(n)  # labels > 1 are fine for these stand-ins
    return images


def test_screen_with_a_perfect_surrogate_confirms_the_true_top_k():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=50)
    res = screen(_candidates(50), Oracle(truth, np.zeros(50)), Truth(truth), top_k=5)
    assert set(res.confirmed) == set(np.argsort(-truth)[:5])
    assert res.best == int(np.argmax(truth)) and res.best_value == truth.max()
    np.testing.assert_array_equal(res.values, truth[res.confirmed])
    low = screen(
        _candidates(50), Oracle(truth, np.zeros(50)), Truth(truth), top_k=5, maximize=False
    )
    assert low.best == int(np.argmin(truth))


def test_kappa_promotes_uncertain_candidates():
    mean = np.array([1.0, 0.9, 0.0])
    std = np.array([0.0, 0.0, 0.6])
    truth = np.array([1.0, 0.9, 2.0])  # the uncertain one is in fact the best
    greedy = screen(_candidates(3), Oracle(mean, std), Truth(truth), top_k=1, kappa=0.0)
    ucb = screen(_candidates(3), Oracle(mean, std), Truth(truth), top_k=1, kappa=2.0)
    assert list(greedy.confirmed) == [0] and list(ucb.confirmed) == [2]
    np.testing.assert_allclose(ucb.score, mean + 2 * std)
    assert ucb.best_value == 2.0


def test_a_failing_confirmation_costs_only_itself():
    truth = np.arange(10.0)
    res = screen(_candidates(10), Oracle(truth, np.zeros(10)), Truth(truth, fail={9}), top_k=3)
    assert [e.index for e in res.errors] == [9]  # indexed by candidate
    assert np.isnan(res.values[0]) and res.best == 8
    with pytest.raises(InputError, match="top_k"):
        screen(_candidates(3), Oracle(truth, truth), Truth(truth), top_k=0)


def test_screen_with_a_fitted_surrogate_and_the_real_evaluator(images, c10):
    from mdesign.surrogates import S2Surrogate
    from tests.surrogates.conftest import S2

    model = S2Surrogate(S2).fit(images[:80], c10[:80])
    evaluator = get_evaluator("effective_conductivity", conductivities=(1, 10), refinement=1)
    res = screen(images[80:200], model, evaluator, top_k=10)
    np.testing.assert_allclose(res.values, c10[80:200][res.confirmed], rtol=1e-9)
    # the screen finds a design in the top 5% of the 120, better than 10 random picks would
    truth = c10[80:200]
    assert (truth > res.best_value).sum() < 6
    assert res.best_value > expected_best_of_random(truth, 10)


def test_expected_best_of_random_matches_enumeration():
    values = np.array([0.3, -1.0, 2.5, 0.7, 1.1, 0.0, 4.0])
    for k in (1, 3, 7):
        brute = np.mean([max(c) for c in itertools.combinations(values, k)])
        assert expected_best_of_random(values, k) == pytest.approx(brute, rel=1e-12)
        worst = np.mean([min(c) for c in itertools.combinations(values, k)])
        assert expected_best_of_random(values, k, maximize=False) == pytest.approx(worst)


def test_regression_metrics():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    perfect = regression_metrics(y, y)
    assert perfect["mae"] == 0 and perfect["r2"] == 1 and perfect["spearman"] == pytest.approx(1)
    mean_only = regression_metrics(np.full(4, y.mean()), y)
    assert mean_only["r2"] == 0 and mean_only["mae"] == 1.0
