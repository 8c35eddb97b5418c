"""Validation beyond S2: spread of the fractions, specific surface, cluster counts, anisotropy
and goals."""

import json
from collections import deque

import numpy as np
import pytest

from mdesign.gan.validation import GOALS, anisotropy, validate
from mdesign.grf import grf_microstructures

OLD_KEYS = {
    "n_images",
    "max_distance",
    "s2_distance_generated",
    "s2_distance_real",
    "s2_ratio",
    "s2_goal_met",
    "lineal_path_distance_generated",
    "lineal_path_distance_real",
    "lineal_path_ratio",
    "volume_fraction_mean",
    "volume_fraction_std",
    "volume_fraction_ks_generated",
    "volume_fraction_ks_real",
    "s2_mean",
    "lineal_path_mean",
}


def _grf_set(n, seed, vf=(0.3, 0.5), size=64):
    return grf_microstructures(
        n, (size, size), volume_fraction=vf, correlation_length=(2, 3), seed=seed
    ).images


@pytest.fixture(scope="module")
def sets():
    return _grf_set(20, seed=21), _grf_set(20, seed=22)


def _flood_count(mask):
    """Connected components of a boolean mask by breadth-first search, 4 neighbours."""
    h, w = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    n = 0
    for i in range(h):
        for j in range(w):
            if mask[i, j] and not seen[i, j]:
                n += 1
                seen[i, j] = True
                queue = deque([(i, j)])
                while queue:
                    y, x = queue.popleft()
                    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                        v, u = y + dy, x + dx
                        if 0 <= v < h and 0 <= u < w and mask[v, u] and not seen[v, u]:
                            seen[v, u] = True
                            queue.append((v, u))
    return n


def test_a_copy_of_the_real_set_meets_every_goal(sets):
    real, real_b = sets
    summ = validate(real.copy(), real, real_b, max_distance=8).summary()
    assert OLD_KEYS <= summ.keys()
    assert summ["volume_fraction_std_ratio"] == pytest.approx(1)
    assert summ["volume_fraction_std_ratio_real"] == pytest.approx(
        real_b.mean((1, 2)).std() / real.mean((1, 2)).std()
    )
    assert summ["specific_surface_error"] == 0
    assert summ["clusters_error"] == [0, 0]
    assert summ["specific_surface_mean"]["generated"] == summ["specific_surface_mean"]["real"]
    assert summ["goals"] == dict.fromkeys(
        [
            "volume_fraction_ks",
            "volume_fraction_std_ratio",
            "s2_ratio",
            "specific_surface",
            "clusters_phase_0",
            "clusters_phase_1",
            "anisotropy",
            "all",
        ],
        True,
    )
    assert summ["goal_thresholds"] == GOALS
    json.dumps(summ, allow_nan=False)  # strict JSON: no nan or inf


def test_cluster_counts_agree_with_a_flood_fill_and_known_disks(sets):
    real, real_b = sets
    rep = validate(real, real, real_b, max_distance=8)
    assert rep.clusters_real.shape == (20, 2) and rep.specific_surface_real.shape == (20,)
    for img, counts in zip(real[:4], rep.clusters_real[:4], strict=True):
        assert list(counts) == [_flood_count(img == 0), _flood_count(img == 1)]
    # five disjoint disks, one cut by the left edge, and two pixels touching only diagonally
    # (two clusters with 4-connectivity): 7 clusters of phase 1 in one background
    yy, xx = np.mgrid[:64, :64]
    disks = np.zeros((64, 64), dtype=np.uint8)
    for cy, cx, rad in ((12, 12, 6), (12, 45, 8), (40, 20, 5), (45, 48, 7), (30, 0, 4)):
        disks[(yy - cy) ** 2 + (xx - cx) ** 2 <= rad**2] = 1
    disks[60, 60] = disks[61, 61] = 1
    imgs = np.stack([disks, 1 - disks])
    counts = validate(imgs, imgs, imgs, max_distance=4).clusters_generated
    assert counts.tolist() == [[1, 7], [7, 1]]


def test_the_specific_surface_is_the_in_image_estimator():
    # one vertical interface: one crossing per row inside the image (a periodic estimator would
    # count the wrap-around too, twice as many); Crofton: (pi / 2) * mean of the x and y rates
    img = np.zeros((1, 32, 40), dtype=np.uint8)
    img[:, :, :15] = 1
    rep = validate(img, img, img, max_distance=4)
    assert rep.specific_surface_generated[0] == pytest.approx(np.pi / 2 * (1 / 39) / 2)


def test_phase_inversion_swaps_the_cluster_counts(sets):
    real, real_b = sets
    rep = validate(1 - real, real, real_b, max_distance=8)
    assert np.array_equal(rep.clusters_generated, rep.clusters_real[:, ::-1])
    # the interface is the same for both phases
    assert np.array_equal(rep.specific_surface_generated, rep.specific_surface_real)
    summ = rep.summary()
    assert summ["specific_surface_error"] == 0
    assert summ["specific_surface_std_ratio"] == 1 and summ["specific_surface_ks_generated"] == 0
    m0, m1 = summ["clusters_mean"]["real"]
    assert summ["clusters_error"] == pytest.approx([m1 / m0 - 1, m0 / m1 - 1])


def test_speckle_breaks_the_morphology_goals_but_not_s2(sets):
    real, real_b = sets
    flip = np.random.default_rng(0).random(real.shape) < 0.02
    speckled = np.where(flip, 1 - real, real).astype(real.dtype)
    summ = validate(speckled, real, real_b, max_distance=8).summary()
    # isolated flipped pixels are new clusters of both phases and new interface
    assert min(summ["clusters_error"]) > 0.3
    assert summ["specific_surface_error"] > 0.1
    goals = summ["goals"]
    assert not (goals["clusters_phase_0"] or goals["clusters_phase_1"])
    assert not goals["specific_surface"] and not goals["all"]
    assert summ["clusters_mean"]["generated"] == pytest.approx(
        validate(speckled, speckled, speckled, max_distance=4).clusters_generated.mean(0)
    )


def test_the_std_ratio_sees_collapsed_fractions_and_agrees_on_exact_ones(sets):
    real, real_b = sets
    # a generator that repeats one image: the right mean fraction and S2, no spread
    collapsed = np.repeat(real[:1], len(real), axis=0)
    summ = validate(collapsed, real, real_b, max_distance=8).summary()
    assert summ["volume_fraction_std_ratio"] == 0
    assert summ["goals"]["volume_fraction_std_ratio"] is False
    # fixed-fraction sets: both spreads are zero and agree (0 / 0 counts as 1)
    a, b, c = (_grf_set(5, seed=s, vf=0.4, size=32) for s in (1, 2, 3))
    assert np.ptp(a.mean((1, 2))) == 0
    summ = validate(a, b, c, max_distance=4).summary()
    assert summ["volume_fraction_std_ratio"] == 1
    assert summ["goals"]["volume_fraction_std_ratio"] is True


def test_a_narrower_range_of_feature_sizes_shows_in_the_surface_spread_not_its_mean():
    # real: correlation lengths uniform in [2, 6]; generated: all at 3.64, where the mean
    # interface density (~ 1 / length) is the real set's (mean of 1 / l over [2, 6] is
    # ln(3) / 4 = 1 / 3.64). The mean goal passes; the spread over images shows the collapse.
    def grf(seed, length):
        return grf_microstructures(
            40, (64, 64), volume_fraction=(0.3, 0.5), correlation_length=length, seed=seed
        ).images

    summ = validate(grf(3, 3.64), grf(1, (2, 6)), grf(2, (2, 6)), max_distance=8).summary()
    assert summ["goals"]["specific_surface"]  # the mean is within 10%
    assert summ["specific_surface_std_ratio"] < 0.4
    assert 0.7 < summ["specific_surface_std_ratio_real"] < 1.4
    assert summ["specific_surface_ks_generated"] > 2 * summ["specific_surface_ks_real"]
    s = summ["specific_surface_std"]
    assert summ["specific_surface_std_ratio"] == pytest.approx(s["generated"] / s["real"])


def test_anisotropy_of_stripes_in_closed_form_and_invariant_to_rotation(sets):
    # vertical stripes of period 2 at fraction 1/2: S2 down a column is 1/2 at every lag,
    # across it 1/2 at even lags and 0 at odd ones, so the axes differ by 1/4 on average over
    # r = 1..4; both diagonals cross the stripes alike (no difference); phi - phi^2 = 1/4
    stripes = np.zeros((1, 16, 16), dtype=np.uint8)
    stripes[:, :, ::2] = 1
    assert anisotropy(stripes, max_distance=4) == pytest.approx([0.5])
    # diagonal stripes (period 2 along the rows and the columns): the axes agree, one
    # diagonal stays in its phase and the other alternates
    yy, xx = np.mgrid[:16, :16]
    diagonal = ((yy + xx) % 2 == 0)[None].astype(np.uint8)
    # a checkerboard: every pair agrees, up to the in-image estimator's edges (an odd-sized
    # overlap holds one more pixel of one phase)
    assert anisotropy(diagonal, max_distance=4)[0] < 0.01
    diagonal = ((yy + xx) % 4 < 2)[None].astype(np.uint8)
    # along (k, -k) nothing changes (1/2); along (k, k) the phase alternates every step
    # (0, 1/2, 0, 1/2 for k = 1..4: the mean |difference| is 1/4) and the axes agree
    assert anisotropy(diagonal, max_distance=4) == pytest.approx([0.5], abs=0.01)  # edges
    assert anisotropy(np.zeros((1, 8, 8), dtype=np.uint8), max_distance=4).tolist() == [0.0]
    # swapping the axes swaps the two curves: the same figure per image
    real, _ = sets
    a = anisotropy(real, max_distance=8)
    np.testing.assert_allclose(
        anisotropy(real.transpose(0, 2, 1).copy(), max_distance=8), a, rtol=1e-5
    )
    np.testing.assert_allclose(
        anisotropy(np.rot90(real, axes=(1, 2)).copy(), max_distance=8), a, rtol=1e-5
    )


def test_bars_break_the_anisotropy_goal_but_not_the_radial_s2(sets):
    real, real_b = sets
    summ = validate(real.copy(), real, real_b, max_distance=8).summary()
    assert summ["anisotropy_ratio"] == 1 and summ["goals"]["anisotropy"]
    assert 0.8 < summ["anisotropy_ratio_real"] < 1.25  # two isotropic sets: sampling noise
    # the same fields stretched 3x along the rows (horizontal bars), with their fractions
    bars = np.repeat(_grf_set(20, seed=23, size=64), 3, axis=2)[:, :, :64]
    summ = validate(bars, real, real_b, max_distance=8).summary()
    assert summ["anisotropy_ratio"] > 2 and not summ["goals"]["anisotropy"]
    assert summ["anisotropy_mean"]["generated"] == pytest.approx(
        anisotropy(bars, max_distance=8).mean()
    )
