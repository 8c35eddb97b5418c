"""How close a reconstruction is to its exemplar: ``S2`` and lineal-path errors, fractions.

The curves are the contract's radial descriptors (:mod:`mdesign.descriptors`), ``r = 0..R`` with
``R`` a quarter of the smaller side of the smaller image, of phase 1 for two phases (as
``mdesign characterize`` reports them, and as the loss and the annealing track them) and of
every phase for three or more. Each image is measured with the estimator that fits it: a
periodic reconstruction (or GRF) on the torus, a real exemplar (a crop of a larger micrograph)
counting only the pairs and segments inside it. (For two phases, phase 0's ``S2`` carries no
information beyond phase 1's on the torus, ``S2_0(r) = 1 - 2 phi_1 + S2_1(r)``; in-image
estimates break that identity only through edge effects, which would then dominate its error.)

* ``s2_rmse``: root-mean-square difference of the ``S2`` curves over those phases and ``r``.
* ``lineal_path_rmse``: the same for the lineal-path function ``L(r)``.
* ``fraction_error``: the largest ``|phi_j - phi_j^exemplar|`` over all phases, and
  ``fraction_error_pixels`` the same times the reconstruction's pixel count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mdesign.config import RECONSTRUCTION_DEFAULTS
from mdesign.descriptors import lineal_path, two_point_correlation_radial, volume_fractions

__all__ = ["ReconstructionErrors", "reconstruction_errors"]


@dataclass(frozen=True)
class ReconstructionErrors:
    """Descriptor errors of a reconstruction against its exemplar.

    Attributes
    ----------
    s2_rmse, lineal_path_rmse : float
    fraction_error : float
        Largest absolute difference of a phase fraction.
    fraction_error_pixels : float
        ``fraction_error`` times the reconstruction's pixel count.
    volume_fraction_exemplar, volume_fraction_reconstruction : ndarray, ``k``
    phases : tuple of int
        The phases of the curves: ``(1,)`` for two phases, all of them otherwise.
    s2_exemplar, s2_reconstruction : ndarray, ``len(phases) x (R + 1)``
        Radial ``S2`` of each of ``phases``.
    lineal_path_exemplar, lineal_path_reconstruction : ndarray, ``len(phases) x (R + 1)``
    """

    s2_rmse: float
    lineal_path_rmse: float
    fraction_error: float
    fraction_error_pixels: float
    volume_fraction_exemplar: np.ndarray
    volume_fraction_reconstruction: np.ndarray
    phases: tuple[int, ...]
    s2_exemplar: np.ndarray
    s2_reconstruction: np.ndarray
    lineal_path_exemplar: np.ndarray
    lineal_path_reconstruction: np.ndarray


def _curves(image: np.ndarray, phases: tuple[int, ...], r_max: int, periodic: bool):
    s2 = np.stack(
        [
            two_point_correlation_radial(
                image[None], phase=j, max_distance=r_max, periodic=periodic
            )[0]
            for j in phases
        ]
    )
    lp = np.stack(
        [
            lineal_path(image[None], phase=j, max_distance=r_max, periodic=periodic)[0]
            for j in phases
        ]
    )
    return s2, lp


def reconstruction_errors(
    exemplar: np.ndarray,
    reconstruction: np.ndarray,
    *,
    phases: int,
    reconstruction_periodic: bool = True,
    exemplar_periodic: bool = RECONSTRUCTION_DEFAULTS.exemplar_periodic,
    max_distance: int | None = None,
) -> ReconstructionErrors:
    """``S2`` and lineal-path RMSE and fraction error of a reconstruction.

    Parameters
    ----------
    exemplar, reconstruction : ndarray, ``H x W`` and ``H' x W'``
        Phase labels.
    phases : int
        k.
    reconstruction_periodic, exemplar_periodic : bool
        Which estimator each image is measured with (see the module docstring).
    max_distance : int, optional
        ``R``; a quarter of the smaller side of the smaller image by default.

    Returns
    -------
    ReconstructionErrors
    """
    side = min(*exemplar.shape, *reconstruction.shape)
    r_max = max(1, side // 4) if max_distance is None else int(max_distance)
    shown = (1,) if phases == 2 else tuple(range(phases))
    s2_e, lp_e = _curves(exemplar, shown, r_max, exemplar_periodic)
    s2_r, lp_r = _curves(reconstruction, shown, r_max, reconstruction_periodic)
    vf_e = volume_fractions(exemplar[None], phases=phases)[0]
    vf_r = volume_fractions(reconstruction[None], phases=phases)[0]
    frac_err = float(np.abs(vf_r - vf_e).max())
    return ReconstructionErrors(
        s2_rmse=float(np.sqrt(((s2_r - s2_e) ** 2).mean())),
        lineal_path_rmse=float(np.sqrt(((lp_r - lp_e) ** 2).mean())),
        fraction_error=frac_err,
        fraction_error_pixels=frac_err * reconstruction.size,
        volume_fraction_exemplar=vf_e,
        volume_fraction_reconstruction=vf_r,
        phases=shown,
        s2_exemplar=s2_e,
        s2_reconstruction=s2_r,
        lineal_path_exemplar=lp_e,
        lineal_path_reconstruction=lp_r,
    )
