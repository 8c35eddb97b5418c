"""Simulated annealing of a label image to exact phase fractions with a matching ``S2``.

The decoded reconstruction's fractions are close to the exemplar's but not exact. This moves labels
at interfaces until every phase count is the exemplar's fraction times the number of pixels, rounded
as in :func:`mdesign.grf.phase_counts` (so within one pixel), while keeping the two-point
correlation close to the exemplar's. The energy compares ``S2`` (lag by lag, or its radial averages
with ``radial``) and optionally a histogram of neighbourhood classes (``neighbour_weight``), each
updated incrementally per move in ``O(R^2)``, not by an FFT.

:func:`anneal_fractions` runs the stages: 1 flips interface pixels greedily until the counts are
exact; 2 swaps pairs of interface pixels by Metropolis (counts kept), ``batch`` proposals evaluated
at once; 3 (``surface``) shortens an interface longer than the exemplar's. The cluster guard
(``keep_clusters``, :func:`connectivity_number`) refuses moves that would split or start a cluster;
:func:`remove_small_clusters` and :func:`join_network_fragments` are the cleanup between two
annealings.

The energy, each stage and the guard are described in full in the reconstruction guide ("How each
stage works", ``docs/guide/reconstruction.md``); their costs are on the performance page.

References
----------
Yeong, C. L. Y. & Torquato, S. "Reconstructing random media", Phys. Rev. E 57, 495 (1998).
Kirkpatrick, S., Gelatt, C. D. & Vecchi, M. P. "Optimization by simulated annealing", Science
220, 671 (1983).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from mdesign.config import RECONSTRUCTION_DEFAULTS as D
from mdesign.grf import phase_counts
from mdesign.reconstruction.loss import s2_window

__all__ = [
    "AnnealingResult",
    "anneal_fractions",
    "connectivity_number",
    "interface_density",
    "interface_edges",
    "is_network",
    "join_network_fragments",
    "keeps_clusters",
    "remove_small_clusters",
]


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


class _S2State:
    """Labels, their tracked indicators and ``S2`` window, updated move by move."""

    def __init__(self, labels, target, tracked, max_lag, periodic, radial=False, dense_lag=None):
        self.labels = labels.astype(np.int64)
        self.h, self.w = labels.shape
        self.r = max_lag
        self.periodic = periodic
        self.tracked = np.asarray(tracked)
        lag = np.arange(-max_lag, max_lag + 1)
        dy = np.repeat(lag, lag.size)
        dx = np.tile(lag, lag.size)
        # the lags tracked, a subset of the window symmetric under d -> -d (so that reversing
        # the list maps each lag to its opposite); radial: only round(|d|) <= R, and beyond
        # ``dense_lag`` only the lags of even dy and dx (a quarter: the radial averages there
        # are over many lags already, and a move costs the number of lags)
        keep = np.ones(dy.size, dtype=bool)
        if radial:
            dist = np.rint(np.hypot(dy, dx)).astype(np.int64)
            keep = dist <= max_lag
            if dense_lag is not None and dense_lag < max_lag:
                keep &= (dist <= dense_lag) | ((dy % 2 == 0) & (dx % 2 == 0))
        self.keep = np.flatnonzero(keep)
        self.window_to_lag = np.full(dy.size, -1)
        self.window_to_lag[self.keep] = np.arange(self.keep.size)
        self.dy, self.dx = dy[self.keep], dx[self.keep]
        self.target = target[:, self.keep]  # J x L (tracked lags of the flattened window)
        self.n_lags = self.dy.size
        # radial: the energy compares averages over the lags of each distance round(|d|) <= R
        self.proj = None
        if radial:
            dist = np.rint(np.hypot(self.dy, self.dx)).astype(np.int64)
            proj = np.zeros((max_lag + 1, self.n_lags))
            proj[dist, np.arange(self.n_lags)] = 1.0
            self.proj = proj / proj.sum(1, keepdims=True)
        self.centre = self.n_lags // 2
        if periodic:
            pairs = np.full(self.n_lags, float(self.h * self.w))
        else:
            pairs = (self.h - np.abs(self.dy)) * (self.w - np.abs(self.dx)).astype(np.float64)
        self.inv_pairs = 1.0 / pairs
        # indicators of the tracked phases; zero-padded by R when not periodic
        pad = 0 if periodic else max_lag
        self.pad = pad
        self.ind = np.zeros((len(tracked), self.h + 2 * pad, self.w + 2 * pad))
        for j, ph in enumerate(tracked):
            self.ind[j, pad : pad + self.h, pad : pad + self.w] = self.labels == ph
        self.s2 = self._exact_s2()

    def _exact_s2(self) -> np.ndarray:
        onehot = torch.as_tensor(
            np.stack([self.labels == ph for ph in self.tracked]), dtype=torch.float64
        )[None]
        win = s2_window(onehot, self.r, periodic=self.periodic)[0]
        return win.reshape(len(self.tracked), -1).numpy()[:, self.keep]

    def _project(self, x: np.ndarray) -> np.ndarray:
        return x if self.proj is None else x @ self.proj.T

    def energy(self, s2: np.ndarray | None = None) -> float:
        s2 = self.s2 if s2 is None else s2
        return float((self._project(s2 - self.target) ** 2).mean())

    def _patch(self, p: np.ndarray) -> np.ndarray:
        """Tracked indicators at ``p + d`` for every window lag: ``B x J x L``."""
        py, px = np.divmod(p, self.w)
        ys = py[:, None] + self.dy[None, :]
        xs = px[:, None] + self.dx[None, :]
        if self.periodic:
            ys %= self.h
            xs %= self.w
        else:
            ys += self.pad
            xs += self.pad
        return self.ind[:, ys, xs].transpose(1, 0, 2)

    def delta(self, p, new, q=None, q_new=None) -> np.ndarray:
        """``S2`` change (``B x J x L``) of flipping pixels ``p`` to ``new`` (then ``q``)."""
        d_p = (self.tracked[None, :] == new[:, None]).astype(np.float64) - (
            self.tracked[None, :] == self.labels.flat[p][:, None]
        )
        patch = self._patch(p)
        ds = d_p[:, :, None] * (patch + patch[:, :, ::-1])
        ds[:, :, self.centre] += d_p**2
        if q is not None:
            d_q = (self.tracked[None, :] == q_new[:, None]).astype(np.float64) - (
                self.tracked[None, :] == self.labels.flat[q][:, None]
            )
            patch = self._patch(q)
            dq = d_q[:, :, None] * (patch + patch[:, :, ::-1])
            dq[:, :, self.centre] += d_q**2
            # the second flip sees the first: pixel p is at lag +-(p - q) from q
            (py, px), (qy, qx) = np.divmod(p, self.w), np.divmod(q, self.w)
            sy, sx = py - qy, px - qx
            if self.periodic:
                sy = (sy + self.h // 2) % self.h - self.h // 2
                sx = (sx + self.w // 2) % self.w - self.w // 2
            near = (np.abs(sy) <= self.r) & (np.abs(sx) <= self.r)
            idx = (sy + self.r) * (2 * self.r + 1) + (sx + self.r)
            idx = np.where(near, self.window_to_lag[np.where(near, idx, 0)], -1)
            near &= idx >= 0  # a lag that is tracked
            b = np.flatnonzero(near)
            cross = d_q[b] * d_p[b]
            dq[b, :, idx[b]] += cross
            dq[b, :, self.n_lags - 1 - idx[b]] += cross
            ds = ds + dq
        return ds * self.inv_pairs

    def energy_change(self, ds: np.ndarray) -> np.ndarray:
        err = self._project(self.s2 - self.target)[None]
        ds = self._project(ds)
        return ((2 * err + ds) * ds).mean((1, 2))

    def apply(self, p: int, new: int, ds: np.ndarray) -> None:
        old = self.labels.flat[p]
        py, px = divmod(int(p), self.w)
        for j, ph in enumerate(self.tracked):
            if ph in (old, new):
                self.ind[j, py + self.pad, px + self.pad] = float(ph == new)
        self.labels.flat[p] = new
        self.s2 = self.s2 + ds

    def interface(self) -> np.ndarray:
        """Mask of pixels with a 4-neighbour of another phase."""
        lab = self.labels
        if self.periodic:
            nbrs = [np.roll(lab, s, axis=a) for a in (0, 1) for s in (1, -1)]
        else:
            padded = np.pad(lab, 1, mode="edge")
            nbrs = [padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
        out = np.zeros(lab.shape, dtype=bool)
        for n in nbrs:
            out |= n != lab
        return out

    def touching(self, phase: int) -> np.ndarray:
        """Mask of pixels with a 4-neighbour of ``phase``."""
        lab = self.labels == phase
        if self.periodic:
            nbrs = [np.roll(lab, s, axis=a) for a in (0, 1) for s in (1, -1)]
        else:
            padded = np.pad(lab, 1)
            nbrs = [padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
        return np.logical_or.reduce(nbrs)


_EDGES = ((-1, 0), (1, 0), (0, -1), (0, 1))
_CORNERS = ((-1, -1), (-1, 1), (1, -1), (1, 1))
# the 8-ring around a pixel in turn (E, NE, N, NW, W, SW, S, SE), as columns of the neighbour
# table (edges N S W E, then corners NW NE SW SE)
_RING = (3, 5, 0, 4, 2, 6, 1, 7)


def _neighbour_table(h: int, w: int, periodic: bool) -> np.ndarray:
    """``HW x 8`` flat indices of the 8 neighbours (edges N S W E, corners NW NE SW SE).

    Outside the image (not periodic) a pixel is its own neighbour.
    """
    ys, xs = np.divmod(np.arange(h * w), w)
    cols = []
    for dy, dx in _EDGES + _CORNERS:
        ny, nx = ys + dy, xs + dx
        if periodic:
            ny, nx = ny % h, nx % w
        else:
            inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
            ny, nx = np.where(inside, ny, ys), np.where(inside, nx, xs)
        cols.append(ny * w + nx)
    return np.stack(cols, 1)


def connectivity_number(flat: np.ndarray, nbr: np.ndarray, p: np.ndarray, phase) -> np.ndarray:
    """Yokoi's 4-connectivity number of pixels ``p`` for ``phase``.

    The number of 4-connected runs of ``phase`` through the edge neighbours of ``p`` on its
    8-ring, ``sum over the edge neighbours k of x_k (1 - x_{k+1} x_{k+2})`` (ring order, ``x``
    the indicator of ``phase``): 0 when no edge neighbour is of ``phase``, 1 when they are all
    joined around ``p``, 2 or more when ``p`` is the only local link between them.

    Parameters
    ----------
    flat : ndarray of int, ``HW``
    nbr : ndarray of int, ``HW x 8``
        :func:`_neighbour_table`.
    p : ndarray of int, ``B``
    phase : int or ndarray of int, ``B``

    Returns
    -------
    ndarray of int, ``B``
    """
    ring = nbr[p][:, _RING]
    # outside the image (a pixel is its own neighbour there) is of no phase
    x = (flat[ring] == np.asarray(phase).reshape(-1, 1)) & (ring != p[:, None])
    nxt1 = np.roll(x, -1, axis=1)
    nxt2 = np.roll(x, -2, axis=1)
    run = x & ~(nxt1 & nxt2)
    return run[:, 0::2].sum(1)


def keeps_clusters(
    flat: np.ndarray, nbr: np.ndarray, p: np.ndarray, new: np.ndarray, guard: np.ndarray
) -> np.ndarray:
    """Whether flipping each pixel ``p`` to ``new`` adds no cluster to a guarded phase.

    A flip from ``a`` to ``b`` may split a cluster of ``a`` only if ``p`` joins two or more runs
    of ``a`` on its ring (connectivity number >= 2), and starts a new cluster of ``b`` only if no
    edge neighbour is of ``b`` (number 0). Both are refused for the phases with ``guard``; the
    flip may still remove a cluster (a lone pixel) or merge two. The test is local, so it is
    sufficient: an allowed flip never raises a guarded phase's count of 4-connected clusters.

    Parameters
    ----------
    flat : ndarray of int, ``HW``
    nbr : ndarray of int, ``HW x 8``
    p, new : ndarray of int, ``B``
    guard : ndarray of bool, ``k``

    Returns
    -------
    ndarray of bool, ``B``
    """
    old = flat[p]
    ok = ~guard[old] | (connectivity_number(flat, nbr, p, old) <= 1)
    return ok & (~guard[new] | (connectivity_number(flat, nbr, p, new) >= 1))


class _NeighbourState:
    """The neighbourhood-class histogram of a label image, updated swap by swap."""

    def __init__(self, labels: np.ndarray, phases: int, periodic: bool) -> None:
        self.h, self.w = labels.shape
        self.phases = phases
        # neighbour table (edges first); outside the image (not periodic) a pixel is its own
        # neighbour, so the edge counts as the same phase
        self.nbr = _neighbour_table(self.h, self.w, periodic)
        self.n_classes = 25 * phases
        self.hist = self.histogram(labels.ravel())

    def classes(self, flat: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Class of pixels ``idx`` (any shape) of the flat labels ``flat``."""
        same = flat[self.nbr[idx]] == flat[idx][..., None]
        return flat[idx] * 25 + same[..., :4].sum(-1) * 5 + same[..., 4:].sum(-1)

    def histogram(self, flat: np.ndarray) -> np.ndarray:
        cls = self.classes(flat, np.arange(flat.size))
        return np.bincount(cls, minlength=self.n_classes) / flat.size

    def swap_delta(self, flat: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Histogram change (``B x classes``) of swapping the labels of pixels ``p`` and ``q``."""
        b = p.size
        aff = np.concatenate([p[:, None], self.nbr[p], q[:, None], self.nbr[q]], 1)  # B x 18
        order = np.sort(aff, 1)
        dup = np.zeros_like(order, dtype=bool)
        dup[:, 1:] = order[:, 1:] == order[:, :-1]
        aff = order
        old = self.classes(flat, aff)
        # the labels after the swap, at the affected pixels and at their neighbours
        lp, lq = flat[p][:, None], flat[q][:, None]

        def new_label(idx):
            shape = (b,) + (1,) * (idx.ndim - 1)
            pp, qq = p.reshape(shape), q.reshape(shape)
            out = flat[idx]
            out = np.where(idx == pp, lq.reshape(shape), out)
            return np.where(idx == qq, lp.reshape(shape), out)

        centre = new_label(aff)
        same = new_label(self.nbr[aff]) == centre[..., None]
        new = centre * 25 + same[..., :4].sum(-1) * 5 + same[..., 4:].sum(-1)
        keep = ~dup
        rows = np.repeat(np.arange(b), aff.shape[1]).reshape(b, -1)
        delta = np.zeros((b, self.n_classes))
        np.add.at(delta, (rows[keep], new[keep]), 1.0)
        np.add.at(delta, (rows[keep], old[keep]), -1.0)
        return delta / flat.size


NETWORK_SHARE = 0.9
"""A phase is a network when the exemplar's largest cluster holds this share of its pixels..."""
NETWORK_CLUSTERS = 5
"""... and it has at most this many clusters (in the exemplar as a window, per its area)."""
BRIDGE_MIN_SIZE = 5
"""Fragments of a network phase of at least this many pixels are joined, smaller ones left to
:func:`remove_small_clusters`."""


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


def join_network_fragments(labels: np.ndarray, exemplar: np.ndarray, *, phases: int) -> np.ndarray:
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

    Parameters
    ----------
    labels : ndarray, ``H x W``
    exemplar : ndarray, ``H' x W'``
    phases : int
        k.

    Returns
    -------
    ndarray, ``H x W``
        A new label image.
    """
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
            sizes = np.bincount(comp.ravel(), minlength=n + 1)
            sizes[0] = 0
            main = int(np.argmax(sizes))
            frags = np.flatnonzero(sizes >= BRIDGE_MIN_SIZE)
            frags = frags[frags != main]
            if frags.size == 0:
                break
            dist, (iy, ix) = ndimage.distance_transform_edt(comp != main, return_indices=True)
            best = ndimage.minimum_position(dist, comp, frags)
            d = [dist[b] for b in best]
            y0, x0 = best[int(np.argmin(d))]
            ys, xs = _path4(int(y0), int(x0), int(iy[y0, x0]), int(ix[y0, x0]))
            out[ys, xs] = j
    return out


def remove_small_clusters(
    labels: np.ndarray,
    exemplar: np.ndarray,
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

    Parameters
    ----------
    labels : ndarray, ``H x W``
    exemplar : ndarray, ``H' x W'``
    phases : int
        k.
    periodic : bool
        ``labels`` is periodic.

    Returns
    -------
    ndarray, ``H x W``
        A new label image.
    """
    from scipy import ndimage

    from mdesign.reconstruction.metrics import cluster_components

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


def anneal_fractions(
    labels: np.ndarray,
    exemplar: np.ndarray,
    *,
    phases: int,
    max_lag: int,
    steps: int,
    seed: int,
    periodic: bool = D.periodic,
    exemplar_periodic: bool = D.exemplar_periodic,
    batch: int = D.anneal.batch,
    initial_acceptance: float = D.anneal.initial_acceptance,
    final_temperature_ratio: float = D.anneal.final_temperature,
    neighbour_weight: float = D.anneal.neighbour_weight,
    radial: bool = D.anneal.radial,
    keep_clusters: bool = D.anneal.keep_clusters,
    dense_lag: int = D.anneal.dense_lag,
    surface: bool = D.anneal.surface,
    progress: bool = False,
) -> AnnealingResult:
    """Make the phase fractions exact by interface moves that keep ``S2`` close to the exemplar's.

    See the module docstring for the energy, the two stages and the temperature schedule.

    Parameters
    ----------
    labels : ndarray, ``H x W``
        Labels to correct (the decoded reconstruction).
    exemplar : ndarray, ``H' x W'``
        The exemplar's labels (any size): its fractions and ``S2`` are the targets.
    phases : int
        k.
    max_lag : int
        ``R`` of the ``S2`` window, below half of both images' smaller sides.
    steps : int
        Swap proposals of the Metropolis stage (0: fractions only).
    seed : int
        Seed of the proposals and acceptances.
    periodic : bool
        ``labels`` is periodic: ``S2`` on the torus and wrapping neighbourhoods.
    exemplar_periodic : bool
        Estimate the exemplar's ``S2`` on the torus (real micrographs are not periodic).
    batch : int
        Proposals evaluated at once.
    initial_acceptance : float
        Acceptance probability of the median uphill swap at the start (sets ``T0``).
    final_temperature_ratio : float
        Last temperature over the first.
    neighbour_weight : float
        Weight of the neighbourhood term of the swap stage (module docstring; 0: off).
    radial : bool
        Compare the radial averages of ``S2`` (over the lags of each distance
        ``round(|d|) <= R``) instead of the whole window (module docstring).
    dense_lag : int
        With ``radial``, the lags beyond this distance are tracked on the even lattice only
        (module docstring).
    keep_clusters : bool
        Refuse the moves that would add a cluster to a phase that has at least the exemplar's
        count (per unit area) when the swaps start (module docstring).
    surface : bool
        After the swaps, shorten the interface to the exemplar's length per unit area by swaps
        of least energy rise (stage 3, module docstring).
    progress : bool
        Show a progress bar over the swap proposals.

    Returns
    -------
    AnnealingResult
        ``labels`` whose count of phase ``j`` is ``phase_counts(exemplar fractions)[j]``.
    """
    rng = np.random.default_rng(seed)
    h, w = labels.shape
    tracked = [1] if phases == 2 else list(range(phases))
    ex_onehot = torch.as_tensor(np.stack([exemplar == ph for ph in tracked]), dtype=torch.float64)
    target = s2_window(ex_onehot[None], max_lag, periodic=exemplar_periodic)[0]
    fractions = np.array([(exemplar == ph).mean() for ph in range(phases)])
    counts_target = phase_counts(fractions[None], h * w)[0]
    state = _S2State(
        labels,
        target.reshape(len(tracked), -1).numpy(),
        tracked,
        max_lag,
        periodic,
        radial,
        dense_lag=dense_lag,
    )
    nb = nb_target = None
    nb_coef = 0.0
    if neighbour_weight > 0:
        nb = _NeighbourState(state.labels, phases, periodic)
        ex_nb = _NeighbourState(exemplar.astype(np.int64), phases, exemplar_periodic)
        nb_target = ex_nb.hist
        structured = state._project(state.target - fractions[tracked][:, None] ** 2)
        s2_scale = float((structured**2).mean())
        nb_coef = neighbour_weight * s2_scale / max(float((nb_target**2).mean()), 1e-300)

    def nb_energy(hist):
        return nb_coef * float(((hist - nb_target) ** 2).mean()) if nb is not None else 0.0

    def nb_change(p, q):
        if nb is None:
            return 0.0, None
        dh = nb.swap_delta(state.labels.ravel(), p, q)
        err = (nb.hist - nb_target)[None]
        return nb_coef * ((2 * err + dh) * dh).mean(1), dh

    e_initial = state.energy() + (nb_energy(nb.hist) if nb is not None else 0.0)
    nbr = guard = None
    if keep_clusters:
        from mdesign.reconstruction.metrics import cluster_components

        nbr = nb.nbr if nb is not None else _neighbour_table(h, w, periodic)
        scale = labels.size / exemplar.size
        # both counted in the image as a window (as remove_small_clusters does)
        guard = np.array(
            [
                cluster_components(state.labels == j)[1]
                >= round(cluster_components(exemplar == j)[1] * scale)
                for j in range(phases)
            ]
        )

    # stage 1: greedy flips from the largest surplus to the largest deficit
    flips = 0
    counts = np.bincount(state.labels.ravel(), minlength=phases)
    while (counts != counts_target).any():
        surplus = counts - counts_target
        a, b = int(np.argmax(surplus)), int(np.argmin(surplus))
        is_a = state.labels == a
        cand = np.flatnonzero(is_a & state.touching(b))
        if cand.size == 0:
            cand = np.flatnonzero(is_a)
        if guard is not None:
            safe = keeps_clusters(state.labels.ravel(), nbr, cand, np.full(cand.size, b), guard)
            if safe.any():
                cand = cand[safe]
        if cand.size > batch:
            cand = rng.choice(cand, batch, replace=False)
        ds = state.delta(cand, np.full(cand.size, b))
        best = int(np.argmin(state.energy_change(ds)))
        state.apply(int(cand[best]), b, ds[best])
        counts[a] -= 1
        counts[b] += 1
        flips += 1

    # stage 2: Metropolis swaps of interface pixels of different phases, geometric cooling
    if nb is not None:  # stage 1 moved pixels without tracking the classes
        nb.hist = nb.histogram(state.labels.ravel())
    e_fractions = state.energy() + (nb_energy(nb.hist) if nb is not None else 0.0)
    accepted = done = 0
    if steps > 0:
        interface = np.flatnonzero(state.interface())
        t0 = _initial_temperature(state, interface, rng, initial_acceptance, nb_change)
        decay = final_temperature_ratio ** (1.0 / max(steps - 1, 1))
        bar = tqdm(total=steps, desc="annealing", unit="prop", disable=not progress, leave=False)
        while done < steps and interface.size >= 2 and t0 > 0:
            n = min(batch, steps - done)
            p = rng.choice(interface, n)
            q = rng.choice(interface, n)
            lp, lq = state.labels.flat[p], state.labels.flat[q]
            valid = lp != lq
            if guard is not None:
                flat = state.labels.ravel()
                (py, px), (qy, qx) = np.divmod(p, w), np.divmod(q, w)
                sy, sx = np.abs(py - qy), np.abs(px - qx)
                if periodic:
                    sy, sx = np.minimum(sy, h - sy), np.minimum(sx, w - sx)
                # overlapping rings: the two tests would not see each other's flip
                valid &= (sy > 2) | (sx > 2)
                valid &= keeps_clusters(flat, nbr, p, lq, guard)
                valid &= keeps_clusters(flat, nbr, q, lp, guard)
            de = np.full(n, np.inf)
            ds = None
            if valid.any():
                ds = state.delta(p[valid], lq[valid], q[valid], lp[valid])
                dn, dh = nb_change(p[valid], q[valid])
                de[valid] = state.energy_change(ds) + dn
            temps = t0 * decay ** (done + np.arange(n))
            with np.errstate(over="ignore"):
                ok = valid & (rng.random(n) < np.exp(-np.clip(de, 0, None) / temps))
            if ok.any():
                i = int(np.argmax(ok))
                k = int(np.cumsum(valid)[i]) - 1
                state.apply(int(p[i]), int(lq[i]), np.zeros_like(ds[k]))
                state.apply(int(q[i]), int(lp[i]), ds[k])
                if nb is not None:
                    nb.hist = nb.hist + dh[k]
                accepted += 1
                interface = np.flatnonzero(state.interface())
                used = i + 1
            else:
                used = n
            done += used
            bar.update(used)
        bar.close()
    surface_swaps = 0
    if surface:
        nbr3 = nbr if nbr is not None else _neighbour_table(h, w, periodic)
        pairs = 2 * h * w if periodic else h * (w - 1) + (h - 1) * w
        target_edges = interface_density(exemplar, periodic=exemplar_periodic) * pairs
        surface_swaps = _reduce_surface(
            state, nbr3, target_edges, phases, rng, batch, guard, nb_change, nb
        )
    # recompute exactly: the incremental sums drift by rounding only, but the result is reported
    state.s2 = state._exact_s2()
    e_final = state.energy()
    if nb is not None:
        nb.hist = nb.histogram(state.labels.ravel())
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


SURFACE_MISSES = 8
"""The surface stage ends after this many batches in a row without an allowed swap."""


def _n_faces(nbr: np.ndarray) -> int:
    """Edge (face) neighbours in a table: the first 4 of a 2D table of 8, all 6 in 3D."""
    return 4 if nbr.shape[1] == 8 else nbr.shape[1]


def _face_table(shape: tuple[int, ...], periodic: bool) -> np.ndarray:
    """``N x 2 ndim`` flat indices of the edge (face) neighbours of every pixel or voxel.

    Columns: the lower and the upper neighbour along axis 0, then axis 1, ... (in 2D the first
    four columns of :func:`_neighbour_table`). Outside the image or volume (not periodic) a
    pixel is its own neighbour.
    """
    idx = np.indices(shape).reshape(len(shape), -1)
    cols = []
    for axis, n in enumerate(shape):
        for step in (-1, 1):
            c = idx.copy()
            c[axis] += step
            if periodic:
                c[axis] %= n
            else:
                inside = (c[axis] >= 0) & (c[axis] < n)
                c[axis] = np.where(inside, c[axis], idx[axis])
            cols.append(np.ravel_multi_index(tuple(c), shape))
    return np.stack(cols, 1)


def interface_edges(flat: np.ndarray, nbr: np.ndarray) -> int:
    """Pixel (voxel) edges between different phases: pairs of edge neighbours, each pair once.

    ``nbr`` is :func:`_neighbour_table` (2D) or :func:`_face_table`; outside the image (not
    periodic) a pixel is its own neighbour, so the edges of the image count as no interface.
    """
    return int(sum((flat[nbr[:, c]] != flat).sum() for c in range(1, _n_faces(nbr), 2)))


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


def _reduce_surface(state, nbr, target_edges, phases, rng, batch, guard, nb_change, nb):
    """Stage 3: swaps that shorten the interface until it is the exemplar's (module docstring).

    One stage for images and volumes: ``state`` moves labels and tracks ``S2`` (an image's
    :class:`_S2State`, a volume's :class:`~mdesign.reconstruction.annealing3d._VolumeMoves`),
    ``nbr`` holds the edge neighbours first (:func:`_neighbour_table`, :func:`_face_table`);
    ``guard`` and ``nb`` may be None (no cluster guard, no neighbourhood term). Returns the
    number of swaps made.
    """
    shape = state.labels.shape
    edge = nbr[:, : _n_faces(nbr)]
    real = edge != np.arange(edge.shape[0])[:, None]  # outside the image: no neighbour
    eye = np.eye(phases, dtype=np.int64)
    swaps = 0
    flat = state.labels.ravel()  # a view (state.labels is a contiguous copy): apply updates it
    edges = interface_edges(flat, nbr)
    misses = 0
    while edges > target_edges and misses < SURFACE_MISSES:
        # n[p, b]: edge neighbours of p of phase b; flipping p from a to b changes the interface
        # edges by n[p, a] - n[p, b]
        n = (eye[flat[edge]] * real[..., None]).sum(1)  # HW x k
        change = n[np.arange(flat.size), flat][:, None] - n  # HW x k
        change[np.arange(flat.size), flat] = 99  # not a flip
        best = np.argmin(change, 1)
        gain = change[np.arange(flat.size), best]
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
        dn, dh = nb_change(p, q)
        i = int(np.argmin(state.energy_change(ds) + dn))
        state.apply(int(p[i]), int(lq[i]), np.zeros_like(ds[i]))
        state.apply(int(q[i]), int(lp[i]), ds[i])
        if nb is not None:
            nb.hist = nb.hist + dh[i]
        edges += int(change[p[i], lq[i]] + change[q[i], lp[i]])
        swaps += 1
    return swaps


def _initial_temperature(
    state: _S2State, interface: np.ndarray, rng, acceptance: float, nb_change
) -> float:
    """The temperature at which the median rise of 256 random swaps is accepted as given."""
    if interface.size < 2:
        return 0.0
    p = rng.choice(interface, 256)
    q = rng.choice(interface, 256)
    lp, lq = state.labels.flat[p], state.labels.flat[q]
    valid = lp != lq
    if not valid.any():
        return 0.0
    de = state.energy_change(state.delta(p[valid], lq[valid], q[valid], lp[valid]))
    de = de + nb_change(p[valid], q[valid])[0]
    rises = de[de > 0]
    return float(np.median(rises) / np.log(1 / acceptance)) if rises.size else 0.0
