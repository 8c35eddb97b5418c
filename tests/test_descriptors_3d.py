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
