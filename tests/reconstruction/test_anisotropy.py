"""The anisotropy term of the texture loss: the anisotropic part of the S2 window."""

import numpy as np
import pytest
import torch

from mdesign.descriptors import two_point_correlation_directional
from mdesign.reconstruction.annealing import anneal_fractions
from mdesign.reconstruction.encoding import encoding_colours, labels_to_pixels, soft_indicators
from mdesign.reconstruction.loss import (
    LossTerms,
    TextureLoss,
    anisotropic_part,
    s2_window,
    s2_window_local_means,
)
from mdesign.reconstruction.metrics import s2_directional_ratio
from mdesign.reconstruction.optimize import optimize_pixels
from mdesign.reconstruction.vgg import vgg19_features


def _stripes(size: int = 32, period: int = 8, seed: int = 0) -> np.ndarray:
    """Rows of phase 1 (bands along the rows), width half a period, with a few flipped pixels."""
    img = ((np.arange(size)[:, None] % period) < period // 2) * np.ones((1, size), int)
    rng = np.random.default_rng(seed)
    flip = rng.random((size, size)) < 0.05
    return np.where(flip, 1 - img, img).astype(np.uint8)


@pytest.mark.parametrize("ndim", [2, 3])
def test_anisotropic_part_is_a_projection_that_vanishes_on_symmetric_windows(ndim):
    gen = torch.Generator().manual_seed(0)
    w = torch.rand((2, *(7,) * ndim), generator=gen, dtype=torch.float64)
    a = anisotropic_part(w, ndim)
    # linear projection: applied twice it changes nothing, and w - a is invariant
    torch.testing.assert_close(anisotropic_part(a, ndim), a)
    iso = w - a
    torch.testing.assert_close(iso.flip(-1), iso)
    torch.testing.assert_close(iso.transpose(-1, -2), iso)
    assert anisotropic_part(iso, ndim).abs().max() < 1e-12
    assert a.abs().max() > 0.05


def test_anisotropic_part_follows_a_transposition(two_phase):
    ind = torch.as_tensor(two_phase == 1, dtype=torch.float64)[None, None]
    a = anisotropic_part(s2_window(ind, 6, periodic=True))
    at = anisotropic_part(s2_window(ind.transpose(-1, -2), 6, periodic=True))
    torch.testing.assert_close(at, a.transpose(-1, -2))


@pytest.mark.parametrize("periodic", [True, False])
def test_rows_against_columns_match_the_directional_descriptor(periodic):
    # the isotropic part is the same at (0, r) and (r, 0), so the anisotropic part's difference
    # there is S2 along the rows minus S2 down the columns of mdesign.descriptors
    img = _stripes(40, 10)
    r = 8
    ind = torch.as_tensor(img == 1, dtype=torch.float64)[None, None]
    a = anisotropic_part(s2_window(ind, r, periodic=periodic))[0, 0].numpy()
    rows, cols = two_point_correlation_directional(
        img[None], directions=[(0, 1), (1, 0)], phase=1, max_distance=r, periodic=periodic
    )[0]
    np.testing.assert_allclose(a[r, r:] - a[r:, r], rows - cols, atol=1e-6)
    assert (rows - cols)[2:].mean() > 0.1  # the bands are seen


def test_anisotropy_term_gradient_matches_finite_differences():
    x = torch.rand(1, 1, 7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    target = torch.rand(1, 1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    def term(t, periodic):
        return ((anisotropic_part(s2_window(t, 2, periodic=periodic)) - target) ** 2).sum()

    for periodic in (True, False):
        assert torch.autograd.gradcheck(
            lambda t, p=periodic: term(t, p), (x.clone().requires_grad_(True),)
        )


def test_anisotropy_term_is_zero_at_the_exemplar_and_weighted_into_the_total():
    ex = _stripes()
    model = vgg19_features(["relu1_1"], weights="random", padding_mode="circular", seed=0)
    kw = dict(phases=2, s2_weight=0.0, s2_max_lag=6, periodic=True, exemplar_periodic=True)
    loss = TextureLoss(model, ex, temperature=0.02, tv_weight=0.0, anisotropy_weight=3.0, **kw)
    own = loss(labels_to_pixels(ex, 2))
    assert float(own.anisotropy) < 1e-10
    other = loss(labels_to_pixels(np.ascontiguousarray(ex.T), 2))
    assert float(other.anisotropy) > 0.1
    torch.testing.assert_close(other.total, other.gram + 3.0 * other.anisotropy)
    off = TextureLoss(model, ex, temperature=0.02, tv_weight=0.0, anisotropy_weight=0.0, **kw)
    assert float(off(labels_to_pixels(ex.T, 2)).anisotropy) == 0.0


def test_the_term_alone_turns_stripes_to_the_exemplars_direction():
    # from the transposed stripes (bands down the columns), L-BFGS on the anisotropy term of the
    # soft indicators alone turns the ratio of S2 along the rows / down the columns from below 1
    # to above 1, the exemplar's side, and the term falls by 80% or more
    ex = _stripes()
    r = 6
    ind = torch.as_tensor(ex == 1, dtype=torch.float64)[None, None]
    target = anisotropic_part(s2_window(ind, r, periodic=True))
    scale = ((s2_window(ind, r, periodic=True) - ind.mean() ** 2) ** 2).sum()
    colours = encoding_colours(2, dtype=torch.float64)

    def loss_fn(x):
        soft = soft_indicators(x, colours, temperature=0.1)[:, 1:]
        term = ((anisotropic_part(s2_window(soft, r, periodic=True)) - target) ** 2).sum() / scale
        return LossTerms(total=term, gram=term, s2=term * 0, tv=term * 0)

    gen = torch.Generator().manual_seed(0)
    start = labels_to_pixels(np.ascontiguousarray(ex.T), 2).double()
    init = 0.3 + 0.4 * start + 0.1 * torch.rand(start.shape, generator=gen, dtype=torch.float64)
    res = optimize_pixels(loss_fn, init, iterations=40, adam_warmup=0)

    def ratio(pixels):
        img = (pixels[0, 0] > 0.5).numpy().astype(np.uint8)
        return s2_directional_ratio(img, phase=1, periodic=True)

    assert ratio(init) < 1 < s2_directional_ratio(ex, phase=1, periodic=True)
    assert ratio(res.pixels) > 1
    assert res.losses.min() < 0.2 * res.losses[0]


def test_local_means_estimate_by_brute_force():
    rng = np.random.default_rng(1)
    img = (rng.random((9, 7)) < 0.4).astype(np.float64)
    win = s2_window_local_means(torch.as_tensor(img)[None, None], 3)[0, 0].numpy()
    phi = img.mean()
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            a = img[max(0, -dy) : 9 - max(0, dy), max(0, -dx) : 7 - max(0, dx)]
            b = img[max(0, dy) : 9 + min(0, dy), max(0, dx) : 7 + min(0, dx)]
            want = (a * b).mean() - a.mean() * b.mean() + phi**2
            assert win[dy + 3, dx + 3] == pytest.approx(want, abs=1e-12)


def test_local_means_give_one_structure_for_both_phases():
    # the pair estimate of a crop differs between complementary phases (edge strips); the
    # local-means estimate minus phi^2 is the same covariance for both, as on a torus
    img = _stripes(40, 10, seed=2)[:, :37]  # bands cut unevenly by the crop's edges
    r = 6
    ind = [torch.as_tensor(img == j, dtype=torch.float64)[None, None] for j in (0, 1)]
    phi = [float(i.mean()) for i in ind]
    cov = [s2_window_local_means(ind[j], r) - phi[j] ** 2 for j in (0, 1)]
    torch.testing.assert_close(cov[0], cov[1])
    plain = [s2_window(ind[j], r, periodic=False) - phi[j] ** 2 for j in (0, 1)]
    assert (plain[0] - plain[1]).abs().max() > 1e-3


@pytest.mark.parametrize("radial", [True, False])
def test_annealing_local_means_target_is_the_same_for_complementary_phases(radial):
    # anneal.s2_local_means: the annealing's S2 target of a crop with the pairs' own means. On a
    # torus S2 of 1 - I is 1 - 2 phi + S2 of I, and so is the local-means target of the
    # complementary crop: the energy of labels against the exemplar equals that of the
    # complements; the plain pair estimate carries the crop's edge strips and does not
    ex = _stripes(40, 10, seed=2)[:, :37]
    labels = np.roll(ex, (3, 5), axis=(0, 1))  # the exemplar's fractions, read on the torus
    kw = dict(
        phases=2,
        max_lag=6,
        steps=0,
        seed=0,
        periodic=True,
        exemplar_periodic=False,
        radial=radial,
        neighbour_weight=0.0,
        keep_clusters=False,
        surface=False,
    )

    def energies(local_means):
        return [
            anneal_fractions(lab, e, local_means=local_means, **kw).energy_initial
            for lab, e in ((labels, ex), (1 - labels, 1 - ex))
        ]

    e_local, e_plain = energies(True), energies(False)
    assert e_local[0] > 1e-6
    assert e_local[1] == pytest.approx(e_local[0], rel=1e-9)
    assert abs(e_plain[1] / e_plain[0] - 1) > 0.05
