"""The one annealing chain for images and volumes: pinned labels, and the stages in 3D."""

import hashlib

import numpy as np
import pytest
from scipy import ndimage

from mdesign.grf import phase_counts
from mdesign.reconstruction.annealing import (
    _guard,
    _NeighbourState,
    anneal_fractions,
    connectivity_number,
    interface_edges,
    join_network_fragments,
    keeps_clusters,
    remove_small_clusters,
    volume_fractions,
)
from mdesign.reconstruction.cells import network_sheets
from mdesign.reconstruction.lags import neighbour_table


def _field(shape, seed, sigma):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")


def _labels(f, cuts):
    return np.digitize(f, np.quantile(f, cuts)).astype(np.uint8)


def _sha(a):
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).hexdigest()


EX2 = _labels(_field((48, 48), 0, 2.5), [0.3, 0.75])
ST2 = _labels(_field((40, 40), 1, 2.0), [0.35, 0.7])
EX_B = _labels(_field((48, 48), 2, 2.0), [0.2])
ST_B = _labels(_field((40, 40), 3, 1.5), [0.25])
EX3 = _labels(_field((40, 40), 4, 2.0), [0.4])
ST3 = _labels(_field((20, 20, 20), 5, 1.5), [0.45])

# sha256 of the labels of the two chains before they were one (annealing.py and annealing3d.py
# at cc5a8f8), with their defaults: an image discards a batch after an accepted swap, a volume
# walks past it; the one chain must give the same bytes (an image's directional term, a default
# since, off: it was not in those chains; the uniformity term covers no phase of these)
PINNED = {
    "2d_three": (
        lambda: anneal_fractions(
            ST2, EX2, phases=3, max_lag=6, steps=1500, seed=0, directional_weight=0.0
        ),
        "3fef3c473e977d0f720ce43cd833fb58e2add0ab59778dc531dd690dc4cf8d2e",
    ),
    "2d_two_inimage": (
        lambda: anneal_fractions(
            ST_B,
            EX_B,
            phases=2,
            max_lag=6,
            steps=1500,
            seed=3,
            periodic=False,
            directional_weight=0.0,
        ),
        "fa4b9136b7ac34df9aa7c577b13678be51dfb57581e40c8662bc8f272430f2f6",
    ),
    "3d_default": (
        lambda: anneal_fractions(ST3, [EX3] * 3, phases=2, max_lag=4, steps=4000, seed=0),
        "67172b75416d3abf6287f58a366c022a2ffbcb2e2ba09dab7cb34a431fdda55a",
    ),
    "3d_surface": (
        lambda: anneal_fractions(
            ST3, [EX3] * 3, phases=2, max_lag=4, steps=2000, seed=1, surface=True
        ),
        "3c0435fa63d462f358f897222f2ea2d70d45096afecc3542bcf78b1849318c5b",
    ),
}


@pytest.mark.parametrize("case", list(PINNED))
def test_default_labels_are_the_two_chains_bytes(case):
    run, digest = PINNED[case]
    assert _sha(run().labels) == digest


def _slice_counts(vol, phase):
    """4-connected clusters of ``phase`` in every slice of each orientation (windows)."""
    return [sum(ndimage.label(s)[1] for s in np.moveaxis(vol == phase, a, 0)) for a in range(3)]


def test_3d_guard_keeps_every_slice_count():
    # every allowed flip of a random volume keeps each guarded phase's cluster count in every
    # slice from rising (the test in the three slices through the voxel is sufficient), and
    # refused flips include ones that would have raised it (the test is not vacuous)
    rng = np.random.default_rng(0)
    vol = _labels(_field((9, 10, 8), 7, 0.9), [0.5])
    nbr = neighbour_table(vol.shape, periodic=False)
    flat = vol.ravel().astype(np.int64)
    guard = np.array([True, True])
    base = [_slice_counts(vol, j) for j in range(2)]
    refused_raise = allowed = 0
    for p in rng.choice(flat.size, 300, replace=False):
        new = 1 - flat[p]
        ok = keeps_clusters(flat, nbr, np.array([p]), np.array([new]), guard)[0]
        trial = flat.copy()
        trial[p] = new
        after = [_slice_counts(trial.reshape(vol.shape), j) for j in range(2)]
        raised = any(a > b for j in range(2) for a, b in zip(after[j], base[j], strict=True))
        if ok:
            allowed += 1
            assert not raised
        elif raised:
            refused_raise += 1
    assert refused_raise > 0 and allowed > 0


def test_connectivity_number_per_slice_plane():
    vol = np.zeros((5, 5, 5), dtype=np.int64)
    nbr = neighbour_table(vol.shape, periodic=False)
    c = np.array([np.ravel_multi_index((2, 2, 2), vol.shape)])
    vol[2, 2, 1] = vol[2, 2, 3] = 1  # two runs in the planes normal to axes 0 and 1
    assert connectivity_number(vol.ravel(), nbr, c, 1).tolist() == [[2, 2, 0]]
    vol[2, 1, 1] = vol[2, 1, 2] = vol[2, 1, 3] = 1  # joined around the centre in plane 0
    assert connectivity_number(vol.ravel(), nbr, c, 1).tolist() == [[1, 2, 1]]
    # an image's number is the 2D one
    img = vol[2].ravel()
    n2 = neighbour_table((5, 5), periodic=False)
    assert connectivity_number(img, n2, np.array([12]), 1).tolist() == [1]


@pytest.mark.parametrize("periodic", [True, False])
def test_volume_neighbour_histogram_follows_swaps(periodic):
    rng = np.random.default_rng(1)
    vol = rng.integers(0, 3, (6, 7, 5)).astype(np.int64)
    nb = _NeighbourState(vol, 3, periodic)
    assert nb.hist.shape == (3 * 25 * 3,)
    np.testing.assert_allclose(nb.hist.reshape(3, -1).sum(1), 1.0)
    flat = vol.ravel()
    for _ in range(40):
        p, q = rng.choice(flat.size, 2, replace=False)
        dh = nb.swap_delta(flat, np.array([p]), np.array([q]))[0]
        flat[p], flat[q] = flat[q], flat[p]
        nb.hist = nb.hist + dh
    np.testing.assert_allclose(nb.hist, nb.histogram(flat), atol=1e-12)
    # a slice plane's classes are the 2D classes of that slice
    plane0 = _NeighbourState(vol[:, :, 2].copy(), 3, periodic)  # normal to axis 2
    cls = nb.classes(
        flat, np.ravel_multi_index((*np.nonzero(np.ones((6, 7), bool)), np.full(42, 2)), vol.shape)
    )
    two_d = plane0.classes(vol[:, :, 2].ravel(), np.arange(42))[:, 0]
    np.testing.assert_array_equal(cls[:, 2] - 2 * 75, two_d)


@pytest.mark.parametrize(
    "settings",
    [
        {"keep_clusters": True},
        {"neighbour_weight": 3.0},
        {"keep_clusters": True, "neighbour_weight": 3.0, "surface": True},
        {"walk": False, "keep_clusters": True},
    ],
)
def test_volume_stages_keep_the_fractions_exact(settings):
    res = anneal_fractions(
        ST3[:16, :16, :16], [EX3] * 3, phases=2, max_lag=4, steps=1500, seed=2, **settings
    )
    want = phase_counts(volume_fractions([EX3] * 3, 2)[None], 16**3)[0]
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=2), want)
    assert res.energy_final < res.energy_initial


@pytest.mark.parametrize("walk", [True, False])
def test_volume_guard_keeps_the_guarded_slice_counts(walk):
    start = _labels(_field((16, 16, 16), 9, 1.0), [0.45])
    ex = _labels(_field((40, 40), 4, 0.7), [0.45])
    guard = _guard(start, [ex] * 3, 2)
    assert guard.tolist() == [False, True]  # phase 1's slices have the exemplar's clusters
    kw = dict(phases=2, max_lag=4, seed=0, keep_clusters=True, periodic=False, walk=walk)
    res = anneal_fractions(start, [ex] * 3, steps=3000, **kw)
    fractions = anneal_fractions(start, [ex] * 3, steps=0, **kw)
    assert res.accepted > 0
    # the swaps never raise the guarded phase's cluster count in any slice orientation
    after, before = _slice_counts(res.labels, 1), _slice_counts(fractions.labels, 1)
    assert all(a <= b for a, b in zip(after, before, strict=True))


def test_image_walk_keeps_the_fractions_exact():
    res = anneal_fractions(ST2, EX2, phases=3, max_lag=6, steps=1500, seed=0, walk=True)
    want = phase_counts(np.array([[(EX2 == j).mean() for j in range(3)]]), ST2.size)[0]
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=3), want)
    assert res.accepted > 0 and res.energy_final < res.energy_fractions


def test_volume_cleanup_joins_a_network_and_dissolves_specks():
    # a network exemplar (grain boundaries: thin lines around cells)
    ex = np.ones((48, 48), dtype=np.uint8)
    ex[::8, :] = 0
    ex[:, ::8] = 0
    vol = np.ones((16, 16, 16), dtype=np.uint8)
    vol[2:4, :, :] = 0  # a sheet
    vol[8:10, 3:7, 3:7] = 0  # a fragment
    vol[13, 13, 13] = 0  # a speck
    joined = join_network_fragments(vol, [ex] * 3, phases=2)
    comp, n = ndimage.label(joined == 0)
    assert n == 2 and comp[8, 3, 3] == comp[2, 0, 0]  # the speck is too small to bridge
    cleaned = remove_small_clusters(vol, [ex] * 3, phases=2)
    assert cleaned[13, 13, 13] == 1 and (cleaned[2:4] == 0).all()


def test_volume_keys_reach_the_chain_and_the_report():
    from mdesign.config import ReconstructionConfig
    from mdesign.reconstruction.pipeline import _anneal, _anneal_stages

    cfg = ReconstructionConfig()
    assert _anneal_stages(3, cfg, [EX3] * 3) == ("fractions", "swaps")
    on = cfg.model_copy(
        update={
            "anneal": cfg.anneal.model_copy(
                update={"volume_keep_clusters": True, "volume_cleanup": True, "volume_sweeps": 0.5}
            )
        }
    )
    stages = _anneal_stages(3, on, [EX3] * 3)
    assert stages[1] == "swaps+cluster guard" and "remove small clusters" in stages
    # the image's keys are not the volume's
    assert _anneal_stages(2, on) == _anneal_stages(2, cfg)
    res = _anneal(
        ST3[:12, :12, :12], [EX3] * 3, on, phases=2, quarter=3, cleanup_seed=1, progress=False
    )
    want = phase_counts(volume_fractions([EX3] * 3, 2)[None], 12**3)[0]
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=2), want)


def test_volume_matrix_gives_a_matrix_material_the_images_stages_and_no_other():
    from mdesign.config import ReconstructionConfig
    from mdesign.reconstruction.annealing import is_matrix
    from mdesign.reconstruction.pipeline import _anneal_kwargs, _anneal_stages

    rock = np.zeros((48, 48), dtype=np.uint8)  # a matrix (0) with 16 separate pores (1)
    for y in range(3, 48, 12):
        for x in range(3, 48, 12):
            rock[y : y + 5, x : x + 5] = 1
    stripes = np.zeros((48, 48), dtype=np.uint8)
    stripes[:, ::4] = stripes[:, 1::4] = 1  # half and half, many clusters each
    assert is_matrix(rock, 0) and not is_matrix(rock, 1)
    assert not is_matrix(stripes, 0) and not is_matrix(stripes, 1)
    assert not is_matrix(1 - rock, 0)  # one cluster, but under half of the image
    # images shape the rock's pores as particles, volumes do not: compared without that stage
    cfg = ReconstructionConfig(anneal={"shape_particles": False})
    on = cfg.model_copy(update={"anneal": cfg.anneal.model_copy(update={"volume_matrix": True})})
    # the image's chain (the rock has no thin network, so no ends to close)
    assert _anneal_stages(3, on, [rock] * 3) == _anneal_stages(2, cfg, [rock])
    off = cfg.model_copy(update={"anneal": cfg.anneal.model_copy(update={"volume_matrix": False})})
    plain = _anneal_stages(3, off, [stripes] * 3)  # a volume's chain (no thin network either)
    assert _anneal_stages(3, on, [stripes] * 3) == plain
    assert _anneal_stages(3, on, [rock, rock, stripes]) == plain
    kw = dict(ndim=3, size=8000, phases=2, quarter=5)
    got = _anneal_kwargs(on, exemplars=[rock] * 3, **kw)
    assert got["keep_clusters"] and got["neighbour_weight"] == cfg.anneal.neighbour_weight
    assert got["steps"] == round(cfg.anneal.volume_sweeps * 8000)  # the volume's sweeps
    assert _anneal_kwargs(on, exemplars=[stripes] * 3, **kw) == _anneal_kwargs(cfg, **kw)


def _grid_network(side=48, step=8):
    """A network exemplar: thin boundary lines (phase 0) around square grains (phase 1)."""
    ex = np.ones((side, side), dtype=np.uint8)
    ex[::step, :] = 0
    ex[:, ::step] = 0
    return ex


@pytest.mark.parametrize("periodic", [True, False])
def test_network_sheets_are_one_cluster_and_anneal_to_the_exact_count(periodic):
    ex = _grid_network()
    start = _labels(_field((24, 24, 24), 11, 2.0), [0.3])  # blobs of boundary phase
    out, guard = network_sheets(start, [ex] * 3, phases=2, periodic=periodic, seed=0)
    want = phase_counts(volume_fractions([ex] * 3, 2)[None], out.size)[0]
    # at least the target count (a closed network of small cells may exceed it), annealed down
    assert np.bincount(out.ravel(), minlength=2)[0] >= want[0]
    assert guard.tolist() == [True, True]
    if not periodic:  # the sheets are one face-connected cluster, the grains several
        assert ndimage.label(out == 0)[1] == 1
        assert ndimage.label(out == 1)[1] > 1
    kw = dict(phases=2, max_lag=4, seed=0, periodic=periodic, keep_clusters=guard)
    res = anneal_fractions(out, [ex] * 3, steps=500, **kw)
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=2), want)


def test_network_sheets_leave_other_volumes_alone():
    out, guard = network_sheets(ST3, [EX3] * 3, phases=2, periodic=True, seed=0)
    assert np.array_equal(out, ST3) and not guard.any()


def test_given_guard_keeps_a_sheet_network_connected():
    ex = _grid_network()
    start = _labels(_field((20, 20, 20), 12, 2.0), [0.3])
    sheets, guard = network_sheets(start, [ex] * 3, phases=2, periodic=False, seed=1)
    kw = dict(phases=2, max_lag=4, seed=0, periodic=False, keep_clusters=guard)
    res = anneal_fractions(sheets, [ex] * 3, steps=3000, **kw)
    assert res.accepted > 0
    fractions = anneal_fractions(sheets, [ex] * 3, steps=0, **kw)
    # no slice of either phase gains a cluster in the swaps (the guard on both), and the
    # thinning to the exact count (stage 1, within the guard) keeps the sheets one cluster
    assert ndimage.label(fractions.labels == 0)[1] == 1
    for j in (0, 1):
        after, before = _slice_counts(res.labels, j), _slice_counts(fractions.labels, j)
        assert all(a <= b for a, b in zip(after, before, strict=True))
    assert ndimage.label(res.labels == 0)[1] == 1


def test_volume_sheets_key_reaches_the_chain():
    from mdesign.config import ReconstructionConfig
    from mdesign.reconstruction.pipeline import _anneal, _anneal_stages

    cfg = ReconstructionConfig()
    on, cfg = (
        cfg.model_copy(update={"anneal": cfg.anneal.model_copy(update={"volume_sheets": b})})
        for b in (True, False)
    )
    assert _anneal_stages(3, on)[:3] == ("network sheets", "fractions", "swaps+cluster guard")
    assert _anneal_stages(3, on, [EX3] * 3)[0] == "fractions"  # no thin network
    assert _anneal_stages(2, on) == _anneal_stages(2, cfg)  # images: anneal.image_sheets
    kw = dict(phases=2, quarter=3, cleanup_seed=1, progress=False)
    vol = ST3[:12, :12, :12]
    # no thin network phase: the same labels as without
    same = [_anneal(vol, [EX3] * 3, c, **kw).labels for c in (cfg, on)]
    assert np.array_equal(*same)
    # a network exemplar: the sheets, annealed to the exact count
    ex = _grid_network()
    res = _anneal(vol, [ex] * 3, on, **kw)
    want = phase_counts(volume_fractions([ex] * 3, 2)[None], vol.size)[0]
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=2), want)
    assert not np.array_equal(res.labels, _anneal(vol, [ex] * 3, cfg, **kw).labels)


@pytest.mark.parametrize("periodic", [True, False])
def test_surface_table_follows_flips_as_a_recount(periodic):
    from mdesign.reconstruction.annealing import _FaceChanges
    from mdesign.reconstruction.lags import n_faces

    rng = np.random.default_rng(5)
    vol = _labels(_field((10, 9, 8), 13, 1.2), [0.3, 0.6])
    flat = vol.ravel().copy()
    nbr = neighbour_table(vol.shape, periodic)
    edge = nbr[:, : n_faces(nbr)]
    real = edge != np.arange(flat.size)[:, None]
    fc = _FaceChanges(flat, edge, real, 3)
    for _ in range(40):  # flips of up to 3 voxels at once, neighbours included
        v = np.unique(rng.integers(0, flat.size, rng.integers(1, 4)))
        was = flat[v].copy()
        now = (was + rng.integers(1, 3, v.size)) % 3
        flat[v] = now
        fc.flipped(v, was, now)
    fresh = _FaceChanges(flat, edge, real, 3)
    for key in ("n", "change", "best", "gain"):
        assert np.array_equal(getattr(fc, key), getattr(fresh, key)), key
    # the table's meaning: a flip's change of the interface edges, against a recount
    p = int(np.flatnonzero(fresh.gain < 99)[0])
    b = int(fresh.best[p])
    before = interface_edges(flat, nbr)
    flat[p] = b
    assert interface_edges(flat, nbr) - before == fresh.change[p, b]


def test_network_sheets_with_two_grain_phases_keep_the_grains_labels():
    ex = _grid_network()
    yy, xx = np.indices(ex.shape)
    ex = np.where(ex == 1, 1 + ((yy // 8 + xx // 8) % 2), 0).astype(np.uint8)  # grains 1 and 2
    start = _labels(_field((20, 20, 20), 14, 2.0), [0.25, 0.6])
    out, guard = network_sheets(start, [ex] * 3, phases=3, periodic=False, seed=0)
    assert guard.all() and set(np.unique(out)) == {0, 1, 2}
    kept = (start != 0) & (out != 0)
    assert np.array_equal(out[kept], start[kept])  # grain voxels off the sheets keep their phase
    assert ndimage.label(out == 0)[1] == 1


def test_image_sheets_key_reaches_the_chain():
    from mdesign.config import ReconstructionConfig
    from mdesign.reconstruction.pipeline import _anneal, _anneal_stages

    on = ReconstructionConfig()
    assert on.anneal.image_sheets  # on by default
    cfg = on.model_copy(update={"anneal": on.anneal.model_copy(update={"image_sheets": False})})
    ex = _grid_network(48, 8)
    assert _anneal_stages(2, on)[:3] == (
        "network sheets",
        "fractions",
        "swaps+neighbourhood+cluster guard",
    )
    assert _anneal_stages(2, on, [ex])[0] == "network sheets"
    assert _anneal_stages(2, cfg, [ex])[0] == "fractions"
    # no thin network phase: the same stages and the same labels as without
    assert _anneal_stages(2, on, [EX_B]) == _anneal_stages(2, cfg, [EX_B])
    kw = dict(phases=2, quarter=6, cleanup_seed=1, progress=False)
    same = [_anneal(ST_B, [EX_B], c, **kw).labels for c in (cfg, on)]
    assert np.array_equal(*same)
    same = [_anneal(ST3[0], [EX3], c, **kw).labels for c in (cfg, on)]
    assert np.array_equal(*same)


@pytest.mark.parametrize("seed", [0, 1])
def test_image_sheets_close_the_network_at_the_exact_fractions(seed):
    from mdesign.config import ReconstructionConfig
    from mdesign.reconstruction.metrics import cluster_components
    from mdesign.reconstruction.pipeline import _anneal

    cfg = ReconstructionConfig(seed=seed)
    on = cfg.model_copy(update={"anneal": cfg.anneal.model_copy(update={"sheets_fit_steps": 30})})
    cfg = cfg.model_copy(update={"anneal": cfg.anneal.model_copy(update={"image_sheets": False})})
    ex = _grid_network(48, 8)
    start = _labels(_field((40, 40), 20 + seed, 1.5), [0.3])  # blobs of the boundary phase
    kw = dict(phases=2, quarter=6, cleanup_seed=seed + 1, progress=False)
    res = _anneal(start, [ex], on, **kw)
    want = phase_counts(volume_fractions([ex], 2)[None], start.size)[0]
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=2), want)
    # the boundaries one cluster (4-connected on the torus), the grains several
    assert cluster_components(res.labels == 0, periodic=True)[1] == 1
    assert cluster_components(res.labels == 1, periodic=True)[1] > 1
    # without the sheets, the same start leaves the boundaries in pieces or differs
    off = _anneal(start, [ex], cfg, **kw).labels
    assert not np.array_equal(off, res.labels)
