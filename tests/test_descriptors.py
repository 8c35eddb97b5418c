import numpy as np
import porespy as ps
import pytest
import torch

from mdesign.descriptors import (
    autocorrelation,
    characterize,
    chord_lengths,
    lag_distances,
    lineal_path,
    specific_surface,
    two_point_correlation,
    two_point_correlation_directional,
    two_point_correlation_radial,
    volume_fractions,
)
from mdesign.errors import InputError
from mdesign.grf import grf_microstructures


def _random_labels(seed, shape=(3, 9, 11), k=2, p=None):
    rng = np.random.default_rng(seed)
    return rng.choice(k, size=shape, p=p).astype(np.uint8)


def _brute_s2(img, phase, dy, dx, periodic):
    ind = (img == phase).astype(float)
    h, w = ind.shape
    if periodic:
        return (ind * np.roll(ind, (-dy, -dx), axis=(0, 1))).mean()
    ys = range(max(0, -dy), min(h, h - dy))
    xs = range(max(0, -dx), min(w, w - dx))
    vals = [ind[y, x] * ind[y + dy, x + dx] for y in ys for x in xs]
    return np.mean(vals)


@pytest.mark.parametrize("periodic", [True, False])
def test_s2_map_matches_brute_force(periodic):
    imgs = _random_labels(0, (2, 7, 9), k=3)
    maps = two_point_correlation(imgs, phase=2, periodic=periodic)
    h, w = 7, 9
    cy, cx = (h // 2, w // 2) if periodic else (h - 1, w - 1)
    assert maps.shape == ((2, h, w) if periodic else (2, 2 * h - 1, 2 * w - 1))
    for i in range(2):
        for dy in range(-(h - 1) // (2 if periodic else 1), (h - 1) // (2 if periodic else 1) + 1):
            for dx in (-3, 0, 2, 4):
                expect = _brute_s2(imgs[i], 2, dy, dx, periodic)
                assert maps[i, cy + dy, cx + dx] == pytest.approx(expect, abs=1e-6)


def test_s2_at_zero_is_the_fraction(grf_stack):
    fr = volume_fractions(grf_stack)
    for periodic in (True, False):
        s2 = two_point_correlation_radial(grf_stack, phase=1, periodic=periodic)
        assert np.allclose(s2[:, 0], fr[:, 1], atol=1e-6)
        s2_0 = two_point_correlation_radial(grf_stack, phase=0, periodic=periodic)
        assert np.allclose(s2_0[:, 0], fr[:, 0], atol=1e-6)


def test_radial_s2_equals_porespy_with_its_binning():
    # PoreSpy: non-periodic, pairs-normalised, bins [r, r+1) (floor); ours: round by default.
    # Re-binning our non-periodic map by floor reproduces PoreSpy's numbers.
    img = grf_microstructures(
        1, (48, 40), volume_fraction=0.4, correlation_length=3, seed=2
    ).images[0]
    r_max = 16
    ref = ps.metrics.two_point_correlation(img == 1, bins=np.arange(0, r_max + 1))
    corr = autocorrelation(torch.as_tensor(img == 1, dtype=torch.float64)[None], periodic=False)[
        0
    ].numpy()
    dist = lag_distances(img.shape, periodic=False)
    bins = np.floor(dist)
    ours = [corr[bins == r].mean() for r in range(r_max)]
    assert np.allclose(ours, ref.probability_scaled, atol=1e-9)
    # and our round-binned radial curve is close to PoreSpy's (bins shifted by half a pixel)
    radial = two_point_correlation_radial(img, max_distance=r_max - 1, periodic=False)[0]
    assert np.abs(radial[1:] - ref.probability_scaled[1:]).max() < 0.03
    assert radial[0] == pytest.approx(ref.probability_scaled[0], abs=1e-6)


def test_batched_equals_one_by_one(grf_stack):
    batched = two_point_correlation_radial(grf_stack, max_distance=8, chunk_size=5)
    single = np.stack([two_point_correlation_radial(im, max_distance=8)[0] for im in grf_stack])
    assert np.allclose(batched, single, atol=1e-6)
    lp = lineal_path(grf_stack, max_distance=8)
    lp1 = np.stack([lineal_path(im[None], max_distance=8)[0] for im in grf_stack])
    assert np.allclose(lp, lp1)


def test_autocorrelation_is_differentiable():
    x = torch.rand(2, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: autocorrelation(t, periodic=True), (x,))
    assert torch.autograd.gradcheck(lambda t: autocorrelation(t, periodic=False), (x,))


def _brute_lineal_path(img, phase, r_max, periodic):
    """Count, for each r, the start pixels whose r + 1 pixels along x (then y) are all `phase`."""
    out = []
    for r in range(r_max + 1):
        per_axis = []
        for lines in (img == phase, (img == phase).T):
            n_lines, n = lines.shape
            starts = range(n) if periodic else range(n - r)
            hits = sum(
                all(line[(x + k) % n] for k in range(r + 1)) for line in lines for x in starts
            )
            per_axis.append(hits / (n_lines * len(starts)))
        out.append(np.mean(per_axis))
    return np.array(out)


@pytest.mark.parametrize("periodic", [True, False])
def test_lineal_path_matches_brute_force(periodic):
    imgs = _random_labels(1, (3, 8, 10), p=[0.3, 0.7])
    imgs[0, 2, :] = 1  # a row wholly in the phase (no ends when periodic)
    imgs[1, :, 3] = 1
    lp = lineal_path(imgs, phase=1, max_distance=6, periodic=periodic)
    for i in range(3):
        assert np.allclose(lp[i], _brute_lineal_path(imgs[i], 1, 6, periodic))
    assert np.allclose(lp[:, 0], volume_fractions(imgs)[:, 1])
    assert (np.diff(lp, axis=1) <= 1e-12).all()


def test_chord_lengths_match_brute_force_and_lineal_path():
    imgs = _random_labels(2, (2, 12, 9), p=[0.4, 0.6])
    ch = chord_lengths(imgs, phase=1, periodic=False)
    # brute force: maximal runs not touching the edge
    expect = np.zeros(12, dtype=int)
    for img in imgs:
        for line in list(img) + list(img.T):
            runs, x = [], 0
            while x < len(line):
                if line[x] == 1:
                    s = x
                    while x < len(line) and line[x] == 1:
                        x += 1
                    if s > 0 and x < len(line):
                        runs.append(x - s)
                else:
                    x += 1
            for r in runs:
                expect[r - 1] += 1
    assert np.array_equal(ch.counts_x + ch.counts_y, expect)
    # periodic chords and the lineal path: n(r) = g(r-1) - 2 g(r) + g(r+1), g = L * lines * len
    sq = _random_labels(3, (1, 16, 16), p=[0.5, 0.5])
    chp = chord_lengths(sq, phase=1)
    g = lineal_path(sq, phase=1, max_distance=8)[0] * 2 * 16 * 16
    n_r = (g[:-2] - 2 * g[1:-1] + g[2:]).round().astype(int)
    assert np.array_equal(n_r, (chp.counts_x + chp.counts_y)[:7])


def test_specific_surface_of_a_disk_and_of_uniform_images():
    size, a = 256, 60.0
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    disk = (np.hypot(y, x) <= a).astype(np.uint8)
    s = specific_surface(disk)[0]
    assert s == pytest.approx(2 * np.pi * a / size**2, rel=0.02)
    assert specific_surface(np.ones((1, 8, 8), np.uint8))[0] == 0
    # pixel-edge counting would be 4/pi too high; Crofton is not
    edges = (np.diff(disk, axis=0) != 0).sum() + (np.diff(disk, axis=1) != 0).sum()
    assert edges / size**2 > 1.2 * s


def test_volume_fractions_sum_to_one():
    imgs = _random_labels(4, (5, 6, 7), k=4)
    fr = volume_fractions(imgs)
    assert fr.shape == (5, 4) and np.allclose(fr.sum(1), 1)
    assert volume_fractions(imgs, phases=6).shape == (5, 6)


def test_characterize_summary_is_consistent(grf_stack):
    char = characterize(grf_stack, phase=1)
    rep = char.summary()
    assert rep["n_images"] == 32 and rep["shape"] == [32, 32]
    assert len(rep["s2"]) == len(rep["lineal_path"]) == 8 + 1  # R = 32 // 4
    assert rep["s2"][0] == pytest.approx(rep["volume_fractions"][1], abs=1e-6)
    assert rep["lineal_path"][0] == pytest.approx(rep["volume_fractions"][1], abs=1e-9)
    with pytest.raises(InputError, match=r"^phase: 2 is not a phase") as info:
        characterize(grf_stack, phase=2)
    assert info.value.param == "phase"
    with pytest.raises(InputError, match=r"^max_distance: must be between") as info:
        characterize(grf_stack, max_distance=17)
    assert info.value.param == "max_distance"


def test_non_periodic_radial_with_short_padding_equals_full_padding(grf_stack):
    from mdesign.descriptors import radial_average

    x = torch.as_tensor(grf_stack == 1, dtype=torch.float32)
    full = radial_average(
        autocorrelation(x, periodic=False), lag_distances((32, 32), periodic=False), 7
    ).numpy()
    short = two_point_correlation_radial(grf_stack, max_distance=7, periodic=False)
    assert np.allclose(full, short, atol=1e-6)


@pytest.mark.parametrize("periodic", [True, False])
def test_directional_s2_matches_brute_force(periodic):
    imgs = _random_labels(7, shape=(3, 12, 15))
    dirs = [(1, 0), (0, 1), (1, 1), (1, -1), (2, -1)]
    got = two_point_correlation_directional(
        imgs, directions=dirs, phase=1, max_distance=5, periodic=periodic
    )
    assert got.shape == (3, 5, 6)
    for n, img in enumerate(imgs):
        for j, (dy, dx) in enumerate(dirs):
            for k in range(6):
                want = _brute_s2(img, 1, k * dy, k * dx, periodic)
                assert got[n, j, k] == pytest.approx(want, abs=1e-6), (n, j, k)
    # the axes by default, and one image alone as in the stack
    axes = two_point_correlation_directional(imgs, max_distance=5, periodic=periodic)
    np.testing.assert_allclose(axes, got[:, :2], atol=1e-6)
    one = two_point_correlation_directional(imgs[1], max_distance=5, periodic=periodic)
    np.testing.assert_allclose(one[0], axes[1], atol=1e-6)


def test_directional_s2_of_stripes_and_of_a_volume():
    # vertical stripes of period 2: down a column nothing changes, across it and along a
    # diagonal every odd multiple lands in the other phase
    stripes = np.zeros((1, 8, 10), dtype=np.uint8)
    stripes[:, :, ::2] = 1
    got = two_point_correlation_directional(
        stripes, directions=[(1, 0), (0, 1), (1, 1)], max_distance=4, periodic=False
    )[0]
    np.testing.assert_allclose(got[0], 0.5, atol=1e-6)
    np.testing.assert_allclose(got[1], [0.5, 0, 0.5, 0, 0.5], atol=1e-6)
    np.testing.assert_allclose(got[2], [0.5, 0, 0.5, 0, 0.5], atol=1e-6)
    vol = _random_labels(3, shape=(2, 6, 7, 8))
    got = two_point_correlation_directional(vol, max_distance=2, periodic=True)
    assert got.shape == (2, 3, 3)
    ind = (vol[0] == 1).astype(float)
    for axis in range(3):
        for r in range(3):
            want = (ind * np.roll(ind, -r, axis=axis)).mean()
            assert got[0, axis, r] == pytest.approx(want, abs=1e-6)
    with pytest.raises(InputError, match="reaches beyond"):
        two_point_correlation_directional(stripes, max_distance=8)
    with pytest.raises(InputError, match="non-zero integer vectors of 2"):
        two_point_correlation_directional(stripes, directions=[(0, 0)], max_distance=2)


@pytest.mark.parametrize("seed", [0, 1])
def test_local_thickness_equals_porespys(seed):
    from mdesign.descriptors import local_thickness, local_thickness_map

    img = grf_microstructures(
        1, (48, 56), volume_fraction=0.4, correlation_length=4.0, seed=seed
    ).images[0]
    for phase in (0, 1):
        mask = img == phase
        ours = local_thickness_map(mask)
        theirs = ps.filters.local_thickness(mask)  # default: brute force, every integer radius
        assert np.array_equal(ours, theirs.astype(np.int64))
        lt = local_thickness(img, phase=phase)
        assert lt.counts.sum() == mask.sum()
        assert lt.mean == pytest.approx(theirs[mask].mean())
        assert lt.quantile(0.9) == np.percentile(theirs[mask], 90, method="inverted_cdf")


def test_local_thickness_of_a_disk_and_a_band():
    from mdesign.descriptors import local_thickness

    yy, xx = np.mgrid[:41, :41]
    disk = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 10**2).astype(np.uint8)
    lt = local_thickness(disk, phase=1)
    # one disk: its radius, but for the digital disk's tips (the open ball of radius 10 misses)
    assert lt.quantile(0.9) == 10 and lt.counts[-1] >= 0.95 * disk.sum()
    band = np.zeros((30, 40), np.uint8)
    band[10:17] = 1  # 7 px wide: the largest inscribed radius is 4 (distances 1..4)
    lt = local_thickness(np.stack([band, band]), phase=1)
    assert lt.radii[-1] == 4 and lt.counts.sum() == 2 * band.sum()
    assert np.isnan(local_thickness(np.zeros((8, 8), np.uint8), phase=1).mean)
