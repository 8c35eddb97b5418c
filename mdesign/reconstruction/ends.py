"""Closing the open ends of a thin network phase (grain boundaries) in an image.

A grain-boundary network is a set of closed cells: its skeleton has no ends inside the image. The
Gram fit draws the lines but leaves many dead ends (a tree, not cells), and the annealing and the
network joining (:func:`~mdesign.reconstruction.annealing.join_network_fragments`) keep them.
:func:`close_network_ends` extends each open end of the skeleton (Zhang & Suen thinning, skimage's
``skeletonize``) along its direction until it meets the network, at the branch's own width, or
retracts the dead-end branch when nothing is met within a cell's reach, until the image has no
more open ends per area than the exemplar. :func:`network_ends` counts them (the shape measure of
the bench). The fractions change; the annealing that follows restores them exactly, within the
cluster guard (which keeps the closed cells: a wall's last pixel is a local split).

2D only: the open edges of a volume's boundary sheets are lines, not points, and a volume's thin
network is rebuilt as closed sheets instead (``anneal.volume_sheets``).

References
----------
Zhang, T. Y. & Suen, C. Y. "A fast parallel algorithm for thinning digital patterns", Commun.
ACM 27, 236 (1984).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NetworkEnd", "close_network_ends", "network_ends"]

_NBR8 = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])
ANGLES = (0.0, 20.0, -20.0, 40.0, -40.0)
"""Directions (degrees from the branch's own) in which an open end looks for the network."""
BORDER = 4
"""Ends this close to the edge of a non-periodic image are lines the crop cut, not dead ends."""
DIRECTION_PIXELS = 6
"""An open end's direction is from the branch's pixel this far back to the end."""
MAX_BRANCH = 64
"""Branches are traced this far; a longer one is not retracted."""


@dataclass(frozen=True)
class NetworkEnd:
    """An open end of a network's skeleton.

    Attributes
    ----------
    end : tuple of int
        ``(y, x)`` of the end pixel.
    branch : ndarray, ``n x 2``
        The skeleton pixels from the end back to the junction (excluded) or the other end.
    junction : bool
        The branch ends at a junction (false: a free segment, or longer than traced).
    width : int
        The branch's width, pixels (median of twice the distance to the other phases less one).
    """

    end: tuple[int, int]
    branch: np.ndarray
    junction: bool
    width: int


def _wrap_pad(shape) -> int:
    """The wrap padding that lets a periodic image's skeleton and distances see across its
    edges."""
    return max(8, min(shape) // 4)


def _skeleton(mask: np.ndarray, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    """The skeleton of ``mask`` and its distance to the rest (wrapped when ``periodic``)."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    if not periodic:
        return skeletonize(mask), ndimage.distance_transform_edt(mask)
    pad = _wrap_pad(mask.shape)
    padded = np.pad(mask, pad, mode="wrap")
    inner = (slice(pad, -pad), slice(pad, -pad))
    return skeletonize(padded)[inner], ndimage.distance_transform_edt(padded)[inner]


def _nearest(target: np.ndarray, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel, the ``(y, x)`` of the nearest true pixel of ``target`` (on the torus when
    ``periodic``)."""
    from scipy import ndimage

    if not periodic:
        _, (iy, ix) = ndimage.distance_transform_edt(~target, return_indices=True)
        return iy, ix
    h, w = target.shape
    pad = _wrap_pad(target.shape)
    _, (iy, ix) = ndimage.distance_transform_edt(
        ~np.pad(target, pad, mode="wrap"), return_indices=True
    )
    inner = (slice(pad, -pad), slice(pad, -pad))
    return (iy[inner] - pad) % h, (ix[inner] - pad) % w


def _neighbours(skel: np.ndarray, p, periodic: bool) -> list[tuple[int, int]]:
    h, w = skel.shape
    out = []
    for dy, dx in _NBR8:
        y, x = p[0] + dy, p[1] + dx
        if periodic:
            y, x = y % h, x % w
        elif not (0 <= y < h and 0 <= x < w):
            continue
        if skel[y, x]:
            out.append((int(y), int(x)))
    return out


def network_ends(
    labels: np.ndarray,
    *,
    phase: int,
    periodic: bool,
    min_branch: int = 4,
    max_branch: int = MAX_BRANCH,
    border: int = 0,
) -> list[NetworkEnd]:
    """The open ends of ``phase``'s skeleton in an image (its dead ends).

    An end is a skeleton pixel with one 8-neighbour on the skeleton; its branch is traced to the
    first junction (a pixel with more than one onward neighbour). Spurs (a branch shorter than
    ``min_branch`` pixels to a junction: the skeleton of a rough edge) are not ends, nor, when not
    ``periodic``, ends within ``border`` pixels of the image's edge (lines the crop cut).

    Parameters
    ----------
    labels : ndarray, ``H x W``
    phase : int
    periodic : bool
        ``labels`` wraps around.
    min_branch, max_branch : int
        Shortest branch to a junction that counts; longest traced.
    border : int
        Ends this close to the edge of a non-periodic image are left out.

    Returns
    -------
    list of NetworkEnd
    """
    mask = np.asarray(labels) == phase
    if mask.ndim != 2:
        raise ValueError("network_ends takes an image (H x W)")
    skel, dist = _skeleton(mask, periodic)
    h, w = mask.shape
    ends = []
    from scipy import ndimage

    ring = np.ones((3, 3), int)
    ring[1, 1] = 0
    count = ndimage.convolve(skel.astype(int), ring, mode="wrap" if periodic else "constant")
    for y, x in zip(*np.nonzero(skel & (count == 1)), strict=True):
        first = _neighbours(skel, (y, x), periodic)
        if not periodic and min(y, x, h - 1 - y, w - 1 - x) < border:
            continue
        path, seen, junction = [(int(y), int(x))], {(int(y), int(x))}, False
        nxt = first
        while len(path) < max_branch:
            if len(nxt) != 1:
                junction = len(nxt) > 1
                break
            p = nxt[0]
            onward = [q for q in _neighbours(skel, p, periodic) if q not in seen]
            # a staircase corner: a neighbour of the last pixel is no branching
            onward = [q for q in onward if not _adjacent(q, path[-1], skel.shape, periodic)] or (
                onward[:1] if len(onward) == 1 else onward
            )
            if len(onward) > 1:
                junction = True
                break
            path.append(p)
            seen.add(p)
            nxt = onward
        if junction and len(path) < min_branch:
            continue
        branch = np.array(path)
        width = int(max(1, round(float(np.median(2 * dist[branch[:, 0], branch[:, 1]] - 1)))))
        ends.append(NetworkEnd(end=path[0], branch=branch, junction=junction, width=width))
    return ends


def _adjacent(a, b, shape, periodic: bool) -> bool:
    d = np.abs(np.subtract(a, b))
    if periodic:
        d = np.minimum(d, np.array(shape) - d)
    return bool(d.max() <= 1)


def _disk(width: int) -> np.ndarray:
    r = (width - 1) / 2
    k = int(np.floor(r))
    off = np.array([(dy, dx) for dy in range(-k, k + 1) for dx in range(-k, k + 1)])
    return off[(off**2).sum(1) <= r * r + 1e-9]


def _closing(mask: np.ndarray, e: NetworkEnd, reach: float, periodic: bool):
    """The pixels of the shortest extension of ``e`` that meets the network within ``reach``
    (a staircase from the end to the first network pixel along one of :data:`ANGLES` after the
    ray has left the network, outside the branch's own body), thickened to its width; None when
    none meets it."""
    from mdesign.reconstruction.annealing import _path4

    h, w = mask.shape
    branch = e.branch
    if len(branch) < 2:
        return None
    back = branch[min(len(branch) - 1, DIRECTION_PIXELS)]
    d = np.subtract(e.end, back).astype(float)
    if periodic:
        d = (d + np.array([h, w]) / 2) % np.array([h, w]) - np.array([h, w]) / 2
    if not d.any():
        return None
    d /= np.hypot(*d)
    # the branch's own body: pixels within its width of its skeleton
    own = set()
    for by, bx in branch:
        for oy, ox in _disk(e.width + 2):
            own.add(((by + oy) % h, (bx + ox) % w) if periodic else (by + oy, bx + ox))
    best = None
    for angle in ANGLES:
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        u = np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
        left = False  # the ray has left the branch's own tip
        for t in np.arange(1.0, reach, 0.5):
            y, x = (int(v) for v in np.round(np.asarray(e.end) + t * u))
            if periodic:
                yy, xx = y % h, x % w
            elif 0 <= y < h and 0 <= x < w:
                yy, xx = y, x
            else:
                break
            if not mask[yy, xx]:
                left = True
                continue
            if not left or (yy, xx) in own:
                continue
            cost = t * (1 + abs(angle) / 90)
            if best is None or cost < best[0]:
                best = (cost, y, x)
            break
    if best is None:
        return None
    ys, xs = _path4(e.end[0], e.end[1], best[1], best[2])
    off = _disk(e.width)
    ys = (ys[:, None] + off[:, 0]).ravel()
    xs = (xs[:, None] + off[:, 1]).ravel()
    if periodic:
        ys, xs = ys % h, xs % w
    else:
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        ys, xs = ys[keep], xs[keep]
    flat = np.unique(ys * w + xs)  # each pixel once: the count of added pixels is exact
    return flat // w, flat % w, best[0]


def close_network_ends(
    labels: np.ndarray,
    exemplar: np.ndarray,
    *,
    phases: int,
    periodic: bool,
    exemplar_periodic: bool = False,
    passes: int = 8,
) -> np.ndarray:
    """Close the open ends of a thin network phase: extend each along its direction to the
    network, or retract it.

    For each phase that is a network in the exemplar and thin (under half of it:
    :func:`~mdesign.reconstruction.annealing.is_network`), while the image has more open ends
    (:func:`network_ends`, away from a non-periodic image's edge by :data:`BORDER`) per area
    than the exemplar, each end is extended by a straight staircase at its branch's width to the
    nearest network pixel in its direction (within 40 degrees, the straighter preferred) within a
    cell's reach (the square root of the exemplar's area per cluster of the other phases), the
    shortest first, while the other phases have fewer clusters (cells) than the exemplar's per
    area (each closing of a connected network adds a cell); every other end has its branch (to
    the junction, under :data:`MAX_BRANCH` pixels) given to the nearest other phase. Actions of
    one pass are at least 3 pixels apart; ``passes`` bounds the passes. The fractions change:
    :func:`~mdesign.reconstruction.annealing.anneal_fractions` restores them.

    Parameters
    ----------
    labels : ndarray, ``H x W``
    exemplar : ndarray, ``H' x W'``
    phases : int
        k.
    periodic, exemplar_periodic : bool
        ``labels`` (the exemplar) wraps around.
    passes : int
        Most passes (each skeletonises once).

    Returns
    -------
    ndarray, ``H x W``
        A new label image.
    """
    from scipy import ndimage

    from mdesign.reconstruction.annealing import _sheet_phases
    from mdesign.reconstruction.metrics import cluster_components

    labels = np.asarray(labels)
    exemplar = np.asarray(exemplar)
    if labels.ndim != 2:
        raise ValueError("close_network_ends takes an image (H x W)")
    out = labels.copy()
    for j in _sheet_phases([exemplar], phases):
        ex_ends = network_ends(
            exemplar, phase=j, periodic=exemplar_periodic, border=0 if exemplar_periodic else BORDER
        )
        target = round(len(ex_ends) * out.size / exemplar.size)
        n_ex_cells = cluster_components(exemplar != j)[1]
        count_target = round(float((exemplar == j).mean()) * out.size)
        reach = float(np.sqrt((exemplar != j).sum() / max(1, n_ex_cells)))
        failed: set[tuple[int, int]] = set()
        for _ in range(passes):
            mask = out == j
            ends = network_ends(out, phase=j, periodic=periodic, border=0 if periodic else BORDER)
            budget = len(ends) - target
            ends = [e for e in ends if e.end not in failed]
            if budget <= 0 or not ends:
                break
            # close (the shortest first) while the phase is short of its count, retract (the
            # shortest branch first) while it has a surplus: the fractions move little
            closings = sorted(
                ((c[2], e, c[:2]) for e in ends if (c := _closing(mask, e, reach, periodic))),
                key=lambda a: a[0],
            )
            closings = [(e, pix) for _, e, pix in closings]
            retracts = sorted(
                (e for e in ends if len(e.branch) < MAX_BRANCH), key=lambda e: len(e.branch)
            )
            failed |= (
                {e.end for e in ends} - {e.end for e, _ in closings} - {e.end for e in retracts}
            )
            if not closings and not retracts:
                break
            blocked = np.zeros(out.shape, bool)
            owner = _nearest_branch_owner(mask, periodic) if retracts else None
            used: set[tuple[int, int]] = set()
            surplus = int(mask.sum()) - count_target
            done = 0
            while done < budget and (closings or retracts):
                close = bool(closings) and (surplus <= 0 or not retracts)
                if close:
                    e, (ys, xs) = closings.pop(0)
                else:
                    e = retracts.pop(0)
                    ys, xs = _branch_body(owner, mask, e)
                if e.end in used or blocked[ys, xs].any():
                    continue
                used.add(e.end)
                before = int((out[ys, xs] == j).sum())
                out[ys, xs] = j if close else _nearest_other(out, j, periodic)[ys, xs]
                surplus += int((out[ys, xs] == j).sum()) - before
                done += 1
                grow = np.zeros(out.shape, bool)
                grow[ys, xs] = True
                blocked |= ndimage.binary_dilation(grow, iterations=3)
    return out


def _nearest_branch_owner(mask: np.ndarray, periodic: bool) -> np.ndarray:
    """For every pixel, the flat index of its nearest pixel of ``mask``'s skeleton."""
    iy, ix = _nearest(_skeleton(mask, periodic)[0], periodic)
    return iy * mask.shape[1] + ix


def _branch_body(owner: np.ndarray, mask: np.ndarray, e: NetworkEnd):
    """The pixels of ``mask`` whose nearest skeleton pixel is on ``e``'s branch."""
    w = mask.shape[1]
    flat = e.branch[:, 0] * w + e.branch[:, 1]
    return np.nonzero(mask & np.isin(owner, flat))


def _nearest_other(labels: np.ndarray, j: int, periodic: bool) -> np.ndarray:
    """Every pixel's nearest label other than ``j``."""
    iy, ix = _nearest(labels != j, periodic)
    return labels[iy, ix]
