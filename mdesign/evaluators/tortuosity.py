"""Tortuosity factor of one conducting phase, with percolation checked before any solve.

The tortuosity factor is TauFactor's (Cooper et al. 2016; Kench et al. 2023):
``tau = epsilon * sigma_phase / sigma_eff`` along a direction, with ``epsilon`` the volume
fraction of the conducting phase, every other phase insulating, and ``sigma_eff`` the effective
conductivity of the sample between two faces held at fixed potentials, no flux through the other
faces. That boundary problem is solved exactly as the periodic problem of the sample mirrored
about its faces (``2^d`` copies; the mirror planes normal to the flow are equipotentials of the
odd periodic field, those along it carry no flux) by the finite-volume, FFT-preconditioned
conjugate gradients of :mod:`mdesign.evaluators.conductivity`; at one cell per voxel
(``refinement=1``, the default) this is TauFactor's discretisation.

A sample whose conducting phase has no face-connected cluster touching both faces along the
direction carries no current: it is found by cluster labelling (:func:`scipy.ndimage.label`, the
face connectivity through which the finite volumes conduct) before any solve and its tortuosity
is ``inf``, never the number of a solve that cannot converge (TauFactor issue 92).

References
----------
Cooper S. J., Bertei A., Shearing P. R., Kilner J. A., Brandon N. P. (2016) TauFactor: an
open-source application for calculating tortuosity factors from tomographic data. SoftwareX 5,
203-210.
Kench S., Squires I., Dahari A., Cooper S. J. (2023) TauFactor 2. J. Open Source Softw. 8, 5358.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from mdesign.config import TORTUOSITY_DEFAULTS, TortuosityConfig, config_from_dict
from mdesign.errors import InputError
from mdesign.evaluators.base import Parameter, parameters_from_config, parse_params
from mdesign.evaluators.conductivity import (
    _AXES,
    _as_images,
    _check_direction,
    effective_conductivity,
)

__all__ = ["Tortuosity", "percolates", "tortuosity"]

_D = TORTUOSITY_DEFAULTS


def percolates(images: np.ndarray, *, phase: int, direction: str) -> np.ndarray:
    """Whether ``phase`` connects the two faces normal to ``direction``, per image.

    Parameters
    ----------
    images : ndarray of int, ``N x H x W`` or ``N x H x W x D``
    phase : int
        The conducting label.
    direction : {"x", "y", "z"}
        x = axis 1, y = axis 0, z = axis 2 (volumes).

    Returns
    -------
    ndarray of bool, ``N``
        True where one face-connected cluster of ``phase`` (4-connected in 2D, 6 in 3D; not
        periodic) touches both faces.
    """
    images = _as_images(images)
    axis = _AXES[images.ndim - 1][_check_direction(direction, images)]
    out = np.zeros(len(images), dtype=bool)
    structure = ndimage.generate_binary_structure(images.ndim - 1, 1)
    for i, img in enumerate(images):
        labels, n = ndimage.label(img == phase, structure=structure)
        if n == 0:
            continue
        first = np.unique(np.take(labels, 0, axis=axis))
        last = np.unique(np.take(labels, -1, axis=axis))
        both = np.intersect1d(first[first > 0], last[last > 0])
        out[i] = both.size > 0
    return out


def _mirror(images: np.ndarray) -> np.ndarray:
    """The ``2^d``-fold mirror extension over every image axis (batch first)."""
    for ax in range(1, images.ndim):
        images = np.concatenate([images, np.flip(images, axis=ax)], axis=ax)
    return images


def tortuosity(
    images: np.ndarray,
    *,
    phase: int = _D.phase,
    direction: str = _D.direction,
    refinement: int = _D.refinement,
    extrapolate: bool = _D.extrapolate,
    tolerance: float = _D.tolerance,
    max_iterations: int = _D.max_iterations,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Tortuosity factor ``tau = epsilon sigma_phase / sigma_eff`` of ``phase`` along a direction.

    Parameters
    ----------
    images : ndarray of int, ``N x H x W`` or ``N x H x W x D``
        Phase labels; ``phase`` conducts, every other label insulates.
    phase : int
        The conducting label.
    direction : {"x", "y", "z"}
        Flow between the two faces normal to x (axis 1), y (axis 0) or z (axis 2, volumes).
    refinement, extrapolate, tolerance, max_iterations, device
        As in :func:`mdesign.evaluators.conductivity_tensor` (on the mirrored sample).

    Returns
    -------
    ndarray of float64, ``N``
        Tortuosity factors (>= 1 for a straight-through phase, larger for a tortuous one);
        ``inf`` where the phase does not percolate along ``direction`` (not solved).

    References
    ----------
    Cooper et al. (2016), SoftwareX 5, 203 (the definition; TauFactor).
    """
    images = _as_images(images)
    cfg = config_from_dict(
        TortuosityConfig,
        dict(
            phase=phase,
            direction=direction,
            refinement=refinement,
            extrapolate=extrapolate,
            tolerance=tolerance,
            max_iterations=max_iterations,
        ),
        source="tortuosity",
    )
    _check_direction(cfg.direction, images)
    out = np.full(len(images), np.inf)
    ok = percolates(images, phase=cfg.phase, direction=cfg.direction)
    if not ok.any():
        return out
    binary = (images[ok] == cfg.phase).astype(np.uint8)
    eps = binary.reshape(len(binary), -1).mean(1)
    sigma = effective_conductivity(
        _mirror(binary),
        conductivities=(0.0, 1.0),
        direction=cfg.direction,
        refinement=cfg.refinement,
        extrapolate=cfg.extrapolate,
        tolerance=cfg.tolerance,
        max_iterations=cfg.max_iterations,
        device=device,
    )
    out[ok] = eps / sigma
    return out


class Tortuosity:
    """Tortuosity factor (dimensionless; inf: no percolating path) of one phase, TauFactor's.

    Built by ``get_evaluator("tortuosity", phase=1, direction="x")``; the values are
    :func:`tortuosity` of each image (dimensionless). A sample whose phase does not percolate
    has tortuosity ``inf``: :func:`~mdesign.evaluators.evaluate_batch` (and ``mdesign
    evaluate``) reports it as a failed image, value NaN (``null`` in ``--json``), with the
    error ``value is inf: ... does not percolate``.
    """

    name = "tortuosity"
    parameters: Mapping[str, Parameter] = parameters_from_config(TortuosityConfig)
    batch_size = 16
    infinite_means = "the phase does not percolate along the direction (not solved)"
    """Said by :func:`~mdesign.evaluators.evaluate_batch` of an infinite value."""

    def __init__(self, **params: Any):
        self.params = parse_params(self.parameters, params, evaluator=self.name)
        self.config = config_from_dict(TortuosityConfig, self.params, source=self.name)

    def check_images(self, images: np.ndarray) -> None:
        """Refuse ``direction=z`` on images, or a phase the stack does not have, before work."""
        images = _as_images(images)
        try:
            _check_direction(self.config.direction, images)
        except InputError as exc:
            raise InputError(f"evaluator {self.name}: parameter {exc}") from None
        if images.size and self.config.phase > int(images.max()):
            raise InputError(
                f"evaluator {self.name}: parameter phase={self.config.phase}, but the images "
                f"have labels 0..{int(images.max())}"
            )

    def __call__(self, images: np.ndarray) -> np.ndarray:
        c = self.config
        return tortuosity(
            images,
            phase=c.phase,
            direction=c.direction,
            refinement=c.refinement,
            extrapolate=c.extrapolate,
            tolerance=c.tolerance,
            max_iterations=c.max_iterations,
        )

    def __repr__(self) -> str:
        return f"Tortuosity({self.params})"
