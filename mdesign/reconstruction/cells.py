"""A thin network phase (grain boundaries) rebuilt as a tessellation fitted to the exemplars' S2.

A grain-boundary network is a set of lines (2D) or sheets (3D) between grains. The Gram fit and
the annealing leave it in fragments; :func:`network_sheets` rebuilds it as the boundaries of a
power diagram (Laguerre tessellation: a pixel belongs to the seed ``i`` of least
``|x - s_i|^2 - w_i``), one pixel thick on one side of every face between two cells (so the
network is closed) and thickened to the phase's exact count by the pixels closest to a radical
plane. The seeds start at the decoded grains' thickest points; their number is the one whose
cells' count per window comes closest to the exemplars' grains'; then the seeds' positions and
weights are fitted by a stochastic descent (one seed moved or reweighted at a time, kept when the
error falls) to the exemplars' ``S2`` of the network phase: the image's, or a volume's slices'
in each orientation (one periodic FFT gives all three: the autocorrelation's plane through the
origin normal to an axis is the mean ``S2`` of the slices normal to it). The ``S2`` fitted is the
annealing's tracked phase's, so that the fit and the annealing pull the same way. Optionally
(``shape_weight``) the fit also matches the exemplars' grains in numbers measured on the same
slices (:func:`grain_sizes`: the grain pixels' inscribed-radius quantiles and the grains per
window) and keeps out sliver cells, starting from weights spread like the exemplars' grain radii.
One implementation for images and volumes.

References
----------
Aurenhammer, F. "Power diagrams: properties, algorithms and applications", SIAM J. Comput. 16,
78 (1987).
Yeong, C. L. Y. & Torquato, S. "Reconstructing random media. II. Three-dimensional media from
two-dimensional cuts", Phys. Rev. E 58, 224 (1998).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mdesign.config import RECONSTRUCTION_DEFAULTS as D
from mdesign.grf import phase_counts
from mdesign.reconstruction.annealing import _coords, _sheet_phases, volume_fractions
from mdesign.reconstruction.lags import face_table

__all__ = [
    "SHEET_SEEDS",
    "GrainSizes",
    "Tessellation",
    "fit_tessellation",
    "grain_sections",
    "grain_sizes",
    "network_sheets",
]

SHEET_SEEDS = (2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 90, 128)
"""The seed counts per ``64^3`` voxels (``64^2`` pixels in 2D) that
:func:`network_sheets` tries (scaled by the size)."""

SHEET_SPACING = 0.5
"""The starting seeds are at least this times the mean seed spacing apart."""

FIT_STEP = 0.25
"""A proposal moves a seed by a normal step of this times the mean seed spacing per axis (or
changes its weight by this times the spacing, squared)."""

SIZE_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
"""The quantiles of the grain pixels' inscribed radius (:class:`GrainSizes`) that the shape term
of :func:`fit_tessellation` matches."""

SLIVER_MARGIN = 1.25
"""A cell section is a sliver when its area over ``pi r^2`` (``r`` its inscribed radius) is above
this times the largest of the exemplars' interior grains'."""

SHAPE_SLICES = 16
"""The shape term measures a volume's cells on at most this many evenly spaced slices normal to
each axis (the sections' distribution, at a fraction of the cost of every slice)."""

START_SPREADS = (0.0, 0.25, 0.5, 1.0)
"""The scales ``a`` of the starting weights ``a r_i^2`` (``r_i`` the exemplars' grain radii, by
rank) that :func:`network_sheets` tries; the one of least fit error starts the fit."""


@dataclass(frozen=True)
class GrainSizes:
    """The exemplars' grains (the sections of the other phases between the network) in numbers.

    Attributes
    ----------
    quantiles : ndarray, ``len(SIZE_QUANTILES)``
        Of the grain pixels' inscribed radius (each pixel counts its grain's largest inscribed
        disk's radius: the largest distance to the network inside the grain).
    radii : ndarray
        The grains' inscribed radii, one per grain, sorted (the starting weights' spread).
    elongation : float
        The sliver bound: area over ``pi r^2`` above it makes a cell section a sliver
        (:data:`SLIVER_MARGIN` times the largest of the interior grains', which the window's
        edge does not cut).
    clusters : float
        Grains per window (4-connected, in the window).
    window : tuple of int
        The windows' size.
    """

    quantiles: np.ndarray
    radii: np.ndarray
    elongation: float
    clusters: float
    window: tuple[int, int]


@dataclass(frozen=True)
class Tessellation:
    """A power diagram's network, fitted to a target ``S2``.

    Attributes
    ----------
    seeds : ndarray, ``n x ndim``
    weights : ndarray, ``n``
    cell : ndarray of int, ``shape``
        The cell of every pixel (voxel).
    sheet : ndarray of bool, ``shape``
        The network: closed, of exactly the requested count (unless the closed network alone is
        larger).
    error_start, error : float
        Sum of squared ``S2`` errors (lags ``1..R``, every orientation) before and after the fit.
    accepted : int
        Proposals kept.
    shape_start, shape : float
        The shape error (:func:`_shape_error`; nan without a ``sizes`` target) before and after.
    """

    seeds: np.ndarray
    weights: np.ndarray
    cell: np.ndarray
    sheet: np.ndarray
    error_start: float
    error: float
    accepted: int
    shape_start: float = float("nan")
    shape: float = float("nan")


def _axis_sq(shape, seeds, periodic) -> list[np.ndarray]:
    """Per axis, ``n x side`` squared (minimum-image) distances of the seeds to each coordinate."""
    out = []
    for a, m in enumerate(shape):
        d = np.abs(np.arange(m)[None, :] - seeds[:, a : a + 1])
        if periodic:
            d = np.minimum(d, m - d)
        out.append(d * d)
    return out


def _power_one(sq, k, weight, shape) -> np.ndarray:
    """The power distance of every pixel (flat) to seed ``k``."""
    ndim = len(shape)
    p = -weight
    for a in range(ndim):
        p = p + sq[a][k].reshape([-1 if b == a else 1 for b in range(ndim)])
    return np.broadcast_to(p, shape).ravel()


def _diagram(shape, seeds, weights, periodic, faces, count) -> tuple[np.ndarray, np.ndarray]:
    """The cell of every pixel and the network (flat): one side of every face between two cells
    (the side nearer the radical plane) and the pixels within ``sqrt(ndim) / 2`` of the plane,
    thickened to ``count`` by the nearest other pixels."""
    sq = _axis_sq(shape, seeds, periodic)
    n = seeds.shape[0]
    p1 = np.full(int(np.prod(shape)), np.inf)
    p2 = p1.copy()
    i1 = np.zeros(p1.size, np.int64)
    i2 = i1.copy()
    for k in range(n):  # the least two power distances, seed by seed (memory O(pixels))
        p = _power_one(sq, k, weights[k], shape)
        first = p < p1
        second = ~first & (p < p2)
        p2 = np.where(first, p1, np.where(second, p, p2))
        i2 = np.where(first, i1, np.where(second, k, i2))
        p1 = np.where(first, p, p1)
        i1 = np.where(first, k, i1)
    # distance to the radical plane of the nearest two: (p2 - p1) / (2 |s_1 - s_2|)
    sep = seeds[i1] - seeds[i2]
    if periodic:
        side = np.asarray(shape, float)
        sep = sep - side * np.round(sep / side)
    gap = (p2 - p1) / (2 * np.maximum(np.sqrt((sep * sep).sum(1)), 1e-9))
    nb = faces
    other = i1[nb] != i1[:, None]
    idx = np.arange(gap.size)
    nearer = (gap[:, None] < gap[nb]) | ((gap[:, None] == gap[nb]) & (idx[:, None] < nb))
    # closed (no two cells touch) and, with the band of half-width sqrt(ndim) / 2 about the
    # radical planes, 4-connected in every slice
    sheet = (other & nearer).any(1) | (gap < np.sqrt(len(shape)) / 2)
    short = count - int(sheet.sum())
    if short > 0:
        rest = np.flatnonzero(~sheet)
        sheet[rest[np.argpartition(gap[rest], short - 1)[:short]]] = True
    return i1, sheet


class _PlaneS2:
    """``S2`` of a mask's slices by one periodic FFT: an image's (1 row) or, for a volume, the
    mean over the slices normal to each axis (3 rows), radially averaged over ``r = 0..R``."""

    def __init__(self, shape, r_max: int):
        from mdesign.descriptors import lag_distances

        self.ndim, self.r_max = len(shape), r_max
        planes = [shape] if self.ndim == 2 else [shape[1:], shape[::2], shape[:2]]
        self.bins = []
        for p in planes:
            b = np.rint(lag_distances(tuple(p), periodic=True)).ravel().astype(np.int64)
            keep = b <= r_max
            self.bins.append((np.flatnonzero(keep), b[keep], np.bincount(b[keep])))

    def __call__(self, mask: np.ndarray) -> np.ndarray:
        f = np.fft.rfftn(mask.astype(np.float64))
        corr = np.fft.irfftn(f * f.conj(), s=mask.shape, axes=range(mask.ndim)) / mask.size
        planes = [corr] if self.ndim == 2 else [corr[0], corr[:, 0], corr[:, :, 0]]
        return np.stack(
            [
                np.bincount(b, weights=p.ravel()[keep], minlength=self.r_max + 1) / c
                for p, (keep, b, c) in zip(planes, self.bins, strict=True)
            ]
        )


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs) -> np.ndarray:
    """Quantiles of ``values`` counted ``weights`` times each (the smallest value with at least a
    fraction ``q`` of the weight at or below it)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    at = np.searchsorted(cum, np.asarray(qs) * cum[-1])
    return values[order][np.minimum(at, len(order) - 1)]


def _section_sizes(groups: np.ndarray, dist: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Inscribed radius (largest ``dist``) and area of each group ``0..n-1`` present."""
    area = np.bincount(groups, minlength=n)
    radius = np.zeros(n)
    np.maximum.at(radius, groups, dist)
    keep = area > 0
    return radius[keep], area[keep]


def _cell_sections(cell: np.ndarray, sheet: np.ndarray, periodic: bool):
    """Inscribed radius and area of every cell's section (minus the network) in every slice: an
    image's cells, or a volume's cells cut by the slices normal to each axis (at most
    :data:`SHAPE_SLICES` per axis).

    The radius is the largest distance to the network inside the section (wrapping around when
    ``periodic``; else the edge is not a boundary, as for the exemplars' windows), at most half
    the slice's smaller side.
    """
    from scipy import ndimage

    radii, areas = [], []
    n = int(cell.max()) + 1
    for c, s in zip(_slices(cell, SHAPE_SLICES), _slices(sheet, SHAPE_SLICES), strict=True):
        grain = ~s
        half = min(grain.shape[1:]) // 2
        pad = half if periodic else 0
        g = np.pad(grain, ((0, 0), (pad, pad), (pad, pad)), mode="wrap") if pad else grain
        # one 2D transform per slice: the stack axis is too long to cross
        dist = ndimage.distance_transform_edt(g, sampling=(4.0 * max(g.shape), 1.0, 1.0))
        dist = np.minimum(dist[:, pad : pad + grain.shape[1], pad : pad + grain.shape[2]], half)
        slab = np.arange(len(grain))[:, None, None] * n + c
        r, a = _section_sizes(slab[grain], dist[grain], n * len(grain))
        radii.append(r)
        areas.append(a)
    return np.concatenate(radii), np.concatenate(areas)


def grain_sections(grain: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inscribed radius, area and whether it is interior of each grain of an image.

    Parameters
    ----------
    grain : ndarray of bool, ``H x W``
        The grains' pixels (the phases off the network); a grain is a 4-connected cluster.

    Returns
    -------
    radius, area, interior : ndarray, ``G``
        Per grain: the largest distance from its pixels to the rest of the image (half the
        smaller side where there is none), its pixel count, and whether it does not touch the
        image's edge.
    """
    from scipy import ndimage

    from mdesign.reconstruction.metrics import cluster_components

    comp, n = cluster_components(grain)
    if n == 0:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool)
    dist = ndimage.distance_transform_edt(grain) if (~grain).any() else None
    dist = np.full(grain.shape, min(grain.shape) / 2) if dist is None else dist
    r, a = _section_sizes(comp[grain] - 1, dist[grain], n)
    edge = np.zeros(n + 1, bool)
    edge[np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]])] = True
    return r, a, ~edge[1:][np.bincount(comp[grain] - 1, minlength=n) > 0]


def grain_sizes(exemplars: Sequence[np.ndarray], phase: int, window: tuple[int, int]) -> GrainSizes:
    """The exemplars' grains (4-connected clusters of the phases other than ``phase``, in
    windows of ``window``: :func:`~.metrics._windows`) as :func:`fit_tessellation`'s shape
    target.

    Parameters
    ----------
    exemplars : sequence of ndarray, ``H x W``
    phase : int
        The network phase.
    window : tuple of int
        The windows' size (an output slice's).

    Returns
    -------
    GrainSizes
    """
    from mdesign.reconstruction.metrics import _windows

    radii, areas, interior, counts = [], [], [], []
    for ex in exemplars:
        for win in _windows(np.asarray(ex)[None], window):
            r, a, inner = grain_sections(win != phase)
            counts.append(len(r))
            radii.append(r)
            areas.append(a)
            interior.append(inner)
    r, a, inner = np.concatenate(radii), np.concatenate(areas), np.concatenate(interior)
    elong = a / (np.pi * r * r)
    bound = SLIVER_MARGIN * (elong[inner].max() if inner.any() else elong.max())
    return GrainSizes(
        quantiles=_weighted_quantiles(r, a, SIZE_QUANTILES),
        radii=np.sort(r[r >= 1.5]) if (r >= 1.5).any() else np.sort(r),
        elongation=float(bound),
        clusters=float(np.mean(counts)),
        window=tuple(window),
    )


def _window_clusters(sheet: np.ndarray, window: tuple[int, int]) -> float:
    """Grains (4-connected clusters off the network) per window of the slices (at most
    :data:`SHAPE_SLICES` per axis; :func:`~.metrics._windows`), as the exemplars' are counted."""
    from scipy import ndimage

    from mdesign.reconstruction.metrics import _windows

    cross = np.zeros((3, 3, 3), bool)
    cross[1] = ndimage.generate_binary_structure(2, 1)  # no link across slices
    wins = [_windows(~s, window) for s in _slices(sheet, SHAPE_SLICES)]
    return float(np.mean([ndimage.label(w, structure=cross)[1] / len(w) for w in wins]))


def _shape_error(cell: np.ndarray, sheet: np.ndarray, sizes: GrainSizes, periodic: bool) -> float:
    """The cells' shape error against the exemplars' grains: the mean squared relative error of
    the grain pixels' inscribed-radius quantiles (:data:`SIZE_QUANTILES`), plus the share of the
    grain pixels in slivers (sections longer than :attr:`GrainSizes.elongation`), plus the
    squared relative error of the grains per window."""
    r, a = _cell_sections(cell, sheet, periodic)
    q = _weighted_quantiles(r, a, SIZE_QUANTILES)
    thin = a[a > sizes.elongation * np.pi * r * r].sum() / a.sum()
    count = _window_clusters(sheet, sizes.window) / max(sizes.clusters, 1.0) - 1
    return float(np.mean((q / sizes.quantiles - 1) ** 2) + thin + count * count)


def fit_tessellation(
    shape: tuple[int, ...],
    seeds: np.ndarray,
    target: np.ndarray,
    *,
    count: int,
    steps: int,
    periodic: bool = D.periodic,
    weights: np.ndarray | None = None,
    sizes: GrainSizes | None = None,
    shape_weight: float = 0.0,
    seed: int,
) -> Tessellation:
    """Fit a power diagram's network to a target ``S2`` (and grain sizes) one seed at a time.

    Each of ``steps`` proposals moves one random seed by a normal step (:data:`FIT_STEP` times
    the mean spacing ``(N / n)^(1/ndim)``, per axis) or changes its weight (normal, :data:`FIT_STEP`
    times the spacing, squared; half the proposals each); a proposal is kept when the error
    falls: the sum of squared errors of the network's ``S2`` (lags ``1..R``; every orientation's
    slices in a volume) against ``target``, relative to the start's, plus ``shape_weight`` times
    the shape error against ``sizes`` (:func:`_shape_error`: the grain pixels' inscribed-radius
    quantiles and the share in slivers, on the same slices).

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` or ``(H, W, D)``.
    seeds : ndarray, ``n x ndim``
        The starting seeds (weights zero: a Voronoi diagram).
    target : ndarray, ``A x (R + 1)``
        The network phase's ``S2`` per orientation (1 row for an image; for a volume, the slices
        normal to axis 0, 1, 2).
    count : int
        Pixels in the network.
    steps : int
        Proposals (0: the start's diagram).
    periodic : bool
        The cells and distances wrap around.
    weights : ndarray, ``n``, optional
        The starting weights (default zero: a Voronoi diagram).
    sizes : GrainSizes, optional
        The exemplars' grains (:func:`grain_sizes`), for the shape term.
    shape_weight : float
        Weight of the shape term (0: ``S2`` alone, as before the term existed).
    seed : int
        Seed of the proposals.

    Returns
    -------
    Tessellation
    """
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng(seed)
    seeds = np.array(seeds, dtype=float)
    weights = np.zeros(len(seeds)) if weights is None else np.array(weights, dtype=float)
    target = np.asarray(target, float)
    faces = face_table(shape, periodic)
    s2 = _PlaneS2(shape, target.shape[1] - 1)
    shaped = sizes is not None and shape_weight > 0

    def error(s, w):
        cell, sheet = _diagram(shape, s, w, periodic, faces, count)
        e = float(((s2(sheet.reshape(shape))[:, 1:] - target[:, 1:]) ** 2).sum())
        f = (
            _shape_error(cell.reshape(shape), sheet.reshape(shape), sizes, periodic)
            if shaped
            else float("nan")
        )
        return e, f, cell, sheet

    e_s2, e_shape, cell, sheet = error(seeds, weights)
    start, shape_start, accepted = e_s2, e_shape, 0
    scale = max(start, 1e-12)

    def total(e, f):
        return e / scale + shape_weight * f if shaped else e

    err = total(e_s2, e_shape)
    step = FIT_STEP * (np.prod(shape) / len(seeds)) ** (1 / len(shape))
    for _ in range(steps):
        k = int(rng.integers(len(seeds)))
        s, w = seeds.copy(), weights.copy()
        if rng.random() < 0.5:
            s[k] += rng.normal(0.0, step, len(shape))
            s[k] = s[k] % shape if periodic else np.clip(s[k], 0, np.array(shape) - 1)
        else:
            w[k] += rng.normal(0.0, step * step)
        e, f, c, sh = error(s, w)
        if total(e, f) < err:
            err, e_s2, e_shape, accepted = total(e, f), e, f, accepted + 1
            seeds, weights, cell, sheet = s, w, c, sh
    return Tessellation(
        seeds=seeds,
        weights=weights,
        cell=cell.reshape(shape),
        sheet=sheet.reshape(shape),
        error_start=start,
        error=e_s2,
        accepted=accepted,
        shape_start=shape_start,
        shape=e_shape,
    )


def _sheet_seeds(grain: np.ndarray, n: int, periodic: bool, rng) -> np.ndarray:
    """``n x ndim`` seeds: the thickest points of ``grain`` (peaks of its smoothed distance to the
    other phase), greedily at least :data:`SHEET_SPACING` times the mean seed spacing apart, then
    random pixels."""
    from scipy import ndimage

    shape = np.array(grain.shape)
    pad = 8 if periodic else 0
    mode = "wrap" if periodic else "reflect"
    dist = ndimage.distance_transform_edt(np.pad(grain, pad, mode=mode))
    dist = dist[tuple(slice(pad, m - pad) for m in dist.shape)] if pad else dist
    dist = ndimage.gaussian_filter(dist, 1.0, mode=mode) + rng.random(grain.shape) * 1e-6
    r = SHEET_SPACING * (grain.size / n) ** (1 / grain.ndim)
    peaks = np.flatnonzero(dist == ndimage.maximum_filter(dist, size=3, mode=mode))
    peaks = peaks[np.argsort(dist.ravel()[peaks])[::-1]]
    cand = np.concatenate(
        [_coords(peaks, grain.shape), _coords(rng.permutation(grain.size), grain.shape)]
    )
    seeds: list[np.ndarray] = []
    for c in cand:
        if len(seeds) == n:
            break
        if seeds:
            d = np.abs(np.array(seeds) - c)
            d = np.minimum(d, shape - d) if periodic else d
            if ((d**2).sum(1) < r * r).any():
                continue
        seeds.append(c)
    return np.array(seeds, dtype=float)


def _fit_target(exemplars, j, phases, r_max, exemplar_periodic, fraction) -> np.ndarray:
    """The ``S2`` the network ``j`` is fitted to, per exemplar: the annealing's tracked phase's
    (phase 1 of two, :func:`~.annealing.anneal_fractions`) as the network's, by
    ``S2_other(r) = 1 - 2 phi_j + S2_j(r)`` (exact on the torus), else ``j``'s own."""
    from mdesign.descriptors import two_point_correlation_radial

    p = 1 if phases == 2 else j
    t = np.stack(
        [
            two_point_correlation_radial(
                ex[None], phase=p, max_distance=r_max, periodic=exemplar_periodic
            )[0]
            for ex in exemplars
        ]
    )
    if p != j:
        t = t - 1 + 2 * fraction
        t[:, 0] = fraction
    return t


def _start_weights(shape, seeds, target, sizes: GrainSizes, shape_weight, fit_kw) -> np.ndarray:
    """The starting weights ``a r_i^2`` (``r_i``: the grains' radii at the quantiles
    ``(i + 1/2) / n``, largest first, as the seeds are thickest first) of least fit error over
    ``a`` in :data:`START_SPREADS` (the ``S2`` error relative to the Voronoi diagram's)."""
    n = len(seeds)
    r = np.quantile(sizes.radii, (np.arange(n)[::-1] + 0.5) / n)
    best, scale = None, None
    for a in START_SPREADS:
        w = a * r * r
        t = fit_tessellation(shape, seeds, target, steps=0, weights=w, sizes=sizes,
                             shape_weight=shape_weight, seed=0, **fit_kw)  # fmt: skip
        scale = max(t.error_start, 1e-12) if scale is None else scale
        e = t.error_start / scale + shape_weight * t.shape_start
        if best is None or e < best[0]:
            best = (e, w)
    return best[1]


def _slices(mask: np.ndarray, at_most: int | None = None) -> list[np.ndarray]:
    """An image as one stack of one, or a volume's slices normal to each axis (stacks; with
    ``at_most``, evenly spaced slices, at most that many per axis)."""
    if mask.ndim == 2:
        return [mask[None]]
    stacks = [np.moveaxis(mask, a, 0) for a in range(3)]
    if at_most is None:
        return stacks
    return [s[:: -(-len(s) // at_most)] for s in stacks]


def network_sheets(
    labels: np.ndarray,
    exemplars: Sequence[np.ndarray],
    *,
    phases: int,
    periodic: bool = D.periodic,
    exemplar_periodic: bool = D.exemplar_periodic,
    fit_steps: int = 0,
    shape_weight: float = 0.0,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Rebuild an image's or a volume's thin network phase as a closed fitted tessellation.

    For each phase ``j`` that is a network in every exemplar (:func:`~.annealing.is_network`)
    and thin (under half of each), the labels are cut into cells of ``n`` seeds placed at the
    thickest points of the other phases (:func:`_sheet_seeds`), and ``j`` becomes the closed
    network between them of ``j``'s target count (:func:`~.annealing.volume_fractions`; the
    module docstring). ``n`` (of :data:`SHEET_SEEDS`, scaled by the size) is the one whose
    cells' clusters per window (of a slice's size) come closest to the exemplars' other phases';
    then ``fit_steps`` proposals of :func:`fit_tessellation` fit the seeds to the exemplars'
    ``S2`` of ``j``. With ``shape_weight`` above 0 the fit also matches the exemplars' grain
    sizes and keeps slivers out (:func:`grain_sizes`, :func:`_shape_error`), and every ``n``
    tried starts from weights ``a r_i^2`` (:func:`_start_weights`: ``r_i`` the exemplars' grain
    radii at evenly spaced quantiles, the largest at the thickest seed, ``a`` of
    :data:`START_SPREADS` the one of least error), so that ``n`` is chosen with the spread.
    A pixel leaving ``j`` takes its cell's most frequent other phase.
    :func:`~.annealing.anneal_fractions` then refines the network with the cluster guard on
    every phase (the returned mask), so it stays closed.

    Parameters
    ----------
    labels : ndarray, ``H x W`` or ``H x W x D``
    exemplars : sequence of ndarray, ``H' x W'``
        One for an image; three for a volume (the slices normal to axis 0, 1, 2).
    phases : int
        k.
    periodic, exemplar_periodic : bool
        ``labels`` is periodic (the cells and distances wrap around); the exemplars' ``S2``
        estimator.
    fit_steps : int
        Proposals of the fit (0: the cells of the thickest points, unfitted).
    shape_weight : float
        Weight of the fit's shape term (0: ``S2`` alone).
    seed : int
        Seed of the random seeds beyond the peaks, the ties and the fit.

    Returns
    -------
    labels : ndarray of uint8, ``H x W`` or ``H x W x D``
    guard : ndarray of bool, ``k``
        The phases to guard (all, when a phase was rebuilt; none otherwise).
    """
    from mdesign.reconstruction.metrics import _window_morphology

    labels = np.asarray(labels)
    out = labels.astype(np.uint8, copy=True)
    exemplars = list(exemplars)[: 1 if labels.ndim == 2 else 3]
    rebuilt = _sheet_phases(exemplars, phases)
    if not rebuilt:
        return out, np.zeros(phases, dtype=bool)
    rng = np.random.default_rng(seed)
    counts = phase_counts(volume_fractions(exemplars, phases)[None], labels.size)[0]
    side = min(*labels.shape, *(min(ex.shape) for ex in exemplars))
    window, r_max = (side,) * 2, max(1, side // 4)
    faces = face_table(labels.shape, periodic)
    unit = 64**labels.ndim
    for j in rebuilt:
        grain = out != j
        want = np.mean(
            [
                _window_morphology((ex != j)[None].astype(np.uint8), window, 2)[0][1]
                for ex in exemplars
            ]
        )
        target = _fit_target(exemplars, j, phases, r_max, exemplar_periodic, counts[j] / out.size)
        fit_kw = {"count": int(counts[j]), "periodic": periodic}
        sizes = grain_sizes(exemplars, j, window) if shape_weight > 0 else None
        best = None
        for n in SHEET_SEEDS:
            n = max(2, round(n * labels.size / unit))
            seeds = _sheet_seeds(grain, n, periodic, rng)
            weights = (
                np.zeros(n)
                if sizes is None
                else _start_weights(labels.shape, seeds, target, sizes, shape_weight, fit_kw)
            )
            _, sheet = _diagram(labels.shape, seeds, weights, periodic, faces, counts[j])
            cells = ~sheet.reshape(labels.shape)
            got = np.mean(
                [_window_morphology(s.astype(np.uint8), window, 2)[0][1] for s in _slices(cells)]
            )
            if best is None or abs(got - want) < best[0]:
                best = (abs(got - want), seeds, weights)
            if got > want:
                break
        fit = fit_tessellation(
            labels.shape,
            best[1],
            target,
            steps=fit_steps,
            weights=best[2],
            sizes=sizes,
            shape_weight=shape_weight,
            seed=int(rng.integers(2**32)),
            **fit_kw,
        )
        cell, sheet = fit.cell.ravel(), fit.sheet.ravel()
        flat = out.ravel()
        # a pixel leaving j takes its cell's most frequent other phase
        votes = np.bincount(
            cell[flat != j] * phases + flat[flat != j], minlength=(cell.max() + 1) * phases
        ).reshape(-1, phases)
        votes[:, j] = -1
        leaving = (flat == j) & ~sheet
        flat[leaving] = np.argmax(votes, 1)[cell[leaving]]
        flat[sheet] = j
    return out, np.ones(phases, dtype=bool)
