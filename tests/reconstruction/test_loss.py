import numpy as np
import pytest
import torch

from mdesign.descriptors import specific_surface, two_point_correlation
from mdesign.reconstruction.encoding import labels_to_pixels
from mdesign.reconstruction.loss import TextureLoss, gram_matrix, s2_window, total_variation
from mdesign.reconstruction.vgg import vgg19_features


def test_gram_matrix_by_hand():
    f = torch.arange(12.0).reshape(1, 3, 2, 2)
    flat = f.reshape(3, 4)
    torch.testing.assert_close(gram_matrix(f)[0], flat @ flat.T / 4)


def test_gram_targets_do_not_depend_on_the_size(two_phase):
    # on the torus the features of a 2x2 tiling are the tiled features, so the size-averaged
    # Gram matrices are equal: a reconstruction of any size compares with the same targets
    model = vgg19_features(
        ["relu1_1", "pool1", "pool2", "pool3"], weights="random", padding_mode="circular"
    )
    kw = dict(phases=2, s2_weight=0.0, s2_max_lag=4, periodic=True, temperature=0.1, tv_weight=0.0)
    small = TextureLoss(model, two_phase, **kw)
    big = TextureLoss(model, np.tile(two_phase, (2, 2)), **kw)
    for a, b in zip(small.gram_targets(), big.gram_targets(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # the exemplar's own pixels, at any tiling, have zero Gram loss
    assert small(labels_to_pixels(np.tile(two_phase, (2, 3)), 2)).gram < 1e-9


@pytest.mark.parametrize("periodic", [True, False])
def test_s2_window_matches_descriptors(two_phase, periodic):
    r = 5
    ind = torch.as_tensor(two_phase == 1, dtype=torch.float64)[None, None]
    win = s2_window(ind, r, periodic=periodic)[0, 0].numpy()
    full = two_point_correlation(two_phase[None], phase=1, periodic=periodic)[0]
    # zero displacement sits at [H // 2, W // 2] (periodic) or [H - 1, W - 1] in that map
    h, w = two_phase.shape
    cy, cx = (h // 2, w // 2) if periodic else (h - 1, w - 1)
    # the descriptors compute in float32
    np.testing.assert_allclose(win, full[cy - r : cy + r + 1, cx - r : cx + r + 1], atol=1e-6)


def test_s2_window_brute_force():
    rng = np.random.default_rng(0)
    img = (rng.random((9, 7)) < 0.4).astype(np.float64)
    win = s2_window(torch.as_tensor(img)[None, None], 3, periodic=False)[0, 0].numpy()
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            a = img[max(0, -dy) : 9 - max(0, dy), max(0, -dx) : 7 - max(0, dx)]
            b = img[max(0, dy) : 9 + min(0, dy), max(0, dx) : 7 + min(0, dx)]
            assert win[dy + 3, dx + 3] == pytest.approx((a * b).mean())


def test_s2_window_gradient_matches_finite_differences():
    x = torch.rand(1, 2, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for periodic in (True, False):
        assert torch.autograd.gradcheck(
            lambda t, p=periodic: s2_window(t, 2, periodic=p), (x.requires_grad_(True),)
        )


def test_s2_term_is_zero_at_the_exemplar_and_positive_elsewhere(three_phase):
    model = vgg19_features(["relu1_1"], weights="random", padding_mode="circular")
    loss = TextureLoss(
        model,
        three_phase,
        phases=3,
        s2_weight=2.0,
        s2_max_lag=6,
        periodic=True,
        exemplar_periodic=True,
        temperature=0.01,
        tv_weight=0.0,
    )
    own = loss(labels_to_pixels(three_phase, 3))
    assert own.s2 < 1e-8 and own.gram < 1e-9
    other = loss(labels_to_pixels(np.roll(three_phase.T, 3, axis=0), 3))
    assert other.s2 > 1e-3
    torch.testing.assert_close(other.total, other.gram + 2.0 * other.s2)
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss(x).total.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("periodic", [True, False])
def test_variation_of_labels_is_their_interface_by_crofton(two_phase, periodic):
    # on the two-colour encoding the variation counts unlike neighbours: Crofton's specific
    # surface times 2 / pi, the same estimator mdesign.descriptors uses
    tv = total_variation(labels_to_pixels(two_phase, 2), periodic=periodic)
    ss = specific_surface(two_phase[None], phase=1, periodic=periodic)[0]
    assert float(tv) == pytest.approx(ss * 2 / np.pi, rel=1e-6)


def test_variation_term_penalises_only_an_excess(two_phase):
    model = vgg19_features(["relu1_1"], weights="random", padding_mode="circular")
    loss = TextureLoss(
        model, two_phase, phases=2, s2_weight=0.0, s2_max_lag=6, periodic=True,
        exemplar_periodic=True, temperature=0.1, tv_weight=3.0,
    )  # fmt: skip
    own = labels_to_pixels(two_phase, 2)
    assert float(loss(own).tv) == 0.0
    # smoother than the exemplar (a blurred copy, less variation): no penalty either
    blurred = (own + own.roll(1, -1) + own.roll(1, -2) + own.roll((1, 1), (-2, -1))) / 4
    assert float(loss(blurred).tv) == 0.0
    noisy = own + 0.3 * torch.randn(own.shape, generator=torch.Generator().manual_seed(1))
    terms = loss(noisy)
    excess = float(total_variation(noisy, periodic=True) / total_variation(own, periodic=True))
    assert float(terms.tv) == pytest.approx((excess - 1) ** 2, rel=1e-5)
    torch.testing.assert_close(terms.total, terms.gram + 3.0 * terms.tv)
