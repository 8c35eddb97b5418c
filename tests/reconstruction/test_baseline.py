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


def test_baseline_takes_a_seed_sequence_and_spawns_its_two_streams(three_phase):
    from mdesign.seeds import child_seeds

    kw = dict(phases=3, exemplar_periodic=True)
    img, fit = grf_baseline(three_phase, (32, 40), seed=np.random.SeedSequence(8), **kw)
    image_seed, _ = child_seeds(np.random.SeedSequence(8), 2)  # spawned, not 8 and 9
    assert np.array_equal(img, fit.sample(1, (32, 40), seed=image_seed)[0])
    again, _ = grf_baseline(three_phase, (32, 40), seed=np.random.SeedSequence(8), **kw)
    assert np.array_equal(img, again)


def test_sheet_fit_recovers_the_generating_length_and_cuts_exact_fractions():
    # an exemplar drawn from the two-sided cut {|Y| < t} with a known length: the sheet fit
    # must find the minority phase as the sheet and that length again
    from mdesign.reconstruction.baseline import GRFFit

    truth = GRFFit("gaussian", 5.0, (0, 1), np.array([0.85, 0.15]), 0.0, sheet_phase=1)
    ex = truth.sample(1, (128, 128), seed=2)[0]
    assert np.bincount(ex.ravel(), minlength=2).tolist() == [
        round(0.85 * ex.size),
        round(0.15 * ex.size),
    ]
    fit = fit_grf(ex, phases=2, seed=1, exemplar_periodic=True, sheets=True)
    assert fit.sheet_phase == 1
    if fit.covariance == "gaussian":
        assert fit.correlation_length == pytest.approx(5.0, rel=0.15)
    assert fit.s2_rmse < 0.002
    # volumes: exact counts, and the same seed gives the same volume
    vol = fit.sample(2, (24, 20, 16), seed=0)
    assert vol.shape == (2, 24, 20, 16)
    counts = np.stack([np.bincount(v.ravel(), minlength=2) for v in vol])
    assert np.all(np.abs(counts[:, 1] - 0.15 * vol[0].size) <= 1)
    assert np.array_equal(vol, fit.sample(2, (24, 20, 16), seed=0))


def test_is_network_tells_grain_boundaries_from_particles():
    from mdesign.data import li2018_exemplar
    from mdesign.reconstruction.annealing import is_network

    alloy = li2018_exemplar("alloy", 256)[64:192, 64:192]
    carbonate = li2018_exemplar("carbonate", 256)[64:192, 64:192]
    assert is_network(alloy, 0)  # the grain boundaries: one web
    assert not is_network(alloy, 1)  # the grains: many
    assert not is_network(carbonate, 1)  # particles
    # a phase absent from the image is no network
    assert not is_network(np.zeros((8, 8), np.uint8), 1)


def test_dominant_wavenumber_of_stripes_is_their_frequency():
    from mdesign.reconstruction.baseline import dominant_wavenumber

    y, x = np.mgrid[:96, :96]
    stripes = (np.cos(2 * np.pi * (6 * x + 8 * y) / 96) > 0).astype(np.uint8)  # |k| = 10 / 96
    assert dominant_wavenumber(stripes) == pytest.approx(10 / 96)
    assert dominant_wavenumber(stripes.T) == pytest.approx(10 / 96)


def test_shell_field_has_the_shells_period_and_the_cut_exact_fractions():
    from mdesign.reconstruction.baseline import ShellFit, dominant_wavenumber, shell_field

    k0 = 12 / 128
    fields = shell_field(2, (128, 128), wavenumber=k0, width=0.05 * k0, seed=3)
    power = np.abs(np.fft.fft2(fields[0])) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128), indexing="ij"))
    # the power lies on the shell: its power-weighted mean |k| is k0 within the binning
    assert (power * k).sum() / power.sum() == pytest.approx(k0, abs=0.5 / 128)
    fit = ShellFit(k0, 0.05 * k0, np.array([0.3, 0.7]), 0.0)
    labels = fit.sample(2, (128, 128), seed=3)
    assert [int((lab == 1).sum()) for lab in labels] == [round(0.7 * 128 * 128)] * 2
    assert dominant_wavenumber(labels[0]) == pytest.approx(k0, abs=1.01 / 128)
    vol = fit.sample(1, (32, 32, 32), seed=1)[0]
    assert int((vol == 0).sum()) == round(0.3 * 32**3)


def test_shell_fit_recovers_the_period_of_a_shell_sample():
    from mdesign.reconstruction.baseline import ShellFit, fit_shell

    truth = ShellFit(10 / 96, 0.1 * 10 / 96, np.array([0.5, 0.5]), 0.0)
    ex = truth.sample(1, (96, 96), seed=0)[0]
    fit = fit_shell(ex, shape=(96, 96), phases=2, seed=5)
    assert fit.correlation_length == pytest.approx(9.6, rel=0.12)
    np.testing.assert_allclose(fit.fractions, [(ex == 0).mean(), (ex == 1).mean()])


def test_projected_lamellae_have_the_period_in_every_slice_orientation():
    from mdesign.reconstruction.baseline import ShellFit, dominant_wavenumber

    k0 = 8 / 32
    fit = ShellFit(k0, 0.2 * k0, np.array([0.5, 0.5]), 0.0, projected=True, iterations=10)
    vol = fit.sample(1, (32, 32, 32), seed=2)[0]
    assert int((vol == 1).sum()) == 32**3 // 2
    for axis in range(3):
        sl = np.take(vol, 16, axis=axis)
        assert dominant_wavenumber(sl) == pytest.approx(k0, abs=1.01 / 32)
    # an isotropic shell at the same wavenumber: oblique cuts, longer periods in the slices
    iso = ShellFit(k0, 0.2 * k0, np.array([0.5, 0.5]), 0.0).sample(1, (32, 32, 32), seed=2)[0]
    mean_k = lambda v: np.mean(  # noqa: E731
        [dominant_wavenumber(np.take(v, i, axis=0)) for i in range(0, 32, 4)]
    )
    assert mean_k(iso) < mean_k(vol)
