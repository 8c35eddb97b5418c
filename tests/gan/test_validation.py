import json

import numpy as np
import pytest

from mdesign.descriptors import two_point_correlation_radial
from mdesign.errors import InputError
from mdesign.gan.training import data_provenance
from mdesign.gan.validation import (
    curve_distance,
    grf_reference,
    plot_validation,
    s2_distance,
    validate,
)
from mdesign.grf import grf_microstructures


def _grf_set(n, seed, vf=(0.3, 0.5), length=(2, 3), size=32):
    return grf_microstructures(
        n, (size, size), volume_fraction=vf, correlation_length=length, seed=seed
    ).images


def test_curve_distance_closed_form():
    a = np.random.default_rng(0).random((5, 9))
    assert curve_distance(a, a) == 0
    assert curve_distance(a, a + 0.25) == pytest.approx(0.25)
    b = a.copy()
    b[:, 0] += 0.9  # one of nine lags moves by 0.9
    assert curve_distance(a, b) == pytest.approx(0.1)


def test_s2_distance_sees_the_fraction_at_r0():
    # a set and its phase inverse: S2(0) are the fractions phi and 1 - phi
    imgs = _grf_set(20, seed=1)
    assert s2_distance(imgs, imgs, max_distance=0) == 0
    phi = imgs.mean()
    assert s2_distance(imgs, 1 - imgs, max_distance=0) == pytest.approx(abs(1 - 2 * phi))
    assert s2_distance(imgs, imgs[::-1].copy(), max_distance=8) == pytest.approx(0, abs=1e-12)
    s2 = two_point_correlation_radial(imgs, max_distance=8)
    s2b = two_point_correlation_radial(1 - imgs, max_distance=8)
    assert s2_distance(imgs, 1 - imgs, max_distance=8) == pytest.approx(curve_distance(s2, s2b))


def test_grf_reference_redraws_the_training_distribution(run_cli, tmp_path):
    out = tmp_path / "train.npz"
    res = run_cli(
        "grf",
        "-n",
        6,
        "--size",
        32,
        "--volume-fraction",
        "0.3:0.5",
        "--correlation-length",
        "2:3",
        "--anisotropy",
        "1.5",
        "--seed",
        5,
        "-o",
        out,
        "-q",
    )
    assert res.code == 0
    data = np.load(out)
    meta = data_provenance(data["images"], meta=json.loads(str(data["meta"])))
    with pytest.raises(InputError, match="training set's seed"):
        grf_reference(meta, 6, seed=5)
    with pytest.raises(InputError, match="training set's seed"):  # draws as 5 does
        grf_reference(meta, 6, seed=np.random.SeedSequence(5))
    child = grf_reference(meta, 6, seed=np.random.SeedSequence(5).spawn(1)[0])  # independent
    assert not np.array_equal(child.images, data["images"])
    # with the recorded seed swapped out, the parameters parsed back give the same bytes
    forged = {**meta, "grf": {**meta["grf"], "seed": 99}}
    again = grf_reference(forged, 6, seed=5)
    assert np.array_equal(again.images, data["images"])
    assert np.allclose(again.anisotropy, 1.5)
    fresh = grf_reference(meta, 50, seed=6)
    assert fresh.images.shape == (50, 32, 32)
    assert 0.3 - 1e-3 <= fresh.volume_fraction.min() and fresh.volume_fraction.max() <= 0.5
    assert 2 <= fresh.correlation_length.min() and fresh.correlation_length.max() <= 3
    with pytest.raises(InputError, match="did not come from `mdesign grf`"):
        grf_reference({"shape": [32, 32]}, 2, seed=1)


def test_validation_separates_a_biased_set_from_a_fair_one(tmp_path):
    real, real_b, fair = (_grf_set(60, seed=s) for s in (10, 11, 12))
    biased = _grf_set(60, seed=12, vf=(0.4, 0.6))  # fractions shifted by 0.1
    good = validate(fair, real, real_b, max_distance=8)
    bad = validate(biased, real, real_b, max_distance=8)
    assert good.s2_distance_real == bad.s2_distance_real > 0
    assert good.s2_ratio < 2 < bad.s2_ratio
    summ = bad.summary()
    assert summ["s2_goal_met"] is False and good.summary()["s2_goal_met"] is True
    assert summ["volume_fraction_mean"]["generated"] == pytest.approx(biased.mean())
    assert len(summ["s2_mean"]["generated"]) == 9
    assert summ["volume_fraction_ks_generated"] > summ["volume_fraction_ks_real"]
    json.dumps(summ)
    fig = plot_validation(bad, biased, real, tmp_path / "v.png")
    assert (tmp_path / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 9


def test_validation_rejects_multiphase_sets():
    imgs = _grf_set(4, seed=1)
    with pytest.raises(InputError, match="two-phase"):
        validate(imgs * 2, imgs, imgs, max_distance=4)


def test_reference_seeds_are_the_documented_derivation_and_differ():
    from mdesign.gan.validation import reference_seeds

    for seed in (0, 1, 2**32 - 1):
        a, b = reference_seeds(seed)
        # independently: SeedSequence([seed, 0x6A1]) hashed to two 32-bit words
        words = np.random.SeedSequence([seed, 0x6A1]).generate_state(2, dtype=np.uint32)
        assert (a, b) == (int(words[0]), int(words[1]))
        assert a != b and 0 <= a < 2**32 and 0 <= b < 2**32
    assert reference_seeds(0) != reference_seeds(1)


def test_reference_sets_are_two_independent_draws_of_the_training_distribution():
    from mdesign.gan.validation import grf_reference, reference_seeds, reference_sets
    from tests.surrogates.conftest import GRF_META

    meta = {"grf": GRF_META, "shape": [32, 32]}
    real, real_b, source = reference_sets(meta, 4, seed=5)
    s_a, s_b = reference_seeds(5)
    assert np.array_equal(real, grf_reference(meta, 4, seed=s_a).images)
    assert np.array_equal(real_b, grf_reference(meta, 4, seed=s_b).images)
    assert real.shape == (4, 32, 32) and not np.array_equal(real, real_b)
    assert f"seeds {s_a} and {s_b}" in source
