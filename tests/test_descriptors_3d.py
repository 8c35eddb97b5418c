"""Descriptors of volumes (``N x H x W x D``): brute-force counts, PoreSpy, closed forms, CLI."""

import json
import warnings

import numpy as np
import porespy as ps
import pytest
import torch

from mdesign.descriptors import (
    autocorrelation,
    characterize,
    characterize_memory,
    chord_lengths,
    lag_distances,
    lineal_path,
    radial_average,
    specific_surface,
    two_point_correlation,
    two_point_correlation_radial,
    volume_fractions,
)
from mdesign.errors import InputError
from mdesign.grf import grf_microstructures
from mdesign.io import read_images
from tests.conftest import assert_input_error

SHAPE = (10, 12, 14)


def _random_volumes(seed, n=2, shape=SHAPE, k=2, p=None):
    rng = np.random.default_rng(seed)
    return rng.choice(k, size=(n, *shape), p=p).astype(np.uint8)


@pytest.fixture(scope="module")
def grf_volumes() -> np.ndarray:
    """Three periodic two-phase 24^3 volumes, fraction 0.3, correlation length 3."""
    return grf_microstructures(
        3, (24, 24, 24), volume_fraction=0.3, correlation_length=3, seed=5
    ).images


# ---------------------------------------------------------------- brute force


def _brute_s2(ind, d, periodic):
    """Mean of ind[x] * ind[x + d] over the start points x (torus, or both points inside)."""
    if periodic:
        return (ind * np.roll(ind, tuple(-c for c in d), axis=(0, 1, 2))).mean()
    a = tuple(slice(max(0, -c), n - max(0, c)) for c, n in zip(d, ind.shape, strict=True))
    b = tuple(slice(max(0, c), n + min(0, c)) for c, n in zip(d, ind.shape, strict=True))
    return (ind[a] * ind[b]).mean()


def _brute_s2_map(vol, phase, periodic):
    """Every displacement of the full map, centred as two_point_correlation returns it."""
    ind = (vol == phase).astype(np.float64)
    if periodic:
        ranges = [range(-(n // 2), n - n // 2) for n in vol.shape]
    else:
        ranges = [range(-(n - 1), n) for n in vol.shape]
    out = np.zeros([len(r) for r in ranges])
    for i, dy in enumerate(ranges[0]):
        for j, dx in enumerate(ranges[1]):
            for m, dz in enumerate(ranges[2]):
                out[i, j, m] = _brute_s2(ind, (dy, dx, dz), periodic)
    return out


@pytest.mark.parametrize("periodic", [True, False])
def test_s2_map_and_radial_match_brute_force(periodic):
    vols = _random_volumes(0, k=3)
    brute = [_brute_s2_map(v, 2, periodic) for v in vols]
    # float64 core: exact to rounding
    x = torch.as_tensor(vols == 2, dtype=torch.float64)
    corr = autocorrelation(x, periodic=periodic, dims=3)
    shifted = torch.fft.fftshift(corr, dim=(-3, -2, -1)).numpy()
    if not periodic:
        shifted = shifted[:, 1:, 1:, 1:]
    assert np.abs(shifted - np.stack(brute)).max() <= 1e-9
    # the public map (float32 indicators) has the same layout; its FFT round-off (~1e-7 of the
    # whole sum) is divided by the pair count, down to 1 at the farthest non-periodic lags
    maps = two_point_correlation(vols, phase=2, periodic=periodic)
    assert maps.shape == np.stack(brute).shape
    assert np.abs(maps - np.stack(brute)).max() < (1e-6 if periodic else 3e-5)
    # radial: the mean over displacements with round(|d|) = r, by explicit loops
    r_max = 4
    expect = np.zeros((2, r_max + 1))
    for i, b in enumerate(brute):
        centre = [n // 2 for n in SHAPE] if periodic else [n - 1 for n in SHAPE]
        sums, counts = np.zeros(r_max + 1), np.zeros(r_max + 1)
        for idx in np.ndindex(b.shape):
            r = int(np.rint(np.sqrt(sum((k - c) ** 2 for k, c in zip(idx, centre, strict=True)))))
            if r <= r_max:
                sums[r] += b[idx]
                counts[r] += 1
        expect[i] = sums / counts
    dist = lag_distances(SHAPE, periodic=periodic, max_lag=r_max)
    core = autocorrelation(x, periodic=periodic, max_lag=r_max, dims=3)
    assert np.abs(radial_average(core, dist, r_max).numpy() - expect).max() <= 1e-9
    public = two_point_correlation_radial(vols, phase=2, max_distance=r_max, periodic=periodic)
    assert np.abs(public - expect).max() < 1e-6
    assert np.allclose(public[:, 0], volume_fractions(vols, phases=3)[:, 2], atol=1e-6)


def _brute_lineal_path(vol, phase, r_max, periodic, axis):
    """Start voxels whose r + 1 voxels along ``axis`` all lie in ``phase``, over all starts."""
    ind = np.moveaxis(vol == phase, axis, -1)
    n = ind.shape[-1]
    out = []
    for r in range(r_max + 1):
        hits, starts = 0, 0
        for line in ind.reshape(-1, n):
            for x in range(n) if periodic else range(n - r):
                starts += 1
                hits += all(line[(x + k) % n] for k in range(r + 1))
        out.append(hits / starts)
    return np.array(out)


@pytest.mark.parametrize("periodic", [True, False])
def test_lineal_path_per_axis_and_mean_match_brute_force(periodic):
    vols = _random_volumes(1, p=[0.3, 0.7])
    vols[0, 3, 4, :] = 1  # a line wholly in the phase along z (no ends when periodic)
    vols[1, :, 5, 6] = 1  # and along y
    r_max = 5
    per_axis = np.stack(
        [lineal_path(vols, max_distance=r_max, periodic=periodic, axis=a) for a in range(3)], 1
    )
    for i in range(2):
        for a in range(3):
            expect = _brute_lineal_path(vols[i], 1, r_max, periodic, a)
            assert np.abs(per_axis[i, a] - expect).max() <= 1e-12
    mean = lineal_path(vols, max_distance=r_max, periodic=periodic)
    assert np.abs(mean - per_axis.mean(1)).max() <= 1e-12
    assert np.abs(mean[:, 0] - volume_fractions(vols)[:, 1]).max() <= 1e-12
    assert (np.diff(mean, axis=1) <= 1e-12).all()


def _brute_runs(line, periodic):
    """Maximal runs of True: (lengths kept, spans) with edge-cut runs dropped if not periodic."""
    n = len(line)
    if line.all():
        return [], 1
    if periodic:
        s = int(np.argmin(line))
        line = np.roll(line, -s)
    runs, x = [], 0
    while x < n:
        if line[x]:
            s = x
            while x < n and line[x]:
                x += 1
            if periodic or (s > 0 and x < n):
                runs.append(x - s)
        else:
            x += 1
    return runs, 0


@pytest.mark.parametrize("periodic", [True, False])
def test_chords_per_axis_match_brute_force(periodic):
    vols = _random_volumes(2, p=[0.4, 0.6])
    vols[0, :, 2, 3] = 1
    ch = chord_lengths(vols, phase=1, periodic=periodic)
    assert ch.counts.shape == (3, max(SHAPE))
    spans = 0
    for a in range(3):
        expect = np.zeros(max(SHAPE), dtype=int)
        for vol in vols:
            lines = np.moveaxis(vol == 1, a, -1).reshape(-1, SHAPE[a])
            for line in lines:
                runs, span = _brute_runs(line, periodic)
                spans += span
                for r in runs:
                    expect[r - 1] += 1
        assert np.array_equal(ch.counts[a], expect)
        mean = (expect * np.arange(1, max(SHAPE) + 1)).sum() / expect.sum()
        assert ch.mean_along(a) == pytest.approx(mean, rel=1e-12)
    assert ch.spanning == spans
    assert np.array_equal(ch.counts_y, ch.counts[0]) and np.array_equal(ch.counts_x, ch.counts[1])
    assert ch.probability.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("periodic", [True, False])
def test_specific_surface_matches_a_crossing_count(periodic):
    vols = _random_volumes(3, p=[0.5, 0.5])
    got = specific_surface(vols, phase=1, periodic=periodic)
    for i, vol in enumerate(vols):
        p_l = []
        for a in range(3):
            lines = np.moveaxis(vol == 1, a, -1).reshape(-1, SHAPE[a])
            crossings, length = 0, 0
            for line in lines:
                pairs = range(SHAPE[a]) if periodic else range(1, SHAPE[a])
                crossings += sum(line[x] != line[x - 1] for x in pairs)
                length += len(pairs)
            p_l.append(crossings / length)
        assert abs(got[i] - 2 * np.mean(p_l)) <= 1e-12


# ---------------------------------------------------------------- PoreSpy


def test_radial_s2_equals_porespy_with_its_binning(grf_volumes):
    # PoreSpy: non-periodic, pairs-normalised, bins [r, r+1) (floor); ours: round by default.
    vol = grf_volumes[0, :, :20, :22] == 1  # unequal sides
    r_max = 8
    ref = ps.metrics.two_point_correlation(vol, voxel_size=1, bins=np.arange(0, r_max + 1))
    corr = autocorrelation(torch.as_tensor(vol, dtype=torch.float64)[None], periodic=False, dims=3)
    dist = lag_distances(vol.shape, periodic=False)
    bins = np.floor(dist)
    ours = [corr[0].numpy()[bins == r].mean() for r in range(r_max)]
    assert np.abs(np.array(ours) - ref.probability_scaled).max() <= 1e-9
    assert ref.probability_scaled[0] == pytest.approx(vol.mean(), abs=1e-12)
    radial = two_point_correlation_radial(vol[None], max_distance=r_max - 1, periodic=False)[0]
    assert radial[0] == pytest.approx(ref.probability_scaled[0], abs=1e-6)
    assert np.abs(radial[1:] - ref.probability_scaled[1:]).max() < 0.03


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_chords_along_an_axis_equal_porespys(axis, grf_volumes):
    vol = grf_volumes[1, :20, :22] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # regionprops' filled_area, in PoreSpy
        chords = ps.filters.apply_chords(vol, spacing=1, axis=axis, trim_edges=True, label=True)
        ref = ps.metrics.chord_counts(chords)
    # PoreSpy draws every other line (spacing=1) and, trimming, drops the chords that touch
    # the sampled grid's border: the lines on its faces too, not only the chords' own ends
    sampled = tuple(slice(None, None, 2) if a != axis else slice(None) for a in range(3))
    inner = tuple(slice(1, -1) if a != axis else slice(None) for a in range(3))
    sub = vol[sampled][inner]
    ours = chord_lengths(sub[None].astype(np.uint8), periodic=False).counts[axis]
    ref_hist = np.bincount(ref, minlength=len(ours) + 1)[1:]
    assert len(ref) > 50 and np.array_equal(ours, ref_hist)


# ---------------------------------------------------------------- closed forms


def _laminate(shape=(12, 16, 20), period=5, width=2, axis=2):
    """Layers of phase 1 ``width`` thick every ``period`` voxels across ``axis``."""
    pos = np.arange(shape[axis]) % period < width
    vol = np.broadcast_to(np.expand_dims(pos, [a for a in range(3) if a != axis]), shape).astype(
        np.uint8
    )
    return vol[None]


def test_laminate_lineal_path_chords_and_surface_are_exact():
    shape, period, width = (12, 16, 20), 5, 2
    vol = _laminate(shape, period, width, axis=2)
    frac = width / period
    r_max = 4
    per_axis = [lineal_path(vol, max_distance=r_max, axis=a)[0] for a in range(3)]
    # along the layers a segment stays in its layer: L = the fraction at every r
    assert np.allclose(per_axis[0], frac, atol=1e-12) and np.allclose(per_axis[1], frac)
    # across: a segment of r + 1 voxels fits in a layer of width w from w - r starts
    across = np.clip(width - np.arange(r_max + 1), 0, None) / period
    assert np.abs(per_axis[2] - across).max() <= 1e-12
    assert np.abs(lineal_path(vol, max_distance=r_max)[0] - (2 * frac + across) / 3).max() < 1e-12
    ch = chord_lengths(vol)
    n_layers = shape[2] // period
    assert ch.counts[2, width - 1] == n_layers * shape[0] * shape[1] and ch.counts[2].sum() == (
        n_layers * shape[0] * shape[1]
    )
    # lines along y and x inside a layer lie wholly in the phase: W and H of them per plane
    assert ch.counts[:2].sum() == 0
    assert ch.spanning == n_layers * width * (shape[1] + shape[0])
    # two interfaces per period along z, none along x and y: P_L = (2 / period) / 3
    s_true = 2 / period
    assert specific_surface(vol)[0] == pytest.approx(2 * s_true / 3, abs=1e-12)
    assert specific_surface(vol, periodic=False)[0] == pytest.approx(
        2 * (2 * n_layers - 1) / (shape[2] - 1) / 3, abs=1e-12
    )


@pytest.mark.parametrize("periodic", [True, False])
def test_extruded_image_has_the_2d_s2_in_plane(periodic):
    img = grf_microstructures(1, (16, 18), volume_fraction=0.4, correlation_length=2, seed=3)
    img = img.images[0]
    depth = 8
    vol = np.repeat(img[:, :, None], depth, axis=2)[None]
    x3 = torch.as_tensor(vol == 1, dtype=torch.float64)
    corr3 = autocorrelation(x3, periodic=periodic, dims=3)[0].numpy()
    corr2 = autocorrelation(x3[..., 0], periodic=periodic, dims=2)[0].numpy()
    # every dz with pairs (all of them on the torus) sees the 2D S2 at the in-plane lag
    for dz in range(depth):
        assert np.abs(corr3[:, :, dz] - corr2).max() <= 1e-9
    # the public maps agree to float32 round-off
    s2_3d = two_point_correlation(vol, periodic=periodic)[0]
    s2_2d = two_point_correlation(img[None], periodic=periodic)[0]
    centre = depth // 2 if periodic else depth - 1
    assert np.abs(s2_3d[:, :, centre] - s2_2d).max() < 1e-5
    # the lineal path along z is the fraction; along x and y the 2D curves
    lp2 = [lineal_path(img[None], max_distance=4, axis=a, periodic=periodic)[0] for a in (0, 1)]
    for a in (0, 1):
        lp3 = lineal_path(vol, max_distance=4, axis=a, periodic=periodic)[0]
        assert np.abs(lp3 - lp2[a]).max() <= 1e-12
    assert np.allclose(lineal_path(vol, max_distance=4, axis=2, periodic=periodic), img.mean())


def test_specific_surface_of_a_ball_is_crofton_unbiased():
    size, a = 64, 20.0
    z, y, x = np.mgrid[:size, :size, :size] - (size - 1) / 2
    ball = (np.sqrt(x**2 + y**2 + z**2) <= a).astype(np.uint8)[None]
    s = specific_surface(ball)[0]
    exact = 4 * np.pi * a**2 / size**3
    assert s == pytest.approx(exact, rel=0.03)
    # counting voxel faces overestimates a sphere by 3/2
    faces = sum((np.diff(ball[0], axis=k) != 0).sum() for k in range(3)) / size**3
    assert faces > 1.4 * exact


def test_lineal_path_axis_in_2d_and_bad_axes():
    imgs = grf_microstructures(4, (20, 24), volume_fraction=0.4, correlation_length=2, seed=1)
    imgs = imgs.images
    y = lineal_path(imgs, max_distance=5, axis=0)
    x = lineal_path(imgs, max_distance=5, axis=1)
    assert np.array_equal(lineal_path(imgs, max_distance=5), (x + y) / 2)
    rows = (imgs == 1).reshape(-1, 24)  # x: along the rows
    for r in (0, 3):
        hits = sum(all(row[(i + k) % 24] for k in range(r + 1)) for row in rows for i in range(24))
        assert x[:, r].mean() == pytest.approx(hits / rows.size, abs=1e-12)
    with pytest.raises(InputError, match=r"^axis: must be one of 0..1"):
        lineal_path(imgs, axis=2)
    with pytest.raises(InputError, match=r"^axis: must be one of 0..2"):
        lineal_path(imgs[:, None].repeat(3, 1), axis=3)
    with pytest.raises(InputError, match="N x H x W x D"):
        lineal_path(np.zeros((1, 2, 3, 4, 5), np.uint8))
    with pytest.raises(InputError, match="N x H x W x D"):
        two_point_correlation_radial(np.zeros((1, 2, 3, 4, 5), np.uint8))


# ---------------------------------------------------------------- torch core, batching


def test_autocorrelation_3d_is_differentiable():
    x = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    for periodic in (True, False):
        assert torch.autograd.gradcheck(
            lambda t, p=periodic: autocorrelation(t, periodic=p, dims=3), (x,)
        )


def test_volume_batches_equal_one_by_one(grf_volumes):
    batched = two_point_correlation_radial(grf_volumes, max_distance=6, chunk_size=2)
    single = np.stack(
        [two_point_correlation_radial(v[None], max_distance=6)[0] for v in grf_volumes]
    )
    assert np.allclose(batched, single, atol=1e-6)
    from_tensor = two_point_correlation_radial(torch.as_tensor(grf_volumes), max_distance=6)
    assert np.allclose(from_tensor, single, atol=1e-6)


# ---------------------------------------------------------------- characterize and CLI


def test_characterize_volumes(grf_volumes):
    char = characterize(grf_volumes)
    rep = char.summary()
    assert rep["n_images"] == 3 and rep["shape"] == [24, 24, 24] and rep["max_distance"] == 6
    assert rep["s2"][0] == pytest.approx(rep["volume_fractions"][1], abs=1e-6)
    assert rep["lineal_path"][0] == pytest.approx(rep["volume_fractions"][1], abs=1e-12)
    assert char.chords.counts.shape[0] == 3
    assert rep["specific_surface"] == pytest.approx(specific_surface(grf_volumes).mean())
    with pytest.raises(InputError, match=r"^max_distance: must be between 1 and half the smallest"):
        characterize(grf_volumes[:, :, :, :10], max_distance=6)
    assert characterize_memory((1, 96, 96, 96)) < 1 << 30


def test_cli_characterize_volumes(tmp_path, run_cli, grf_volumes):
    np.savez(tmp_path / "v.npz", images=grf_volumes)
    plot = tmp_path / "v.png"
    res = run_cli("characterize", tmp_path / "v.npz", "--json", "--plot", plot, "-q")
    assert res.code == 0, res.err
    rep = json.loads(res.out)
    lib = characterize(grf_volumes).summary()
    assert set(rep) == set(lib) and rep["shape"] == [24, 24, 24] and rep["n_images"] == 3
    assert np.allclose(rep["s2"], lib["s2"]) and np.allclose(rep["lineal_path"], lib["lineal_path"])
    assert plot.stat().st_size > 10_000
    table = run_cli("characterize", tmp_path / "v.npz")
    assert table.code == 0 and "3 of 24x24x24" in table.out and "area per volume" in table.out
    assert_input_error(
        run_cli("characterize", tmp_path / "v.npz", "--max-distance", 13), "--max-distance"
    )
    np.save(tmp_path / "five.npy", np.zeros((1, 2, 3, 4, 5), np.uint8))
    assert_input_error(run_cli("characterize", tmp_path / "five.npy", "--json"), "five.npy")
    # only callers that handle volumes read them
    with pytest.raises(InputError, match="2D image"):
        read_images(tmp_path / "v.npz")
    assert read_images(tmp_path / "v.npz", volumes=True).images.shape == (3, 24, 24, 24)


def test_local_thickness_of_volumes_equals_porespys(grf_volumes):
    from mdesign.descriptors import local_thickness, local_thickness_map

    vol = grf_volumes[2, :20, :22]
    for phase in (0, 1):
        ours = local_thickness_map(vol == phase)
        assert np.array_equal(ours, ps.filters.local_thickness(vol == phase).astype(np.int64))
        lt = local_thickness(grf_volumes[:2], phase=phase)  # a stack of volumes, pooled
        assert lt.counts.sum() == (grf_volumes[:2] == phase).sum()
