import numpy as np
import pytest
import torch
from scipy import ndimage

from mdesign.errors import InputError
from mdesign.grf import phase_counts
from mdesign.reconstruction.annealing import (
    anneal_fractions,
    interface_density,
    interface_edges,
    volume_fractions,
)
from mdesign.reconstruction.lags import VolumeLags, face_table, neighbour_table
from mdesign.reconstruction.loss import s2_window


def _blobs(shape, cuts, sigma, seed):
    """Labels of a smoothed-noise field cut at the quantiles ``cuts`` (periodic smoothing)."""
    f = ndimage.gaussian_filter(
        np.random.default_rng(seed).standard_normal(shape), sigma, mode="wrap"
    )
    return np.digitize(f, np.quantile(f, cuts)).astype(np.uint8)


def _exemplars(k, seed):
    """Three different anisotropic exemplars (one per axis), so a mixed-up axis shows."""
    cuts = [0.7] if k == 2 else [0.3, 0.6]
    return [_blobs((30, 26), cuts, (1 + a, 2.5 - a), seed + a) for a in range(3)]


def _brute_energy(vol, exemplars, max_lag, tracked, periodic, radial, sectors=1):
    """The energy from 2D ``S2`` windows of every slice of each orientation, averaged (with 2
    sectors: each distance's lags along the slice's rows and down its columns apart)."""
    lag = np.arange(-max_lag, max_lag + 1)
    d1, d2 = lag[:, None] + 0 * lag[None, :], lag[None, :] + 0 * lag[:, None]
    dist = np.rint(np.hypot(d1, d2)).astype(int)
    rows = (np.abs(d2) > np.abs(d1)) | ((np.abs(d2) == np.abs(d1)) & (d1 * d2 <= 0))
    sector = np.zeros_like(dist) if sectors == 1 else np.where(rows, 0, 1)
    bins = [
        m
        for r in range(max_lag + 1)
        for s in range(sectors)
        if (m := (dist == r) & (sector == s)).any()
    ]
    per_plane = []
    for a in range(3):
        slices = np.moveaxis(vol, a, 0)
        ind = torch.as_tensor(np.stack([slices == j for j in tracked], 1), dtype=torch.float64)
        s = s2_window(ind, max_lag, periodic=periodic).mean(0).numpy()
        ex = torch.as_tensor(np.stack([exemplars[a] == j for j in tracked]), dtype=torch.float64)
        t = s2_window(ex[None], max_lag, periodic=False)[0].numpy()
        if radial:
            s = np.stack([[x[m].mean() for m in bins] for x in s])
            t = np.stack([[x[m].mean() for m in bins] for x in t])
        per_plane.append(((s - t) ** 2).mean())
    return float(np.mean(per_plane))


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("k", [2, 3])
def test_incremental_s2_equals_fft_after_flips_and_swaps(periodic, k):
    rng = np.random.default_rng(k)
    vol = rng.integers(0, k, (12, 14, 11)).astype(np.uint8)
    tracked = [1] if k == 2 else list(range(k))
    targets = [np.zeros((len(tracked), 49))] * 3
    state = VolumeLags(vol, targets, tracked, 3, periodic, radial=True, dense_lag=2)
    for _ in range(150):
        # swaps of nearby voxels exercise the cross term of the second flip
        p = rng.integers(0, vol.size, 1)
        q = (p + rng.integers(-40, 40, 1)) % vol.size
        lp, lq = state.flat[p], state.flat[q]
        if lp[0] != lq[0]:
            ds = state.delta(p, lq, q, lp)
            state.set_label(int(p[0]), int(lq[0]))
            state.set_label(int(q[0]), int(lp[0]))
            state.add_s2(ds[0], state.compare(ds)[0])
        p = rng.integers(0, vol.size, 1)
        new = rng.integers(0, k, 1)
        ds = state.delta(p, new)
        state.set_label(int(p[0]), int(new[0]))
        state.add_s2(ds[0], state.compare(ds)[0])
    exact = state.exact_s2()
    np.testing.assert_allclose(state.s2, exact, atol=1e-12)
    np.testing.assert_allclose(state.err, state.compare(exact) - state.target, atol=1e-12)
    # the padded copy the moves read follows the labels (wrapped copies included)
    if periodic:
        padded = np.pad(state.labels, 3, mode="wrap")
    else:
        padded = np.pad(state.labels, 3, constant_values=-1)
    assert np.array_equal(state.padded, padded.ravel())


@pytest.mark.parametrize(
    ("periodic", "radial", "sectors"),
    [(True, False, 1), (False, True, 1), (True, True, 1), (False, True, 2)],
)
@pytest.mark.parametrize("k", [2, 3])
def test_fractions_exact_energy_is_the_slices_and_falls(k, periodic, radial, sectors):
    exemplars = _exemplars(k, seed=10 * k)
    # the start's fractions are far from the targets (0.5 / 0.4-0.3-0.3 against ~0.3 / 0.3-0.3-0.4)
    start = _blobs((14, 13, 12), [0.5] if k == 2 else [0.4, 0.7], 2.0, seed=k)
    res = anneal_fractions(
        start,
        exemplars,
        phases=k,
        max_lag=3,
        steps=2500,
        seed=0,
        periodic=periodic,
        radial=radial,
        sectors=sectors,
        batch=64,
        surface=False,
    )
    want = phase_counts(volume_fractions(exemplars, k)[None], start.size)[0]
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=k), want)
    assert np.array_equal(res.target_counts, want)
    assert res.flips == int(np.clip(np.bincount(start.ravel(), minlength=k) - want, 0, None).sum())
    assert res.proposals == 2500 and 0 < res.accepted < 2500
    tracked = [1] if k == 2 else list(range(k))
    # reported energies are the mean over the three orientations of their slices' 2D S2 errors
    # (each against its own exemplar: a mixed-up axis or row/column order would not match)
    e_start = _brute_energy(start, exemplars, 3, tracked, periodic, radial, sectors)
    e_end = _brute_energy(res.labels, exemplars, 3, tracked, periodic, radial, sectors)
    assert res.energy_initial == pytest.approx(e_start, rel=1e-9)
    assert res.energy_final == pytest.approx(e_end, rel=1e-9)
    assert res.energy_final < res.energy_fractions


def test_transposed_volume_with_permuted_exemplars_has_the_same_energy():
    # V' = V.transpose(1, 0, 2): its axis-0 slices are V's axis-1 slices (same row/column
    # order), its axis-1 slices V's axis-0 slices, its axis-2 slices V's axis-2 slices transposed
    exemplars = _exemplars(2, seed=3)
    vol = _blobs((14, 12, 13), [0.6], 1.5, seed=4)
    kw = {"phases": 2, "max_lag": 3, "steps": 0, "seed": 0, "radial": False, "surface": False}
    a = anneal_fractions(vol, exemplars, **kw)
    swapped = [exemplars[1], exemplars[0], exemplars[2].T]
    b = anneal_fractions(vol.transpose(1, 0, 2), swapped, **kw)
    assert b.energy_initial == pytest.approx(a.energy_initial, rel=1e-12)
    # and not with the exemplars in the original order (they differ)
    c = anneal_fractions(vol.transpose(1, 0, 2), exemplars, **kw)
    assert abs(c.energy_initial - a.energy_initial) > 1e-3 * a.energy_initial


def test_exact_start_is_left_alone_without_swaps():
    ex = _blobs((24, 24), [0.6], 2.0, seed=1)
    n = 12**3
    vol = np.zeros(n, dtype=np.uint8)
    vol[: phase_counts(volume_fractions([ex] * 3, 2)[None], n)[0][0]] = 0
    vol[phase_counts(volume_fractions([ex] * 3, 2)[None], n)[0][0] :] = 1
    vol = np.random.default_rng(0).permutation(vol).reshape(12, 12, 12)
    res = anneal_fractions(vol, [ex, ex, ex], phases=2, max_lag=3, steps=0, seed=0, surface=False)
    assert res.flips == 0 and np.array_equal(res.labels, vol)
    assert res.energy_final == pytest.approx(res.energy_initial, rel=1e-12)


def test_same_seed_same_bytes_other_seed_other_labels():
    ex = _blobs((24, 24), [0.65], 2.0, seed=2)
    vol = _blobs((12, 12, 12), [0.5], 1.5, seed=5)
    kw = {"phases": 2, "max_lag": 3, "steps": 1500, "batch": 32}
    a = anneal_fractions(vol, [ex] * 3, seed=1, **kw)
    b = anneal_fractions(vol, [ex] * 3, seed=1, **kw)
    c = anneal_fractions(vol, [ex] * 3, seed=2, **kw)
    assert a.labels.tobytes() == b.labels.tobytes() and a.energy_final == b.energy_final
    assert not np.array_equal(a.labels, c.labels)


def test_bad_input_raises_input_error():
    ex = _blobs((24, 24), [0.6], 2.0, seed=1)
    vol = _blobs((12, 12, 12), [0.5], 1.5, seed=5)
    kw = {"phases": 2, "max_lag": 3, "steps": 10, "seed": 0}
    with pytest.raises(InputError, match="labels"):
        anneal_fractions(vol[0], [ex] * 3, **kw)
    with pytest.raises(InputError, match="exemplars"):
        anneal_fractions(vol, [ex] * 2, **kw)
    with pytest.raises(InputError, match="exemplars"):
        anneal_fractions(vol, [ex, ex, vol], **kw)
    with pytest.raises(InputError, match="max_lag"):
        anneal_fractions(vol, [ex] * 3, **{**kw, "max_lag": 6})  # half of the volume's side
    with pytest.raises(InputError, match="max_lag"):
        anneal_fractions(vol, [ex, ex, ex[:6]], **kw)  # half of an exemplar's side
    with pytest.raises(InputError, match="labels"):
        anneal_fractions(vol + 1, [ex] * 3, **kw)  # a label beyond the phases


def _edges_brute(vol, periodic):
    """Face pairs of different phases, by shifting the volume along each axis."""
    if periodic:
        return sum(int((vol != np.roll(vol, 1, axis=a)).sum()) for a in range(3))
    return sum(int((np.diff(vol.astype(int), axis=a) != 0).sum()) for a in range(3))


@pytest.mark.parametrize("periodic", [True, False])
def test_surface_stage_shortens_the_interface_and_keeps_the_fractions(periodic):
    ex = _blobs((30, 30), [0.6], 3.0, seed=3)  # smooth: a short interface per pair
    vol = _blobs((14, 13, 12), [0.55], 0.8, seed=6)  # rough: a long one
    kw = dict(phases=2, max_lag=3, steps=400, seed=0, periodic=periodic, batch=32)
    off = anneal_fractions(vol, [ex] * 3, surface=False, **kw)
    on = anneal_fractions(vol, [ex] * 3, surface=True, **kw)
    assert off.surface_swaps == 0 and on.surface_swaps > 0
    assert np.array_equal(np.bincount(on.labels.ravel()), np.bincount(off.labels.ravel()))
    faces = face_table(vol.shape, periodic)
    e_off, e_on = (interface_edges(r.labels.ravel(), faces) for r in (off, on))
    assert (e_off, e_on) == (_edges_brute(off.labels, periodic), _edges_brute(on.labels, periodic))
    # each swap shortens the interface by 2 or more (its two flips are apart, so they add)
    assert e_on <= e_off - 2 * on.surface_swaps
    n = vol.size
    pairs = 3 * n if periodic else sum(n // s * (s - 1) for s in vol.shape)
    assert e_off > interface_density(ex, periodic=False) * pairs  # there was surplus to remove


@pytest.mark.parametrize("shape", [(5, 7), (4, 5, 6)])
@pytest.mark.parametrize("periodic", [True, False])
def test_neighbour_table_by_brute_force(shape, periodic):
    # every pixel's neighbours: faces first (axis by axis, lower first), then the others by how
    # many axes they step along; outside a non-periodic image a pixel is its own neighbour
    import itertools

    table = neighbour_table(shape, periodic)
    ndim = len(shape)
    steps = [tuple(s * (i == a) for i in range(ndim)) for a in range(ndim) for s in (-1, 1)]
    for order in range(2, ndim + 1):
        steps += [
            s for s in itertools.product((-1, 0, 1), repeat=ndim) if np.count_nonzero(s) == order
        ]
    assert table.shape == (int(np.prod(shape)), 3**ndim - 1)
    for v in range(table.shape[0]):
        c = np.unravel_index(v, shape)
        for col, st in enumerate(steps):
            n = [x + d for x, d in zip(c, st, strict=True)]
            if periodic:
                n = [x % s for x, s in zip(n, shape, strict=True)]
            elif any(x < 0 or x >= s for x, s in zip(n, shape, strict=True)):
                n = list(c)
            assert table[v, col] == np.ravel_multi_index(tuple(n), shape)
    faces = face_table(shape, periodic)
    np.testing.assert_array_equal(faces, table[:, : 2 * ndim])
    # its own array, not a view that keeps the whole table alive (a volume's 26 columns)
    assert faces.base is None or faces.base.nbytes == faces.nbytes
