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
annealing's tracked phase's, so that the fit and the annealing pull the same way. One
implementation for images and volumes.

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

__all__ = ["SHEET_SEEDS", "Tessellation", "fit_tessellation", "network_sheets"]

SHEET_SEEDS = (2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 90, 128)
"""The seed counts per ``64^3`` voxels (``64^2`` pixels in 2D) that
:func:`network_sheets` tries (scaled by the size)."""

SHEET_SPACING = 0.5
"""The starting seeds are at least this times the mean seed spacing apart."""

FIT_STEP = 0.25
"""A proposal moves a seed by a normal step of this times the mean seed spacing per axis (or
changes its weight by this times the spacing, squared)."""


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
    """

    seeds: np.ndarray
    weights: np.ndarray
    cell: np.ndarray
    sheet: np.ndarray
    error_start: float
    error: float
    accepted: int


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


def fit_tessellation(
    shape: tuple[int, ...],
    seeds: np.ndarray,
    target: np.ndarray,
    *,
    count: int,
    steps: int,
    periodic: bool = D.periodic,
    seed: int,
) -> Tessellation:
    """Fit a power diagram's network to a target ``S2`` by moving one seed at a time.

    Each of ``steps`` proposals moves one random seed by a normal step (:data:`FIT_STEP` times
    the mean spacing ``(N / n)^(1/ndim)``, per axis) or changes its weight (normal, :data:`FIT_STEP`
    times the spacing, squared; half the proposals each); a proposal is kept when the sum of
    squared errors of the network's ``S2`` (lags ``1..R``; every orientation's slices in a
    volume) against ``target`` falls.

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
    seed : int
        Seed of the proposals.

    Returns
    -------
    Tessellation
    """
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng(seed)
    seeds = np.array(seeds, dtype=float)
    weights = np.zeros(len(seeds))
    target = np.asarray(target, float)
    faces = face_table(shape, periodic)
    s2 = _PlaneS2(shape, target.shape[1] - 1)

    def error(s, w):
        cell, sheet = _diagram(shape, s, w, periodic, faces, count)
        return float(((s2(sheet.reshape(shape))[:, 1:] - target[:, 1:]) ** 2).sum()), cell, sheet

    err, cell, sheet = error(seeds, weights)
    start, accepted = err, 0
    step = FIT_STEP * (np.prod(shape) / len(seeds)) ** (1 / len(shape))
    for _ in range(steps):
        k = int(rng.integers(len(seeds)))
        s, w = seeds.copy(), weights.copy()
        if rng.random() < 0.5:
            s[k] += rng.normal(0.0, step, len(shape))
            s[k] = s[k] % shape if periodic else np.clip(s[k], 0, np.array(shape) - 1)
        else:
            w[k] += rng.normal(0.0, step * step)
        e, c, sh = error(s, w)
        if e < err:
            seeds, weights, err, cell, sheet, accepted = s, w, e, c, sh, accepted + 1
    return Tessellation(
        seeds=seeds,
        weights=weights,
        cell=cell.reshape(shape),
        sheet=sheet.reshape(shape),
        error_start=start,
        error=err,
        accepted=accepted,
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


def _slices(mask: np.ndarray) -> list[np.ndarray]:
    """An image as one stack of one, or a volume's slices normal to each axis (stacks)."""
    return [mask[None]] if mask.ndim == 2 else [np.moveaxis(mask, a, 0) for a in range(3)]


def network_sheets(
    labels: np.ndarray,
    exemplars: Sequence[np.ndarray],
    *,
    phases: int,
    periodic: bool = D.periodic,
    exemplar_periodic: bool = D.exemplar_periodic,
    fit_steps: int = 0,
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
    ``S2`` of ``j``. A pixel leaving ``j`` takes its cell's most frequent other phase.
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
        best = None
        for n in SHEET_SEEDS:
            n = max(2, round(n * labels.size / unit))
            seeds = _sheet_seeds(grain, n, periodic, rng)
            _, sheet = _diagram(labels.shape, seeds, np.zeros(n), periodic, faces, counts[j])
            cells = ~sheet.reshape(labels.shape)
            got = np.mean(
                [_window_morphology(s.astype(np.uint8), window, 2)[0][1] for s in _slices(cells)]
            )
            if best is None or abs(got - want) < best[0]:
                best = (abs(got - want), seeds)
            if got > want:
                break
        target = _fit_target(exemplars, j, phases, r_max, exemplar_periodic, counts[j] / out.size)
        fit = fit_tessellation(
            labels.shape,
            best[1],
            target,
            count=int(counts[j]),
            steps=fit_steps,
            periodic=periodic,
            seed=int(rng.integers(2**32)),
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
