"""The 2D-to-3D loss: Gram matrices of orthogonal slices and the ``S2`` of the volume's planes.

A volume ``H x W x D`` matches a 2D exemplar when its slices do, along each of the three axes. The
slices normal to axis ``a`` are ``np.take(volume, i, axis=a)`` (rows along the lower remaining axis,
columns along the higher one), and ``exemplars[a]`` describes them (one exemplar for an isotropic
material, three for an anisotropic one). :class:`SliceLoss` adds three terms: the mean 2D Gram loss
of slices drawn along each axis (Bostanabad 2020; Kench & Cooper 2021 train a GAN on the same
slices), pushed through VGG19 ``chunk`` slices at a time with the gradients scattered back
(:meth:`SliceLoss.gram_backward`), so memory does not grow with the volume; the ``S2`` of the soft
indicators by one 3D FFT restricted to each plane of displacements (the mean ``S2`` of every slice
of that orientation) against the exemplar's 2D window; and the variation term of 2D over the three
axes.

References
----------
Bostanabad, R. "Reconstruction of 3D microstructures from 2D images via transfer learning",
Computer-Aided Design 128, 102906 (2020).
Kench, S. & Cooper, S. J. "Generating three-dimensional structures from a two-dimensional slice
with generative adversarial network-based dimensionality expansion", Nat. Mach. Intell. 3, 299
(2021).
Li, X. et al. "A transfer learning approach for microstructure reconstruction and
structure-property predictions", Sci. Rep. 8, 13461 (2018).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mdesign.descriptors import autocorrelation
from mdesign.reconstruction.encoding import soft_indicators
from mdesign.reconstruction.loss import ExemplarTerms, total_variation
from mdesign.reconstruction.vgg import VGG19Features

__all__ = ["SliceLoss", "VolumeLossTerms", "plane_windows", "slices_of"]


@dataclass(frozen=True)
class VolumeLossTerms:
    """One evaluation of :class:`SliceLoss` (floats; the gradient is in the volume's ``grad``)."""

    total: float
    gram: float
    s2: float
    tv: float


def slices_of(volume: torch.Tensor, axis: int, index: torch.Tensor) -> torch.Tensor:
    """Slices of a ``C x H x W x D`` volume normal to ``axis``, as a ``n x C x h x w`` batch."""
    return volume.index_select(axis + 1, index).movedim(axis + 1, 0)


def plane_windows(corr: torch.Tensor, max_lag: int) -> list[torch.Tensor]:
    """The lag window ``-R..R`` of each plane of displacements of a 3D autocorrelation.

    Parameters
    ----------
    corr : Tensor, ``batch x M1 x M2 x M3``
        Lag layout (:func:`mdesign.descriptors.autocorrelation` with ``dims=3``).
    max_lag : int
        ``R``.

    Returns
    -------
    list of 3 Tensors, ``batch x (2R + 1) x (2R + 1)``
        Entry ``a`` holds the lags with ``d_a = 0``, laid out as
        :func:`~mdesign.reconstruction.loss.s2_window` lays out a slice normal to ``a``.
    """
    lags = torch.arange(-max_lag, max_lag + 1, device=corr.device)
    m = corr.shape[-3:]
    i0, i1, i2 = (lags % n for n in m)
    return [
        corr[:, 0].index_select(1, i1).index_select(2, i2),
        corr[:, :, 0].index_select(1, i0).index_select(2, i2),
        corr[:, :, :, 0].index_select(1, i0).index_select(2, i1),
    ]


class SliceLoss(ExemplarTerms):
    """Gram loss of orthogonal slices, the planes' ``S2`` and the variation, against 2D exemplars.

    Parameters
    ----------
    extractor : VGG19Features
        Frozen feature extractor; its layers are the Gram layers.
    exemplars : sequence of 3 ndarrays, ``h_a x w_a``
        ``exemplars[a]`` describes the slices normal to axis ``a`` (module docstring); the same
        array three times for an isotropic material.
    **settings
        ``phases``, ``s2_weight``, ``s2_max_lag``, ``periodic``, ``exemplar_periodic``,
        ``temperature``, ``tv_weight``, ``scale``: as in
        :class:`~mdesign.reconstruction.loss.TextureLoss`.
    """

    def __init__(
        self, extractor: VGG19Features, exemplars: Sequence[np.ndarray], **settings
    ) -> None:
        if len(exemplars) != 3:
            raise ValueError("one exemplar per axis (3) expected")
        # texture.s2_minority is an image's (phase 1 in a volume's slices, as measured)
        super().__init__(extractor, exemplars, **{**settings, "s2_minority": 0.0})

    def gram_backward(
        self, volume: torch.Tensor, picks: Sequence[torch.Tensor], *, chunk: int
    ) -> float:
        """Mean Gram loss of the picked slices; its gradient is added to ``volume.grad``.

        Parameters
        ----------
        volume : Tensor, ``C x H x W x D``
            A leaf with ``requires_grad``.
        picks : 3 Tensors of slice indices
            ``picks[a]``: the slices normal to axis ``a`` (may be empty).
        chunk : int
            Slices through VGG19 at once: bounds the activations held.

        Returns
        -------
        float
            Mean over the axes with picks of the mean loss of their slices.
        """
        if volume.grad is None:
            volume.grad = torch.zeros_like(volume)
        axes = [a for a in range(3) if len(picks[a])]
        total = 0.0
        for a in axes:
            idx = picks[a]
            weight = 1.0 / (len(idx) * len(axes))
            for part in idx.split(chunk):
                s = slices_of(volume.detach(), a, part).requires_grad_(True)
                loss = self.gram(s, a) * weight
                loss.backward()
                volume.grad.index_add_(a + 1, part, s.grad.movedim(0, a + 1))
                total += loss.item()
        return total

    def field_terms(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``S2`` and variation terms of the whole volume (differentiable)."""
        c, h, w, d = volume.shape
        s2 = volume.new_zeros(())
        if self.s2_weight > 0:
            soft = soft_indicators(
                volume.reshape(1, c, h, w * d), self.colours, temperature=self.temperature
            ).reshape(-1, h, w, d)[self.s2_phases]
            corr = autocorrelation(soft, periodic=self.periodic, max_lag=self.s2_max_lag, dims=3)
            for a, window in enumerate(plane_windows(corr, self.s2_max_lag)):
                diff = window[None] - getattr(self, f"target_s2_{a}")
                s2 = s2 + (diff**2).sum() / getattr(self, f"s2_scale_{a}")
            s2 = s2 / 3
        tv = volume.new_zeros(())
        if self.tv_weight > 0:
            excess = total_variation(volume[None], periodic=self.periodic)[0] / self.target_tv - 1
            tv = F.relu(excess).square()
        return s2, tv

    def backward_step(
        self, volume: torch.Tensor, picks: Sequence[torch.Tensor], *, chunk: int
    ) -> VolumeLossTerms:
        """Zero ``volume.grad``, then accumulate the gradient of the whole loss into it."""
        volume.grad = torch.zeros_like(volume)
        gram = self.gram_backward(volume, picks, chunk=chunk)
        s2, tv = self.field_terms(volume)
        rest = self.s2_weight * s2 + self.tv_weight * tv
        if rest.requires_grad:
            rest.backward()
        return VolumeLossTerms(total=gram + rest.item(), gram=gram, s2=s2.item(), tv=tv.item())
