"""How close a reconstruction is to its exemplar: the descriptors in the loss and those outside it.

In the loss (or the annealing energy), :func:`reconstruction_errors` reports ``s2_rmse`` and
``lineal_path_rmse`` (root-mean-square differences of the contract's radial ``S2`` and lineal-path
curves, ``r = 0..R``, of phase 1 for two phases and of every phase for more) and ``fraction_error``
(the largest ``|phi_j - phi_j^exemplar|``; ``fraction_error_pixels`` in pixels). Each image is
measured with the estimator that fits it: a periodic reconstruction on the torus, a real exemplar
counting only the pairs inside it.

Outside the loss, :func:`morphology` measures for every phase what ``S2`` does not see (speckle,
connectivity): ``clusters`` (4-connected components, counted in the image as a window, not merged
across the wrap-around, for both images alike), ``specific_surface`` (Crofton),
``mean_chord_length`` (in-image chords) and ``lineal_path``; and the shape:
``local_thickness_mean`` / ``_p90`` (the largest inscribed disk covering each pixel, as a radius,
:func:`mdesign.descriptors.local_thickness`), ``s2_directional_ratio`` (``S2`` along the rows over
``S2`` along the columns, lags 4-16 px: anisotropy) and ``quadrant_fraction_deviation`` (the
largest relative deviation of a quadrant's fraction from the image's: clustering on one side).
When the two sizes differ, clusters and chords are counted in windows of the same size.
:func:`slice_errors` does the same for a volume's slices along each axis. Relative errors are
``reconstruction / exemplar - 1``.

Each estimator and why it is chosen: the reconstruction guide ("How each stage works",
``docs/guide/reconstruction.md``).

References
----------
Torquato, S. *Random Heterogeneous Materials*, Springer (2002): ``S2`` (ch. 2.2), lineal path
(2.4), chord lengths (2.5), specific surface (2.2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from mdesign.config import RECONSTRUCTION_DEFAULTS
from mdesign.descriptors import (
    chord_lengths,
    lineal_path,
    local_thickness,
    specific_surface,
    two_point_correlation_directional,
    two_point_correlation_radial,
    volume_fractions,
)

__all__ = [
    "Morphology",
    "ReconstructionErrors",
    "cluster_components",
    "cluster_counts",
    "morphology",
    "morphology_report",
    "quadrant_fraction_deviation",
    "reconstruction_errors",
    "s2_directional_ratio",
    "slice_errors",
]

_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])  # 4-connectivity


def cluster_components(mask: np.ndarray, *, periodic: bool = False) -> tuple[np.ndarray, int]:
    """Connected components of a boolean mask (4-connectivity).

    Parameters
    ----------
    mask : ndarray of bool, ``H x W``
    periodic : bool
        Merge components that touch across the wrap-around.

    Returns
    -------
    components : ndarray of int, ``H x W``
        0 outside the mask, ``1..n`` the component of each pixel inside.
    n : int
    """
    comp, n = ndimage.label(mask, structure=_CROSS)
    if periodic and n > 1:
        # edges between the components facing each other across the wrap-around
        a = np.concatenate([comp[0, :], comp[:, 0]])
        b = np.concatenate([comp[-1, :], comp[:, -1]])
        both = (a > 0) & (b > 0)
        graph = coo_matrix((np.ones(both.sum()), (a[both] - 1, b[both] - 1)), shape=(n, n))
        n, root = connected_components(graph, directed=False)
        comp = np.concatenate([[0], root + 1])[comp]
    return comp, int(n)


def cluster_counts(labels: np.ndarray, *, phases: int, periodic: bool = False) -> np.ndarray:
    """Connected components of every phase (4-connectivity).

    Parameters
    ----------
    labels : ndarray, ``H x W``
        Phase labels ``0..k-1``.
    phases : int
        k.
    periodic : bool
        Merge components that touch across the wrap-around (on the torus); by default the image
        is a window and they are not.

    Returns
    -------
    ndarray of int, ``k``
        The number of clusters of each phase (0 for an absent phase).
    """
    labels = np.asarray(labels)
    return np.array(
        [cluster_components(labels == j, periodic=periodic)[1] for j in range(phases)],
        dtype=np.int64,
    )


@dataclass(frozen=True)
class Morphology:
    """Descriptors of every phase of one image (module docstring).

    Attributes
    ----------
    clusters : ndarray, ``k``
        Integer counts for one image; mean counts per slice (scaled to the exemplar's area) from
        :func:`slice_errors`.
    specific_surface : ndarray, ``k``
        1/pixel.
    mean_chord_length : ndarray, ``k``
        Pixels; nan for a phase without a chord inside the image.
    lineal_path : ndarray, ``k x (R + 1)``
    local_thickness_mean, local_thickness_p90 : ndarray, ``k``
        Pixels (radii); nan for an absent phase. None where not measured.
    s2_directional_ratio : ndarray, ``k``
        :func:`s2_directional_ratio`; None where not measured.
    quadrant_fraction_deviation : ndarray, ``k``
        :func:`quadrant_fraction_deviation`; None where not measured.
    """

    clusters: np.ndarray
    specific_surface: np.ndarray
    mean_chord_length: np.ndarray
    lineal_path: np.ndarray
    local_thickness_mean: np.ndarray | None = None
    local_thickness_p90: np.ndarray | None = None
    s2_directional_ratio: np.ndarray | None = None
    quadrant_fraction_deviation: np.ndarray | None = None


DIRECTIONAL_LAGS = (4, 16)
"""The lags (pixels, both ends included) of :func:`s2_directional_ratio`."""


def s2_directional_ratio(images: np.ndarray, *, phase: int, periodic: bool) -> float:
    """``S2`` along the rows over ``S2`` along the columns, averaged over lags 4-16 px.

    The mean of ``S2`` at displacements ``(0, r)`` (along a row, x) over ``r`` in
    :data:`DIRECTIONAL_LAGS`, divided by the mean at ``(r, 0)`` (down a column, y); both from
    :func:`mdesign.descriptors.two_point_correlation_directional`, pooled over a stack. 1 for an
    isotropic phase; above 1 for bands along the rows, below 1 for stripes along the columns.
    The lags are cut to the images' side; nan when no lag of at least 4 fits or the phase is
    absent.

    Parameters
    ----------
    images : ndarray, ``H x W`` or ``N x H x W``
        Phase labels.
    phase : int
    periodic : bool
        The estimator of ``S2`` (module docstring).

    Returns
    -------
    float
    """
    stack = np.asarray(images)
    stack = stack[None] if stack.ndim == 2 else stack
    lo, hi = DIRECTIONAL_LAGS
    hi = min(hi, min(stack.shape[1:]) - 1)
    if hi < lo or not (stack == phase).any():
        return float("nan")
    s2 = two_point_correlation_directional(
        stack, directions=[(0, 1), (1, 0)], phase=phase, max_distance=hi, periodic=periodic
    ).mean(0)
    rows, cols = s2[0, lo:].mean(), s2[1, lo:].mean()
    return float(rows / cols) if cols > 0 else float("nan")


def quadrant_fraction_deviation(images: np.ndarray, *, phase: int) -> float:
    """How unevenly a phase fills the image: ``max_q |phi_q / phi - 1|`` over the quadrants.

    ``phi_q`` is the phase's fraction in quadrant ``q`` (each side halved; octants of a volume),
    ``phi`` in the whole image; averaged over a stack. 0 for a phase spread evenly; particles
    bunched on one side give a large value. nan for an absent phase.

    Parameters
    ----------
    images : ndarray, ``H x W`` or ``N x H x W`` (``N x H x W x D``)
        Phase labels.
    phase : int

    Returns
    -------
    float
    """
    stack = np.asarray(images)
    stack = stack[None] if stack.ndim == 2 else stack
    out = []
    for img in stack:
        mask = img == phase
        phi = mask.mean()
        if phi == 0:
            continue
        parts = [mask]
        for axis in range(mask.ndim):
            half = mask.shape[axis] // 2
            parts = [p for q in parts for p in np.split(q, [half], axis=axis)]
        out.append(max(abs(p.mean() / phi - 1) for p in parts if p.size))
    return float(np.mean(out)) if out else float("nan")


def _shape(stack: np.ndarray, phases: int, periodic: bool) -> dict:
    """The shape fields of :class:`Morphology` for a stack of images (pooled over it)."""
    thickness = [local_thickness(stack, phase=j) for j in range(phases)]
    return dict(
        local_thickness_mean=np.array([t.mean for t in thickness]),
        local_thickness_p90=np.array([t.quantile(0.9) for t in thickness]),
        s2_directional_ratio=np.array(
            [s2_directional_ratio(stack, phase=j, periodic=periodic) for j in range(phases)]
        ),
        quadrant_fraction_deviation=np.array(
            [quadrant_fraction_deviation(stack, phase=j) for j in range(phases)]
        ),
    )


def morphology(labels: np.ndarray, *, phases: int, periodic: bool, max_distance: int) -> Morphology:
    """Cluster counts, specific surface, mean chord length and lineal path of every phase.

    Parameters
    ----------
    labels : ndarray, ``H x W``
        Phase labels ``0..k-1``.
    phases : int
        k.
    periodic : bool
        The estimator of the specific surface and the lineal path: on the torus, or in-image.
        Clusters and chords are always counted in-image (module docstring).
    max_distance : int
        ``R`` of the lineal path.

    Returns
    -------
    Morphology
    """
    stack = np.asarray(labels)[None]
    return Morphology(
        clusters=cluster_counts(stack[0], phases=phases),
        specific_surface=np.array(
            [specific_surface(stack, phase=j, periodic=periodic)[0] for j in range(phases)]
        ),
        mean_chord_length=np.array(
            [chord_lengths(stack, phase=j, periodic=False).mean for j in range(phases)]
        ),
        lineal_path=np.stack(
            [
                lineal_path(stack, phase=j, max_distance=max_distance, periodic=periodic)[0]
                for j in range(phases)
            ]
        ),
        **_shape(stack, phases, periodic),
    )


def _relative(rec: np.ndarray, ex: np.ndarray) -> list[float | None]:
    """``rec / ex - 1`` elementwise; None where the exemplar's value is 0 or not finite."""
    out = []
    for r, e in zip(np.asarray(rec, float), np.asarray(ex, float), strict=True):
        ok = np.isfinite(r) and np.isfinite(e) and e != 0
        out.append(float(r / e - 1) if ok else None)
    return out


def _counts(values: np.ndarray) -> list[int | float]:
    """Cluster counts: integers, or (mean counts over slices) floats to 2 decimals."""
    return [int(v) if float(v).is_integer() else round(float(v), 2) for v in values]


def _finite(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, float)]


_SHAPE_KEYS = (
    "local_thickness_mean",
    "local_thickness_p90",
    "s2_directional_ratio",
    "quadrant_fraction_deviation",
)


def morphology_report(exemplar: Morphology, reconstruction: Morphology) -> dict:
    """The morphology keys of the ``--report`` JSON: each descriptor per phase, exemplar and
    reconstruction, with relative errors (``reconstruction / exemplar - 1``; null where the
    exemplar's value is 0 or undefined) and the per-phase lineal-path RMSE."""
    out: dict = {"clusters_connectivity": 4, "clusters_periodic": False}
    for key in ("clusters", "specific_surface", "mean_chord_length", *_SHAPE_KEYS):
        ex, rec = getattr(exemplar, key), getattr(reconstruction, key)
        if ex is None or rec is None:
            continue
        cast = _counts if key == "clusters" else _finite
        out[f"{key}_exemplar"] = cast(ex)
        out[f"{key}_reconstruction"] = cast(rec)
        out[f"{key}_relative_error"] = _relative(rec, ex)
    out["lineal_path_rmse_per_phase"] = np.sqrt(
        ((reconstruction.lineal_path - exemplar.lineal_path) ** 2).mean(1)
    ).tolist()
    return out


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
    morphology_exemplar, morphology_reconstruction : Morphology
        The descriptors outside the loss, every phase.
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
    morphology_exemplar: Morphology
    morphology_reconstruction: Morphology

    def morphology_report(self) -> dict:
        """The morphology keys of the report (:func:`morphology_report`)."""
        return morphology_report(self.morphology_exemplar, self.morphology_reconstruction)


def reconstruction_errors(
    exemplar: np.ndarray,
    reconstruction: np.ndarray,
    *,
    phases: int,
    reconstruction_periodic: bool = True,
    exemplar_periodic: bool = RECONSTRUCTION_DEFAULTS.exemplar_periodic,
    max_distance: int | None = None,
) -> ReconstructionErrors:
    """``S2`` and lineal-path RMSE, fraction error and morphology of a reconstruction.

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
    m_e = morphology(exemplar, phases=phases, periodic=exemplar_periodic, max_distance=r_max)
    m_r = morphology(
        reconstruction, phases=phases, periodic=reconstruction_periodic, max_distance=r_max
    )
    if exemplar.shape != reconstruction.shape:
        # cluster counts (and chords inside the image) depend on the window: count both sides
        # in windows of the same size, as :func:`slice_errors` does
        window = tuple(min(a, b) for a, b in zip(exemplar.shape, reconstruction.shape, strict=True))
        (counts_e, chords_e), (counts_r, chords_r) = (
            _window_morphology(img[None], window, phases) for img in (exemplar, reconstruction)
        )
        m_e = replace(m_e, clusters=counts_e, mean_chord_length=chords_e)
        m_r = replace(m_r, clusters=counts_r, mean_chord_length=chords_r)
    s2_e = _s2(exemplar, shown, r_max, exemplar_periodic)
    s2_r = _s2(reconstruction, shown, r_max, reconstruction_periodic)
    vf_e = volume_fractions(exemplar[None], phases=phases)[0]
    vf_r = volume_fractions(reconstruction[None], phases=phases)[0]
    return _errors(shown, m_e, m_r, s2_e, s2_r, vf_e, vf_r, reconstruction.size)


def _errors(shown, m_e, m_r, s2_e, s2_r, vf_e, vf_r, size) -> ReconstructionErrors:
    """:class:`ReconstructionErrors` from the two sides' descriptors (``size``: the pixels)."""
    lp_e, lp_r = m_e.lineal_path[list(shown)], m_r.lineal_path[list(shown)]
    frac_err = float(np.abs(vf_r - vf_e).max())
    return ReconstructionErrors(
        s2_rmse=float(np.sqrt(((s2_r - s2_e) ** 2).mean())),
        lineal_path_rmse=float(np.sqrt(((lp_r - lp_e) ** 2).mean())),
        fraction_error=frac_err,
        fraction_error_pixels=frac_err * size,
        volume_fraction_exemplar=vf_e,
        volume_fraction_reconstruction=vf_r,
        phases=shown,
        s2_exemplar=s2_e,
        s2_reconstruction=s2_r,
        lineal_path_exemplar=lp_e,
        lineal_path_reconstruction=lp_r,
        morphology_exemplar=m_e,
        morphology_reconstruction=m_r,
    )


def _windows(images: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """Windows of size ``window`` of each image at up to 3 x 3 evenly spaced offsets."""
    h, w = images.shape[1:]
    ys = np.unique(np.linspace(0, h - window[0], 3).round().astype(int))
    xs = np.unique(np.linspace(0, w - window[1], 3).round().astype(int))
    return np.stack(
        [img[y : y + window[0], x : x + window[1]] for img in images for y in ys for x in xs]
    )


def _window_morphology(images: np.ndarray, window: tuple[int, int], phases: int):
    """Mean cluster counts and mean chord lengths of each phase, in windows (:func:`_windows`)."""
    wins = _windows(images, window)
    counts = np.mean([cluster_counts(img, phases=phases) for img in wins], axis=0)
    chords = np.array([chord_lengths(wins, phase=j, periodic=False).mean for j in range(phases)])
    return counts, chords


def _s2(image: np.ndarray, phases: tuple[int, ...], r_max: int, periodic: bool) -> np.ndarray:
    return np.stack(
        [
            two_point_correlation_radial(
                image[None], phase=j, max_distance=r_max, periodic=periodic
            )[0]
            for j in phases
        ]
    )


def slice_errors(
    exemplar: np.ndarray,
    volume: np.ndarray,
    *,
    axis: int,
    phases: int,
    volume_periodic: bool = True,
    exemplar_periodic: bool = RECONSTRUCTION_DEFAULTS.exemplar_periodic,
    max_distance: int | None = None,
) -> ReconstructionErrors:
    """The errors of :func:`reconstruction_errors` for the slices of a volume along one axis.

    The slices normal to ``axis`` (``np.take(volume, i, axis)``, rows along the lower remaining
    axis) are measured as a stack and their descriptors averaged: ``S2`` and ``L`` curves,
    specific surface, chords pooled over the slices. Cluster counts depend on the window (a
    cluster cut by an edge counts once per piece), so both sides are counted in windows of the
    same size, the smaller of the exemplar and the slices on each side: the mean count over
    windows at up to 3 x 3 evenly spaced offsets of the exemplar, and of every slice. With
    slices the exemplar's size, these are the exemplar's count and the mean count per slice.
    Mean chord lengths (chords inside the window) are taken in the same windows.

    Parameters
    ----------
    exemplar : ndarray, ``h x w``
        The 2D exemplar of the slices normal to ``axis``.
    volume : ndarray, ``H x W x D``
        Phase labels.
    axis : {0, 1, 2}
    phases : int
        k.
    volume_periodic, exemplar_periodic : bool
        The estimators (module docstring): the slices of a periodic volume are periodic.
    max_distance : int, optional
        ``R``; a quarter of the smallest side of the exemplar and the slices by default.

    Returns
    -------
    ReconstructionErrors
        ``fraction_error_pixels`` counts voxels of the whole volume.
    """
    slices = np.ascontiguousarray(np.moveaxis(np.asarray(volume), axis, 0))
    side = min(*exemplar.shape, *slices.shape[1:])
    r_max = max(1, side // 4) if max_distance is None else int(max_distance)
    shown = (1,) if phases == 2 else tuple(range(phases))
    m_e = morphology(exemplar, phases=phases, periodic=exemplar_periodic, max_distance=r_max)
    window = (min(exemplar.shape[0], slices.shape[1]), min(exemplar.shape[1], slices.shape[2]))
    counts_e, chords_e = _window_morphology(exemplar[None], window, phases)
    counts_r, chords_r = _window_morphology(slices, window, phases)
    m_e = replace(m_e, clusters=counts_e, mean_chord_length=chords_e)
    m_r = Morphology(
        clusters=counts_r,
        specific_surface=np.array(
            [
                specific_surface(slices, phase=j, periodic=volume_periodic).mean()
                for j in range(phases)
            ]
        ),
        mean_chord_length=chords_r,
        lineal_path=np.stack(
            [
                lineal_path(slices, phase=j, max_distance=r_max, periodic=volume_periodic).mean(0)
                for j in range(phases)
            ]
        ),
        # the slices' shape: local thickness pooled, the ratio and the quadrants per slice
        **_shape(slices, phases, volume_periodic),
    )
    s2_e = _s2(exemplar, shown, r_max, exemplar_periodic)
    s2_r = np.stack(
        [
            two_point_correlation_radial(
                slices, phase=j, max_distance=r_max, periodic=volume_periodic
            ).mean(0)
            for j in shown
        ]
    )
    vf_e = volume_fractions(exemplar[None], phases=phases)[0]
    vf_r = volume_fractions(slices, phases=phases).mean(0)
    return _errors(shown, m_e, m_r, s2_e, s2_r, vf_e, vf_r, slices.size)
