"""The fitted tessellation of a thin network phase (:mod:`mdesign.reconstruction.cells`)."""

import numpy as np
import pytest
from scipy import ndimage

from mdesign.descriptors import two_point_correlation_radial
from mdesign.reconstruction.cells import _fit_target, fit_tessellation, network_sheets
from mdesign.reconstruction.lags import face_table
from mdesign.reconstruction.metrics import cluster_components


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


@pytest.mark.parametrize("shape", [(48, 48), (20, 20, 20)])
def test_image_and_volume_through_one_function(shape):
    ex = _hex_network(48, 12)
    rng = np.random.default_rng(3)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0, mode="wrap")
    start = (field > np.quantile(field, 0.3)).astype(np.uint8)  # blobs of the boundary phase
    exemplars = [ex] * 3 if len(shape) == 3 else [ex]
    kw = dict(phases=2, periodic=True, seed=0, fit_steps=20)
    out, guard = network_sheets(start, exemplars, **kw)
    assert out.shape == shape and guard.all()
    assert int((out == 0).sum()) == round((ex == 0).mean() * out.size)
    if len(shape) == 2:  # one network (4-connected on the torus)
        assert cluster_components(out == 0, periodic=True)[1] == 1
    again, _ = network_sheets(start, exemplars, **kw)
    assert np.array_equal(out, again)
