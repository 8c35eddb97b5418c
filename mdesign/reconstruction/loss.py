"""The reconstruction loss: Gram matrices of VGG19 features, plus ``S2`` and variation terms.

:class:`TextureLoss` holds the exemplar's targets and evaluates, for an image ``1 x 3 x H x W``:

* the Gram term (Gatys et al. 2015; Li et al. 2018): per chosen layer ``l`` with features ``F_l``
  (``C_l x M_l``), ``G_l = F_l F_l^T / M_l`` (averaged over positions, so independent of the image
  size), its squared Frobenius error divided by the exemplar's ``||A_l||_F^2``, the mean over the
  layers;
* the ``S2`` term (weight ``s2_weight``): the two-point correlation of the soft phase indicators by
  FFT on the window ``|dy|, |dx| <= R``, relative to the exemplar's ``S2 - phi^2``;
* the anisotropy term (weight ``anisotropy_weight``): the same ``S2`` window's anisotropic part
  (the window minus its mean over the lattice's axis permutations and reflections,
  :func:`anisotropic_part`) against the exemplar's, on the same scale, so the fit neither invents
  a direction the exemplar lacks nor exaggerates one it has;
* the uniformity term (weight ``uniformity_weight``): the variance of block fractions above the
  exemplar's (:func:`block_variance`);
* the variation term (weight ``tv_weight``): ``relu(V / V_ex - 1)^2``, ``V`` the pixels' mean
  absolute step, which removes pixel noise without pulling the interfaces below the exemplar's.

Why each term is normalised as it is: the reconstruction guide ("How each stage works",
``docs/guide/reconstruction.md``).

References
----------
Gatys, L. A., Ecker, A. S. & Bethge, M. "Texture synthesis using convolutional neural networks",
NeurIPS (2015).
Li, X. et al. "A transfer learning approach for microstructure reconstruction and
structure-property predictions", Sci. Rep. 8, 13461 (2018).
Torquato, S. *Random Heterogeneous Materials*, Springer (2002), ch. 2 (``S2``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mdesign.config import RECONSTRUCTION_DEFAULTS
from mdesign.descriptors import autocorrelation
from mdesign.reconstruction.encoding import (
    encoding_colours,
    labels_to_pixels,
    soft_indicators,
    to_vgg_input,
)
from mdesign.reconstruction.vgg import VGG19Features

__all__ = [
    "ExemplarTargets",
    "LossTerms",
    "TextureLoss",
    "anisotropic_part",
    "block_variance",
    "exemplar_targets",
    "gram_matrix",
    "s2_phases",
    "s2_window",
    "s2_window_local_means",
    "total_variation",
    "uniformity_blocks",
]


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Size-independent Gram matrix of feature maps (Gatys et al. 2015).

    Parameters
    ----------
    features : Tensor, ``batch x C x H x W``

    Returns
    -------
    Tensor, ``batch x C x C``
        ``F F^T / (H W)`` with ``F`` the ``C x HW`` flattened features.
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def s2_window(indicators: torch.Tensor, max_lag: int, *, periodic: bool) -> torch.Tensor:
    """Two-point correlation of indicators on the lag window ``-R..R`` in both axes.

    Parameters
    ----------
    indicators : Tensor, ``batch x k x H x W``
        Hard or soft phase indicators.
    max_lag : int
        ``R``, below half the smaller side.
    periodic : bool
        Torus estimate, or pairs inside the image only (zero padding, divided by the pair count).

    Returns
    -------
    Tensor, ``batch x k x (2R + 1) x (2R + 1)``
        ``out[..., R + dy, R + dx]`` is ``S2(dy, dx)``; the centre is ``mean(indicator**2)``.
    """
    b, k, h, w = indicators.shape
    corr = autocorrelation(
        indicators.reshape(b * k, h, w), periodic=periodic, max_lag=None if periodic else max_lag
    )
    m, n = corr.shape[-2:]
    lags = torch.arange(-max_lag, max_lag + 1, device=indicators.device)
    corr = corr.index_select(1, lags % m).index_select(2, lags % n)
    return corr.reshape(b, k, 2 * max_lag + 1, 2 * max_lag + 1)


def s2_window_local_means(indicators: torch.Tensor, max_lag: int) -> torch.Tensor:
    """``S2`` of a non-periodic image with the pairs' own means: the same for either phase.

    ``S2(r) - m(r) m'(r) + phi^2``, where ``S2(r)`` is :func:`s2_window`'s non-periodic estimate
    (the mean of ``I(x) I(x + r)`` over the pairs inside the image), ``m(r)`` and ``m'(r)`` the
    means of ``I(x)`` and of ``I(x + r)`` over those pairs, and ``phi`` the image's mean. The
    plain pair estimate of a crop carries its edge strips' fractions, differently for each phase
    (figures: docs/performance.md), whereas a periodic image has one covariance for both phases.
    The covariance of the pairs, ``S2(r) - m m'``, is that of the complementary indicator too, so
    the reconstruction's target is one structure for every phase. Where ``m = m' = phi`` it is
    the plain estimate.

    Parameters
    ----------
    indicators : Tensor, ``batch x k x H x W``
    max_lag : int
        ``R``, below the smaller side.

    Returns
    -------
    Tensor, ``batch x k x (2R + 1) x (2R + 1)``
    """
    b, k, h, w = indicators.shape
    x = indicators.reshape(b * k, h, w)
    size = (2 * h, 2 * w)
    fx = torch.fft.rfftn(x, s=size)
    fm = torch.fft.rfftn(torch.ones_like(x[:1]), s=size)
    pairs = torch.fft.irfftn(fm.abs() ** 2, s=size).round().clamp_min(1)
    s2 = torch.fft.irfftn(fx.abs() ** 2, s=size) / pairs
    first = torch.fft.irfftn(fx.conj() * fm, s=size) / pairs  # mean of I(x) over the pairs
    second = torch.fft.irfftn(fm.conj() * fx, s=size) / pairs  # mean of I(x + r)
    corr = s2 - first * second + x.mean((-2, -1), keepdim=True) ** 2
    lags = torch.arange(-max_lag, max_lag + 1, device=indicators.device)
    corr = corr.index_select(1, lags % size[0]).index_select(2, lags % size[1])
    return corr.reshape(b, k, 2 * max_lag + 1, 2 * max_lag + 1)


def anisotropic_part(window: torch.Tensor, ndim: int = 2) -> torch.Tensor:
    """The anisotropic part of a lag window: the window minus its mean over the symmetries.

    The symmetries are the ``ndim! 2^ndim`` axis permutations and reflections of the last
    ``ndim`` axes (8 in 2D, 48 in 3D); their mean is the window's isotropic (cubic) part, so the
    rest is what distinguishes rows from columns (or one diagonal from the other). 0 for an
    isotropic ``S2``; stripes along the rows give ``S2(0, r) > S2(r, 0)``, that is a positive
    part along the row axis and a negative one down the columns.

    Parameters
    ----------
    window : Tensor, ``... x (2R + 1) x ... x (2R + 1)``
        Centred lag windows (:func:`s2_window`), the last ``ndim`` axes of equal length.
    ndim : int
        Number of lag axes (2 for an image's window, 3 for a volume's).

    Returns
    -------
    Tensor, the shape of ``window``
    """
    lead = tuple(range(window.ndim - ndim))
    dims = tuple(range(window.ndim - ndim, window.ndim))
    total = torch.zeros_like(window)
    count = 0
    for perm in itertools.permutations(dims):
        moved = window.permute(*lead, *perm)
        for flips in itertools.product((False, True), repeat=ndim):
            axes = [d for d, f in zip(dims, flips, strict=True) if f]
            total = total + (moved.flip(axes) if axes else moved)
            count += 1
    return window - total / count


def total_variation(pixels: torch.Tensor, *, periodic: bool) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, averaged over the spatial axes.

    Parameters
    ----------
    pixels : Tensor, ``batch x C x H x W`` (or ``batch x C x H x W x D``)
    periodic : bool
        Include the steps across the wrap-around.

    Returns
    -------
    Tensor, ``batch``
        ``(mean |dx| + mean |dy|) / 2`` (and ``|dz|``, over 3 for volumes), averaged over the
        channels.
    """
    terms = []
    for dim in range(pixels.ndim - 1, 1, -1):  # the last spatial axis first, as x before y
        if periodic:
            d = pixels - pixels.roll(1, dims=dim)
        else:
            n = pixels.shape[dim]
            d = pixels.narrow(dim, 1, n - 1) - pixels.narrow(dim, 0, n - 1)
        terms.append(d.abs().mean(tuple(range(1, pixels.ndim))))
    return sum(terms) / len(terms)


def uniformity_blocks(max_lag: int) -> tuple[int, ...]:
    """The block sides of the uniformity term: ``R / 2``, ``R`` and ``2 R`` (within the ``S2``
    window's reach and beyond it, where a fraction field that bunches on one side differs from a
    uniform one)."""
    return tuple(dict.fromkeys((max(1, max_lag // 2), max_lag, 2 * max_lag)))


def block_variance(indicators: torch.Tensor, side: int) -> torch.Tensor:
    """Variance over the blocks of the blocks' mean indicators (the fraction field's bunching).

    Parameters
    ----------
    indicators : Tensor, ``batch x k x H x W`` (or ``batch x k x H x W x D``)
        Hard or soft phase indicators.
    side : int
        Block side in pixels; the image is tiled from its corner, a remainder left out.

    Returns
    -------
    Tensor, ``batch x k``
        The population variance of the ``prod(n // side)`` block means (0 for one block).
    """
    pool = F.avg_pool2d if indicators.ndim == 4 else F.avg_pool3d
    means = pool(indicators, side).flatten(2)
    return means.var(-1, unbiased=False)


def s2_phases(phases: int) -> list[int]:
    """The phases whose ``S2`` the loss and the annealing track: phase 1 of two, else all."""
    return [1] if phases == 2 else list(range(phases))


@dataclass(frozen=True)
class ExemplarTargets:
    """What the loss compares with: an exemplar's Gram matrices, ``S2`` window and variation.

    Attributes
    ----------
    grams : list of Tensors, ``1 x C_l x C_l``
        One per layer of the extractor.
    s2 : Tensor, ``1 x J x (2R + 1) x (2R + 1)``
        :func:`s2_window` of the tracked phases (:func:`s2_phases`).
    s2_scale : Tensor, 0-dim
        ``sum((s2 - phi^2)^2)``, the normaliser of the ``S2`` term (at least 1e-12) and of the
        anisotropy term.
    tv : Tensor, 0-dim
        :func:`total_variation` of the exemplar's pixels.
    blocks : Tensor, ``B x J``
        :func:`block_variance` of the tracked phases' indicators at the block sides
        :func:`uniformity_blocks` of ``R`` (a row per side with at least 2 blocks in the
        exemplar).
    """

    grams: list
    s2: torch.Tensor
    s2_scale: torch.Tensor
    tv: torch.Tensor
    blocks: torch.Tensor | None = None


def exemplar_targets(
    extractor: VGG19Features,
    exemplar: np.ndarray,
    *,
    phases: int,
    s2_max_lag: int,
    exemplar_periodic: bool,
    scale: int = 1,
    local_means: bool = False,
    tracked: Sequence[int] | None = None,
) -> ExemplarTargets:
    """The targets of :class:`TextureLoss` (and of each axis of the 3D slice loss).

    Parameters
    ----------
    extractor : VGG19Features
    exemplar : ndarray, ``H x W``
        Phase labels ``0..k-1``.
    phases : int
        k.
    s2_max_lag : int
        ``R`` of the ``S2`` window.
    exemplar_periodic : bool
        Estimate the exemplar's ``S2`` and variation on the torus.
    scale : int
        Shrink the exemplar by this factor first (average pooling), for coarse-to-fine.
    local_means : bool
        A non-periodic exemplar's ``S2`` by :func:`s2_window_local_means` (the same structure
        for every phase) instead of the pairs' plain mean.
    tracked : sequence of int, optional
        The phases of the ``S2`` and uniformity targets (:func:`s2_phases` by default).

    Returns
    -------
    ExemplarTargets
    """
    device = next(extractor.parameters()).device
    pixels = labels_to_pixels(exemplar, phases, device=device)
    if scale > 1:
        pixels = F.avg_pool2d(pixels, scale)
    with torch.no_grad():
        grams = [gram_matrix(f) for f in extractor(to_vgg_input(pixels))]
        tv = total_variation(pixels, periodic=exemplar_periodic).sum()
    onehot = torch.stack(
        [
            torch.as_tensor(exemplar == j, dtype=torch.float32)
            for j in (s2_phases(phases) if tracked is None else tracked)
        ]
    )[None].to(device)
    if scale > 1:
        onehot = F.avg_pool2d(onehot, scale)
    if local_means and not exemplar_periodic:
        s2 = s2_window_local_means(onehot, s2_max_lag)
    else:
        s2 = s2_window(onehot, s2_max_lag, periodic=exemplar_periodic)
    frac = onehot.mean((-2, -1))[..., None, None]
    sides = [b for b in uniformity_blocks(s2_max_lag) if min(onehot.shape[-2:]) >= 2 * b]
    blocks = torch.stack([block_variance(onehot, b)[0] for b in sides]) if sides else None
    return ExemplarTargets(grams, s2, ((s2 - frac**2) ** 2).sum().clamp_min(1e-12), tv, blocks)


@dataclass(frozen=True)
class LossTerms:
    """The loss and its parts (0-dim tensors; ``total`` carries the gradient)."""

    total: torch.Tensor
    gram: torch.Tensor
    s2: torch.Tensor
    tv: torch.Tensor
    anisotropy: torch.Tensor | None = None
    """The anisotropy term (None where the loss has none)."""
    uniformity: torch.Tensor | None = None
    """The uniformity term (None where the loss has none)."""


class ExemplarTerms(nn.Module):
    """The settings and exemplar targets that the 2D loss and the 3D slice loss share.

    Holds, for each exemplar ``a`` (one for an image, one per axis of a volume; an exemplar
    given twice is computed once), its Gram matrices and their scales, its ``S2`` window and its
    scale (:func:`exemplar_targets`), and the exemplars' mean variation; :meth:`gram` is the
    Gram term of pixels against exemplar ``a``. Parameters as in :class:`TextureLoss`.
    """

    def __init__(
        self,
        extractor: VGG19Features,
        exemplars: Sequence[np.ndarray],
        *,
        phases: int,
        s2_weight: float,
        s2_max_lag: int,
        periodic: bool,
        exemplar_periodic: bool = RECONSTRUCTION_DEFAULTS.exemplar_periodic,
        temperature: float,
        tv_weight: float,
        anisotropy_weight: float = RECONSTRUCTION_DEFAULTS.texture.anisotropy_weight,
        s2_local_means: bool = RECONSTRUCTION_DEFAULTS.texture.s2_local_means,
        uniformity_weight: float = RECONSTRUCTION_DEFAULTS.texture.uniformity_weight,
        s2_minority: float = RECONSTRUCTION_DEFAULTS.texture.s2_minority,
        scale: int = 1,
    ) -> None:
        super().__init__()
        self.anisotropy_weight = float(anisotropy_weight)
        self.uniformity_weight = float(uniformity_weight)
        self.extractor = extractor
        self.phases = phases
        self.s2_weight = float(s2_weight)
        self.s2_max_lag = int(s2_max_lag)
        self.periodic = periodic
        self.temperature = float(temperature)
        self.tv_weight = float(tv_weight)
        device = next(extractor.parameters()).device
        # two phases: phase 1 alone; more: every phase
        self.s2_phases = s2_phases(phases)
        if phases == 2:  # the phase of the smaller fraction in the exemplars, if below s2_minority
            one = float(np.mean([(ex == 1).mean() for ex in exemplars]))
            if min(one, 1 - one) < s2_minority:
                self.s2_phases = [int(one < 0.5)]
        self.register_buffer("colours", encoding_colours(phases, device=device))
        cache: dict[int, ExemplarTargets] = {}
        targets = []
        for ex in exemplars:
            if id(ex) not in cache:
                cache[id(ex)] = exemplar_targets(
                    extractor,
                    ex,
                    phases=phases,
                    s2_max_lag=self.s2_max_lag,
                    exemplar_periodic=exemplar_periodic,
                    scale=scale,
                    local_means=s2_local_means,
                    tracked=self.s2_phases,
                )
            targets.append(cache[id(ex)])
        self.n_layers = len(targets[0].grams)
        for a, t in enumerate(targets):
            for i, g in enumerate(t.grams):
                self.register_buffer(f"target_gram_{a}_{i}", g)
                self.register_buffer(f"gram_scale_{a}_{i}", (g**2).sum())
            self.register_buffer(f"target_s2_{a}", t.s2)
            self.register_buffer(f"target_aniso_{a}", anisotropic_part(t.s2))
            self.register_buffer(f"s2_scale_{a}", t.s2_scale)
            self.register_buffer(f"target_blocks_{a}", t.blocks)
        self.register_buffer(
            "target_tv", torch.stack([t.tv for t in targets]).mean().clamp_min(1e-12)
        )

    def gram_targets(self, exemplar: int = 0) -> list[torch.Tensor]:
        """The exemplar's Gram matrices, ``1 x C_l x C_l`` per layer."""
        return [getattr(self, f"target_gram_{exemplar}_{i}") for i in range(self.n_layers)]

    def gram(self, pixels: torch.Tensor, exemplar: int = 0) -> torch.Tensor:
        """Gram term of ``pixels`` (``batch x C x H x W``, summed over the batch) against the
        exemplar: the mean over layers of the squared error relative to the exemplar's."""
        feats = self.extractor(to_vgg_input(pixels))
        out = pixels.new_zeros(())
        for i, f in enumerate(feats):
            diff = gram_matrix(f) - getattr(self, f"target_gram_{exemplar}_{i}")
            out = out + (diff**2).sum() / getattr(self, f"gram_scale_{exemplar}_{i}")
        return out / self.n_layers


class TextureLoss(ExemplarTerms):
    """Gram-matrix loss against one exemplar, with an optional ``S2`` term.

    Parameters
    ----------
    extractor : VGG19Features
        Frozen feature extractor; its layers are the Gram layers.
    exemplar : ndarray, ``H x W``
        Phase labels ``0..k-1``.
    phases : int
        k.
    s2_weight : float
        Weight of the ``S2`` term (0: Gram only).
    s2_max_lag : int
        ``R`` of the ``S2`` window; must be below half of both the exemplar's and the
        reconstruction's smaller side.
    periodic : bool
        The reconstruction is periodic (its ``S2`` is taken on the torus).
    exemplar_periodic : bool
        The exemplar is periodic; real micrographs are not, so by default their ``S2`` counts
        only pairs inside the image.
    temperature : float
        Softness of the indicators of the ``S2`` term.
    tv_weight : float
        Weight of the variation term (0: off).
    anisotropy_weight : float
        Weight of the anisotropy term on the ``S2`` window (0: off).
    s2_local_means : bool
        A non-periodic exemplar's ``S2`` target with the pairs' own means
        (:func:`s2_window_local_means`).
    uniformity_weight : float
        Weight of the uniformity term (0: off): ``relu(V / V_ex - 1)^2`` summed over the tracked
        phases and the block sides :func:`uniformity_blocks`, ``V`` the :func:`block_variance`
        of the soft indicators, so the fraction field bunches no more than the exemplar's.
    s2_minority : float
        Two phases: the ``S2`` and uniformity terms on the phase of the smaller fraction in the
        exemplar instead of phase 1 when that fraction is below this (0: phase 1 always).
    scale : int
        Compare with the exemplar shrunk by this factor (average pooling of its colours and
        indicators): the targets of the half-size stage of coarse-to-fine optimisation, whose
        result is upsampled by the same factor.

    Notes
    -----
    ``forward(pixels)`` takes ``batch x C x H x W`` pixels (any ``H x W``) and returns
    :class:`LossTerms` summed over the batch.
    """

    def __init__(
        self,
        extractor: VGG19Features,
        exemplar: np.ndarray,
        *,
        phases: int,
        s2_weight: float,
        s2_max_lag: int,
        periodic: bool,
        exemplar_periodic: bool = RECONSTRUCTION_DEFAULTS.exemplar_periodic,
        temperature: float,
        tv_weight: float,
        anisotropy_weight: float = RECONSTRUCTION_DEFAULTS.texture.anisotropy_weight,
        s2_local_means: bool = RECONSTRUCTION_DEFAULTS.texture.s2_local_means,
        uniformity_weight: float = RECONSTRUCTION_DEFAULTS.texture.uniformity_weight,
        s2_minority: float = RECONSTRUCTION_DEFAULTS.texture.s2_minority,
        scale: int = 1,
    ) -> None:
        super().__init__(
            extractor,
            [exemplar],
            phases=phases,
            s2_weight=s2_weight,
            s2_max_lag=s2_max_lag,
            periodic=periodic,
            exemplar_periodic=exemplar_periodic,
            temperature=temperature,
            tv_weight=tv_weight,
            anisotropy_weight=anisotropy_weight,
            s2_local_means=s2_local_means,
            uniformity_weight=uniformity_weight,
            s2_minority=s2_minority,
            scale=scale,
        )

    def forward(self, pixels: torch.Tensor) -> LossTerms:
        gram = self.gram(pixels)
        s2 = pixels.new_zeros(())
        aniso = pixels.new_zeros(())
        uniform = pixels.new_zeros(())
        uniformity = self.uniformity_weight > 0 and self.target_blocks_0 is not None
        if self.s2_weight > 0 or self.anisotropy_weight > 0 or uniformity:
            soft = soft_indicators(pixels, self.colours, temperature=self.temperature)
            corr = s2_window(soft[:, self.s2_phases], self.s2_max_lag, periodic=self.periodic)
            s2 = ((corr - self.target_s2_0) ** 2).sum() / self.s2_scale_0
            if self.anisotropy_weight > 0:
                diff = anisotropic_part(corr) - self.target_aniso_0
                aniso = (diff**2).sum() / self.s2_scale_0
            if uniformity:
                sides = uniformity_blocks(self.s2_max_lag)
                for side, target in zip(sides, self.target_blocks_0, strict=False):
                    if min(pixels.shape[-2:]) >= 2 * side:
                        v = block_variance(soft[:, self.s2_phases], side)
                        uniform = uniform + F.relu(v / target.clamp_min(1e-12) - 1).square().sum()
        tv = pixels.new_zeros(())
        if self.tv_weight > 0:
            excess = total_variation(pixels, periodic=self.periodic) / self.target_tv - 1
            tv = F.relu(excess).square().sum()
        total = gram + self.s2_weight * s2 + self.tv_weight * tv + self.anisotropy_weight * aniso
        total = total + self.uniformity_weight * uniform
        return LossTerms(total=total, gram=gram, s2=s2, tv=tv, anisotropy=aniso, uniformity=uniform)
