"""Separate, round particles in an image whose exemplar has a particle phase.

A particle phase is a set of isolated, convex clusters in a matrix (disks, pores, grains in a
binder). The Gram fit draws them at the right size but merges neighbours into concave blobs and
leaves ragged outlines that the annealing keeps. :func:`shape_particles` splits a merged
particle along the watershed lines of its distance transform (Vincent & Soille) between maxima
about an exemplar particle's radius apart, gives the particles the exemplar's cluster size
distribution (their number from its mean cluster area, their areas from its area quantiles at
their ranks, the phase's pixels kept), then replaces each particle by an ellipse of its area and
second moments (its pixels nearest to the centroid in that metric), or by overlapping disks
around k-means centres (Lloyd) where that ellipse would be thicker than the exemplar's particles,
away from the other particles, the matrix taking the rest. The fractions change by a few
pixels: the annealing that follows restores them exactly, within the cluster guard.
:func:`particle_phases` says which phases of an exemplar are particles; :func:`particle_shapes`
counts an image's interior particles and their solidity (the shape measure of the bench).

2D only.

References
----------
Vincent, L. & Soille, P. "Watersheds in digital spaces: an efficient algorithm based on
immersion simulations", IEEE TPAMI 13, 583 (1991).
Lloyd, S. "Least squares quantization in PCM", IEEE Trans. Inf. Theory 28, 129 (1982).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "particle_phases",
    "particle_shapes",
    "particle_thickness",
    "shape_particles",
    "split_bounds",
]

MIN_AREA = 10
"""Clusters under this many pixels are specks, not particles (neither measured nor shaped)."""
MIN_PARTICLES = 3
"""An exemplar's phase with fewer interior particles than this is not a particle phase."""
SOLIDITY = 0.9
"""A particle phase's median solidity (area / convex hull area) in the exemplar, at least."""
SPACING = 1.0
"""The split particles' centres (distance maxima) are at least this many exemplar radii apart
(the radius of the disk of the exemplar's mean area per cluster)."""
PEAK = 0.5
"""A split particle's centre is at least this many exemplar radii deep (no pieces of a rim)."""
SPLIT_QUANTILE = 0.05
"""A particle is split if its solidity is under this quantile of the solidity of the exemplar's
interior clusters of the phase (8-connected, as split), or its area over the ``1 -`` this
quantile of their areas: a cluster like the exemplar's own (an overlapping pair where the
exemplar has them) stays whole."""


def particle_shapes(labels: np.ndarray, phase: int) -> tuple[int, float, float]:
    """The interior particles of ``phase`` (4-connected clusters, as the metrics count them, of
    at least :data:`MIN_AREA` pixels not touching the edge): their number, median solidity and
    median equivalent radius.

    Parameters
    ----------
    labels : ndarray, ``H x W``
    phase : int

    Returns
    -------
    tuple
        ``(count, median solidity, median radius)`` (``nan`` without particles).
    """
    sol, area, _ = _interior(np.asarray(labels) == phase, connectivity=1)
    if not sol.size:
        return 0, float("nan"), float("nan")
    return sol.size, float(np.median(sol)), float(np.median(np.sqrt(area / np.pi)))


def _interior(mask: np.ndarray, *, connectivity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solidity, area and depth (the distance from the deepest pixel to the rest of the image) of
    ``mask``'s clusters (``connectivity`` 1: 4-connected, 2: 8-connected) of at least
    :data:`MIN_AREA` pixels that do not touch the image's edge."""
    from scipy import ndimage
    from skimage.measure import label, regionprops

    h, w = mask.shape
    depth_map = ndimage.distance_transform_edt(mask)
    sol, area, depth = [], [], []
    for r in regionprops(label(mask, connectivity=connectivity), intensity_image=depth_map):
        y0, x0, y1, x1 = r.bbox
        if r.area < MIN_AREA or y0 == 0 or x0 == 0 or y1 == h or x1 == w:
            continue
        sol.append(r.solidity)
        area.append(r.area)
        depth.append(r.intensity_max)
    return tuple(np.array(v, dtype=float) for v in (sol, area, depth))


def particle_phases(exemplar: np.ndarray, phases: int) -> list[int]:
    """The particle phases of an exemplar: not a matrix, while another phase is one
    (:func:`~mdesign.reconstruction.annealing.is_matrix`), with at least :data:`MIN_PARTICLES`
    interior particles of median solidity at least :data:`SOLIDITY`."""
    from mdesign.reconstruction.annealing import is_matrix

    exemplar = np.asarray(exemplar)
    if exemplar.ndim != 2:
        return []
    matrix = [is_matrix(exemplar, j) for j in range(phases)]
    out = []
    for j in range(phases):
        if matrix[j] or not any(matrix):
            continue
        n, sol, _ = particle_shapes(exemplar, j)
        if n >= MIN_PARTICLES and sol >= SOLIDITY:
            out.append(j)
    return out


def split_bounds(exemplar: np.ndarray, phase: int) -> tuple[float, float, float, float]:
    """The solidity under which, and the area over which, a cluster of ``phase`` is split, and
    the exemplar's small cluster area: the :data:`SPLIT_QUANTILE` quantile of the solidity, the
    ``1 -`` :data:`SPLIT_QUANTILE` and the :data:`SPLIT_QUANTILE` quantiles of the area of the
    exemplar's interior clusters of the phase (8-connected, at least :data:`MIN_AREA` pixels, not
    touching the edge).

    Parameters
    ----------
    exemplar : ndarray, ``H x W``
    phase : int

    Returns
    -------
    tuple
        ``(solidity, area, small area)``; ``(0, inf, 0)`` (nothing split) without interior
        clusters.
    """
    sol, area, _ = _interior(np.asarray(exemplar) == phase, connectivity=2)
    if not sol.size:
        return 0.0, float("inf"), 0.0, 0.0
    return (
        float(np.quantile(sol, SPLIT_QUANTILE)),
        float(np.quantile(area, 1 - SPLIT_QUANTILE)),
        float(np.quantile(area, SPLIT_QUANTILE)),
        float(np.mean(area)),
    )


def particle_thickness(exemplar: np.ndarray, phase: int) -> float:
    """The radius no shaped particle of ``phase`` exceeds: the ``1 -`` :data:`SPLIT_QUANTILE`
    quantile, over the exemplar's interior clusters of the phase (8-connected), of the distance
    from a cluster's deepest pixel to the matrix, less half a pixel (pixel centre to edge);
    ``inf`` without interior clusters."""
    _, _, depth = _interior(np.asarray(exemplar) == phase, connectivity=2)
    if not depth.size:
        return float("inf")
    return float(np.quantile(depth, 1 - SPLIT_QUANTILE)) - 0.5


def _split(mask: np.ndarray, radius: float, bounds: tuple[float, ...]) -> np.ndarray:
    """Labels (0 outside) of ``mask``'s particles (8-connected), each of solidity under
    ``bounds[0]`` or area over ``bounds[1]`` (:func:`split_bounds`) split along the watershed
    lines between its deepest distance maxima, as many as the exemplar's clusters of mean
    ``area`` in its area (at least two), at least :data:`SPACING` ``radius`` apart and
    :data:`PEAK` ``radius`` deep."""
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.measure import label, regionprops
    from skimage.segmentation import watershed

    comp = label(mask, connectivity=2)
    split_of = np.zeros(comp.max() + 1, bool)
    regions = regionprops(comp)
    for r in regions:
        split_of[r.label] = r.solidity < bounds[0] or r.area > bounds[1]
    split = split_of[comp] & mask
    dist = ndimage.distance_transform_edt(split)
    markers = np.zeros(mask.shape, np.int64)
    for r in regions:
        if not split_of[r.label]:
            continue
        y0, x0, y1, x1 = r.bbox
        sl = (slice(y0, y1), slice(x0, x1))
        peaks = peak_local_max(
            np.where(comp[sl] == r.label, dist[sl], 0.0),
            min_distance=max(1, round(SPACING * radius)),
            threshold_abs=PEAK * radius,
            num_peaks=max(2, round(r.area / bounds[3])),
            exclude_border=False,
        )
        first = markers.max() + 1
        markers[sl][tuple(peaks.T)] = np.arange(first, first + len(peaks))
    cut = watershed(-dist, markers, mask=split, watershed_line=True)
    # a marker-less piece (rare: a plateau) keeps its pixels as one particle
    rest, _ = ndimage.label(split & (cut == 0) & ~_line(cut, split))
    cut[rest > 0] = rest[rest > 0] + cut.max()
    whole = mask & ~split
    cut[whole] = comp[whole] + cut.max()
    return cut


def _line(cut: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The watershed line pixels: in ``mask``, unlabelled, next to two particles."""
    from scipy import ndimage

    lo = ndimage.grey_erosion(np.where(cut > 0, cut, np.iinfo(np.int64).max), size=3)
    hi = ndimage.maximum_filter(cut, size=3)
    return mask & (cut == 0) & (hi > 0) & (lo < hi)


def _centres(coords: np.ndarray, axis: np.ndarray, k: int, iterations: int = 10) -> np.ndarray:
    """``k`` k-means centres of ``coords`` (``n x 2``), started at the pixels at the quantiles of
    their projections on ``axis`` (Lloyd's iterations: deterministic)."""
    t = coords @ axis
    order = np.argsort(t, kind="stable")
    centres = coords[order[((np.arange(k) + 0.5) / k * len(t)).astype(int)]].astype(float)
    for _ in range(iterations):
        near = ((coords[:, None, :] - centres[None]) ** 2).sum(2).argmin(1)
        for i in range(k):
            if np.any(near == i):
                centres[i] = coords[near == i].mean(0)
    return centres


def _round(
    cut: np.ndarray,
    areas: dict[int, int] | None = None,
    thickness: float = np.inf,
    single: float = np.inf,
) -> np.ndarray:
    """Each particle of ``cut`` replaced by ``areas[label]`` pixels (None: its own area), the
    nearest to its centroid in the metric of its second moments (an ellipse of that area and of
    its orientation and elongation), not touching (8-neighbours) another particle nor inside its
    matrix pockets; the largest first. A particle of area 0 is removed. Where that ellipse's
    minor semi-axis would exceed ``thickness``, the pixels nearest to any of as many centres as
    ``single`` (an exemplar particle's area) fits in the area (at least two; the k-means centres
    of the particle's pixels) instead: overlapping disks, as thin as the exemplar's particles,
    where the exemplar has overlapping groups."""
    from scipy import ndimage
    from skimage.measure import regionprops

    out = np.zeros(cut.shape, bool)
    taken = np.zeros(cut.shape, np.int64)
    h, w = cut.shape
    regions = regionprops(cut)
    size = {r.label: int(r.area) if areas is None else int(areas[r.label]) for r in regions}
    for r in sorted(regions, key=lambda r: -size[r.label]):
        if size[r.label] <= 0:
            continue
        m = int(np.ceil(np.sqrt(max(r.area, size[r.label]) / np.pi))) + 2
        y0, x0, y1, x1 = r.bbox
        sl = (slice(max(0, y0 - m), min(h, y1 + m)), slice(max(0, x0 - m), min(w, x1 + m)))
        others = (taken[sl] > 0) | ((cut[sl] > 0) & (cut[sl] != r.label))
        own = cut[sl] == r.label
        free = ~ndimage.binary_dilation(others, np.ones((3, 3), bool))
        free &= ~(ndimage.binary_fill_holes(own) & ~own)  # the matrix's pockets stay
        iy, ix = np.nonzero(free)
        c = r.coords - np.array([sl[0].start, sl[1].start])
        mu = c.mean(0)
        cov = np.cov(c.T) + np.eye(2) / 12  # a pixel's own spread: never singular
        d = np.stack([iy - mu[0], ix - mu[1]], 1)
        lam, vec = np.linalg.eigh(cov)  # ascending: the major axis last
        rho = np.sqrt(size[r.label] / np.pi * np.sqrt(lam[0] / lam[1]))  # the minor semi-axis
        if rho > thickness:
            k = max(2, round(size[r.label] / single))
            centres = _centres(c, vec[:, 1], k)
            dist = ((np.stack([iy, ix], 1)[:, None, :] - centres[None]) ** 2).sum(2).min(1)
        else:
            dist = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
        # the nearest first; ties to the particle's own pixels
        keep = np.lexsort((~own[iy, ix], dist))[: size[r.label]]
        shape = np.zeros(own.shape, bool)
        shape[iy[keep], ix[keep]] = True
        # no new speck of matrix inside it (a pocket the lobes close by chance)
        holes, _ = ndimage.label(ndimage.binary_fill_holes(shape) & ~shape)
        shape |= (np.bincount(holes.ravel()) < MIN_AREA)[holes] & (holes > 0) & free
        out[sl] |= shape
        taken[sl][shape] = r.label
    return out


def _fitted_areas(
    cut: np.ndarray, exemplar_areas: np.ndarray, total: int, inner: tuple[slice, slice]
) -> dict[int, int]:
    """Areas for the particles of ``cut`` that follow the exemplar's cluster size distribution.

    The particles whose centroid lies in the ``inner`` window (the image; the rest of ``cut`` is
    its wrap padding) are counted once each. As many as the exemplar's mean cluster area fits in
    ``total`` (the phase's pixels in the image less its specks) are kept, the largest; the kept
    particles' areas are the exemplar's area quantiles at their ranks (the smallest gets the
    smallest quantile), scaled so that they sum to ``total``. A particle of the padding takes the
    area of the counted particle whose centroid is the same on the torus (within 1.5 px), or its
    own where none is (a piece cut by the padding's outer edge)."""
    from skimage.measure import regionprops

    (ys, xs) = inner
    shape = np.array([ys.stop - ys.start, xs.stop - xs.start])
    origin = np.array([ys.start, xs.start])
    regions = regionprops(cut)
    centre = {r.label: (np.array(r.centroid) - origin) for r in regions}
    counted = sorted(
        (r for r in regions if np.all((centre[r.label] >= 0) & (centre[r.label] < shape))),
        key=lambda r: (r.area, r.label),
    )
    n = min(len(counted), max(1, round(total / float(np.mean(exemplar_areas)))))
    kept, dropped = counted[len(counted) - n :], counted[: len(counted) - n]
    q = np.quantile(exemplar_areas, (np.arange(n) + 0.5) / n) if n else np.zeros(0)
    q = q * total / q.sum() if n else q
    # integer areas that sum to the total exactly (the largest remainders round up)
    base = np.floor(q).astype(int)
    base[np.argsort(base - q)[: total - base.sum()]] += 1
    areas = {r.label: int(a) for r, a in zip(kept, base, strict=True)}
    areas |= {r.label: 0 for r in dropped}
    twins = np.array([centre[r.label] for r in counted]).reshape(-1, 2)
    labels_of = [r.label for r in counted]
    for r in regions:
        if r.label in areas:
            continue
        d = np.abs(twins - centre[r.label] % shape)
        d = np.minimum(d, shape - d).sum(1)
        i = int(np.argmin(d)) if d.size else -1
        areas[r.label] = areas[labels_of[i]] if i >= 0 and d[i] < 1.5 else int(r.area)
    return areas


def shape_particles(
    labels: np.ndarray,
    exemplar: np.ndarray,
    *,
    phases: int,
    periodic: bool,
    split: bool = True,
) -> np.ndarray:
    """Split merged particles and round every particle of an image's particle phases, at the
    exemplar's particle sizes.

    For each phase of :func:`particle_phases` of the exemplar: the phase's clusters (of at least
    :data:`MIN_AREA` pixels, 8-connected) more concave or larger than nearly all the exemplar's own
    (:func:`split_bounds`: an overlapping pair stays whole where the exemplar has such pairs) are
    split along the watershed lines of their distance transform between their deepest maxima, as
    many as the exemplar's interior clusters of mean area in theirs (at least two), at least
    :data:`SPACING` radii apart (the radius of a disk of the exemplar's mean area per cluster).
    The particles then take the exemplar's cluster size distribution: as many of the largest as
    the exemplar's mean interior cluster area fits in the phase's pixels are kept, with the
    exemplar's area quantiles at their ranks, scaled to the phase's pixels (the smaller pieces
    go to the matrix). Each is replaced by that many pixels nearest to its centroid in the metric
    of its second moments (an ellipse of its orientation; overlapping disks around k-means
    centres where that ellipse would be thicker than :func:`particle_thickness`, as many as the
    exemplar's median cluster area fits, so a group stays a group), at least one pixel away
    from every other particle and outside the matrix's pockets within it (the largest first); the
    pixels it leaves go to the exemplar's matrix phase. ``split=False`` rounds each particle at
    its own area instead (no split, none removed; the pass after an annealing of the shaped
    image). A periodic image is shaped with a wrap padding (particles across its edges are
    whole). Specks under :data:`MIN_AREA` stay as they are. The fractions change by a few
    pixels: :func:`~mdesign.reconstruction.annealing.anneal_fractions` restores them.

    Parameters
    ----------
    labels : ndarray, ``H x W``
    exemplar : ndarray, ``H' x W'``
    phases : int
        k.
    periodic : bool
        ``labels`` wraps around (the exemplar's particles are measured in it as a window).
    split : bool
        Split merged particles and fit the sizes to the exemplar's (False: round only).

    Returns
    -------
    ndarray, ``H x W``
        A new label image (``labels`` itself, copied, where the exemplar has no particle phase).
    """
    from scipy import ndimage

    from mdesign.reconstruction.annealing import is_matrix
    from mdesign.reconstruction.metrics import cluster_components

    labels = np.asarray(labels)
    exemplar = np.asarray(exemplar)
    if labels.ndim != 2:
        raise ValueError("shape_particles takes an image (H x W)")
    out = labels.copy()
    h, w = out.shape
    for j in particle_phases(exemplar, phases):
        area = float((exemplar == j).sum()) / cluster_components(exemplar == j)[1]
        radius = float(np.sqrt(area / np.pi))
        matrix = next(m for m in range(phases) if is_matrix(exemplar, m))
        mask = out == j
        pad = max(8, min(out.shape) // 4) if periodic else 0
        inner = (slice(pad, pad + h), slice(pad, pad + w))
        big = np.pad(mask, pad, mode="wrap") if pad else mask
        comp, _ = ndimage.label(big, np.ones((3, 3), bool))
        specks = (np.bincount(comp.ravel()) < MIN_AREA)[comp] & big
        _, exemplar_areas, _ = _interior(exemplar == j, connectivity=2)
        limits = particle_thickness(exemplar, j), float(np.median(exemplar_areas))
        if split:
            cut = _split(big & ~specks, radius, split_bounds(exemplar, j))
            total = int(mask.sum() - specks[inner].sum())
            shaped = _round(cut, _fitted_areas(cut, exemplar_areas, total, inner), *limits)
        else:
            cut, _ = ndimage.label(big & ~specks, np.ones((3, 3), bool))
            shaped = _round(cut, None, *limits)
        shaped = (shaped | specks)[inner]
        out[mask & ~shaped] = matrix
        out[shaped & ~mask & (out == matrix)] = j
    return out
