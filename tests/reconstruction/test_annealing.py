import numpy as np
import pytest
import torch
from scipy import ndimage

from mdesign.descriptors import specific_surface
from mdesign.grf import grf_microstructures, phase_counts
from mdesign.reconstruction.annealing import (
    _NeighbourState,
    anneal_fractions,
    connectivity_number,
    interface_density,
    interface_edges,
    join_network_fragments,
    keeps_clusters,
    remove_small_clusters,
)
from mdesign.reconstruction.lags import ImageLags, neighbour_table
from mdesign.reconstruction.loss import s2_window
from mdesign.reconstruction.metrics import cluster_components

# the S2 lag-window energy alone (no neighbourhood or directional term)
S2_ONLY = {"neighbour_weight": 0.0, "radial": False, "directional_weight": 0.0}


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("k", [2, 3])
def test_incremental_s2_equals_fft_after_flips_and_swaps(periodic, k):
    lab = grf_microstructures(
        1,
        (26, 22),
        volume_fraction=0.3 if k == 2 else [0.3, 0.2],
        phases=k,
        correlation_length=2,
        seed=1,
    ).images[0]
    tracked = [1] if k == 2 else list(range(k))
    state = ImageLags(lab, np.zeros((len(tracked), 49)), tracked, 3, periodic)
    rng = np.random.default_rng(0)
    for _ in range(60):
        # swaps of nearby pixels exercise the cross term of the second flip
        p = rng.integers(0, lab.size, 1)
        q = (p + rng.integers(-60, 60, 1)) % lab.size
        lp, lq = state.labels.flat[p], state.labels.flat[q]
        if lp[0] != lq[0]:
            ds = state.delta(p, lq, q, lp)
            state.set_label(int(p[0]), int(lq[0]))
            state.set_label(int(q[0]), int(lp[0]))
            state.add_s2(ds[0], None)
        p = rng.integers(0, lab.size, 1)
        new = rng.integers(0, k, 1)
        ds = state.delta(p, new)
        state.set_label(int(p[0]), int(new[0]))
        state.add_s2(ds[0], None)
    np.testing.assert_allclose(state.s2, state._exact_s2(), atol=1e-12)


@pytest.mark.parametrize("max_lag", [3, 7, 13])
def test_padded_indicators_follow_the_labels_at_any_lag(max_lag):
    # the indicators are padded by R, wrapped on a torus: a flip must reach every copy of the
    # pixel, several per side once R exceeds a side (12 x 10 here)
    lab = (np.random.default_rng(3).random((12, 10)) < 0.4).astype(np.uint8)
    window = (2 * max_lag + 1) ** 2
    state = ImageLags(lab, np.zeros((1, window)), [1], max_lag, True)
    rng = np.random.default_rng(0)
    for _ in range(80):
        p = int(rng.integers(0, lab.size))
        state.set_label(p, 1 - int(state.labels.flat[p]))
    fresh = ImageLags(state.labels, np.zeros((1, window)), [1], max_lag, True)
    np.testing.assert_array_equal(state.ind, fresh.ind)


def test_fractions_exact_and_s2_closer(two_phase):
    # a different structure (coarser, wrong fraction) annealed towards the exemplar
    start = grf_microstructures(
        1, (40, 44), volume_fraction=0.5, correlation_length=4, seed=5
    ).images[0]
    res = anneal_fractions(start, two_phase, phases=2, max_lag=6, steps=3000, seed=0, **S2_ONLY)
    counts = np.bincount(res.labels.ravel(), minlength=2)
    want = phase_counts(np.array([[1 - two_phase.mean(), two_phase.mean()]]), start.size)[0]
    assert np.array_equal(counts, want) and np.array_equal(res.target_counts, want)
    assert abs(counts[1] - two_phase.mean() * start.size) <= 1
    assert res.flips == abs(int((start == 1).sum()) - want[1])
    assert res.proposals == 3000 and 0 < res.accepted < 3000
    assert res.energy_final < res.energy_fractions
    # the reported energy is the exact one of the returned labels
    ind = torch.as_tensor(res.labels == 1, dtype=torch.float64)[None, None]
    tgt = torch.as_tensor(two_phase == 1, dtype=torch.float64)[None, None]
    e = ((s2_window(ind, 6, periodic=True) - s2_window(tgt, 6, periodic=False)) ** 2).mean()
    assert res.energy_final == pytest.approx(float(e), rel=1e-9)


def test_three_phases_exact_and_seeded(three_phase):
    start = np.roll(three_phase, 7, axis=1).T.copy()
    start[:10] = 0  # too much phase 0
    a = anneal_fractions(start, three_phase, phases=3, max_lag=5, steps=1000, seed=4, **S2_ONLY)
    b = anneal_fractions(start, three_phase, phases=3, max_lag=5, steps=1000, seed=4, **S2_ONLY)
    assert np.array_equal(a.labels, b.labels)
    fr = np.bincount(three_phase.ravel(), minlength=3) / three_phase.size
    counts = np.bincount(a.labels.ravel(), minlength=3)
    assert np.all(np.abs(counts - fr * start.size) <= 1)


def test_only_interface_pixels_swap(two_phase):
    # with the fractions already right, the swaps move only pixels on an interface of the
    # labels at the time; a pixel deep inside a large region cannot change
    start = two_phase.copy()
    start[:, :24] = 0
    start[:, 24:] = 1
    target = np.zeros_like(start)
    target[:, ::2] = 1
    res = anneal_fractions(start, target, phases=2, max_lag=3, steps=200, seed=0, **S2_ONLY)
    changed = np.argwhere(res.labels != start)
    assert changed.size
    # each change lies within a few pixels of the two straight interfaces (x = 0/24, periodic)
    dist = np.minimum(np.abs(changed[:, 1] - 23.5), np.minimum(changed[:, 1], 47 - changed[:, 1]))
    assert dist.max() < 12


@pytest.mark.parametrize("periodic", [True, False])
def test_image_max_lag_at_half_a_side_raises_as_in_a_volume(periodic):
    # one check for an image and a volume: R below half of the smallest side of the labels and
    # the exemplar (at the side, a periodic lag wraps a pixel onto itself and a non-periodic one
    # has no pairs); just below it the chain runs and its S2 equals a fresh computation
    lab = grf_microstructures(1, (12, 14), volume_fraction=0.4, correlation_length=2, seed=2)
    start, ex = lab.images[0], np.tile(lab.images[0], (2, 2))
    kw = dict(phases=2, steps=50, seed=0, periodic=periodic, exemplar_periodic=periodic)
    for bad in (6, 12, 20):
        with pytest.raises(ValueError, match=r"max_lag.*smallest side.*\(12\)"):
            anneal_fractions(start, ex, max_lag=bad, **kw)
    with pytest.raises(ValueError, match=r"max_lag.*smallest side.*\(8\)"):
        anneal_fractions(start, ex[:8], max_lag=4, **kw)  # the exemplar's side
    with pytest.raises(ValueError, match="max_lag"):
        anneal_fractions(start, ex, max_lag=0, **kw)
    res = anneal_fractions(start, ex, max_lag=5, **kw)
    state = ImageLags(res.labels, np.zeros((1, 121)), [1], 5, periodic)
    np.testing.assert_allclose(state.s2, state._exact_s2(), atol=1e-12)


def _brute_classes(lab: np.ndarray, periodic: bool) -> np.ndarray:
    """Neighbourhood class of every pixel by direct loops (edges outside count as same)."""
    h, w = lab.shape
    out = np.zeros(lab.shape, dtype=np.int64)
    for y in range(h):
        for x in range(w):
            same_e = same_c = 0
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if dy == dx == 0:
                        continue
                    ny, nx = y + dy, x + dx
                    if periodic:
                        ny, nx = ny % h, nx % w
                    elif not (0 <= ny < h and 0 <= nx < w):
                        ny, nx = y, x
                    same = lab[ny, nx] == lab[y, x]
                    if dy == 0 or dx == 0:
                        same_e += same
                    else:
                        same_c += same
            out[y, x] = lab[y, x] * 25 + same_e * 5 + same_c
    return out


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("k", [2, 3])
def test_neighbour_histogram_swap_delta_equals_recount(periodic, k):
    lab = (
        grf_microstructures(
            1,
            (14, 11),
            volume_fraction=0.4 if k == 2 else [0.3, 0.3],
            phases=k,
            correlation_length=1.5,
            seed=2,
        )
        .images[0]
        .astype(np.int64)
    )
    nb = _NeighbourState(lab, k, periodic)
    brute = np.bincount(_brute_classes(lab, periodic).ravel(), minlength=25 * k) / lab.size
    np.testing.assert_allclose(nb.hist, brute)
    rng = np.random.default_rng(1)
    flat = lab.ravel()
    # near pairs (adjacent, diagonal, shared neighbours) and far ones, across the edges too
    p = rng.integers(0, lab.size, 300)
    q = p + rng.choice([1, -1, 2, lab.shape[1], lab.shape[1] + 1, 2 * lab.shape[1], 37], 300)
    q %= lab.size
    keep = flat[p] != flat[q]
    p, q = p[keep], q[keep]
    delta = nb.swap_delta(flat, p, q)
    for i in range(p.size):
        after = flat.copy()
        after[p[i]], after[q[i]] = flat[q[i]], flat[p[i]]
        hist = np.bincount(
            _brute_classes(after.reshape(lab.shape), periodic).ravel(), minlength=25 * k
        )
        np.testing.assert_allclose(delta[i], hist / lab.size - nb.hist, atol=1e-12)


def test_neighbour_term_brings_the_local_shapes_closer(two_phase):
    # salt-and-pepper on a smooth exemplar: with the neighbourhood term the swaps end with a
    # neighbourhood histogram closer to the exemplar's than S2 alone, at the same counts
    rng = np.random.default_rng(4)
    noisy = two_phase.copy()
    flip = rng.random(noisy.shape) < 0.08
    noisy[flip] = 1 - noisy[flip]

    def hist_error(lab):
        h = np.bincount(_brute_classes(lab.astype(np.int64), True).ravel(), minlength=50)
        t = np.bincount(_brute_classes(two_phase.astype(np.int64), True).ravel(), minlength=50)
        return np.abs(h - t).sum() / lab.size

    # the swaps' energy alone: without the surface stage after them, which shortens both
    kw = dict(
        phases=2, max_lag=6, steps=3 * noisy.size, seed=0, exemplar_periodic=True, surface=False
    )
    plain = anneal_fractions(noisy, two_phase, **kw, **S2_ONLY)
    with_nb = anneal_fractions(
        noisy, two_phase, neighbour_weight=1.0, radial=False, directional_weight=0.0, **kw
    )
    counts = [np.bincount(r.labels.ravel()).tolist() for r in (plain, with_nb)]
    assert counts[0] == counts[1]
    assert hist_error(with_nb.labels) < 0.8 * hist_error(plain.labels)
    assert hist_error(plain.labels) < hist_error(noisy)
    assert with_nb.energy_final < with_nb.energy_fractions


def _sizes(labels, j, periodic):
    comp, n = cluster_components(labels == j, periodic=periodic)
    return np.sort(np.bincount(comp.ravel(), minlength=n + 1)[1:])


@pytest.mark.parametrize("k", [2, 3])
def test_small_clusters_are_capped_at_the_exemplars(two_phase, three_phase, k):
    ex = two_phase if k == 2 else three_phase
    # the exemplar itself is within its own caps, on the torus and as a window
    np.testing.assert_array_equal(remove_small_clusters(ex, ex, phases=k, periodic=False), ex)
    rng = np.random.default_rng(5)
    noisy = ex.copy()
    flip = rng.random(ex.shape) < 0.05
    noisy[flip] = rng.integers(0, k, int(flip.sum()))
    out = remove_small_clusters(noisy, ex, phases=k, periodic=True)
    assert set(np.unique(out)) <= set(range(k))
    changed = out != noisy
    assert changed.any() and changed.sum() < flip.sum()  # only specks move
    for j in range(k):
        before, after = _sizes(noisy, j, True), _sizes(out, j, True)
        n_ex = ndimage.label(ex == j)[1]
        assert after.size <= before.size
        # specks go first, and only the surplus over the exemplar's count is candidate
        if before.size > n_ex:
            assert (after == 1).sum() < (before == 1).sum()
        # the surplus is counted in the image as a window, as the exemplar's count is
        window_before, window_after = (ndimage.label(im == j)[1] for im in (noisy, out))
        assert window_after >= min(window_before, n_ex) - k  # merges may join a few


def test_a_matrix_is_never_dissolved():
    # the exemplar: a matrix of phase 0 around three specks of phase 1; the labels' matrix is
    # a little smaller than the exemplar's, and no other cluster of phase 0 exists in either
    ex = np.zeros((20, 20), dtype=np.uint8)
    ex[2, 2] = ex[10, 10] = ex[15, 4] = 1
    lab = ex.copy()
    lab[5:7, 5:7] = 1
    lab[12, 14] = lab[3, 17] = lab[17, 17] = 1  # specks beyond the exemplar's three
    out = remove_small_clusters(lab, ex, phases=2, periodic=False)
    assert (out == 0).sum() >= (lab == 0).sum()  # phase 0 kept whole, specks dissolved
    # the 2x2 block too: the exemplar has no cluster of phase 1 larger than one pixel
    assert cluster_components(out == 1)[1] == 3


def test_a_matrix_cut_by_the_window_is_never_dissolved():
    # the exemplar: a block of phase 0 (800 px) and ten lone pixels of it, 11 clusters; the
    # labels (periodic): a band of phase 0 a little smaller than the exemplar's block, across
    # the wrap-around (two pieces in the window: one cluster beyond the exemplar's count), and
    # ten lone pixels. The exemplar has only 10 clusters of phase 0 up to the band's size, so
    # the band counted as one too many: it was dissolved, turning phase 0 over (carbonate's bands)
    ex = np.ones((40, 40), dtype=np.uint8)
    ex[:20] = 0
    lab = np.ones((40, 40), dtype=np.uint8)
    lab[:9] = lab[32:] = 0
    for i in range(10):
        ex[24 + (i // 5) * 4, 4 + (i % 5) * 6] = 0
        lab[14 + (i // 5) * 4, 4 + (i % 5) * 6] = 0
    assert cluster_components(ex == 0)[1] == 11 and ndimage.label(lab == 0)[1] == 12
    out = remove_small_clusters(lab, ex, phases=2, periodic=True)
    assert (out[lab == 0] == 0).all()  # nothing dissolved: the band holds most of phase 0


def _sector(dy: np.ndarray, dx: np.ndarray, sectors: int) -> np.ndarray:
    """The direction sector of a lag, written out for 1 and 2 sectors: along the rows
    (``|dx| > |dy|``, and the anti-diagonal), or down the columns (the rest but the zero lag)."""
    if sectors == 1:
        return np.zeros_like(dy)
    rows = (np.abs(dx) > np.abs(dy)) | ((np.abs(dx) == np.abs(dy)) & (dx * dy < 0))
    return np.where(rows | ((dy == 0) & (dx == 0)), 0, 1)


@pytest.mark.parametrize(("dense_lag", "sectors"), [(None, 1), (2, 1), (None, 2), (2, 2)])
def test_radial_energy_compares_radial_averages(two_phase, dense_lag, sectors):
    rng = np.random.default_rng(3)
    target = rng.random((1, 81))
    state = ImageLags(
        two_phase, target, [1], 4, True, radial=True, dense_lag=dense_lag, sectors=sectors
    )
    lag = np.arange(-4, 5)
    dy, dx = (a.ravel() for a in np.meshgrid(lag, lag, indexing="ij"))
    dist = np.rint(np.hypot(dy, dx))
    # the lags tracked: within R, and beyond dense_lag on the even lattice only
    keep = dist <= 4
    if dense_lag is not None:
        keep &= (dist <= dense_lag) | ((dy % 2 == 0) & (dx % 2 == 0))
    assert keep.sum() < (dist <= 4).sum() if dense_lag is not None else True
    onehot = torch.as_tensor(two_phase == 1, dtype=torch.float64)[None, None]
    full = s2_window(onehot, 4, periodic=True)[0, 0].reshape(-1).numpy()
    err = full - target[0]
    # each distance's average (with sectors: each distance and direction's), entries with a lag
    sector = _sector(dy, dx, sectors)
    radial = [
        err[m].mean()
        for r in range(5)
        for s in range(sectors)
        if (m := keep & (dist == r) & (sector == s)).any()
    ]
    assert len(radial) == 1 + 4 * sectors
    assert state.energy() == pytest.approx(np.mean(np.square(radial)))
    # a swap's predicted change is the change of that energy, nearby pixels included
    for _ in range(40):
        p = rng.integers(0, two_phase.size)
        q = (p + rng.integers(-100, 100)) % two_phase.size
        lp, lq = state.labels.flat[p], state.labels.flat[q]
        if lp == lq:
            continue
        ds = state.delta(np.array([p]), np.array([lq]), np.array([q]), np.array([lp]))
        before = state.energy()
        predicted = float(state.energy_change(state.compare(ds))[0])
        state.set_label(int(p), int(lq))
        state.set_label(int(q), int(lp))
        state.add_s2(ds[0], None)
        assert state.energy() - before == pytest.approx(predicted, abs=1e-12)
    np.testing.assert_allclose(state.s2, state._exact_s2(), atol=1e-12)


def test_connectivity_number_of_known_neighbourhoods():
    # centre pixel of a 3x3 image, non-periodic: the ring is the 8 pixels around it
    nbr = neighbour_table((3, 3), False)
    centre = np.array([4])
    cases = {
        "bridge": ([[0, 1, 0], [0, 1, 0], [0, 1, 0]], 2),  # N and S of phase 1, not joined
        "corner": ([[0, 1, 1], [0, 1, 1], [0, 0, 0]], 1),  # N and E joined through NE
        "lone": ([[1, 0, 1], [0, 1, 0], [1, 0, 1]], 0),  # corners only
        "cross": ([[0, 1, 0], [1, 1, 1], [0, 1, 0]], 4),
    }
    for name, (img, want) in cases.items():
        got = connectivity_number(np.array(img).ravel(), nbr, centre, 1)
        assert got[0] == want, name


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("k", [2, 3])
def test_allowed_flips_never_add_a_cluster(periodic, k):
    rng = np.random.default_rng(k)
    lab = rng.integers(0, k, (20, 18))
    nbr = neighbour_table(lab.shape, periodic)
    guard = np.ones(k, dtype=bool)
    allowed = refused = 0
    for _ in range(600):
        p = rng.integers(0, lab.size, 1)
        new = (lab.flat[p] + rng.integers(1, k, 1)) % k
        after = lab.copy()
        after.flat[p] = new
        before_n = [cluster_components(lab == j, periodic=periodic)[1] for j in range(k)]
        after_n = [cluster_components(after == j, periodic=periodic)[1] for j in range(k)]
        if keeps_clusters(lab.ravel(), nbr, p, new, guard)[0]:
            assert all(a <= b for a, b in zip(after_n, before_n, strict=True))
            allowed += 1
            lab = after
        else:
            refused += 1
    assert allowed > 50 and refused > 50  # both branches exercised


def test_keep_clusters_annealing_adds_no_cluster(two_phase):
    ex = two_phase
    # speckle with the exemplar's fractions (swaps of random pixel pairs)
    rng = np.random.default_rng(3)
    start = ex.copy().ravel()
    p, q = rng.integers(0, start.size, (2, 150))
    start[p], start[q] = start[q], start[p].copy()
    start = start.reshape(ex.shape)
    n0 = [cluster_components(start == j, periodic=True)[1] for j in range(2)]
    n_ex = [ndimage.label(ex == j)[1] for j in range(2)]
    assert all(a > b for a, b in zip(n0, n_ex, strict=True))  # both phases guarded
    kw = dict(phases=2, max_lag=4, steps=3000, seed=0, periodic=True)
    res = anneal_fractions(start, ex, keep_clusters=True, **kw)
    assert res.flips <= 1 and res.accepted > 0  # one flip at most: the rounding of the counts
    n_kept = [cluster_components(res.labels == j, periodic=True)[1] for j in range(2)]
    assert all(a <= b for a, b in zip(n_kept, n0, strict=True))


def test_network_fragments_are_joined():
    # the exemplar: a connected grid of lines of phase 0 (a network) around cells of phase 1
    ex = np.ones((40, 40), dtype=np.uint8)
    ex[::10, :] = 0
    ex[:, ::10] = 0
    # the labels: the same lines broken into pieces, and a speck
    lab = ex.copy()
    lab[5, ::10] = 1
    lab[::10, 5] = 1
    lab[::10, 25] = 1
    lab[33, 33] = 0
    n_lab = cluster_components(lab == 0)[1]
    assert n_lab > 5
    out = join_network_fragments(lab, ex, phases=2)
    assert np.all(out[lab == 0] == 0)  # bridges only add to the network phase
    assert cluster_components(out == 0)[1] <= 2  # the network joined; the speck is left
    # bridges close cells again, but no more than the exemplar's
    n_cells = [cluster_components(im == 1)[1] for im in (lab, out, ex)]
    assert n_cells[0] < n_cells[1] <= n_cells[2]
    # specks (a phase of many clusters) are no network: their surplus is left as it is
    ex = np.zeros((40, 40), dtype=np.uint8)
    ex[2::8, 2::8] = 1
    lab = ex.copy()
    lab[5::8, 5::8] = 1
    np.testing.assert_array_equal(join_network_fragments(lab, ex, phases=2), lab)


@pytest.mark.parametrize("periodic", [True, False])
def test_interface_density_is_crofton_and_counts_edges(two_phase, three_phase, periodic):
    # two phases: 2 / pi times the specific surface of the descriptors (Crofton)
    sv = specific_surface(two_phase[None], phase=1, periodic=periodic)[0]
    assert interface_density(two_phase, periodic=periodic) == pytest.approx(2 / np.pi * sv)
    # the edge count of the neighbour table is the same count, on the torus or in-image
    for lab in (two_phase, three_phase):
        h, w = lab.shape
        pairs = 2 * h * w if periodic else h * (w - 1) + (h - 1) * w
        edges = interface_edges(lab.ravel().astype(np.int64), neighbour_table((h, w), periodic))
        assert edges == round(interface_density(lab, periodic=periodic) * pairs)


@pytest.mark.parametrize("k", [2, 3])
def test_surface_stage_shortens_the_interface_to_the_exemplars(two_phase, three_phase, k):
    ex = two_phase if k == 2 else three_phase
    h, w = ex.shape
    nbr = neighbour_table((h, w), True)
    target = interface_density(ex, periodic=False) * 2 * h * w
    # a rough copy: swaps of random pixel pairs (speckle), fractions kept
    rng = np.random.default_rng(1)
    start = ex.copy().ravel()
    p, q = rng.integers(0, start.size, (2, 60))
    start[p], start[q] = start[q], start[p].copy()
    start = start.reshape(ex.shape)
    assert interface_edges(start.ravel().astype(np.int64), nbr) > target + 50
    kw = dict(phases=k, max_lag=4, steps=0, seed=0, periodic=True, keep_clusters=True)
    off = anneal_fractions(start, ex, surface=False, **kw)
    on = anneal_fractions(start, ex, surface=True, **kw)
    assert off.surface_swaps == 0 and on.surface_swaps > 0
    # fractions kept, no cluster added to a guarded phase (all phases have a surplus here)
    assert np.array_equal(np.bincount(on.labels.ravel(), minlength=k), on.target_counts)
    n0 = [cluster_components(off.labels == j)[1] for j in range(k)]
    n1 = [cluster_components(on.labels == j)[1] for j in range(k)]
    assert all(a <= b for a, b in zip(n1, n0, strict=True))
    # it stops at the exemplar's length: at or below it, by less than one swap (8 edges)
    edges = interface_edges(on.labels.ravel().astype(np.int64), nbr)
    assert target - 8 < edges <= target
    # the reported energy is the one of the returned labels (a recount: no move left to make)
    again = anneal_fractions(on.labels, ex, surface=False, **kw)
    assert again.flips == 0 and again.energy_final == pytest.approx(on.energy_final, rel=1e-9)


def test_surface_stage_leaves_a_short_interface(two_phase):
    # a smoother copy (larger grains, the same fraction) is already below the exemplar's length
    smooth = grf_microstructures(
        1, two_phase.shape, volume_fraction=two_phase.mean(), correlation_length=6, seed=2
    ).images[0]
    h, w = smooth.shape
    nbr = neighbour_table((h, w), True)
    assert (
        interface_edges(smooth.ravel().astype(np.int64), nbr)
        < interface_density(two_phase, periodic=False) * 2 * h * w
    )
    kw = dict(phases=2, max_lag=4, steps=200, seed=0, periodic=True)
    on = anneal_fractions(smooth, two_phase, surface=True, **kw)
    off = anneal_fractions(smooth, two_phase, surface=False, **kw)
    assert on.surface_swaps == 0
    np.testing.assert_array_equal(on.labels, off.labels)


def test_direction_sectors_recover_a_stripe_exemplars_anisotropy():
    """Bands along the rows as the exemplar, the same bands down the columns as the start: the
    radial averages of the two are equal (the square is transposed), so one sector leaves the
    start's direction alone, while two sectors (rows against columns) turn it towards the
    exemplar's (S2 along the rows over along the columns, lags 2-6)."""
    rng = np.random.default_rng(0)
    rows = np.repeat(rng.random(24) < 0.4, 1)[:, None]
    rows[::4] = True  # bands of 1 px or more every 4 rows at least
    ex = np.broadcast_to(rows, (24, 24)).astype(np.uint8)
    start = np.ascontiguousarray(ex.T)

    def ratio(lab):
        a = np.mean([(lab * np.roll(lab, r, 1)).mean() for r in range(2, 7)])
        b = np.mean([(lab * np.roll(lab, r, 0)).mean() for r in range(2, 7)])
        return a / b

    kw = dict(phases=2, max_lag=6, steps=6000, seed=0, periodic=True, exemplar_periodic=True)
    kw |= dict(neighbour_weight=0.0, keep_clusters=False, surface=False, radial=True)
    kw |= dict(directional_weight=0.0)  # the sectors alone
    one = anneal_fractions(start, ex, sectors=1, **kw)
    two = anneal_fractions(start, ex, sectors=2, **kw)
    assert ratio(ex) > 1.5 and ratio(start) < 1 / 1.5
    assert abs(np.log(ratio(two.labels) / ratio(ex))) < 0.5 * abs(
        np.log(ratio(one.labels) / ratio(ex))
    )
    assert two.energy_final < 0.5 * two.energy_initial
    # with 4 sectors none of the first sampled swaps rises: the swaps still run (the first
    # temperature from the falls), and bring the energy down
    four = anneal_fractions(start, ex, sectors=4, **kw)
    assert four.accepted > 0 and four.energy_final < 0.5 * four.energy_initial
