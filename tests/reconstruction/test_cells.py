"""The fitted tessellation of a thin network phase (:mod:`mdesign.reconstruction.cells`)."""

import numpy as np
import pytest
from scipy import ndimage

from mdesign.descriptors import two_point_correlation_radial
from mdesign.reconstruction.cells import (
    SHAPE_SLICES,
    SIZE_QUANTILES,
    _cell_sections,
    _fit_target,
    _weighted_quantiles,
    _window_clusters,
    fit_tessellation,
    grain_sizes,
    network_sheets,
)
from mdesign.reconstruction.lags import face_table
from mdesign.reconstruction.metrics import _window_morphology, cluster_components


def _hex_network(side=64, step=16):
    """A regular network exemplar: two-pixel boundaries (phase 0) of a staggered brick wall,
    grains (phase 1) ``step`` pixels across, whose ``S2`` has a hole effect."""
    ex = np.ones((side, side), dtype=np.uint8)
    ex[::step, :] = ex[1::step, :] = 0
    for i, y in enumerate(range(0, side, step)):
        x0 = (i % 2) * step // 2
        ex[y : y + step, x0::step] = ex[y : y + step, x0 + 1 :: step] = 0
    return ex


def _closed(cell, sheet, periodic) -> bool:
    """No two face neighbours outside the network lie in different cells."""
    faces = face_table(cell.shape, periodic)
    c, s = cell.ravel(), sheet.ravel()
    both = ~s[:, None] & ~s[faces]
    return not (both & (c[faces] != c[:, None])).any()


def _random_seeds(shape, n, seed):
    return np.random.default_rng(seed).random((n, len(shape))) * np.array(shape)


def _target(ex, r_max):
    return two_point_correlation_radial(ex[None], phase=0, max_distance=r_max, periodic=True)


@pytest.mark.parametrize("periodic", [True, False])
def test_fit_lowers_the_s2_error_keeps_the_count_and_the_network_closed(periodic):
    ex = _hex_network()
    count = int((ex == 0).sum())
    fit = fit_tessellation(
        ex.shape,
        _random_seeds(ex.shape, 16, 0),
        _target(ex, 12),
        count=count,
        steps=150,
        periodic=periodic,
        seed=0,
    )
    assert fit.accepted > 0 and fit.error < 0.8 * fit.error_start
    assert int(fit.sheet.sum()) == count  # exact count
    assert _closed(fit.cell, fit.sheet, periodic)
    # the error is the network's S2 by an independent estimator (periodic: the same estimate)
    if periodic:
        net = fit.sheet[None].astype(np.uint8)
        s2 = two_point_correlation_radial(net, phase=1, max_distance=12)
        assert np.isclose(((s2[0, 1:] - _target(ex, 12)[0, 1:]) ** 2).sum(), fit.error)


def test_volume_fit_matches_each_orientations_slices():
    ex = _hex_network(32, 8)
    shape = (24, 24, 24)
    count = round((ex == 0).mean() * np.prod(shape))
    target = np.concatenate([_target(ex, 6)] * 3)
    fit = fit_tessellation(
        shape, _random_seeds(shape, 12, 1), target, count=count, steps=40, seed=0
    )
    assert int(fit.sheet.sum()) == count and _closed(fit.cell, fit.sheet, True)
    assert fit.error <= fit.error_start
    # the error is the slices' S2 (stacks normal to each axis), by an independent estimator
    s2 = [
        two_point_correlation_radial(
            np.moveaxis(fit.sheet, a, 0).astype(np.uint8), phase=1, max_distance=6
        ).mean(0)
        for a in range(3)
    ]
    assert np.isclose(((np.stack(s2)[:, 1:] - target[:, 1:]) ** 2).sum(), fit.error)


def test_fit_is_reproducible_by_seed():
    ex = _hex_network(32, 8)
    kw = dict(count=int((ex == 0).sum()), steps=30, periodic=True)
    start = _random_seeds(ex.shape, 10, 2)
    a, b, c = (fit_tessellation(ex.shape, start, _target(ex, 6), seed=s, **kw) for s in (0, 0, 1))
    assert np.array_equal(a.seeds, b.seeds) and np.array_equal(a.sheet, b.sheet)
    assert not np.array_equal(a.seeds, c.seeds)


def test_tracked_phase_target_is_the_other_phase_as_the_network():
    ex = _hex_network()
    phi = (ex == 0).mean()
    t = _fit_target([ex], 0, 2, 10, True, phi)  # two phases: phase 1's S2 as the network's
    assert np.allclose(t, _target(ex, 10), atol=1e-6)  # exact on the torus
    three = np.where(ex == 1, 1 + (np.indices(ex.shape)[1] > 31), 0)
    assert np.allclose(_fit_target([three], 0, 3, 10, True, phi), _target(ex, 10), atol=1e-6)


@pytest.mark.parametrize("shape_weight", [0.0, 10.0])
@pytest.mark.parametrize("shape", [(48, 48), (20, 20, 20)])
def test_image_and_volume_through_one_function(shape, shape_weight):
    ex = _hex_network(48, 12)
    rng = np.random.default_rng(3)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0, mode="wrap")
    start = (field > np.quantile(field, 0.3)).astype(np.uint8)  # blobs of the boundary phase
    exemplars = [ex] * 3 if len(shape) == 3 else [ex]
    kw = dict(phases=2, periodic=True, seed=0, fit_steps=20, shape_weight=shape_weight)
    out, guard = network_sheets(start, exemplars, **kw)
    assert out.shape == shape and guard.all()
    assert int((out == 0).sum()) == round((ex == 0).mean() * out.size)
    if len(shape) == 2:  # one network (4-connected on the torus)
        assert cluster_components(out == 0, periodic=True)[1] == 1
    again, _ = network_sheets(start, exemplars, **kw)
    assert np.array_equal(out, again)


def _sizes_exemplar(side=96, seed=5):
    """A network of power cells of widely spread sizes (phase 0, one pixel): the exemplar whose
    grain sizes the shape term matches."""
    rng = np.random.default_rng(seed)
    n = 14
    seeds = rng.random((n, 2)) * side
    weights = (rng.random(n) ** 2) * 600.0
    count = round(0.12 * side * side)
    fit = fit_tessellation(
        (side, side), seeds, _target(_hex_network(side, 12), 8), count=count, steps=0,
        weights=weights, seed=0,
    )  # fmt: skip
    return np.where(fit.sheet, 0, 1).astype(np.uint8)


def test_cell_sections_agree_with_the_exemplar_grains_of_the_same_image():
    # two paths to the grain sizes: the diagram's cell ids (the fit's) and the 4-connected
    # clusters of the image (the exemplar's), the same on a non-periodic diagram
    shape = (64, 64)
    fit = fit_tessellation(
        shape, _random_seeds(shape, 12, 4), _target(_hex_network(64, 16), 8),
        count=450, steps=0, periodic=False, seed=0,
    )  # fmt: skip
    r, a = _cell_sections(fit.cell, fit.sheet, False)
    image = np.where(fit.sheet, 0, 1).astype(np.uint8)
    sizes = grain_sizes([image], 0, shape)
    assert np.allclose(_weighted_quantiles(r, a, SIZE_QUANTILES), sizes.quantiles)
    assert a.sum() == (image == 1).sum()


def test_shape_term_spreads_the_cells_like_the_exemplar_grains():
    ex = _sizes_exemplar()
    sizes = grain_sizes([ex], 0, ex.shape)
    kw = dict(count=int((ex == 0).sum()), steps=150, periodic=True, seed=1)
    start = _random_seeds(ex.shape, 14, 6)
    target = _target(ex, 12)
    plain = fit_tessellation(ex.shape, start, target, **kw)
    shaped = fit_tessellation(ex.shape, start, target, sizes=sizes, shape_weight=30.0, **kw)
    assert shaped.shape < shaped.shape_start  # the shape error falls
    assert int(shaped.sheet.sum()) == kw["count"] and _closed(shaped.cell, shaped.sheet, True)

    def spread(fit):
        r, a = _cell_sections(fit.cell, fit.sheet, True)
        q = _weighted_quantiles(r, a, SIZE_QUANTILES)
        return q[-1] / q[0]

    want = sizes.quantiles[-1] / sizes.quantiles[0]
    assert abs(np.log(spread(shaped) / want)) < abs(np.log(spread(plain) / want))


def test_shaped_fit_leaves_no_cell_thinner_than_the_bound():
    ex = _sizes_exemplar(64, 5)
    sizes = grain_sizes([ex], 0, ex.shape)
    # seeds in tight rows: a fan of slivers between them
    rows = np.array([[8.0 + 3 * i, 20.0 + 12 * k] for i in range(5) for k in range(2)])
    seeds = np.concatenate([rows, _random_seeds(ex.shape, 6, 7)])
    kw = dict(count=int((ex == 0).sum()), periodic=True, seed=2)

    def thin(fit):
        r, a = _cell_sections(fit.cell, fit.sheet, True)
        return int((a > sizes.elongation * np.pi * r * r).sum())

    start = fit_tessellation(ex.shape, seeds, _target(ex, 12), steps=0, **kw)
    fit = fit_tessellation(
        ex.shape, seeds, _target(ex, 12), sizes=sizes, shape_weight=30.0, steps=150, **kw
    )
    assert thin(start) > 0 and thin(fit) == 0
    assert fit.shape < fit.shape_start


def test_shape_weight_zero_is_the_s2_fit():
    ex = _hex_network(32, 8)
    kw = dict(count=int((ex == 0).sum()), steps=30, periodic=True, seed=0)
    start = _random_seeds(ex.shape, 10, 2)
    a = fit_tessellation(ex.shape, start, _target(ex, 6), **kw)
    b = fit_tessellation(
        ex.shape, start, _target(ex, 6), sizes=grain_sizes([ex], 0, ex.shape), shape_weight=0.0,
        **kw,
    )  # fmt: skip
    assert np.array_equal(a.sheet, b.sheet) and np.isnan(b.shape)


@pytest.mark.parametrize("shape", [(48, 40), (24, 20, 22)])
def test_grains_per_window_are_the_metrics_counts(shape):
    # the fit's count (one labelling of every window of every orientation's slices) and the
    # exemplars' (grain_sizes) against the metrics' per-image counting in the same windows
    sheet = np.random.default_rng(8).random(shape) < 0.45
    window = (16, 16)
    stacks = [np.moveaxis(sheet, a, 0) for a in range(3)] if sheet.ndim == 3 else [sheet[None]]
    stacks = [s[:: -(-len(s) // SHAPE_SLICES)] for s in stacks]  # a volume's evenly spaced slices
    labels = [np.where(s, 0, 1).astype(np.uint8) for s in stacks]  # the grains as phase 1
    want = np.mean([_window_morphology(lab, window, 2)[0][1] for lab in labels])
    assert np.isclose(_window_clusters(sheet, window), want)
    first = labels[0][0]
    got = grain_sizes([first], 0, window).clusters
    assert np.isclose(got, _window_morphology(first[None], window, 2)[0][1])
