"""Lamellae (fingerprint stripes) rebuilt as a Swift-Hohenberg pattern fitted to the exemplars.

A lamellar exemplar (a block copolymer's fingerprint, :func:`is_lamellar`) loses its stripes in a
volume: the Gram fit and the annealing's ``S2`` swaps cut them. :func:`lamellar_start` replaces
the decoded labels by a physical model instead, as :mod:`~.cells` does for grain boundaries: the
Swift-Hohenberg equation ``du/dt = eps u - L(k) u - u^3`` (Swift & Hohenberg 1977), with
``L(k) = (1 - a) (1 - |k|^2 / q^2)^2 + a L_slices(k)``, by semi-implicit spectral steps on a
periodic grid from seeded noise (Cross & Hohenberg 1993), cut at the exact fractions. Stripes of
period ``2 pi / q`` form and coarsen; the time sets the defects per area (a slice's clusters).
``L_slices`` (3D, weight ``a``), the mean over the three slice planes of
``(1 - |k_plane|^2 / q^2)^2``, favours lamellae whose traces have the period in every slice
orientation (an isotropic volume's slices cut most lamellae obliquely, at longer periods).
:func:`fit_lamellae` picks the factor on the exemplar's wavenumber, ``a`` and the time from small
grids: the least slice ``S2`` error among candidates whose clusters per window are within
:data:`FIT_CLUSTER_TOLERANCE` of the exemplars'. One implementation for images and volumes.

References
----------
Swift, J. & Hohenberg, P. C. "Hydrodynamic fluctuations at the convective instability",
Phys. Rev. A 15, 319 (1977).
Cross, M. C. & Hohenberg, P. C. "Pattern formation outside of equilibrium", Rev. Mod. Phys. 65,
851 (1993).
Yeong, C. L. Y. & Torquato, S. "Reconstructing random media. II. Three-dimensional media from
two-dimensional cuts", Phys. Rev. E 58, 224 (1998).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mdesign.config import RECONSTRUCTION_DEFAULTS as D
from mdesign.grf import level_cut

__all__ = [
    "FIT_FACTORS",
    "FIT_TIMES",
    "FIT_WEIGHTS",
    "LamellaeFit",
    "fit_lamellae",
    "is_lamellar",
    "lamellar_start",
    "swift_hohenberg",
]

EPS = 0.3
"""The control parameter ``eps`` of the Swift-Hohenberg equation (distance above onset)."""

DT = 0.5
"""Time step of the semi-implicit integration (stable for any step: the stiff part is implicit)."""

FIT_FACTORS = (1.05, 1.1, 1.15)
"""The wavenumber ``q`` over ``2 pi`` times the exemplar's dominant wavenumber that
:func:`fit_lamellae` tries (a slice cuts oblique lamellae at longer periods than their own)."""

FIT_WEIGHTS = (0.3, 0.45)
"""The weights ``a`` of the slice planes' operator that :func:`fit_lamellae` tries (volumes)."""

FIT_TIMES = (30.0, 100.0)
"""The evolution times that :func:`fit_lamellae` tries (one run, snapshots at each)."""

FIT_SIDE = 64
"""Side of the cube (or square) the fit runs on."""

FIT_CLUSTER_TOLERANCE = 0.3
"""A candidate fits when every phase's clusters per window are within this of the exemplars'."""

LAMELLAR_DIP = -0.1
""":func:`is_lamellar`: the normalised autocovariance's first minimum is at most this."""

LAMELLAR_PEAK = 0.05
"""... and the maximum after it at least this."""


def swift_hohenberg(
    shape: tuple[int, ...],
    *,
    wavenumber: float,
    seed: int,
    times: Sequence[float],
    weight: float = 0.0,
    eps: float = EPS,
    dt: float = DT,
) -> np.ndarray:
    """Periodic Swift-Hohenberg fields from seeded noise, at each of ``times`` (module docstring).

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` or ``(H, W, D)``.
    wavenumber : float
        ``q / 2 pi``: cycles per pixel of the stripes (period ``1 / wavenumber``).
    seed : int
        Seed of the white-noise start (amplitude 0.1).
    times : sequence of float
        Evolution times, increasing; the field is returned at each (``round(t / dt)`` steps).
    weight : float
        ``a``, the slice planes' share of the linear operator (volumes; 0: isotropic).
    eps, dt : float
        Control parameter and time step.

    Returns
    -------
    ndarray of float64, ``len(times) x *shape``
    """
    shape = tuple(int(s) for s in shape)
    u = 0.1 * np.random.default_rng(seed).standard_normal(shape)
    return _evolve(u, wavenumber=wavenumber, times=times, weight=weight, eps=eps, dt=dt)


def _evolve(u, *, wavenumber, times, weight, eps, dt) -> np.ndarray:
    """:func:`swift_hohenberg` from the field ``u`` (any shape, periodic)."""
    shape = u.shape
    q2 = (2 * np.pi * wavenumber) ** 2
    k = np.meshgrid(*(2 * np.pi * np.fft.fftfreq(s) for s in shape), indexing="ij", sparse=True)
    lin = (1 - sum(x * x for x in k) / q2) ** 2
    if len(shape) == 3 and weight > 0:
        planes = sum((1 - (k[a] ** 2 + k[b] ** 2) / q2) ** 2 for a, b in ((0, 1), (1, 2), (0, 2)))
        lin = (1 - weight) * lin + weight * planes / 3
    implicit = 1.0 / (1.0 + dt * lin)
    uh = np.fft.fftn(u)
    out, step = [], 0
    for t in times:
        for _ in range(round(t / dt) - step):
            u = np.fft.ifftn(uh).real
            uh = (uh + dt * np.fft.fftn(eps * u - u**3)) * implicit
        step = max(step, round(t / dt))
        out.append(np.fft.ifftn(uh).real)
    return np.stack(out)


@dataclass(frozen=True)
class LamellaeFit:
    """A Swift-Hohenberg pattern fitted to exemplars (:func:`fit_lamellae`).

    Attributes
    ----------
    wavenumber : float
        ``q / 2 pi``, cycles per pixel.
    weight : float
        The slice planes' share ``a`` of the operator.
    time : float
        Evolution time.
    fractions : ndarray, ``k``
        The exemplars' mean phase fractions (phase 0 the lowest field values).
    cluster_error : float
        The fitting sample's largest relative error of the clusters per window (any phase, any
        slice orientation).
    s2_rmse : float
        Its slices' ``S2`` RMSE against the exemplars' (mean over the orientations).
    """

    wavenumber: float
    weight: float
    time: float
    fractions: np.ndarray
    cluster_error: float
    s2_rmse: float

    def sample(self, shape: tuple[int, ...], *, seed: int) -> np.ndarray:
        """Periodic labels of ``shape`` with exact fractions (:func:`mdesign.grf.level_cut`)."""
        field = swift_hohenberg(
            shape, wavenumber=self.wavenumber, seed=seed, times=(self.time,), weight=self.weight
        )
        return level_cut(field, self.fractions[None])[0]


def _radial_s2(exemplars, phases, r_max, exemplar_periodic) -> np.ndarray:
    """``A x (R + 1)``: the tracked phase's radial ``S2`` of each exemplar (1 of two phases)."""
    from mdesign.descriptors import two_point_correlation_radial

    p = 1 if phases == 2 else 0
    return np.stack(
        [
            two_point_correlation_radial(
                ex[None], phase=p, max_distance=r_max, periodic=exemplar_periodic
            )[0]
            for ex in exemplars
        ]
    )


def _slice_clusters(labels: np.ndarray, window, phases) -> np.ndarray:
    """``A x k``: mean clusters per window of the slices normal to each axis (an image: 1 row)."""
    from mdesign.reconstruction.cells import _slices
    from mdesign.reconstruction.metrics import _window_morphology

    return np.stack([_window_morphology(s, window, phases)[0] for s in _slices(labels)])


def fit_lamellae(
    exemplars: Sequence[np.ndarray],
    *,
    shape: tuple[int, ...],
    phases: int,
    seed: int,
    exemplar_periodic: bool = D.exemplar_periodic,
    side: int = FIT_SIDE,
) -> LamellaeFit:
    """Fit a Swift-Hohenberg pattern's wavenumber, slice weight and time to the exemplars.

    Every candidate of :data:`FIT_FACTORS` x :data:`FIT_WEIGHTS` (an image: weight 0) x
    :data:`FIT_TIMES` is cut at the exemplars' fractions on a periodic cube (square) of ``side``
    and measured as the reconstruction is: clusters per window of the slices normal to each axis
    against each exemplar's in windows of the same size, and the slices' radial ``S2`` (one
    periodic FFT, :class:`~.cells._PlaneS2`) against the exemplars', lags up to a quarter of the
    exemplars' smaller side (at most ``side / 2``).
    The candidate of least ``S2`` error among those whose cluster errors are all within
    :data:`FIT_CLUSTER_TOLERANCE` wins; when none is, the one of least cluster error.

    Parameters
    ----------
    exemplars : sequence of ndarray, ``h x w``
        One for an image; three for a volume (the slices normal to axis 0, 1, 2).
    shape : tuple of int
        The output's ``(H, W)`` or ``(H, W, D)``: its dimension, and the fitting cube's side is
        at most its smallest.
    phases : int
        k.
    seed : int
        Seed of the fitting samples (common to every candidate).
    exemplar_periodic : bool
        The exemplars' ``S2`` estimator.
    side : int
        Side of the fitting cube; at most the output's and the exemplars' smallest side.

    Returns
    -------
    LamellaeFit
    """
    from mdesign.reconstruction.annealing import volume_fractions
    from mdesign.reconstruction.baseline import dominant_wavenumber
    from mdesign.reconstruction.cells import _PlaneS2
    from mdesign.reconstruction.metrics import _window_morphology

    ndim = len(shape)
    exemplars = list(exemplars)[: 1 if ndim == 2 else 3]
    side = int(min(side, *shape, *(min(ex.shape) for ex in exemplars)))
    # the periodic sample's lags up to half its side: the exemplars' reach (a quarter of theirs)
    r_max = max(1, min(side // 2, *(min(ex.shape) // 4 for ex in exemplars)))
    cube, window = (side,) * ndim, (side, side)
    fractions = volume_fractions(exemplars, phases)
    k0 = float(np.mean([dominant_wavenumber(ex) for ex in exemplars]))
    want = np.stack([_window_morphology(ex[None], window, phases)[0] for ex in exemplars])
    target = _radial_s2(exemplars, phases, r_max, exemplar_periodic)
    s2 = _PlaneS2(cube, r_max)
    tracked = 1 if phases == 2 else 0
    best: tuple | None = None
    for factor in FIT_FACTORS:
        for weight in FIT_WEIGHTS if ndim == 3 else (0.0,):
            fields = swift_hohenberg(
                cube, wavenumber=k0 * factor, seed=seed, times=FIT_TIMES, weight=weight
            )
            cuts = level_cut(fields, np.tile(fractions, (len(FIT_TIMES), 1)))
            for t, labels in zip(FIT_TIMES, cuts, strict=True):
                got = _slice_clusters(labels, window, phases)
                cl = float(np.max(np.abs(got / np.maximum(want, 1e-12) - 1)))
                err = float(np.sqrt(((s2(labels == tracked) - target) ** 2).mean()))
                key = (cl > FIT_CLUSTER_TOLERANCE, err if cl <= FIT_CLUSTER_TOLERANCE else cl)
                if best is None or key < best[0]:
                    best = (key, LamellaeFit(k0 * factor, weight, t, fractions, cl, err))
    assert best is not None
    return best[1]


def is_lamellar(
    exemplar: np.ndarray, phases: int, *, exemplar_periodic: bool = D.exemplar_periodic
) -> bool:
    """Whether a two-phase exemplar is lamellar: stripes of one period.

    Its normalised autocovariance ``(S2(r) - phi^2) / (phi - phi^2)`` (radial, lags up to a
    quarter of the smaller side) falls to :data:`LAMELLAR_DIP` or below at its first minimum
    (the next stripe, of the other phase) and rises to :data:`LAMELLAR_PEAK` or above at the
    maximum after it (the stripe after that). Three or more phases: never.
    """
    from mdesign.descriptors import two_point_correlation_radial

    ex = np.asarray(exemplar)
    if phases != 2:
        return False
    phi = float((ex == 1).mean())
    if phi in (0.0, 1.0):
        return False
    s2 = two_point_correlation_radial(
        ex[None], phase=1, max_distance=max(2, min(ex.shape) // 4), periodic=exemplar_periodic
    )[0]
    c = (s2 - phi * phi) / (phi - phi * phi)
    rising = np.flatnonzero(np.diff(c) > 0)
    if rising.size == 0:
        return False
    first_min = int(rising[0])
    return bool(c[first_min] <= LAMELLAR_DIP and c[first_min:].max() >= LAMELLAR_PEAK)


def lamellar_start(
    labels: np.ndarray,
    exemplars: Sequence[np.ndarray],
    *,
    phases: int,
    exemplar_periodic: bool = D.exemplar_periodic,
    seed: int,
) -> tuple[np.ndarray, LamellaeFit | None]:
    """An image's or a volume's labels replaced by a fitted Swift-Hohenberg pattern, when every
    exemplar is lamellar (:func:`is_lamellar`); else the labels unchanged and None.

    Parameters
    ----------
    labels : ndarray, ``H x W`` or ``H x W x D``
        The decoded labels (only their shape is used when replaced).
    exemplars : sequence of ndarray, ``h x w``
        One for an image; three for a volume.
    phases : int
        k.
    exemplar_periodic : bool
        The exemplars' ``S2`` estimator.
    seed : int
        Seed of the fit (its samples) and of the pattern (a spawned child each).

    Returns
    -------
    labels : ndarray of uint8, the shape of ``labels``
        Periodic, with the exemplars' fractions (:func:`mdesign.grf.phase_counts`).
    fit : LamellaeFit or None
    """
    labels = np.asarray(labels)
    exemplars = list(exemplars)[: 1 if labels.ndim == 2 else 3]
    if not all(is_lamellar(ex, phases, exemplar_periodic=exemplar_periodic) for ex in exemplars):
        return labels.astype(np.uint8, copy=True), None
    fit_seed, sample_seed = (
        int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(2)
    )
    fit = fit_lamellae(
        exemplars,
        shape=labels.shape,
        phases=phases,
        seed=fit_seed,
        exemplar_periodic=exemplar_periodic,
    )
    return fit.sample(labels.shape, seed=sample_seed), fit
