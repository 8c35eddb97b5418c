"""Closing the open ends of a thin network phase (``anneal.close_ends``)."""

import numpy as np
import pytest

from mdesign.config import ReconstructionConfig
from mdesign.grf import phase_counts
from mdesign.reconstruction.ends import close_network_ends, network_ends
from mdesign.reconstruction.metrics import cluster_components


def _grid(side=72, step=24, width=3, offset=6):
    """Grain boundaries (phase 1, ``width`` px) around square cells (phase 0), periodic."""
    g = np.zeros((side, side), dtype=np.uint8)
    for k in range(width):
        g[offset + k :: step, :] = 1
        g[:, offset + k :: step] = 1
    return g


def _gap(g):
    """The grid with a 4 px gap in one vertical wall (two open ends facing each other)."""
    out = g.copy()
    out[40:44, 30:33] = 0
    return out


def _torus_cells(labels, phase):
    # count cells on the torus: tile 3 x 3 and count the components touching the centre tile
    comp, _ = cluster_components(np.tile(labels == phase, (3, 3)))
    h, w = labels.shape
    return len(np.unique(comp[h : 2 * h, w : 2 * w][labels == phase]))


def test_network_ends_counts_dead_ends_not_cells():
    g = _grid()
    assert network_ends(g, phase=1, periodic=True) == []
    ends = network_ends(_gap(g), phase=1, periodic=True)
    assert len(ends) == 2
    assert all(e.junction and e.width == 3 for e in ends)
    # a non-periodic crop's lines cut by its edge are not dead ends with a border
    assert network_ends(g[3:-3, 3:-3], phase=1, periodic=False, border=4) == []
    assert len(network_ends(g[3:-3, 3:-3], phase=1, periodic=False)) > 0


@pytest.mark.parametrize("periodic", [True, False])
def test_an_open_wall_is_closed_at_the_network_width(periodic):
    g = _grid()
    broken = _gap(g)
    assert _torus_cells(broken, 0) == _torus_cells(g, 0) - 1
    out = close_network_ends(broken, g, phases=2, periodic=periodic)
    assert network_ends(out, phase=1, periodic=periodic, border=4) == []
    assert _torus_cells(out, 0) == _torus_cells(g, 0)
    # the bridge is the wall's width, along the wall (no pixel off its columns is added)
    added = (out == 1) & (broken == 0)
    ys, xs = np.nonzero(added)
    assert set(xs) == {30, 31, 32} and set(ys) == set(range(40, 44))
    assert not ((out == 0) & (broken == 1)).any()


def test_no_network_no_ends_no_change():
    rng = np.random.default_rng(0)
    blobs = (rng.random((40, 40)) < 0.5).astype(np.uint8)
    assert np.array_equal(close_network_ends(blobs, blobs, phases=2, periodic=True), blobs)
    # an exemplar with as many open ends per area as the image: nothing to close
    broken = _gap(_grid())
    assert np.array_equal(close_network_ends(broken, broken, phases=2, periodic=True), broken)
    with pytest.raises(ValueError):
        close_network_ends(np.zeros((4, 4, 4), np.uint8), broken, phases=2, periodic=True)
    with pytest.raises(ValueError):
        network_ends(np.zeros((4, 4, 4), np.uint8), phase=1, periodic=True)


def test_close_ends_in_the_chain_keeps_the_fractions_exact_and_the_cells_closed():
    from mdesign.reconstruction.pipeline import _anneal, _anneal_stages

    g = _grid()
    # the closing alone (anneal.image_sheets, on by default, would rebuild the grid as sheets;
    # anneal.shape_particles, on by default, ends a chain whose exemplar is not given)
    sweeps = {"sweeps": 0.5, "max_lag": 8, "image_sheets": False, "shape_particles": False}
    cfg = ReconstructionConfig(seed=0, anneal={"close_ends": True, **sweeps})
    stages = _anneal_stages(2, cfg)
    assert stages.count("close network ends") == 2
    assert stages[-3:] == ("close network ends", "fractions", "surface")
    assert ReconstructionConfig().anneal.close_ends  # the default
    no = ReconstructionConfig(anneal={"close_ends": False})
    assert "close network ends" not in _anneal_stages(2, no)
    assert "close network ends" not in _anneal_stages(3, cfg.model_copy())
    res = _anneal(_gap(g), [g], cfg, phases=2, quarter=18, cleanup_seed=1, progress=False)
    want = phase_counts(np.bincount(g.ravel(), minlength=2)[None] / g.size, g.size)[0]
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=2), want)
    assert _torus_cells(res.labels, 0) == _torus_cells(g, 0)
    off = ReconstructionConfig(seed=0, anneal={"close_ends": False, **sweeps})
    res_off = _anneal(_gap(g), [g], off, phases=2, quarter=18, cleanup_seed=1, progress=False)
    assert _torus_cells(res_off.labels, 0) < _torus_cells(g, 0)


def test_close_ends_leaves_images_without_a_thin_network_unchanged():
    from mdesign.reconstruction.pipeline import _anneal, _anneal_stages

    rng = np.random.default_rng(1)
    ex = (np.add.outer(np.arange(48), np.arange(48)) % 12 < 7).astype(np.uint8)  # stripes
    start = (rng.random((48, 48)) < 0.55).astype(np.uint8)
    kw = dict(phases=2, quarter=12, cleanup_seed=1, progress=False)
    on = ReconstructionConfig(seed=0, anneal={"close_ends": True, "sweeps": 0.3, "max_lag": 6})
    off = ReconstructionConfig(seed=0, anneal={"close_ends": False, "sweeps": 0.3, "max_lag": 6})
    assert _anneal_stages(2, on, [ex], 2) == _anneal_stages(2, off, [ex], 2)
    assert np.array_equal(
        _anneal(start, [ex], on, **kw).labels, _anneal(start, [ex], off, **kw).labels
    )


def test_a_surplus_spur_is_retracted_to_its_junction():
    g = _grid()
    spur = g.copy()
    spur[33:41, 42:45] = 1  # a dead end hanging from a wall into a cell: the phase in surplus
    assert len(network_ends(spur, phase=1, periodic=True)) == 1
    out = close_network_ends(spur, g, phases=2, periodic=True)
    assert np.array_equal(out, g)


def test_a_larger_output_is_closed_against_the_exemplar_per_area():
    g = _grid()
    broken = np.tile(_gap(g), (2, 2))  # four open walls in an output of four times the area
    assert len(network_ends(broken, phase=1, periodic=True)) == 8
    out = close_network_ends(broken, g, phases=2, periodic=True)
    assert network_ends(out, phase=1, periodic=True) == []
    assert np.array_equal(out, np.tile(g, (2, 2)))
