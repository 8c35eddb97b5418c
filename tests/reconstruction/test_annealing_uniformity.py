"""The annealing's uniformity term (``anneal.uniformity_weight``): block fractions' variance."""

import numpy as np
import pytest

from mdesign.reconstruction.annealing import _block_means, _Blocks, anneal_fractions


def _bunched(shape, fraction=0.2, seed=0):
    """A phase of ``fraction`` of random pixels, all in the first half along axis 0."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.int64)
    half = lab[: shape[0] // 2]
    half[...] = rng.random(half.shape) < 2 * fraction
    return lab


def test_block_means_closed_form():
    img = np.zeros((8, 6))
    img[:4] = 1
    np.testing.assert_array_equal(_block_means(img, 4), [1.0, 0.0])  # 2 x 1 blocks of 4
    np.testing.assert_array_equal(_block_means(img, 2), [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    vol = np.zeros((4, 4, 5))
    vol[:2, :, :] = 1
    np.testing.assert_array_equal(_block_means(vol, 2), [1, 1, 1, 1, 0, 0, 0, 0])  # 2 x 2 x 2


@pytest.mark.parametrize("shape", [(40, 36), (18, 17, 20)])
def test_block_change_equals_the_energy_difference(shape):
    # the incremental change of each swap is the energy after it less the energy before
    rng = np.random.default_rng(1)
    lab = _bunched(shape)
    ex = [(rng.random((40, 40)) < 0.2).astype(np.int64)] * (1 if len(shape) == 2 else 3)
    blocks = _Blocks(shape, ex, [1], 4, 3.0)
    flat = lab.ravel()
    blocks.recount(flat)
    e0 = blocks.energy(flat)
    assert e0 > 0
    p, q = rng.integers(0, flat.size, 60), rng.integers(0, flat.size, 60)
    change = blocks.change(flat, p, q)
    for i in range(60):
        f = flat.copy()
        f[p[i]], f[q[i]] = flat[q[i]], flat[p[i]]
        assert change[i] == pytest.approx(blocks.energy(f) - e0, abs=1e-12)
    assert (change != 0).any()
    # the counts kept by moved() are a fresh count's after any changes
    for v in rng.integers(0, flat.size, 40):
        new = 1 - flat[v]
        blocks.moved(int(v), int(flat[v]), int(new))
        flat[v] = new
    kept = [[c.copy() for c in per] for per in blocks.counts]
    blocks.recount(flat)
    for a, b in zip(kept, blocks.counts, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_uniformity_term_keeps_the_phase_spread():
    # from a start with the phase on one side, the term's swaps spread it (block variance falls
    # far more than without it); fractions stay exact either way
    rng = np.random.default_rng(2)
    ex = (rng.random((40, 40)) < 0.2).astype(np.uint8)
    start = _bunched((40, 40)).astype(np.uint8)
    kw = dict(phases=2, max_lag=8, steps=6000, seed=0, keep_clusters=False, surface=False)
    kw |= dict(uniformity_below=1.0, directional_weight=0.0)  # the term alone, on phase 1
    off = anneal_fractions(start, ex, neighbour_weight=0.0, uniformity_weight=0.0, **kw)
    on = anneal_fractions(start, ex, neighbour_weight=0.0, uniformity_weight=10.0, **kw)

    def spread(lab):
        return _block_means(lab == 1, 8).var()

    assert (on.labels == 1).sum() == (off.labels == 1).sum() == on.target_counts[1]
    assert spread(on.labels) < 0.7 * spread(off.labels)
    assert spread(on.labels) <= 1.1 * spread(ex)  # the term is one-sided: at most the exemplar's
    assert on.energy_final < on.energy_initial


def test_uniformity_below_leaves_a_phase_above_it_alone():
    # anneal.uniformity_below: a tracked phase at or above it is outside the term, so the
    # annealing is the one without the term, label for label
    rng = np.random.default_rng(2)
    ex = (rng.random((40, 40)) < 0.2).astype(np.uint8)
    start = _bunched((40, 40)).astype(np.uint8)
    kw = dict(phases=2, max_lag=8, steps=1500, seed=0, keep_clusters=False, surface=False)
    off = anneal_fractions(start, ex, **kw)
    above = anneal_fractions(start, ex, uniformity_weight=10.0, uniformity_below=0.1, **kw)
    on = anneal_fractions(start, ex, uniformity_weight=10.0, uniformity_below=0.3, **kw)
    np.testing.assert_array_equal(above.labels, off.labels)
    assert (on.labels != off.labels).any()
