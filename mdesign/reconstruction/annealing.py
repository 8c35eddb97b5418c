"""Simulated annealing of a label image or volume to exact phase fractions with a matching ``S2``.

The decoded reconstruction's fractions are close to the exemplars' but not exact. This moves labels
at interfaces until every phase count is the target fraction times the number of pixels (voxels),
rounded as in :func:`mdesign.grf.phase_counts` (so within one pixel), while keeping the two-point
correlation close to the exemplar's: an image's ``S2``, or a volume's ``S2`` in the slices of each
orientation against the exemplar for that orientation (Yeong & Torquato 1998). The energy compares
``S2`` (lag by lag, or radial averages with ``radial``, per direction sector with ``sectors``) and
optionally a histogram of neighbourhood classes (``neighbour_weight``; in a volume, each slice
plane's classes) and the variance of block fractions (``uniformity_weight``), each updated per move.

:func:`anneal_fractions` is one chain for images and volumes; what depends on the dimension is in
:mod:`~mdesign.reconstruction.lags` (the lag tables and the neighbour tables). Stage 1 flips
interface pixels greedily until the counts are exact; 2 swaps pairs of interface pixels by
Metropolis (counts kept), ``batch`` proposals evaluated at once, either discarding a batch after an
accepted swap or walking past it (``walk``); 3 (``surface``) shortens an interface longer than the
exemplar's. The cluster guard (``keep_clusters``, :func:`connectivity_number`) refuses moves that
would split or start a cluster; :func:`remove_small_clusters` and :func:`join_network_fragments`
are the cleanup between two annealings.

The energy, each stage and the guard are described in the reconstruction guide ("How each stage
works", ``docs/guide/reconstruction.md``); their costs are on the performance page.

References
----------
Yeong, C. L. Y. & Torquato, S. "Reconstructing random media", Phys. Rev. E 57, 495 (1998); "II.
Three-dimensional media from two-dimensional cuts", Phys. Rev. E 58, 224 (1998).
Kirkpatrick, S., Gelatt, C. D. & Vecchi, M. P. "Optimization by simulated annealing", Science
220, 671 (1983).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from mdesign.config import RECONSTRUCTION_DEFAULTS as D
from mdesign.errors import InputError
from mdesign.grf import phase_counts
from mdesign.reconstruction.lags import (
    ImageLags,
    VolumeLags,
    face_table,
    n_faces,
    neighbour_table,
    plane_columns,
)
from mdesign.reconstruction.loss import s2_window, s2_window_local_means, uniformity_blocks
from mdesign.reconstruction.metrics import DIRECTIONAL_LAGS

__all__ = [
    "VOLUME_MAX_LAG",
    "AnnealingResult",
    "anneal_fractions",
    "connectivity_number",
    "interface_density",
    "interface_edges",
    "is_matrix",
    "is_matrix_material",
    "is_network",
    "join_network_fragments",
    "keeps_clusters",
    "remove_small_clusters",
    "volume_fractions",
]

VOLUME_MAX_LAG = 16
"""Recommended ``max_lag`` of a volume's annealing: a move costs about ``1.5 pi R^2`` lags (three
planes), so ``R = 16`` is ~1200 lags per voxel flip."""


@dataclass(frozen=True)
class AnnealingResult:
    """Labels with exact fractions, and what the annealing did.

    Attributes
    ----------
    labels : ndarray of uint8, ``H x W``
    energy_initial, energy_fractions, energy_final : float
        ``E`` before, after the fraction stage, and at the end.
    flips : int
        Pixels flipped to fix the fractions.
    proposals, accepted : int
        Swap proposals made and accepted.
    target_counts : ndarray, ``k``
        The pixel count of each phase, which ``labels`` has exactly.
    surface_swaps : int
        Swaps of the surface stage (stage 3).
    """

    labels: np.ndarray
    energy_initial: float
    energy_fractions: float
    energy_final: float
    flips: int
    proposals: int
    accepted: int
    target_counts: np.ndarray
    surface_swaps: int = 0


# per slice plane (an image has one, a volume three), its 8-ring in turn (E, NE, N, NW, W, SW, S,
# SE) as columns of the neighbour table
_RINGS = {ndim: np.array(plane_columns(ndim)) for ndim in (2, 3)}


def connectivity_number(flat: np.ndarray, nbr: np.ndarray, p: np.ndarray, phase) -> np.ndarray:
    """Yokoi's 4-connectivity number of pixels ``p`` for ``phase``, in each slice plane through it.

    The number of 4-connected runs of ``phase`` through the edge neighbours of ``p`` on its 8-ring
    in the plane, ``sum over the edge neighbours k of x_k (1 - x_{k+1} x_{k+2})`` (ring order,
    ``x`` the indicator of ``phase``): 0 when no edge neighbour is of ``phase``, 1 when they are all
    joined around ``p``, 2 or more when ``p`` is the only local link between them. An image has one
    plane; a voxel is in three slices, one normal to each axis.

    Parameters
    ----------
    flat : ndarray of int, ``N``
    nbr : ndarray of int, ``N x 8`` or ``N x 26``
        :func:`~mdesign.reconstruction.lags.neighbour_table`.
    p : ndarray of int, ``B``
    phase : int or ndarray of int, ``B``

    Returns
    -------
    ndarray of int, ``B`` (an image) or ``B x 3`` (a volume: the planes normal to axes 0, 1, 2)
    """
    ring, inside = _ring(flat, nbr, p)
    return _runs(ring, inside, phase, nbr)


def _ring(flat: np.ndarray, nbr: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the 8-rings of pixels ``p`` in each slice plane (``B x planes x 8``), and
    whether each ring pixel is inside the image (outside, a pixel is its own neighbour)."""
    ring = nbr[p][:, _RINGS[2 if nbr.shape[1] == 8 else 3]]
    return flat[ring], ring != p[:, None, None]


def _runs(ring: np.ndarray, inside: np.ndarray, phase, nbr: np.ndarray) -> np.ndarray:
    """:func:`connectivity_number` from :func:`_ring`: for the edge neighbours ``k`` (even ring
    places), ``x_k (1 - x_{k+1} x_{k+2})``, summed."""
    x = (ring == np.asarray(phase).reshape(-1, 1, 1)) & inside
    out = (x[:, :, 0::2] & ~(x[:, :, 1::2] & x[:, :, _NEXT_EDGE])).sum(2)
    return out[:, 0] if nbr.shape[1] == 8 else out


_NEXT_EDGE = np.array([2, 4, 6, 0])  # the ring place two after each edge neighbour's


def keeps_clusters(
    flat: np.ndarray, nbr: np.ndarray, p: np.ndarray, new: np.ndarray, guard: np.ndarray
) -> np.ndarray:
    """Whether flipping each pixel (voxel) ``p`` to ``new`` adds no cluster to a guarded phase.

    A flip from ``a`` to ``b`` may split a cluster of ``a`` only if ``p`` joins two or more runs
    of ``a`` around it (connectivity number >= 2), and starts a new cluster of ``b`` only if no
    edge neighbour is of ``b`` (number 0). Both are refused for the phases with ``guard``; the
    flip may still remove a cluster (a lone pixel) or merge two. The test is local, so it is
    sufficient: an allowed flip never raises a guarded phase's count of 4-connected clusters in
    the image, or in any slice of a volume (the test holds in each of the three slices through
    the voxel, the only slices the flip changes).

    Parameters
    ----------
    flat : ndarray of int, ``N``
    nbr : ndarray of int, ``N x 8`` or ``N x 26``
    p, new : ndarray of int, ``B``
    guard : ndarray of bool, ``k``

    Returns
    -------
    ndarray of bool, ``B``
    """
    old = flat[p]
    ring, inside = _ring(flat, nbr, p)
    split = (_runs(ring, inside, old, nbr) <= 1).reshape(p.size, -1).all(1)
    start = (_runs(ring, inside, new, nbr) >= 1).reshape(p.size, -1).all(1)
    return (~guard[old] | split) & (~guard[new] | start)


def _swap_keeps_clusters(flat, nbr, p, q, lp, lq, guard) -> np.ndarray:
    """:func:`keeps_clusters` of both flips of swapping ``p`` (labels ``lp``) and ``q`` (``lq``),
    in one call: ``B``."""
    both = keeps_clusters(flat, nbr, np.concatenate([p, q]), np.concatenate([lq, lp]), guard)
    return both[: p.size] & both[p.size :]


def _plane_columns(ndim: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per slice plane, the columns of the neighbour table of its 4 edge and its 4 corner
    neighbours (2D: one plane, columns 0-3 and 4-7; 3D: the planes normal to axes 0, 1, 2)."""
    if ndim == 2:
        return [(np.arange(4), np.arange(4, 8))]
    steps = [np.array(s) for s in np.ndindex(3, 3, 3) if np.count_nonzero(np.array(s) - 1)]
    faces = sorted(
        [s - 1 for s in steps if np.count_nonzero(s - 1) == 1],
        key=lambda s: (np.flatnonzero(s)[0], s.sum()),
    )
    others = sorted(
        [tuple(s - 1) for s in steps if np.count_nonzero(s - 1) >= 2],
        key=lambda s: (np.count_nonzero(s), s),
    )
    table = [tuple(s) for s in faces] + others
    out = []
    for axis in range(3):
        cols = [i for i, s in enumerate(table) if s[axis] == 0]
        edge = np.array([i for i in cols if np.count_nonzero(table[i]) == 1])
        corner = np.array([i for i in cols if np.count_nonzero(table[i]) == 2])
        out.append((edge, corner))
    return out


class _NeighbourState:
    """The neighbourhood-class histogram of a label image (or of a volume's slice planes),
    updated swap by swap.

    A pixel's class is its phase and how many of its 4 edge and of its 4 corner neighbours are of
    its phase (``25 k`` classes); a voxel has one class in each of its three slice planes, and
    the histogram is the three planes' histograms side by side (``3 x 25 k``)."""

    def __init__(self, labels: np.ndarray, phases: int, periodic: bool) -> None:
        self.phases = phases
        # neighbour table (faces first); outside the image (not periodic) a pixel is its own
        # neighbour, so the edge counts as the same phase
        self.nbr = neighbour_table(labels.shape, periodic)
        self.planes = _plane_columns(labels.ndim)
        self.n_classes = 25 * phases * len(self.planes)
        self.hist = self.histogram(labels.ravel())

    def classes(self, flat: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Classes (``idx.shape x planes``) of pixels ``idx`` of the flat labels ``flat``."""
        same = flat[self.nbr[idx]] == flat[idx][..., None]
        return self._classes(flat[idx], same)

    def _classes(self, centre: np.ndarray, same: np.ndarray) -> np.ndarray:
        out = [
            a * 25 * self.phases + centre * 25 + same[..., e].sum(-1) * 5 + same[..., c].sum(-1)
            for a, (e, c) in enumerate(self.planes)
        ]
        return np.stack(out, -1)

    def histogram(self, flat: np.ndarray) -> np.ndarray:
        cls = self.classes(flat, np.arange(flat.size))
        return np.bincount(cls.ravel(), minlength=self.n_classes) / flat.size

    def swap_delta(self, flat: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Histogram change (``B x classes``) of swapping the labels of pixels ``p`` and ``q``."""
        b = p.size
        aff = np.concatenate([p[:, None], self.nbr[p], q[:, None], self.nbr[q]], 1)
        order = np.sort(aff, 1)
        dup = np.zeros_like(order, dtype=bool)
        dup[:, 1:] = order[:, 1:] == order[:, :-1]
        aff = order
        ring = self.nbr[aff]
        now_aff, now_ring = flat[aff], flat[ring]
        old = self._classes(now_aff, now_ring == now_aff[..., None])
        # the labels after the swap, at the affected pixels and at their neighbours
        lp, lq = flat[p][:, None], flat[q][:, None]

        def new_label(idx, out):
            shape = (b,) + (1,) * (idx.ndim - 1)
            pp, qq = p.reshape(shape), q.reshape(shape)
            out = np.where(idx == pp, lq.reshape(shape), out)
            return np.where(idx == qq, lp.reshape(shape), out)

        centre = new_label(aff, now_aff)
        same = new_label(ring, now_ring) == centre[..., None]
        new = self._classes(centre, same)
        keep = np.broadcast_to(~dup[..., None], new.shape)
        rows = np.broadcast_to(np.arange(b)[:, None, None] * self.n_classes, new.shape)[keep]
        size = b * self.n_classes
        delta = np.bincount(rows + new[keep], minlength=size) - np.bincount(
            rows + old[keep], minlength=size
        )
        return delta.reshape(b, self.n_classes) / flat.size


NETWORK_SHARE = 0.9
"""A phase is a network when the exemplar's largest cluster holds this share of its pixels..."""
NETWORK_CLUSTERS = 5
"""... and it has at most this many clusters (in the exemplar as a window, per its area)."""

MATRIX_SHARE = 0.95
"""Share of a matrix phase in its largest cluster (:func:`is_matrix`; ``anneal.volume_matrix``)."""
MATRIX_MINORITY = 0.1
"""Share of the image each other phase of a matrix material holds at least
(:func:`is_matrix_material`): below it a phase is sparse (particles in a matrix)."""

BRIDGE_MIN_SIZE = 5
"""Fragments of a network phase of at least this many pixels are joined, smaller ones left to
:func:`remove_small_clusters`."""


def _fragments(comp: np.ndarray, n: int) -> tuple[int, np.ndarray]:
    """The largest of ``n`` clusters (``comp``: 0 outside, ``1..n``) and the others of at least
    :data:`BRIDGE_MIN_SIZE` pixels (the fragments to join to it)."""
    sizes = np.bincount(comp.ravel(), minlength=n + 1)
    sizes[0] = 0
    main = int(np.argmax(sizes))
    frags = np.flatnonzero(sizes >= BRIDGE_MIN_SIZE)
    return main, frags[frags != main]


def _path4(y0: int, x0: int, y1: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
    """A 4-connected staircase of pixels from ``(y0, x0)`` to ``(y1, x1)`` along the segment."""
    ys, xs = [y0], [x0]
    y, x = y0, x0
    ny, nx = abs(y1 - y0), abs(x1 - x0)
    sy, sx = np.sign(y1 - y0), np.sign(x1 - x0)
    while (y, x) != (y1, x1):
        # step along the axis that lags behind the segment the most
        if ((abs(y - y0) + 0.5) * nx < (abs(x - x0) + 0.5) * ny and y != y1) or x == x1:
            y += sy
        else:
            x += sx
        ys.append(y)
        xs.append(x)
    return np.array(ys), np.array(xs)


def is_network(exemplar: np.ndarray, phase: int) -> bool:
    """Whether ``phase`` forms one network in the exemplar (grain boundaries, a matrix).

    At most :data:`NETWORK_CLUSTERS` clusters (4-connected, in the image), the largest holding
    :data:`NETWORK_SHARE` of the phase's pixels.
    """
    from mdesign.reconstruction.metrics import cluster_components

    comp, n = cluster_components(np.asarray(exemplar) == phase)
    if n == 0:
        return False
    sizes = np.bincount(comp.ravel())[1:]
    return n <= NETWORK_CLUSTERS and sizes.max() >= NETWORK_SHARE * sizes.sum()


def is_matrix(exemplar: np.ndarray, phase: int) -> bool:
    """Whether ``phase`` is a matrix in the exemplar: at least half of it, the largest cluster
    (4-connected, in the image) holding :data:`MATRIX_SHARE` of the phase's pixels."""
    from mdesign.reconstruction.metrics import cluster_components

    mask = np.asarray(exemplar) == phase
    if 2 * mask.sum() < mask.size:
        return False
    comp, _ = cluster_components(mask)
    sizes = np.bincount(comp.ravel())[1:]
    return bool(sizes.max() >= MATRIX_SHARE * sizes.sum())


def is_matrix_material(exemplar: np.ndarray, phases: int) -> bool:
    """Whether the exemplar is a matrix material such as a porous rock: one phase a matrix
    (:func:`is_matrix`) and every other phase at least :data:`MATRIX_MINORITY` of the image
    (pores or grains, not sparse particles); ``anneal.volume_matrix``."""
    ex = np.asarray(exemplar)
    shares = np.bincount(ex.ravel(), minlength=phases)[:phases] / ex.size
    for j in range(phases):
        others = np.delete(shares, j)
        if others.min(initial=1.0) >= MATRIX_MINORITY and is_matrix(ex, j):
            return True
    return False


def join_network_fragments(
    labels: np.ndarray, exemplar: np.ndarray | Sequence[np.ndarray], *, phases: int
) -> np.ndarray:
    """Join the fragments of a network phase to its largest cluster by straight bridges.

    A thin phase that forms one network in the exemplar (at most :data:`NETWORK_CLUSTERS`
    clusters, the largest with :data:`NETWORK_SHARE` of its pixels: grain boundaries) comes out
    of the decoding in pieces, and dissolving the pieces (:func:`remove_small_clusters`) would
    leave no network. Instead,
    while the phase has more clusters than the exemplar (both counted in the image as a
    window), the fragment of at least :data:`BRIDGE_MIN_SIZE` pixels nearest to the largest
    cluster is joined to it by a 4-connected segment between their nearest pixels (Prim's
    algorithm: the shortest bridges first). The bridges add pixels to the phase (and may close
    cells of the others, as the exemplar's network does); :func:`anneal_fractions` restores the
    fractions.

    A volume (``H x W x D``, with its 3 exemplars) joins the fragments of a phase that is a
    network in every exemplar into one 3D cluster (face-connected), all the fragments of a pass
    at once, each by a 6-connected staircase to the main cluster's nearest voxel.

    Parameters
    ----------
    labels : ndarray, ``H x W`` or ``H x W x D``
    exemplar : ndarray, ``H' x W'`` (a sequence of 3 for a volume)
    phases : int
        k.

    Returns
    -------
    ndarray, the shape of ``labels``
        A new label image (volume) with the bridges.
    """
    if np.ndim(labels) == 3:
        return _join_volume_fragments(labels, exemplar, phases)
    from scipy import ndimage

    from mdesign.reconstruction.metrics import cluster_components

    out = np.array(labels, copy=True)
    scale = labels.size / exemplar.size
    for j in range(phases):
        if not is_network(exemplar, j):
            continue
        n_ex = cluster_components(exemplar == j)[1]
        target = max(1, round(n_ex * scale))
        while True:
            comp, n = cluster_components(out == j)
            if n <= target:
                break
            main, frags = _fragments(comp, n)
            if frags.size == 0:
                break
            dist, (iy, ix) = ndimage.distance_transform_edt(comp != main, return_indices=True)
            best = ndimage.minimum_position(dist, comp, frags)
            d = [dist[b] for b in best]
            y0, x0 = best[int(np.argmin(d))]
            ys, xs = _path4(int(y0), int(x0), int(iy[y0, x0]), int(ix[y0, x0]))
            out[ys, xs] = j
    return out


def _path_nd(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """A face-connected staircase of voxels from ``a`` to ``b`` along the segment (each step
    along the axis that lags behind the segment the most)."""
    a, b = np.asarray(a), np.asarray(b)
    n, sign = np.abs(b - a), np.sign(b - a)
    c = a.copy()
    pts = [c.copy()]
    while (c != b).any():
        ahead = np.where(c != b, (np.abs(c - a) + 0.5) / np.maximum(n, 1), np.inf)
        axis = int(np.argmin(ahead))
        c[axis] += sign[axis]
        pts.append(c.copy())
    return tuple(np.array(pts).T)


VOLUME_JOIN_PASSES = 20
"""Passes of the volume's network joining (each bridges every fragment at once)."""


def _join_volume_fragments(labels, exemplars, phases) -> np.ndarray:
    """:func:`join_network_fragments` for a volume (its docstring)."""
    from scipy import ndimage

    out = np.array(labels, copy=True)
    for j in range(phases):
        if not all(is_network(ex, j) for ex in exemplars):
            continue
        for _ in range(VOLUME_JOIN_PASSES):
            comp, n = ndimage.label(out == j)
            if n <= 1:
                break
            main, frags = _fragments(comp, n)
            if frags.size == 0:
                break
            dist, near = ndimage.distance_transform_edt(comp != main, return_indices=True)
            for start in ndimage.minimum_position(dist, comp, frags):
                end = near[(slice(None), *start)]
                out[_path_nd(np.array(start), end)] = j
    return out


def _sheet_phases(exemplars, phases) -> list[int]:
    """The phases :func:`~.cells.network_sheets` rebuilds: a network in every exemplar, and thin
    (under half of each exemplar)."""
    return [
        j
        for j in range(phases)
        if all(is_network(ex, j) and 2 * (ex == j).sum() < ex.size for ex in exemplars)
    ]


def _remove_small_volume_clusters(labels, exemplars, phases) -> np.ndarray:
    """:func:`remove_small_clusters` for a volume (its docstring)."""
    from scipy import ndimage

    out = np.array(labels, copy=True)
    faces = face_table(out.shape, periodic=False)
    for j in range(phases):
        ex_density = np.mean([ndimage.label(ex == j)[1] / ex.size for ex in exemplars])
        if _slice_clusters(out, j) <= ex_density:
            continue
        areas = np.concatenate(
            [np.bincount(ndimage.label(ex == j)[0].ravel())[1:] for ex in exemplars]
        )
        if areas.size == 0:
            continue
        least = float(np.median(areas)) ** 1.5
        comp, n = ndimage.label(out == j)
        if n <= 1:
            continue
        sizes = np.bincount(comp.ravel(), minlength=n + 1)
        sizes[0] = 0
        small = (sizes < least) & (np.arange(n + 1) != int(np.argmax(sizes)))
        small[0] = False
        if not small.any():
            continue
        inside = np.flatnonzero(small[comp.ravel()])
        flat, cflat = out.ravel(), comp.ravel()
        nbr = faces[inside].ravel()
        src = np.repeat(cflat[inside], faces.shape[1])
        outer = cflat[nbr] != src
        votes = np.zeros((n + 1, phases))
        np.add.at(votes, (src[outer], flat[nbr][outer]), 1.0)
        votes[:, j] = -1  # never its own phase
        flat[inside] = np.argmax(votes, 1)[cflat[inside]]
    return out


def remove_small_clusters(
    labels: np.ndarray,
    exemplar: np.ndarray | Sequence[np.ndarray],
    *,
    phases: int,
    periodic: bool = D.periodic,
) -> np.ndarray:
    """Dissolve the surplus of small clusters, so none is left beyond the exemplar's.

    For each phase, the clusters (4-connected, merged across the wrap-around when ``periodic``)
    are taken from the smallest up; a cluster of ``s`` pixels is dissolved when keeping it would
    leave more clusters of at most ``s`` pixels than the exemplar has per unit area (its
    clusters counted in-image), until as many have gone as the phase has clusters beyond the
    exemplar's count (both counted in the image as a window, a cut cluster once per piece: a
    periodic output counted on the torus would keep more than the exemplar). So the lower tail
    of the cluster-size distribution is capped at the exemplar's, which removes speckle (lone
    pixels and specks) and keeps a small cluster wherever the exemplar has as many, and the
    window count never falls below the exemplar's by dissolution (a matrix slightly smaller
    than the exemplar's stays), nor is a cluster holding at least half of its phase. A dissolved
    cluster takes the phase most frequent among its outer 4-neighbours. The fractions change;
    :func:`anneal_fractions` restores them.

    A volume (``H x W x D``, with its 3 exemplars), for each phase whose slices have more
    clusters per area than the exemplars: its 3D clusters (face-connected) smaller than the
    exemplars' median cluster area to the power 3/2 (a ball of that section), but the largest,
    are dissolved likewise.

    Parameters
    ----------
    labels : ndarray, ``H x W`` or ``H x W x D``
    exemplar : ndarray, ``H' x W'`` (a sequence of 3 for a volume)
    phases : int
        k.
    periodic : bool
        ``labels`` is periodic.

    Returns
    -------
    ndarray, the shape of ``labels``
        A new label image.
    """
    from scipy import ndimage

    from mdesign.reconstruction.metrics import cluster_components

    if np.ndim(labels) == 3:
        return _remove_small_volume_clusters(labels, exemplar, phases)
    out = np.array(labels, copy=True)
    scale = labels.size / exemplar.size
    for j in range(phases):
        comp_ex, n_ex = ndimage.label(exemplar == j)
        ex_sizes = np.sort(np.bincount(comp_ex.ravel(), minlength=n_ex + 1)[1:])
        comp, n = cluster_components(out == j, periodic=periodic)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel(), minlength=n + 1)[1:]
        # at most the surplus over the exemplar's count goes: a large cluster (a matrix) is
        # never dissolved for being a little smaller than the exemplar's. Both counted in the
        # image as a window (the exemplar's count includes the pieces of the clusters its edges
        # cut, so the output's must too, else a periodic output keeps more than the exemplar)
        surplus = ndimage.label(out == j)[1] - round(ex_sizes.size * scale)
        if surplus <= 0:
            continue
        order = np.argsort(sizes, kind="stable")
        # a cluster of at least half the phase (a matrix) is never dissolved: dissolving it
        # turned the phase over, and the annealing's refill left bands (carbonate)
        order = order[2 * sizes[order] < sizes.sum()]
        # clusters of the exemplar of at most s pixels, per unit area of the output
        allowed = np.searchsorted(ex_sizes, sizes[order], side="right") * scale
        kept = 0
        dissolve = []
        for c, cap in zip(order, allowed, strict=True):
            if kept + 1 > cap + 0.5 and len(dissolve) < surplus:
                dissolve.append(c + 1)
            else:
                kept += 1
        if not dissolve:
            continue
        mask = np.isin(comp, dissolve)
        # the phase most frequent around each dissolved cluster: its outer 4-neighbours
        nbr_phase = np.zeros((phases, *out.shape))
        for axis in (0, 1):
            for shift in (1, -1):
                if periodic:
                    moved = np.roll(out, shift, axis=axis)
                    moved_mask = np.roll(mask, shift, axis=axis)
                else:
                    pad = [(1, 1) if a == axis else (0, 0) for a in (0, 1)]
                    sl = [slice(None)] * 2
                    sl[axis] = slice(0, -2) if shift == 1 else slice(2, None)
                    moved = np.pad(out, pad, mode="edge")[tuple(sl)]
                    moved_mask = np.pad(mask, pad, mode="edge")[tuple(sl)]
                outside = ~moved_mask
                for k in range(phases):
                    nbr_phase[k] += outside & (moved == k)
        votes = np.stack(
            [ndimage.sum(nbr_phase[k], comp, dissolve) for k in range(phases)]
        )  # k x clusters
        votes[j] = -1  # never its own phase
        new = np.argmax(votes, 0)
        lut = np.full(n + 1, -1)
        lut[dissolve] = new
        out[mask] = lut[comp[mask]]
    return out


def volume_fractions(exemplars: Sequence[np.ndarray], phases: int) -> np.ndarray:
    """Target fractions: the mean over the distinct exemplars (equal arrays count once).

    Parameters
    ----------
    exemplars : sequence of ndarray, each ``H' x W'``
    phases : int
        k.

    Returns
    -------
    ndarray, ``k``
    """
    distinct: list[np.ndarray] = []
    for ex in exemplars:
        if not any(ex is d or (ex.shape == d.shape and np.array_equal(ex, d)) for d in distinct):
            distinct.append(ex)
    return np.mean([np.bincount(ex.ravel(), minlength=phases) / ex.size for ex in distinct], 0)


class _Pool:
    """A list of pixels to draw from, with lazy removal (the caller filters) and appends."""

    def __init__(self, size: int, members: np.ndarray) -> None:
        self.buf = np.empty(size, dtype=np.int64)
        self.member = np.zeros(size, dtype=bool)
        self.reset(members)

    def reset(self, members: np.ndarray) -> None:
        self.member[:] = False
        self.n = members.size
        self.buf[: self.n] = members
        self.member[members] = True

    def add(self, v: np.ndarray) -> None:
        v = v[~self.member[v]]
        v = np.unique(v)
        self.buf[self.n : self.n + v.size] = v
        self.n += v.size
        self.member[v] = True

    def draw(self, rng, n: int) -> np.ndarray:
        return self.buf[rng.integers(0, self.n, n)] if self.n else np.empty(0, dtype=np.int64)


def _check_inputs(labels, exemplars, phases, max_lag, steps, batch) -> None:
    """The checks of :func:`anneal_fractions`, one for an image (one exemplar) and a volume (3):
    ``max_lag`` below half of the smallest side of the labels and the exemplars (a lag at a
    side would wrap a pixel of a periodic image onto itself, and leave no pairs in a
    non-periodic one)."""
    if labels.ndim == 3 and len(exemplars) != 3:
        raise InputError(
            f"should be 3 images (one per axis), got {len(exemplars)}", param="exemplars"
        )
    if phases < 2:
        raise InputError(f"should be at least 2, got {phases}", param="phases")
    for a, ex in enumerate(exemplars):
        if np.ndim(ex) != 2:
            raise InputError(
                f"[{a}] should be a 2D image, got shape {np.shape(ex)}", param="exemplars"
            )
        if ex.size and (ex.min() < 0 or ex.max() >= phases):
            raise InputError(f"[{a}] has labels outside 0..{phases - 1}", param="exemplars")
    if labels.size and (labels.min() < 0 or labels.max() >= phases):
        raise InputError(f"has labels outside 0..{phases - 1}", param="labels")
    smallest = min(min(labels.shape), *(min(ex.shape) for ex in exemplars))
    if max_lag < 1 or 2 * max_lag >= smallest:
        raise InputError(
            f"should be at least 1 and below half of the smallest side of the labels and the "
            f"exemplars ({smallest}), got {max_lag}",
            param="max_lag",
        )
    if steps < 0:
        raise InputError(f"should be non-negative, got {steps}", param="steps")
    if batch < 1:
        raise InputError(f"should be at least 1, got {batch}", param="batch")


def _coords(v: np.ndarray, shape) -> np.ndarray:
    """``B x ndim`` coordinates of flat indices."""
    return np.stack(np.unravel_index(v, shape), 1)


def _wrap(s: np.ndarray, shape, periodic: bool) -> np.ndarray:
    """Displacements (``... x ndim``) to the nearest image when periodic."""
    if periodic:
        n = np.asarray(shape)
        s = (s + n // 2) % n - n // 2
    return s


def _near_any(state, c: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Whether any of the pixels ``c[:, b]`` (``m x B x ndim``) is at a tracked lag (or 0) from
    any of ``ref`` (``r x ndim``): ``B`` (their ``S2`` changes interact)."""
    if isinstance(state, VolumeLags):
        return state.near_any(c, ref)
    r = state.r
    s = _wrap(c[:, None, :, :] - ref[None, :, None, :], state.labels.shape, state.periodic)
    near = (np.abs(s) <= r).all(-1)
    strides = (2 * r + 1) ** np.arange(s.shape[-1])[::-1]
    key = np.where(near, (s + r) @ strides, 0)
    return (near & state.lag_mask.ravel()[key]).any((0, 1))


def _within2(c: np.ndarray, ref: np.ndarray, shape, periodic: bool) -> np.ndarray:
    """Whether any of ``c[:, b]`` (``m x B x ndim``) is within 2 steps along every axis of any of
    ``ref`` (``r x ndim``): their 3^ndim neighbourhoods overlap (the guard's and the
    neighbourhood term's tests see each other's flips)."""
    s = _wrap(c[:, None, :, :] - ref[None, :, None, :], shape, periodic)
    return (np.abs(s) <= 2).all(-1).any((0, 1))


def _apart(p: np.ndarray, q: np.ndarray, shape, periodic: bool) -> np.ndarray:
    """Whether ``p`` and ``q`` are more than 2 steps apart along some axis (their 3^ndim
    neighbourhoods do not overlap: the guard's two tests would not see each other's flip)."""
    sep = np.abs(_coords(p, shape) - _coords(q, shape))
    if periodic:
        sep = np.minimum(sep, np.asarray(shape) - sep)
    return (sep > 2).any(1)


def _interface(flat: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Mask (flat) of the pixels with a face neighbour of another phase."""
    return (flat[faces] != flat[:, None]).any(1)


def _update_interface(flat, faces, iface, p: int, q: int) -> tuple[np.ndarray, int]:
    """Bring the interface mask ``iface`` (:func:`_interface`) up to date after pixels ``p`` and
    ``q`` changed: the mask changes at the two and their face neighbours. Returns those pixels
    and the change of the interface's size."""
    near = np.unique(np.concatenate([[p, q], faces[p], faces[q]]))
    now = (flat[faces[near]] != flat[near][:, None]).any(1)
    change = int(now.sum()) - int(iface[near].sum())
    iface[near] = now
    return near, change


def _slice_clusters(labels: np.ndarray, phase: int) -> float:
    """Clusters of ``phase`` per unit area in a volume's slices (each slice a window), the mean
    over the three orientations."""
    from mdesign.reconstruction.metrics import cluster_components

    per_area = []
    for axis in range(3):
        cut = np.moveaxis(labels == phase, axis, 0)
        n = sum(cluster_components(s)[1] for s in cut)
        per_area.append(n / cut.size)
    return float(np.mean(per_area))


def _guard(labels: np.ndarray, exemplars: list[np.ndarray], phases: int) -> np.ndarray:
    """The guarded phases: those with at least the exemplar's count of clusters, an image's
    counted in the image as a window (as :func:`remove_small_clusters` does), a volume's in its
    slices (per unit area)."""
    from mdesign.reconstruction.metrics import cluster_components

    if labels.ndim == 2:
        exemplar = exemplars[0]
        scale = labels.size / exemplar.size
        return np.array(
            [
                cluster_components(labels == j)[1]
                >= round(cluster_components(exemplar == j)[1] * scale)
                for j in range(phases)
            ]
        )
    return np.array(
        [
            _slice_clusters(labels, j)
            >= np.mean([cluster_components(ex == j)[1] / ex.size for ex in exemplars])
            for j in range(phases)
        ]
    )


def _block_means(ind: np.ndarray, side: int) -> np.ndarray:
    """The means of ``ind`` over the blocks of ``side`` tiling it from its corner (the
    remainder left out), flattened."""
    nb = [n // side for n in ind.shape]
    crop = ind[tuple(slice(0, k * side) for k in nb)]
    split = crop.reshape([x for k in nb for x in (k, side)])
    return split.mean(tuple(range(1, 2 * len(nb), 2))).ravel()


class _Blocks:
    """The uniformity term of the swap energy (``anneal.uniformity_weight``): per tracked phase
    and block side ``s`` (:func:`~mdesign.reconstruction.loss.uniformity_blocks` of ``R``; the
    sides with at least 2 blocks along every axis of the output and the exemplars), the variance
    ``V`` of the blocks' fractions, ``coef * relu(V / V_ex - 1)^2``: a swap that moves a pixel of
    a phase from one block to another changes two block counts, so the change is exact from the
    current counts (:meth:`recount`, then kept by :meth:`moved` at every label change)."""

    def __init__(self, shape, exemplars, tracked, max_lag: int, coef: float) -> None:
        self.tracked, self.coef = list(tracked), float(coef)
        sides = [
            s
            for s in uniformity_blocks(max_lag)
            if min(shape) >= 2 * s and all(min(ex.shape) >= 2 * s for ex in exemplars)
        ]
        idx = np.indices(shape).reshape(len(shape), -1)
        self.ids, self.n, self.area, self.target = [], [], [], []
        for side in sides:
            nb = [n // side for n in shape]
            inside = (idx < (np.array(nb) * side)[:, None]).all(0)
            bid = np.ravel_multi_index(
                tuple(np.minimum(idx // side, np.array(nb)[:, None] - 1)), nb
            )
            self.ids.append(np.where(inside, bid, -1))
            self.n.append(int(np.prod(nb)))
            self.area.append(float(side ** len(shape)))
            self.target.append(
                [
                    max(
                        float(np.mean([_block_means(ex == j, side).var() for ex in exemplars])),
                        1e-12,
                    )
                    for j in self.tracked
                ]
            )

    def _count(self, flat: np.ndarray, side: int, j: int) -> np.ndarray:
        bid = self.ids[side]
        return np.bincount(bid[(flat == self.tracked[j]) & (bid >= 0)], minlength=self.n[side])

    def recount(self, flat: np.ndarray) -> None:
        """Count each block's pixels of each tracked phase in ``flat``."""
        self.counts = [
            [self._count(flat, side, j) for j in range(len(self.tracked))]
            for side in range(len(self.ids))
        ]

    def moved(self, v: int, old: int, new: int) -> None:
        """Pixel ``v`` changed from ``old`` to ``new``: the counts follow."""
        for side, bid in enumerate(self.ids):
            b = bid[v]
            if b >= 0:
                for j, ph in enumerate(self.tracked):
                    self.counts[side][j][b] += (ph == new) - (ph == old)

    def _terms(self, flat: np.ndarray, side: int, j: int, *, fresh: bool = False):
        c = self._count(flat, side, j) if fresh else self.counts[side][j]
        m = c / self.area[side]
        return self.ids[side], m, m.sum(), (m**2).sum()

    def _energy_of(self, v: np.ndarray | float, side: int, j: int):
        return self.coef * np.maximum(v / self.target[side][j] - 1, 0) ** 2

    def energy(self, flat: np.ndarray) -> float:
        """The term of the current labels ``flat``."""
        total = 0.0
        for side in range(len(self.ids)):
            for j in range(len(self.tracked)):
                _, _, s1, s2 = self._terms(flat, side, j, fresh=True)
                b = self.n[side]
                total += float(self._energy_of(s2 / b - (s1 / b) ** 2, side, j))
        return total

    def change(self, flat: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """The term's change of each swap of ``p[i]`` and ``q[i]`` (``B``), from ``flat``."""
        out = np.zeros(p.shape, dtype=np.float64)
        lp, lq = flat[p], flat[q]
        for side in range(len(self.ids)):
            b, a = self.n[side], self.area[side]
            for j, ph in enumerate(self.tracked):
                bid, m, s1, s2 = self._terms(flat, side, j)
                # p takes q's label and q p's: the phase's count at p's block, and the opposite
                d = ((lq == ph).astype(np.float64) - (lp == ph)) / a
                bp, bq = bid[p], bid[q]
                moved = bp != bq
                on_p, on_q = moved & (bp >= 0), moved & (bq >= 0)
                mp, mq = m[np.maximum(bp, 0)], m[np.maximum(bq, 0)]
                n2 = s2 + np.where(on_p, (mp + d) ** 2 - mp**2, 0.0)
                n2 = n2 + np.where(on_q, (mq - d) ** 2 - mq**2, 0.0)
                n1 = s1 + np.where(on_p, d, 0.0) - np.where(on_q, d, 0.0)
                now = self._energy_of(s2 / b - (s1 / b) ** 2, side, j)
                out += self._energy_of(n2 / b - (n1 / b) ** 2, side, j) - now
        return out


def anneal_fractions(
    labels: np.ndarray,
    exemplars: np.ndarray | Sequence[np.ndarray],
    *,
    phases: int,
    max_lag: int,
    steps: int,
    seed: int,
    periodic: bool = D.periodic,
    exemplar_periodic: bool = D.exemplar_periodic,
    batch: int | None = None,
    initial_acceptance: float = D.anneal.initial_acceptance,
    final_temperature_ratio: float = D.anneal.final_temperature,
    neighbour_weight: float | None = None,
    radial: bool = D.anneal.radial,
    keep_clusters: bool | None = None,
    dense_lag: int = D.anneal.dense_lag,
    sectors: int = D.anneal.sectors,
    local_means: bool = D.anneal.s2_local_means,
    uniformity_weight: float = D.anneal.uniformity_weight,
    uniformity_below: float = D.anneal.uniformity_below,
    directional_weight: float | None = None,
    directional_tolerance: float = D.anneal.directional_tolerance,
    surface: bool | None = None,
    walk: bool | None = None,
    progress: bool = False,
) -> AnnealingResult:
    """Make the phase fractions exact by interface moves that keep ``S2`` close to the exemplar's.

    One chain for an image and a volume (module docstring). The settings left at None take the
    config's default for the dimension: an image's ``anneal.batch``, ``neighbour_weight``,
    ``keep_clusters``, ``surface`` (and no walk), a volume's ``anneal.volume_batch``,
    ``volume_neighbour_weight``, ``volume_keep_clusters``, ``volume_surface``, ``volume_walk``.

    Parameters
    ----------
    labels : ndarray, ``H x W`` or ``H x W x D``
        Labels to correct (the decoded reconstruction), ``0..k-1``.
    exemplars : ndarray ``H' x W'``, or a sequence of 3 of them for a volume
        The exemplar's labels (any size): its fractions and ``S2`` are the targets. A volume's
        ``exemplars[a]`` describes the slices normal to axis ``a`` (``np.take(labels, i,
        axis=a)``; rows along the lower remaining axis), and may be the same image three times;
        its fractions are :func:`volume_fractions`.
    phases : int
        k.
    max_lag : int
        ``R`` of the ``S2`` window (each plane's in a volume), below half of the smallest side
        of ``labels`` and the exemplars, for an image as for a volume (a longer window would
        count a periodic lag twice, or wrap a pixel onto itself; :data:`VOLUME_MAX_LAG` is a
        good choice for a volume). :func:`~mdesign.reconstruction.reconstruct` caps its
        ``anneal.max_lag`` at a quarter of the smallest side instead.
    steps : int
        Swap proposals of the Metropolis stage (0: fractions only).
    seed : int
        Seed of the proposals and acceptances.
    periodic : bool
        ``labels`` is periodic: ``S2`` on the torus and wrapping neighbourhoods.
    exemplar_periodic : bool
        Estimate the exemplar's ``S2`` on the torus (real micrographs are not periodic).
    batch : int, optional
        Proposals evaluated at once.
    initial_acceptance : float
        Acceptance probability of the median uphill swap at the start (sets ``T0``).
    final_temperature_ratio : float
        Last temperature over the first.
    neighbour_weight : float, optional
        Weight of the neighbourhood term of the swap stage (module docstring; 0: off).
    radial : bool
        Compare the radial averages of ``S2`` (over the lags of each distance
        ``round(|d|) <= R``) instead of the whole window.
    keep_clusters : bool, optional
        Refuse the moves that would add a cluster to a phase that has at least the exemplar's
        count (per unit area; a volume's in its slices) when the swaps start.
    dense_lag : int
        With ``radial``, the lags beyond this distance are tracked on the even lattice only.
    sectors : int
        With ``radial``, each distance's average split into this many direction sectors
        (:func:`~mdesign.reconstruction.lags.radial_bins`; 2: along the rows and the columns).
    local_means : bool
        A non-periodic exemplar's ``S2`` target with the pairs' own means
        (:func:`~mdesign.reconstruction.loss.s2_window_local_means`) instead of the plain pair
        estimate.
    uniformity_weight : float
        Weight of the uniformity term of the swap energy (relative to the ``S2`` term's scale;
        0: off): the variance of the tracked phases' block fractions above the exemplar's
        (block sides ``R / 2``, ``R``, ``2 R``), so swaps do not carry a phase to one side.
    uniformity_below : float
        The uniformity term covers the tracked phases whose exemplar fraction is below this.
    directional_weight : float, optional
        Weight of the directional term of an image's energy (relative to the ``S2`` term's
        scale; 0: off; None: an image's ``anneal.directional_weight``, a volume's 0; a volume
        refuses a weight above 0): per phase, ``S2`` along the rows less ``S2`` down
        the columns (mean over the lags of
        :data:`~mdesign.reconstruction.metrics.DIRECTIONAL_LAGS`) against the exemplar's, over
        the exemplar's mean down the columns (:func:`directional_target`).
    directional_tolerance : float
        The directional term counts each phase's error (its ratio's error, along the rows over
        down the columns) beyond this only: ``relu(|u| - tolerance)^2``.
    surface : bool, optional
        After the swaps, shorten the interface to the exemplar's length per unit area by swaps
        of least energy rise (stage 3).
    walk : bool, optional
        After an accepted swap, go on through the rest of the batch (the proposals near the swap
        evaluated again), and draw the interface from a pool kept up to date; several flips per
        batch in stage 1. Off: the rest of the batch is discarded and the interface recomputed.
    progress : bool
        Show a progress bar over the swap proposals.

    Returns
    -------
    AnnealingResult
        ``labels`` (uint8, the input's shape) whose count of phase ``j`` is
        ``phase_counts(exemplar fractions)[j]``.

    Raises
    ------
    InputError
        A volume with not 3 exemplars, labels out of range, ``max_lag`` at or above half of
        the smallest side (an image's as a volume's), a negative ``steps``, ``batch`` below 1.
    """
    labels = np.asarray(labels)
    volume = labels.ndim == 3
    if labels.ndim not in (2, 3) or (not volume and np.ndim(exemplars) != 2):
        raise InputError(
            f"should be an H x W image with one exemplar or an H x W x D volume with 3, got "
            f"shape {labels.shape} and exemplars of shape {np.shape(exemplars)}",
            param="labels",
        )
    an = D.anneal
    if volume:
        exemplars = [np.asarray(ex) for ex in exemplars]
        batch = an.volume_batch if batch is None else batch
        defaults = (
            an.volume_neighbour_weight,
            an.volume_keep_clusters,
            an.volume_surface,
            an.volume_walk,
        )
    else:
        exemplars = [np.asarray(exemplars)]
        batch = an.batch if batch is None else batch
        defaults = (an.neighbour_weight, an.keep_clusters, an.surface, an.walk)
    _check_inputs(labels, exemplars, phases, max_lag, steps, batch)
    neighbour_weight = defaults[0] if neighbour_weight is None else neighbour_weight
    keep_clusters = defaults[1] if keep_clusters is None else keep_clusters
    surface = defaults[2] if surface is None else surface
    walk = defaults[3] if walk is None else walk
    if directional_weight is None:  # an image's default; a volume has none
        directional_weight = 0.0 if volume else an.directional_weight
    if volume and directional_weight > 0:
        raise InputError("the directional term is an image's only", param="directional_weight")
    rng = np.random.default_rng(seed)
    shape = labels.shape
    tracked = [1] if phases == 2 else list(range(phases))
    targets = []
    for ex in exemplars:
        onehot = torch.as_tensor(np.stack([ex == ph for ph in tracked]), dtype=torch.float64)
        if local_means and not exemplar_periodic:
            win = s2_window_local_means(onehot[None], max_lag)[0]
        else:
            win = s2_window(onehot[None], max_lag, periodic=exemplar_periodic)[0]
        targets.append(win.reshape(len(tracked), -1).numpy())
    if volume:
        fractions = volume_fractions(exemplars, phases)
        state = VolumeLags(
            labels, targets, tracked, max_lag, periodic, radial, dense_lag, sectors=sectors
        )
    else:
        fractions = np.array([(exemplars[0] == ph).mean() for ph in range(phases)])
        state = ImageLags(
            labels, targets[0], tracked, max_lag, periodic, radial, dense_lag, sectors=sectors
        )
        if directional_weight > 0:
            op, target, weight = directional_target(
                state, exemplars[0], phases, exemplar_periodic=exemplar_periodic
            )
            if op is not None:
                coef = directional_weight * state.structure_scale(fractions[tracked])
                state.set_directional(op, target, np.sqrt(weight), coef, directional_tolerance)
    counts_target = phase_counts(fractions[None], labels.size)[0]
    flat = state.flat
    nb = nb_target = None
    nb_coef = 0.0
    if neighbour_weight > 0:
        nb = _NeighbourState(state.labels, phases, periodic)
        nb_target = np.concatenate(
            [
                _NeighbourState(ex.astype(np.int64), phases, exemplar_periodic).hist
                for ex in exemplars
            ]
        )
        s2_scale = state.structure_scale(fractions[tracked])
        nb_coef = neighbour_weight * s2_scale / max(float((nb_target**2).mean()), 1e-300)

    blocks = None
    spread = [ph for ph in tracked if fractions[ph] < uniformity_below]
    if uniformity_weight > 0 and spread:
        coef = uniformity_weight * state.structure_scale(fractions[tracked])
        blocks = _Blocks(shape, exemplars, spread, max_lag, coef)
        blocks.recount(state.flat)
        plain_set_label = state.set_label

        def set_label(v, new):  # every label change of the stages goes through the state's
            old = int(state.flat[v])
            plain_set_label(v, new)
            blocks.moved(v, old, new)

        state.set_label = set_label

    def nb_energy(hist):
        return nb_coef * float(((hist - nb_target) ** 2).mean()) if nb is not None else 0.0

    def nb_change(p, q):
        extra = blocks.change(flat, p, q) if blocks is not None else 0.0
        if nb is None:
            return extra, None
        dh = nb.swap_delta(flat, p, q)
        err = (nb.hist - nb_target)[None]
        return nb_coef * ((2 * err + dh) * dh).mean(1) + extra, dh

    def block_change(p, q):
        return blocks.change(flat, p, q) if blocks is not None else 0.0

    def nb_rise(dh):
        err = (nb.hist - nb_target)[None]
        return nb_coef * ((2 * err + dh) * dh).mean(1)

    e_blocks = (lambda: blocks.energy(flat)) if blocks is not None else (lambda: 0.0)
    e_initial = state.energy() + (nb_energy(nb.hist) if nb is not None else 0.0) + e_blocks()
    nbr = guard = None
    if not isinstance(keep_clusters, bool | np.bool_):  # the guarded phases, given
        guard = np.asarray(keep_clusters, dtype=bool)
        keep_clusters = bool(guard.any())
        guard = guard if keep_clusters else None
    if keep_clusters or surface or nb is not None:
        nbr = nb.nbr if nb is not None else neighbour_table(shape, periodic)
    faces = nbr[:, : n_faces(nbr)] if nbr is not None else face_table(shape, periodic)
    if keep_clusters and guard is None:
        guard = _guard(state.labels, exemplars, phases)

    # stage 1: greedy flips from the largest surplus to the largest deficit
    pool = _Pool(labels.size, np.empty(0, dtype=np.int64))
    stage1 = _fractions_walk if walk else _fractions_batch
    flips = stage1(state, faces, nbr, guard, counts_target, phases, rng, batch, pool)

    # stage 2: Metropolis swaps of interface pixels of different phases, geometric cooling
    if nb is not None:  # stage 1 moved pixels without tracking the classes
        nb.hist = nb.histogram(flat)
    e_fractions = state.energy() + (nb_energy(nb.hist) if nb is not None else 0.0) + e_blocks()
    accepted = done = 0
    if steps > 0:
        iface = _interface(flat, faces)
        if walk:
            pool.reset(np.flatnonzero(iface))
            draw = lambda m: _draw_interface(pool, iface, rng, m)  # noqa: E731
        else:
            interface = np.flatnonzero(iface)
            draw = lambda m: (rng.choice(interface, m), rng.choice(interface, m))  # noqa: E731
        t0 = _initial_temperature(state, int(iface.sum()), draw, initial_acceptance, nb_change)
        decay = final_temperature_ratio ** (1.0 / max(steps - 1, 1))
        bar = tqdm(total=steps, desc="annealing", unit="prop", disable=not progress, leave=False)
        n_iface = int(iface.sum())
        while done < steps and n_iface >= 2 and t0 > 0:
            n = min(batch, steps - done)
            temps = t0 * decay ** (done + np.arange(n))
            if walk:
                if pool.n > 2 * n_iface:  # mostly stale: rebuild
                    pool.reset(np.flatnonzero(iface))
                p, q = draw(n)
                acc, n_iface = _swaps_walk(
                    state,
                    p,
                    q,
                    temps,
                    rng,
                    iface,
                    n_iface,
                    pool,
                    faces,
                    nbr,
                    guard,
                    nb,
                    nb_change,
                    nb_rise,
                    block_change if blocks is not None else None,
                )
                used = n
            else:
                p, q = draw(n)
                acc, used = _swaps_batch(state, p, q, temps, rng, nbr, guard, nb, nb_change)
                if acc:  # the swap is the batch's last used proposal
                    _update_interface(flat, faces, iface, p[used - 1], q[used - 1])
                    interface = np.flatnonzero(iface)
                    n_iface = interface.size
            accepted += acc
            done += used
            bar.update(used)
        bar.close()
    surface_swaps = 0
    if surface:
        if periodic:
            pairs = labels.ndim * labels.size
        else:
            pairs = sum(labels.size // n * (n - 1) for n in shape)
        # in a volume, the face pairs along each axis lie in the slices of two orientations:
        # the mean density of the exemplars (one per orientation)
        density = np.mean([interface_density(ex, periodic=exemplar_periodic) for ex in exemplars])
        surface_swaps = _reduce_surface(
            state, nbr, density * pairs, phases, rng, batch, guard, nb_change, nb
        )
    # recompute exactly: the incremental sums drift by rounding only, but the result is reported
    state.finish()
    e_final = state.energy() + e_blocks()
    if nb is not None:
        nb.hist = nb.histogram(flat)
        e_final += nb_energy(nb.hist)
    return AnnealingResult(
        labels=state.labels.astype(np.uint8),
        energy_initial=e_initial,
        energy_fractions=e_fractions,
        energy_final=e_final,
        flips=flips,
        proposals=done,
        accepted=accepted,
        target_counts=counts_target,
        surface_swaps=surface_swaps,
    )


def directional_target(state: ImageLags, exemplar: np.ndarray, phases: int, *, exemplar_periodic):
    """The directional term of an image's energy (``anneal.directional_weight``).

    For each phase ``j``, ``D_j``: ``S2`` along the rows less ``S2`` down the columns, the mean
    over the lags ``r`` of :data:`~mdesign.reconstruction.metrics.DIRECTIONAL_LAGS` (cut to the
    tracked window) of ``S2_j(0, r) - S2_j(r, 0)``; ``c_j`` the exemplar's mean down the
    columns. The term is ``sum_j ((D_j - D_j^ex) / c_j)^2``: each phase's ratio of the two means
    less the exemplar's, on the phase's own scale (sparse particles as much as a matrix). With
    two phases only phase 1 is tracked; on the torus at fixed fractions ``S2_0(d) = 1 - 2 phi_1 +
    S2_1(d)``, so ``D_0 = D_1`` and the two phases' terms are one: ``w (D_1 - T)^2`` plus a
    constant, with ``w = sum_j c_j^-2`` and ``T`` the mean of the ``D_j^ex`` weighted by
    ``c_j^-2`` (the phase with the smaller ``S2``, the sparser, counts most).

    Parameters
    ----------
    state : ImageLags
        The annealing's lag state (its tracked lags and phases).
    exemplar : ndarray, ``H' x W'``
    phases : int
    exemplar_periodic : bool
        The exemplar's ``S2`` estimator (torus, or the pairs inside).

    Returns
    -------
    op : ndarray ``L``, or None
        ``D = S2 @ op`` of the tracked lags; None when no lag of the range is tracked.
    target, weight : ndarray, ``J``
        Per tracked phase: the ``D`` aimed at and the weight of its squared error.
    """
    rows, cols = state.directional_lags(*DIRECTIONAL_LAGS)
    if rows.size == 0:
        return None, None, None
    op = np.zeros(state.n_lags)
    np.add.at(op, rows, 1.0 / rows.size)
    np.add.at(op, cols, -1.0 / rows.size)
    onehot = torch.as_tensor(
        np.stack([exemplar == ph for ph in range(phases)]), dtype=torch.float64
    )
    win = s2_window(onehot[None], state.r, periodic=exemplar_periodic)[0]
    win = win.reshape(phases, -1).numpy()[:, state.keep]
    d_ex = win @ op
    c_ex = np.maximum(win[:, cols].mean(1), 1e-12)
    if phases == 2:
        w = 1.0 / c_ex**2
        return op, np.array([(w * d_ex).sum() / w.sum()]), np.array([w.sum()])
    return op, d_ex, 1.0 / c_ex**2


def _fractions_batch(state, faces, nbr, guard, counts_target, phases, rng, batch, pool) -> int:
    """Stage 1, one flip per batch: the least rise among ``batch`` candidates of the surplus
    phase touching the deficit phase (all of them drawn afresh each time)."""
    flat = state.flat
    flips = 0
    counts = np.bincount(flat, minlength=phases)
    while (counts != counts_target).any():
        surplus = counts - counts_target
        a, b = int(np.argmax(surplus)), int(np.argmin(surplus))
        of_a = np.flatnonzero(flat == a)
        cand = of_a[(flat[faces[of_a]] == b).any(1)]
        if cand.size == 0:
            cand = of_a
        if guard is not None:
            safe = keeps_clusters(flat, nbr, cand, np.full(cand.size, b), guard)
            if safe.any():
                cand = cand[safe]
        if cand.size > batch:
            cand = rng.choice(cand, batch, replace=False)
        ds = state.delta(cand, np.full(cand.size, b))
        dc = state.compare(ds)
        best = int(np.argmin(state.energy_change(dc)))
        state.set_label(int(cand[best]), b)
        state.add_s2(ds[best], dc[best])
        counts[a] -= 1
        counts[b] += 1
        flips += 1
    return flips


def _fractions_walk(state, faces, nbr, guard, counts_target, phases, rng, batch, pool) -> int:
    """Stage 1, several flips per batch: candidates drawn from a pool of the surplus phase's
    pixels touching the deficit phase; after each flip, the candidates near it drop out and the
    others' rise is recomputed from the new error (each flip is still the least rise among at
    least half a batch)."""
    flat, shape = state.flat, state.labels.shape
    flips = 0
    counts = np.bincount(flat, minlength=phases)
    pair = None
    while (counts != counts_target).any():
        surplus = counts - counts_target
        a, b = int(np.argmax(surplus)), int(np.argmin(surplus))
        cand = np.empty(0, dtype=np.int64)
        for attempt in range(2):
            if pair != (a, b) or attempt == 1:
                pair = (a, b)
                of_a = np.flatnonzero(flat == a)
                pool.reset(of_a[(flat[faces[of_a]] == b).any(1)])
            cand = np.unique(pool.draw(rng, batch))
            cand = cand[(flat[cand] == a) & (flat[faces[cand]] == b).any(1)]
            if cand.size:
                break
        if cand.size == 0:  # no pixel of a touches b
            cand = np.flatnonzero(flat == a)
            cand = cand[rng.choice(cand.size, min(batch, cand.size), replace=False)]
        if guard is not None:
            safe = keeps_clusters(flat, nbr, cand, np.full(cand.size, b), guard)
            if safe.any():
                cand = cand[safe]
        ds = state.delta(cand, np.full(cand.size, b))
        dc = state.compare(ds)
        de = state.energy_change(dc)
        coords = _coords(cand, shape)
        alive = np.ones(cand.size, dtype=bool)
        while True:
            best = int(np.argmin(np.where(alive, de, np.inf)))
            v = int(cand[best])
            state.set_label(v, b)
            state.add_s2(ds[best], dc[best])
            nb = faces[v]
            pool.add(nb[flat[nb] == a])
            counts[a] -= 1
            counts[b] += 1
            flips += 1
            alive &= ~_near_any(state, coords[None], coords[best][None])
            if guard is not None:
                alive &= ~_within2(coords[None], coords[best][None], shape, state.periodic)
            surplus = counts - counts_target
            if (
                alive.sum() * 2 < cand.size
                or (surplus == 0).all()
                or (int(np.argmax(surplus)), int(np.argmin(surplus))) != (a, b)
            ):
                break
            de[alive] = state.energy_change(dc[alive])
    return flips


def _swaps_batch(state, p, q, temps, rng, nbr, guard, nb, nb_change) -> tuple[int, int]:
    """Stage 2 on one batch, discarding it after an accepted swap: (accepted, proposals used)."""
    flat, n = state.flat, p.size
    lp, lq = flat[p], flat[q]
    valid = lp != lq
    if guard is not None:
        valid &= _apart(p, q, state.labels.shape, state.periodic)
        valid &= _swap_keeps_clusters(flat, nbr, p, q, lp, lq, guard)
    de = np.full(n, np.inf)
    ds = dc = dh = None
    if valid.any():
        ds = state.delta(p[valid], lq[valid], q[valid], lp[valid])
        dc = state.compare(ds)
        dn, dh = nb_change(p[valid], q[valid])
        de[valid] = state.energy_change(dc) + dn
    with np.errstate(over="ignore"):
        ok = valid & (rng.random(n) < np.exp(-np.clip(de, 0, None) / temps))
    if not ok.any():
        return 0, n
    i = int(np.argmax(ok))
    k = int(np.cumsum(valid)[i]) - 1
    state.set_label(int(p[i]), int(lq[i]))
    state.set_label(int(q[i]), int(lp[i]))
    state.add_s2(ds[k], dc[k])
    if nb is not None:
        nb.hist = nb.hist + dh[k]
    return 1, i + 1


def _swaps_walk(
    state,
    p,
    q,
    temps,
    rng,
    iface,
    n_iface,
    pool,
    faces,
    nbr,
    guard,
    nb,
    nb_change,
    nb_rise,
    block_change=None,
) -> tuple[int, int]:
    """Stage 2 on one batch, walking past accepted swaps: the later proposals near a swap (a
    tracked lag; with the guard or the neighbourhood term also within 2 steps) are evaluated
    again against the new state, the others keep their ``dS2``. Returns (accepted, interface
    size)."""
    flat, shape, n = state.flat, state.labels.shape, p.size
    lp, lq = flat[p], flat[q]
    # a pair of one phase is a no-op (zero change) and never accepted
    ds = state.delta(p, lq, q, lp)
    dc = state.compare(ds)
    valid = lp != lq
    local = guard is not None or nb is not None

    def allowed(idx):
        ok = lp[idx] != lq[idx]
        if guard is not None:
            ok &= _apart(p[idx], q[idx], shape, state.periodic)
            ok &= keeps_clusters(flat, nbr, p[idx], lq[idx], guard)
            ok &= keeps_clusters(flat, nbr, q[idx], lp[idx], guard)
        return ok

    dh = None
    if local:
        valid = allowed(np.arange(n))
        dn, dh = nb_change(p, q)
        de = np.where(valid, state.energy_change(dc) + dn, np.inf)
    else:
        extra = block_change(p, q) if block_change is not None else 0.0
        de = np.where(valid, state.energy_change(dc) + extra, np.inf)
    u = rng.random(n)
    cpq = np.stack([_coords(p, shape), _coords(q, shape)])  # 2 x n x ndim
    accepted = 0
    start = 0
    while start < n:
        with np.errstate(over="ignore", divide="ignore"):
            ok = u[start:] < np.exp(-np.clip(de[start:], 0, None) / temps[start:])
        if not ok.any():
            break
        i = start + int(np.argmax(ok))
        pi, qi = int(p[i]), int(q[i])
        state.set_label(pi, int(lq[i]))
        state.set_label(qi, int(lp[i]))
        state.add_s2(ds[i], dc[i])
        if nb is not None:
            nb.hist = nb.hist + dh[i]
        accepted += 1
        near, change = _update_interface(flat, faces, iface, pi, qi)
        n_iface += change
        pool.add(near[iface[near]])
        start = i + 1
        later = np.arange(start, n)
        d = later[_near_any(state, cpq[:, later], cpq[:, i])]
        if local:
            d = np.union1d(d, later[_within2(cpq[:, later], cpq[:, i], shape, state.periodic)])
        if d.size:
            lp[d], lq[d] = flat[p[d]], flat[q[d]]
            ds[d] = state.delta(p[d], lq[d], q[d], lp[d])
            dc[d] = state.compare(ds[d])
            if local:
                valid[d] = allowed(d)
                if nb is not None:
                    dh[d] = nb.swap_delta(flat, p[d], q[d])
            else:
                valid[d] = lp[d] != lq[d]
        later = later[valid[later]]
        de[start:] = np.inf
        if later.size:
            de[later] = state.energy_change(dc[later])
            if nb is not None:
                de[later] += nb_rise(dh[later])
            if block_change is not None:  # the block counts after the swap
                de[later] += block_change(p[later], q[later])
    return accepted, n_iface


def _draw_interface(pool: _Pool, iface: np.ndarray, rng, n: int):
    """``n`` pairs of pixels drawn uniformly among the current interface pixels."""
    got = np.empty(0, dtype=np.int64)
    while got.size < 2 * n:
        v = pool.draw(rng, 2 * (2 * n - got.size))
        got = np.concatenate([got, v[iface[v]]])
    return got[:n], got[n : 2 * n]


def _initial_temperature(state, n_iface: int, draw, acceptance: float, nb_change) -> float:
    """The temperature at which the median rise of 256 random swaps is accepted as given (when
    none of them rises, as from a start far from the target, the median fall's size: else the
    swaps would not run at all)."""
    if n_iface < 2:
        return 0.0
    p, q = draw(256)
    lp, lq = state.flat[p], state.flat[q]
    valid = lp != lq
    if not valid.any():
        return 0.0
    de = state.energy_change(state.compare(state.delta(p[valid], lq[valid], q[valid], lp[valid])))
    de = de + nb_change(p[valid], q[valid])[0]
    rises = de[de > 0] if (de > 0).any() else -de[de < 0]
    return float(np.median(rises) / np.log(1 / acceptance)) if rises.size else 0.0


SURFACE_MISSES = 8
"""The surface stage ends after this many batches in a row without an allowed swap."""


def interface_edges(flat: np.ndarray, nbr: np.ndarray) -> int:
    """Pixel (voxel) edges between different phases: pairs of edge neighbours, each pair once.

    ``nbr`` is a :func:`~mdesign.reconstruction.lags.neighbour_table` (faces first) or its face
    columns; outside the image (not periodic) a pixel is its own neighbour, so the edges of the
    image count as no interface.
    """
    return int(sum((flat[nbr[:, c]] != flat).sum() for c in range(1, n_faces(nbr), 2)))


def interface_density(labels: np.ndarray, *, periodic: bool) -> float:
    """Interface edges per 4-neighbour pair, rows and columns averaged.

    ``2 / pi`` times the specific surface of :func:`mdesign.descriptors.specific_surface` for two
    phases (Crofton's estimate: phase changes per unit length along rows and columns), counted
    on the torus or in-image.
    """
    lab = np.asarray(labels)
    if periodic:
        cx = (lab != np.roll(lab, 1, axis=1)).mean()
        cy = (lab != np.roll(lab, 1, axis=0)).mean()
    else:
        cx = (lab[:, 1:] != lab[:, :-1]).mean()
        cy = (lab[1:, :] != lab[:-1, :]).mean()
    return float((cx + cy) / 2)


class _FaceChanges:
    """How flipping each pixel (voxel) to each phase would change the interface edges, kept up
    to date flip by flip (the surface stage's table).

    ``n[p, b]``: the edge neighbours of ``p`` of phase ``b``; ``change[p, b] = n[p, a] - n[p, b]``
    (``a`` its phase; 99 for ``b = a``, not a flip), ``best[p]`` its least and ``gain[p]`` that
    change. A flip of ``v`` changes ``n`` at its face neighbours only, and ``change`` there and
    at ``v``, so :meth:`flipped` costs ``O(faces)`` instead of the whole table's ``O(N faces)``.
    """

    def __init__(self, flat: np.ndarray, edge: np.ndarray, real: np.ndarray, phases: int):
        self.flat, self.edge, self.real = flat, edge, real
        self.n = (np.eye(phases, dtype=np.int64)[flat[edge]] * real[..., None]).sum(1)
        self.change = np.empty_like(self.n)
        self.best = np.empty(flat.size, dtype=np.int64)
        self.gain = np.empty(flat.size, dtype=np.int64)
        self.update(np.arange(flat.size))

    def update(self, idx: np.ndarray) -> None:
        """Recompute ``change``, ``best`` and ``gain`` at ``idx`` from ``n`` and the labels."""
        lab = self.flat[idx]
        ch = self.n[idx, lab][:, None] - self.n[idx]
        ch[np.arange(idx.size), lab] = 99
        self.change[idx] = ch
        self.best[idx] = np.argmin(ch, 1)
        self.gain[idx] = ch[np.arange(idx.size), self.best[idx]]

    def flipped(self, v: np.ndarray, was: np.ndarray, now: np.ndarray) -> None:
        """Account for pixels ``v`` (labels already set) having gone from ``was`` to ``now``."""
        around = self.edge[v]
        real = self.real[v]
        rows = np.broadcast_to(np.arange(v.size)[:, None], around.shape)[real]
        np.add.at(self.n, (around[real], was[rows]), -1)
        np.add.at(self.n, (around[real], now[rows]), 1)
        self.update(np.unique(np.concatenate([v, around.ravel()])))


def _reduce_surface(state, nbr, target_edges, phases, rng, batch, guard, nb_change, nb):
    """Stage 3: swaps that shorten the interface until it is the exemplar's (module docstring).

    One stage for images and volumes: ``state`` moves labels and tracks ``S2``
    (:class:`~mdesign.reconstruction.lags.ImageLags`, :class:`~.lags.VolumeLags`), ``nbr`` holds
    the face neighbours first (:func:`~mdesign.reconstruction.lags.neighbour_table`); ``guard``
    and ``nb`` may be None (no cluster guard, no neighbourhood term). Returns the number of swaps
    made.
    """
    shape = state.labels.shape
    edge = nbr[:, : n_faces(nbr)]
    real = edge != np.arange(edge.shape[0])[:, None]  # outside the image: no neighbour
    swaps = 0
    flat = state.labels.ravel()  # a view (state.labels is a contiguous copy): apply updates it
    edges = interface_edges(flat, nbr)
    misses = 0
    fc = _FaceChanges(flat, edge, real, phases)
    change, gain, best = fc.change, fc.gain, fc.best
    while edges > target_edges and misses < SURFACE_MISSES:
        shorten = np.flatnonzero(gain <= -2)
        if shorten.size == 0:
            break
        p = rng.choice(shorten, min(batch, shorten.size), replace=False)
        lp, lq = flat[p], best[p]
        q = np.full(p.size, -1)
        for a, b in set(zip(lp.tolist(), lq.tolist(), strict=True)):
            pool = np.flatnonzero((flat == b) & (change[:, a] <= 0))
            sel = (lp == a) & (lq == b)
            if pool.size:
                q[sel] = rng.choice(pool, int(sel.sum()))
        valid = q >= 0
        sep = np.abs(
            np.stack(np.unravel_index(p, shape))
            - np.stack(np.unravel_index(np.maximum(q, 0), shape))
        )
        if state.periodic:
            sep = np.minimum(sep, np.array(shape)[:, None] - sep)
        valid &= (sep > 2).any(0)  # apart: the changes add, the guard's tests hold
        if guard is not None:
            valid &= keeps_clusters(flat, nbr, p, lq, guard)
            valid &= keeps_clusters(flat, nbr, np.maximum(q, 0), lp, guard)
        if not valid.any():
            misses += 1
            continue
        misses = 0
        p, q, lp, lq = p[valid], q[valid], lp[valid], lq[valid]
        ds = state.delta(p, lq, q, lp)
        dc = state.compare(ds)
        dn, dh = nb_change(p, q)
        i = int(np.argmin(state.energy_change(dc) + dn))
        edges += int(change[p[i], lq[i]] + change[q[i], lp[i]])
        state.set_label(int(p[i]), int(lq[i]))
        state.set_label(int(q[i]), int(lp[i]))
        state.add_s2(ds[i], dc[i])
        if nb is not None:
            nb.hist = nb.hist + dh[i]
        fc.flipped(p[i : i + 1], lp[i : i + 1], lq[i : i + 1])
        fc.flipped(q[i : i + 1], lq[i : i + 1], lp[i : i + 1])
        swaps += 1
    return swaps
