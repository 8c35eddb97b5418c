"""Splitting and rounding the particles of a particle phase (``anneal.shape_particles``)."""

import numpy as np

from mdesign.config import ReconstructionConfig
from mdesign.grf import phase_counts
from mdesign.reconstruction.particles import (
    _interior,
    particle_phases,
    particle_shapes,
    particle_thickness,
    shape_particles,
    split_bounds,
)


def _disks(centres, r=6.0, side=64):
    yy, xx = np.mgrid[:side, :side]
    out = np.zeros((side, side), np.uint8)
    for cy, cx in centres:
        out[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    return out


EXEMPLAR = _disks([(10, 10), (10, 34), (10, 54), (32, 20), (32, 44), (52, 10), (52, 32), (52, 52)])


def test_a_disk_exemplar_has_a_particle_phase_and_stripes_none():
    assert particle_phases(EXEMPLAR, 2) == [1]
    stripes = (np.add.outer(np.arange(48), np.arange(48)) % 12 < 7).astype(np.uint8)
    assert particle_phases(stripes, 2) == []
    assert particle_phases(1 - EXEMPLAR, 2) == [0]


def test_a_merged_pair_of_disks_is_split_in_two():
    pair = _disks([(32, 25), (32, 38)], r=7.0)  # twice the exemplar's particles, a neck
    assert particle_shapes(pair, 1)[0] == 1
    out = shape_particles(pair, EXEMPLAR, phases=2, periodic=True)
    n, sol, _ = particle_shapes(out, 1)
    assert n == 2 and sol > 0.9
    assert abs(int(out.sum()) - int(pair.sum())) < 0.1 * pair.sum()  # a cut line, no more


def test_a_pair_like_the_exemplars_stays_whole_and_a_merged_triple_is_split():
    # the exemplar: single disks and overlapping pairs inside, disks cut by the crop's edge (they
    # make its mean area per cluster small; they are not counted in the split bounds)
    inner = [
        (16, 16),
        (16, 46),
        (16, 64),
        (44, 22),
        (44, 34),
        (44, 66),
        (72, 16),
        (72, 44),
        (72, 56),
    ]
    edge = [(0, 30), (0, 80), (30, 0), (60, 0), (0, 0), (95, 30), (95, 70), (40, 95), (80, 95)]
    ex = _disks(inner + edge, side=96)
    solidity, largest, _, mean = split_bounds(ex, 1)
    assert 0.8 < solidity < 0.82 and largest == 225 and 113 < mean < 225  # a pair, as drawn
    pair = _disks([(32, 26), (32, 38)])  # one of the exemplar's pairs: one cluster
    assert particle_shapes(pair, 1)[0] == 1
    out = shape_particles(pair, ex, phases=2, periodic=True)
    # one cluster, two overlapping lobes: as concave as the exemplar's pairs, no more
    assert particle_shapes(out, 1)[0] == 1 and particle_shapes(out, 1)[1] >= solidity
    triple = _disks([(32, 20), (32, 32), (32, 44)])  # larger than any cluster of the exemplar
    out = shape_particles(triple, ex, phases=2, periodic=True)
    n, sol, _ = particle_shapes(out, 1)
    assert n >= 2 and sol > 0.9


def test_a_concave_particle_gets_rounder():
    hook = np.zeros((64, 64), np.uint8)
    hook[20:44, 20:26] = 1  # an L of 6 px arms: concave, one particle
    hook[38:44, 20:40] = 1
    before = particle_shapes(hook, 1)
    out = shape_particles(hook, EXEMPLAR, phases=2, periodic=False)
    after = particle_shapes(out, 1)
    assert after[1] > before[1] + 0.1 and after[1] > 0.9
    assert int(out.sum()) >= 0.9 * int(hook.sum())  # its area kept but for cut lines


def test_images_without_a_particle_phase_are_unchanged():
    from mdesign.reconstruction.pipeline import _anneal, _anneal_stages

    rng = np.random.default_rng(1)
    stripes = (np.add.outer(np.arange(48), np.arange(48)) % 12 < 7).astype(np.uint8)
    start = (rng.random((48, 48)) < 0.55).astype(np.uint8)
    assert np.array_equal(shape_particles(start, stripes, phases=2, periodic=True), start)
    kw = dict(phases=2, quarter=12, cleanup_seed=1, progress=False)
    an = {"sweeps": 0.3, "max_lag": 6}
    on = ReconstructionConfig(seed=0, anneal=an | {"shape_particles": True})
    off = ReconstructionConfig(seed=0, anneal=an | {"shape_particles": False})
    assert _anneal_stages(2, on, [stripes], 2) == _anneal_stages(2, off, [stripes], 2)
    assert np.array_equal(
        _anneal(start, [stripes], on, **kw).labels, _anneal(start, [stripes], off, **kw).labels
    )


def test_shaping_in_the_chain_keeps_the_fractions_exact():
    from mdesign.reconstruction.pipeline import _anneal, _anneal_stages

    on = ReconstructionConfig(seed=0, anneal={"shape_particles": True, "sweeps": 0.3, "max_lag": 8})
    stages = _anneal_stages(2, on, [EXEMPLAR], 2)
    assert stages[-6:] == (
        "shape particles",
        "fractions",
        "swaps+neighbourhood+cluster guard",
        "round particles",
        "fractions",
        "surface",
    )
    no_swaps = on.model_copy(update={"anneal": on.anneal.model_copy(update={"particle_sweeps": 0})})
    assert _anneal_stages(2, no_swaps, [EXEMPLAR], 2)[-3:] == (
        "shape particles",
        "fractions",
        "surface",
    )
    assert "shape particles" not in _anneal_stages(3, on)
    start = _disks([(20, 20), (20, 31), (45, 45), (45, 56)])  # two merged pairs
    res = _anneal(start, [EXEMPLAR], on, phases=2, quarter=16, cleanup_seed=1, progress=False)
    want = phase_counts(np.bincount(EXEMPLAR.ravel(), minlength=2)[None] / EXEMPLAR.size, 64**2)
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=2), want[0])


def _areas(labels):
    return np.sort(_interior(labels == 1, connectivity=2)[1])


def test_the_shaped_sizes_are_the_exemplars_area_quantiles_and_the_pixels_are_kept():
    # the exemplar: single disks (113 px) and overlapping pairs; the image: disks of other sizes
    ex = _disks([(12, 12), (12, 40), (14, 70), (40, 20), (40, 28), (44, 60), (72, 16), (72, 44),
                 (72, 54), (76, 80)], side=96)  # fmt: skip
    start = _disks([(14, 14), (20, 48), (50, 30), (50, 76), (80, 20), (80, 60)], r=5.0, side=96)
    start[40:43, 5:8] = 1  # a speck (9 px): kept as it is
    out = shape_particles(start, ex, phases=2, periodic=True)
    assert int(out.sum()) == int(start.sum())  # room for all: no pixel lost
    mine, theirs = _areas(out), _areas(ex)
    n = mine.size
    q = np.quantile(theirs, (np.arange(n) + 0.5) / n)
    assert np.abs(mine - q * (start.sum() - 9) / q.sum()).max() <= 1  # ranks kept, sum exact
    assert np.array_equal(out[40:43, 5:8], start[40:43, 5:8])


def test_fragments_beyond_the_exemplars_count_go_to_the_matrix():
    ex = _disks([(12, 12), (12, 40), (40, 20), (44, 60), (72, 16), (72, 44)], side=96)
    big = [(14, 14), (20, 48), (50, 30), (80, 60)]
    start = _disks(big, side=96) | _disks([(40, 80), (80, 20), (60, 60)], r=2.5, side=96)
    total = int(start.sum())
    out = shape_particles(start, ex, phases=2, periodic=True)
    # as many particles as the exemplar's mean cluster area fits in the phase's pixels
    assert particle_shapes(out, 1)[0] == round(total / _areas(ex).mean()) == 5
    assert int(out.sum()) == total  # the fragments' pixels went to the kept particles


def test_a_chain_of_overlapping_disks_stays_as_thin_as_the_exemplars_particles():
    from scipy import ndimage

    ex = _disks([(12, 12), (12, 40), (14, 70), (40, 20), (44, 60), (72, 16), (72, 44)], side=96)
    chain = _disks([(48, 20), (48, 30), (48, 40), (48, 50), (48, 60)], side=96)
    thick = particle_thickness(ex, 1)
    assert 5 <= thick <= 6.5  # the disks' radius 6
    # round only: the chain's own area as one particle, overlapping disks of the exemplar's
    # (an ellipse of its area would be 9 px thick)
    out = shape_particles(chain, ex, phases=2, periodic=True, split=False)
    assert int(out.sum()) == int(chain.sum()) and particle_shapes(out, 1)[0] == 1
    assert ndimage.distance_transform_edt(out).max() <= thick + 1
    assert particle_shapes(out, 1)[1] > 0.8


def test_the_chain_with_shaping_is_seed_determined():
    from mdesign.reconstruction.pipeline import _anneal

    start = _disks([(20, 20), (20, 31), (45, 45), (45, 56)])
    kw = dict(phases=2, quarter=16, cleanup_seed=1, progress=False)
    an = {"shape_particles": True, "sweeps": 0.3, "max_lag": 8}
    runs = [
        _anneal(start, [EXEMPLAR], ReconstructionConfig(seed=s, anneal=an), **kw).labels
        for s in (0, 0, 1)
    ]
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
