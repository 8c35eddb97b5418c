import numpy as np
import pytest

from mdesign.grf import grf_microstructures
from mdesign.reconstruction.baseline import fit_grf, grf_baseline


def test_fit_recovers_the_generating_correlation_length():
    # an exemplar drawn from a known GRF: the fit must find its family's length again
    ex = grf_microstructures(
        1, (96, 96), volume_fraction=0.4, correlation_length=4.0, seed=3
    ).images[0]
    fit = fit_grf(ex, phases=2, seed=1, exemplar_periodic=True)
    assert fit.covariance in ("gaussian", "matern")
    if fit.covariance == "gaussian":
        assert fit.correlation_length == pytest.approx(4.0, rel=0.15)
    assert fit.s2_rmse < 0.01


def test_baseline_has_exact_fractions_and_a_fresh_seed(three_phase):
    img, fit = grf_baseline(three_phase, (32, 40), phases=3, seed=2, exemplar_periodic=True)
    assert img.shape == (32, 40)
    fr = np.bincount(three_phase.ravel(), minlength=3) / three_phase.size
    assert np.all(np.abs(np.bincount(img.ravel(), minlength=3) - fr * img.size) <= 1)
    assert sorted(fit.order) == [0, 1, 2]
    # the returned image is not one of the fitting images (seed + 1)
    assert not np.array_equal(img, fit.sample(1, (32, 40), seed=3)[0])
    assert np.array_equal(img, fit.sample(1, (32, 40), seed=2)[0])
