"""The texture loss's uniformity term and its S2 term on the minority phase."""

import numpy as np
import pytest
import torch

from mdesign.reconstruction.encoding import labels_to_pixels
from mdesign.reconstruction.loss import (
    TextureLoss,
    block_variance,
    uniformity_blocks,
)
from mdesign.reconstruction.vgg import vgg19_features


def _half(size: int = 32) -> np.ndarray:
    """Phase 1 in the left half: everything on one side."""
    img = np.zeros((size, size), np.uint8)
    img[:, : size // 2] = 1
    return img


def _spread(size: int = 32, seed: int = 0) -> np.ndarray:
    """The same fraction as :func:`_half`, spread uniformly (random pixels)."""
    rng = np.random.default_rng(seed)
    return (rng.random((size, size)) < 0.5).astype(np.uint8)


def test_block_variance_closed_forms():
    half = torch.as_tensor(_half(32), dtype=torch.float64)[None, None]
    # blocks of 16: means 1, 0 / 1, 0 -> variance 1/4; blocks of 8 likewise
    assert float(block_variance(half, 16)) == 0.25
    assert float(block_variance(half, 8)) == 0.25
    checker = torch.as_tensor(np.indices((32, 32)).sum(0) % 2, dtype=torch.float64)[None, None]
    assert float(block_variance(checker, 8)) == 0.0
    # one block: nothing to compare
    assert float(block_variance(half, 32)) == 0.0
    # volumes: the same for a volume made of the image repeated along the third axis
    vol = half[..., None].expand(-1, -1, -1, -1, 16)
    assert float(block_variance(vol, 16)) == 0.25
    assert uniformity_blocks(8) == (4, 8, 16)


def test_uniformity_term_is_zero_unless_the_image_bunches_more_than_the_exemplar():
    ex = _spread(32)
    model = vgg19_features(["relu1_1"], weights="random", padding_mode="circular", seed=0)
    kw = dict(phases=2, s2_weight=0.0, s2_max_lag=8, periodic=True, exemplar_periodic=True)
    loss = TextureLoss(model, ex, temperature=0.02, tv_weight=0.0, uniformity_weight=2.0, **kw)
    own = loss(labels_to_pixels(ex, 2))
    assert float(own.uniformity) == 0.0
    smoother = np.indices((32, 32)).sum(0) % 2  # a checkerboard: no block varies
    assert float(loss(labels_to_pixels(smoother.astype(np.uint8), 2)).uniformity) == 0.0
    bunched = loss(labels_to_pixels(_half(32), 2))
    assert float(bunched.uniformity) > 100.0
    torch.testing.assert_close(bunched.total, bunched.gram + 2.0 * bunched.uniformity)
    off = TextureLoss(model, ex, temperature=0.02, tv_weight=0.0, **kw)
    assert float(off(labels_to_pixels(_half(32), 2)).uniformity) == 0.0


def test_uniformity_gradient_moves_a_bunched_fraction_apart():
    # one gradient step on the uniformity term alone lowers the variance of the block means
    ex = _spread(32)
    model = vgg19_features(["relu1_1"], weights="random", padding_mode="circular", seed=0)
    kw = dict(phases=2, s2_weight=0.0, s2_max_lag=8, periodic=True, exemplar_periodic=True)
    loss = TextureLoss(model, ex, temperature=0.3, tv_weight=0.0, uniformity_weight=1.0, **kw)
    x = (0.25 + 0.5 * labels_to_pixels(_half(32), 2)).requires_grad_(True)
    before = loss(x)
    before.uniformity.backward()
    y = (x - 1e-3 * x.grad / x.grad.abs().max()).detach()
    assert float(loss(y).uniformity) < float(before.uniformity.detach())


def test_minority_s2_term_equals_phase_ones_for_a_periodic_exemplar_only():
    # texture.s2_minority: the S2 term on the phase of the smaller fraction. On the torus the
    # covariance of one phase is the other's, so the term is phase 1's to rounding; a crop's
    # plain pair estimate differs per phase (its edge strips), and so does the term
    rng = np.random.default_rng(0)
    ex = (rng.random((32, 32)) < 0.7).astype(np.uint8)  # phase 0 the minority
    ex[8:12, :] = 0
    model = vgg19_features(["relu1_1"], weights="random", padding_mode="circular", seed=0)
    # the same fractions (so both phases' means are the exemplar's), another structure
    x = labels_to_pixels(np.ascontiguousarray(np.roll(ex, 5, 1).T), 2)
    terms = {}
    for periodic in (True, False):
        kw = dict(phases=2, s2_weight=1.0, s2_max_lag=6, periodic=True, exemplar_periodic=periodic)
        for minority in (0.0, 0.5):
            loss = TextureLoss(
                model, ex, temperature=0.01, tv_weight=0.0, s2_minority=minority, **kw
            )
            assert loss.s2_phases == ([0] if minority else [1])
            terms[periodic, minority > 0] = float(loss(x).s2)
    assert terms[True, True] == pytest.approx(terms[True, False], rel=1e-4)
    assert terms[False, True] != pytest.approx(terms[False, False], rel=1e-3)
    loss = TextureLoss(model, 1 - ex, temperature=0.3, tv_weight=0.0, s2_minority=0.5, **kw)
    assert loss.s2_phases == [1]


@pytest.mark.parametrize(("fraction_one", "tracked"), [(0.87, [0]), (0.55, [1]), (0.45, [1])])
def test_default_threshold_tracks_a_clear_minority_only(fraction_one, tracked):
    # the default (texture.s2_minority 0.25): phase 0 when it is under a quarter of the exemplar
    # (the Li alloy's boundaries, 0.127), phase 1 for balanced phases either way round
    rng = np.random.default_rng(0)
    ex = (rng.random((32, 32)) < fraction_one).astype(np.uint8)
    model = vgg19_features(["relu1_1"], weights="random", padding_mode="circular", seed=0)
    kw = dict(phases=2, s2_weight=1.0, s2_max_lag=6, periodic=True, temperature=0.1)
    assert TextureLoss(model, ex, tv_weight=0.0, **kw).s2_phases == tracked
    assert TextureLoss(model, ex, tv_weight=0.0, s2_minority=0.0, **kw).s2_phases == [1]
