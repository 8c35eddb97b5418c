"""The dimension-specific tables of the annealing: lags (``S2``) and neighbours.

The annealing chain (:mod:`~mdesign.reconstruction.annealing`) is one for images and volumes; what
differs is here. :class:`ImageLags` tracks an image's ``S2`` window (every lag ``d`` with
``|d_i| <= R``, or the radial set); :class:`VolumeLags` tracks the ``S2`` of a volume's three slice
planes (the planes' lags as 3D displacements, one entry per pair ``{d, -d}``). Both update ``S2``
move by move in ``O(lags)`` and offer the same moves: ``delta`` (the change of flipping one pixel,
or two: a swap), ``compare`` (the compared entries: lags, or radial averages, per direction sector
with ``sectors``: :func:`radial_bins`), ``energy_change``, ``set_label``, ``add_s2``, ``finish``,
and ``lag_mask`` (the tracked displacements, for the walk past an accepted swap).
:func:`neighbour_table` lists the 8 (2D) or 26 (3D) neighbours, faces first.

The energy and its incremental update are described in the reconstruction guide ("How each stage
works", ``docs/guide/reconstruction.md``).

References
----------
Yeong, C. L. Y. & Torquato, S. "Reconstructing random media", Phys. Rev. E 57, 495 (1998); "II.
Three-dimensional media from two-dimensional cuts", Phys. Rev. E 58, 224 (1998).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy import sparse

from mdesign.reconstruction.loss import s2_window

__all__ = [
    "ImageLags",
    "VolumeLags",
    "face_table",
    "n_faces",
    "neighbour_steps",
    "neighbour_table",
    "plane_columns",
    "radial_bins",
]


def neighbour_steps(ndim: int) -> list[tuple[int, ...]]:
    """The steps of the columns of :func:`neighbour_table`, in order."""
    steps = []
    for axis in range(ndim):
        for s in (-1, 1):
            step = [0] * ndim
            step[axis] = s
            steps.append(tuple(step))
    for order in range(2, ndim + 1):
        steps += [
            s for s in itertools.product((-1, 0, 1), repeat=ndim) if np.count_nonzero(s) == order
        ]
    return steps


def plane_columns(ndim: int) -> list[tuple[int, int, int, int, int, int, int, int]]:
    """Per slice plane, the columns of its 8-ring in :func:`neighbour_table`, in turn E, NE, N,
    NW, W, SW, S, SE (N the lower along the plane's lower axis, W along its higher one).

    2D: one plane, ``(3, 5, 0, 4, 2, 6, 1, 7)``; 3D: the planes normal to axes 0, 1, 2.
    """
    col = {s: i for i, s in enumerate(neighbour_steps(ndim))}
    out = []
    for normal in [None] if ndim == 2 else range(3):
        u, v = (a for a in range(ndim) if a != normal)
        ring = []
        for du, dv in ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1)):
            step = [0] * ndim
            step[u], step[v] = du, dv
            ring.append(col[tuple(step)])
        out.append(tuple(ring))
    return out


def neighbour_table(shape: tuple[int, ...], periodic: bool) -> np.ndarray:
    """``N x (3^ndim - 1)`` flat indices of every pixel's (voxel's) neighbours.

    Columns: the face (edge) neighbours first, the lower and the upper along axis 0, then axis 1,
    ...; then the others by how many axes they step along (2D: the corners NW NE SW SE; 3D: the 12
    edge neighbours, then the 8 corners), each group in lexicographic order of the step. In 2D:
    N S W E, NW NE SW SE. Outside the image or volume (not periodic) a pixel is its own neighbour.
    """
    return _step_table(shape, periodic, neighbour_steps(len(shape)))


def _step_table(shape, periodic: bool, steps) -> np.ndarray:
    """``N x len(steps)`` flat indices of each pixel's neighbour at each step: the flat indices
    rolled by the step, column by column into one array (about one column's temporary)."""
    index = np.arange(int(np.prod(shape))).reshape(shape)
    table = np.empty((index.size, len(steps)), dtype=np.int64)
    for col, step in enumerate(steps):
        moved = np.roll(index, tuple(-s for s in step), axis=tuple(range(len(shape))))
        if not periodic:  # a step out of the image stays at the pixel
            for axis, s in enumerate(step):
                if s:
                    edge = (slice(None),) * axis + ((-1 if s > 0 else 0),)
                    moved[edge] = index[edge]
        table[:, col] = moved.ravel()
    return table


def n_faces(nbr: np.ndarray) -> int:
    """Face (edge) neighbours at the front of a table: 4 of a 2D table of 8, 6 of 26 (or of 6)."""
    return {8: 4, 4: 4, 26: 6, 6: 6}[nbr.shape[1]]


def face_table(shape: tuple[int, ...], periodic: bool) -> np.ndarray:
    """``N x 2 ndim``: the face (edge) columns of :func:`neighbour_table`, built alone (not a view
    of the whole table, which would keep its ``3^ndim - 1`` columns alive)."""
    return _step_table(shape, periodic, neighbour_steps(len(shape))[: 2 * len(shape)])


class ImageLags:
    """An image's labels, their tracked indicators and ``S2`` window, updated move by move."""

    def __init__(
        self, labels, target, tracked, max_lag, periodic, radial=False, dense_lag=None, sectors=1
    ):
        self.labels = labels.astype(np.int64)
        self.flat = self.labels.ravel()  # a view: writes go to self.labels
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
        keep = _window_keep(max_lag, radial, dense_lag)
        self.keep = np.flatnonzero(keep)
        self.lag_mask = keep.reshape(2 * max_lag + 1, 2 * max_lag + 1)
        self.window_to_lag = np.full(dy.size, -1)
        self.window_to_lag[self.keep] = np.arange(self.keep.size)
        self.dy, self.dx = dy[self.keep], dx[self.keep]
        self.target = target[:, self.keep]  # J x L (tracked lags of the flattened window)
        self.n_lags = self.dy.size
        # radial: the energy compares averages over the lags of each distance round(|d|) <= R
        # (and direction sector, :func:`radial_bins`)
        self.proj = None
        if radial:
            # the entries that hold a lag, in order
            _, bins = np.unique(
                radial_bins(self.dy, self.dx, max_lag, sectors), return_inverse=True
            )
            proj = np.zeros((bins.max() + 1, self.n_lags))
            proj[bins, np.arange(self.n_lags)] = 1.0
            self.proj = proj / proj.sum(1, keepdims=True)
        self.centre = self.n_lags // 2
        if periodic:
            pairs = np.full(self.n_lags, float(self.h * self.w))
        else:
            pairs = (self.h - np.abs(self.dy)) * (self.w - np.abs(self.dx)).astype(np.float64)
        self.inv_pairs = 1.0 / pairs
        # indicators of the tracked phases padded by R (wrapped if periodic, else zeros), read
        # at flat offsets: the window of pixel p is ind[:, base(p) + offsets]
        r = max_lag
        self.pw = self.w + 2 * r
        ind = np.stack([self.labels == ph for ph in tracked]).astype(np.int8)
        pad = ((0, 0), (r, r), (r, r))
        ind = np.pad(ind, pad, mode="wrap") if periodic else np.pad(ind, pad)
        self.ind = ind.reshape(len(tracked), -1)
        self.offsets = self.dy * self.pw + self.dx
        self.s2 = self._exact_s2()
        self.dir_op = None  # the directional term (:meth:`set_directional`), off
        self._errors_of = None  # the S2 whose errors :meth:`_errors` holds

    def directional_lags(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The tracked-lag indices of ``(0, r)`` (along a row) and ``(r, 0)`` (down a column)
        for ``r`` in ``lo..min(hi, R)`` where both are tracked."""
        side = 2 * self.r + 1
        r = np.arange(lo, min(hi, self.r) + 1)
        rows = self.window_to_lag[self.r * side + self.r + r]
        cols = self.window_to_lag[(self.r + r) * side + self.r]
        both = (rows >= 0) & (cols >= 0)
        return rows[both], cols[both]

    def set_directional(
        self, op: np.ndarray, target: np.ndarray, scale: np.ndarray, coef: float, tolerance: float
    ) -> None:
        """Add the directional term ``coef * sum_j relu(|u_j| - tolerance)^2`` to the energy,
        ``u_j = scale[j] (S2_j @ op - target[j])``: ``op`` (``L``) a linear form of the tracked
        lags (the mean along the rows less the mean down the columns), ``target`` and ``scale``
        per tracked phase (``J``). :meth:`compare` then appends each change's form as one more
        entry."""
        self._errors_of = None
        self.dir_op = np.asarray(op, dtype=np.float64)
        self.dir_target = np.asarray(target, dtype=np.float64)
        self.dir_scale = np.asarray(scale, dtype=np.float64)
        self.dir_coef, self.dir_tolerance = float(coef), float(tolerance)

    def _dir_term(self, u: np.ndarray) -> np.ndarray:
        """The term of the scaled errors ``u`` (``... x J``), summed over the phases."""
        return self.dir_coef * (np.maximum(np.abs(u) - self.dir_tolerance, 0.0) ** 2).sum(-1)

    def _dir_error(self, s2: np.ndarray) -> np.ndarray:
        return self.dir_scale * (s2 @ self.dir_op - self.dir_target)

    def _dir_energy(self, s2: np.ndarray) -> float:
        return float(self._dir_term(self._dir_error(s2)))

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
        e = float((self._project(s2 - self.target) ** 2).mean())
        return e if self.dir_op is None else e + self._dir_energy(s2)

    def _patch(self, p: np.ndarray) -> np.ndarray:
        """Tracked indicators at ``p + d`` for every window lag: ``B x J x L``."""
        py, px = np.divmod(p, self.w)
        base = (py + self.r) * self.pw + (px + self.r)
        return self.ind[:, base[:, None] + self.offsets].transpose(1, 0, 2)

    def delta(self, p, new, q=None, q_new=None) -> np.ndarray:
        """``S2`` change (``B x J x L``) of flipping pixels ``p`` to ``new`` (then ``q``)."""
        # the pair counts change by small integers: summed exactly in int8, then scaled
        if q is None:
            d_p = self._indicator_change(p, new)
            return self._flip_counts(p, d_p) * self.inv_pairs
        # both flips' counts from one gather of the indicators
        b = p.size
        d_pq = self._indicator_change(np.concatenate([p, q]), np.concatenate([new, q_new]))
        both = self._flip_counts(np.concatenate([p, q]), d_pq)
        d_p, d_q, ds, dq = d_pq[:b], d_pq[b:], both[:b], both[b:]
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
        k = np.flatnonzero(near)
        cross = d_q[k] * d_p[k]
        dq[k, :, idx[k]] += cross
        dq[k, :, self.n_lags - 1 - idx[k]] += cross
        ds += dq
        return ds * self.inv_pairs

    def _indicator_change(self, p: np.ndarray, new: np.ndarray) -> np.ndarray:
        """``B x J`` (int8): the tracked indicators' change of flipping ``p`` to ``new``."""
        now = self.tracked[None, :] == self.labels.flat[p][:, None]
        return (self.tracked[None, :] == new[:, None]).astype(np.int8) - now

    def _flip_counts(self, p: np.ndarray, d: np.ndarray) -> np.ndarray:
        """``B x J x L`` (int8): the pair counts' change of the indicator change ``d`` at
        ``p``, ``d (x(p + l) + x(p - l))`` and ``d^2`` at the zero lag."""
        patch = self._patch(p)
        out = d[:, :, None] * (patch + patch[:, :, ::-1])
        out[:, :, self.centre] += d * d
        return out

    def compare(self, ds: np.ndarray) -> np.ndarray:
        """The compared entries (``B x J x M``) of ``S2`` changes ``ds`` (``B x J x L``);
        with the directional term, its form's change as a last entry (``M + 1``)."""
        if self.dir_op is None:
            return self._project(ds)
        return np.concatenate([self._project(ds), (ds @ self.dir_op)[..., None]], axis=-1)

    def structure_scale(self, fractions: np.ndarray) -> float:
        """Mean square of the target's compared entries less ``phi^2`` (its structure): the
        scale of the ``S2`` term, ``fractions`` those of the tracked phases."""
        structured = self._project(self.target - fractions[:, None] ** 2)
        return float((structured**2).mean())

    def energy_change(self, dc: np.ndarray) -> np.ndarray:
        """``dE`` (``B``) of compared changes ``dc`` (:meth:`compare`) from the current ``S2``."""
        err, u = self._errors()
        if self.dir_op is None:
            return ((2 * err + dc) * dc).mean((1, 2))
        dc, dd = dc[..., :-1], dc[..., -1]
        change = self._dir_term(u + self.dir_scale * dd) - self._dir_term(u)
        return ((2 * err + dc) * dc).mean((1, 2)) + change

    def _errors(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The compared entries' error of the current ``S2`` (``1 x J x M``) and the directional
        term's scaled errors (``1 x J``, None without it), kept until ``S2`` changes."""
        if self._errors_of is not self.s2:
            err = self._project(self.s2 - self.target)[None]
            u = None if self.dir_op is None else self._dir_error(self.s2)[None]
            self._errors_of, self._errors_now = self.s2, (err, u)
        return self._errors_now

    def set_label(self, p: int, new: int) -> None:
        """Set the label of pixel ``p`` (and the indicators); ``S2`` follows by :meth:`add_s2`."""
        old = self.labels.flat[p]
        py, px = divmod(int(p), self.w)
        # the pixel's copies in the padded indicators (several near a periodic image's edges)
        ys, xs = (
            _copies(py, self.h, self.r, self.periodic),
            _copies(px, self.w, self.r, self.periodic),
        )
        at = [y * self.pw + x for y in ys for x in xs]
        for j, ph in enumerate(self.tracked):
            if ph in (old, new):
                self.ind[j, at] = ph == new
        self.labels.flat[p] = new

    def add_s2(self, ds: np.ndarray, dc: np.ndarray) -> None:
        self.s2 = self.s2 + ds

    def finish(self) -> None:
        """Recompute ``S2`` exactly (the incremental sums drift by rounding only)."""
        self.s2 = self._exact_s2()


def _copies(x: int, n: int, r: int, periodic: bool) -> list[int]:
    """Positions of coordinate ``x`` (of ``0..n-1``) along an axis padded by ``r``: itself, and
    when periodic every wrapped copy in the padding (``np.pad(mode="wrap")`` puts ``(i - r) mod
    n`` at ``i``; more than one per side where ``r`` exceeds ``n``)."""
    if not periodic:
        return [x + r]
    return list(range((x + r) % n, n + 2 * r, n))


def _plane_axes(axis: int) -> tuple[int, int]:
    """The in-plane axes of the slices normal to ``axis``, lower first (rows, then columns)."""
    return tuple(a for a in range(3) if a != axis)  # type: ignore[return-value]


def radial_bins(d1: np.ndarray, d2: np.ndarray, max_lag: int, sectors: int = 1) -> np.ndarray:
    """The compared entry of each in-plane lag ``(d1, d2)`` (rows, columns) with ``radial``.

    ``round(|d|) * sectors + s``, ``s`` the lag's direction sector: its angle modulo pi in
    ``sectors`` equal parts, the first centred on the rows' axis ``d1 = 0`` (the zero lag in
    sector 0; with 2 sectors one diagonal goes to each). ``sectors = 1`` averages each distance
    over every direction; 2 compares ``S2`` along the rows against along the columns.
    """
    dist = np.rint(np.hypot(d1, d2)).astype(np.int64)
    angle = np.mod(np.arctan2(d1, d2), np.pi)  # 0 along a row (d1 = 0), pi / 2 down a column
    sector = np.floor(angle / (np.pi / sectors) + 0.5).astype(np.int64) % sectors
    return np.minimum(dist, max_lag) * sectors + np.where(dist == 0, 0, sector)


def _window_keep(max_lag: int, radial: bool, dense_lag: int | None) -> np.ndarray:
    """Mask of the tracked lags of the flattened 2D window ``(2R + 1)^2`` (2D's rule)."""
    lag = np.arange(-max_lag, max_lag + 1)
    d1, d2 = np.repeat(lag, lag.size), np.tile(lag, lag.size)
    keep = np.ones(d1.size, dtype=bool)
    if radial:
        dist = np.rint(np.hypot(d1, d2)).astype(np.int64)
        keep = dist <= max_lag
        if dense_lag is not None and dense_lag < max_lag:
            keep &= (dist <= dense_lag) | ((d1 % 2 == 0) & (d2 % 2 == 0))
    return keep


class VolumeLags:
    """A volume's labels and the ``S2`` of its three slice planes, updated move by move."""

    def __init__(
        self, labels, targets, tracked, max_lag, periodic, radial=False, dense_lag=None, sectors=1
    ) -> None:
        self.labels = np.ascontiguousarray(labels, dtype=np.int8)
        self.flat = self.labels.ravel()  # a view: writes go to self.labels
        self.shape = np.array(self.labels.shape)
        self.r = r = max_lag
        self.periodic = periodic
        self.tracked = np.asarray(tracked)
        # padded copy (wrapped, or -1 outside), read at flat offsets
        self.pad_shape = self.shape + 2 * r
        if periodic:
            padded = np.pad(self.labels, r, mode="wrap")
        else:
            padded = np.pad(self.labels, r, constant_values=-1)
        self.padded = padded.ravel()
        self.strides = np.array([self.pad_shape[1] * self.pad_shape[2], self.pad_shape[2], 1])
        # the tracked lags of each plane as 3D displacements, then one entry per pair {d, -d}
        keep = _window_keep(r, radial, dense_lag)
        lag = np.arange(-r, r + 1)
        win1, win2 = np.repeat(lag, lag.size)[keep], np.tile(lag, lag.size)[keep]
        disp = []
        for a in range(3):
            d = np.zeros((win1.size, 3), dtype=np.int64)
            d[:, list(_plane_axes(a))] = np.stack([win1, win2], 1)
            disp.append(d)
        disp = np.concatenate(disp)  # 3 L x 3, plane by plane
        first = np.argmax(disp != 0, 1)
        sign = np.where(disp[np.arange(len(disp)), first] < 0, -1, 1)
        canon = disp * sign[:, None]
        self.disp, inverse = np.unique(canon, axis=0, return_inverse=True)  # U x 3, zero first
        inverse = inverse.ravel()
        self.n_lags = len(self.disp)
        self.offsets = self.disp @ self.strides
        if periodic:
            pairs = np.full(self.n_lags, float(self.shape.prod()))
        else:
            pairs = np.prod(self.shape[None, :] - np.abs(self.disp), 1).astype(np.float64)
        self.inv_pairs = 1.0 / pairs
        # full displacement -> index of its pair (or -1): the swap's cross term
        self.lag_index = np.full((2 * r + 1,) * 3, -1, dtype=np.int64)
        self.lag_index[tuple((disp + r).T)] = inverse
        self.lag_index[tuple((-disp + r).T)] = inverse
        self.lag_flat = self.lag_index.ravel()
        self.lag_mask = self.lag_index >= 0
        self.lag_strides = np.array([(2 * r + 1) ** 2, 2 * r + 1, 1])
        # compared entries: every tracked lag of each plane, or each plane's radial averages
        n_plane = win1.size
        rows_plane = np.arange(3 * n_plane)
        tgt = np.concatenate([t[:, keep] for t in targets], 1)  # J x 3 L
        if radial:
            bins = radial_bins(win1, win2, r, sectors)
            per_plane = (r + 1) * sectors
            _, rows = np.unique(
                np.concatenate([a * per_plane + bins for a in range(3)]), return_inverse=True
            )
            n_rows = rows.max() + 1
            count = np.bincount(rows, minlength=n_rows).astype(np.float64)
            avg = sparse.csr_matrix(
                (1.0 / count[rows], (rows, rows_plane)), shape=(n_rows, 3 * n_plane)
            )
            self.target = np.asarray(avg @ tgt.T).T
        else:
            rows, n_rows = rows_plane, 3 * n_plane
            self.target = tgt
            count = np.ones(n_rows)
        # compare = s2 (J x U) @ proj (U x M)
        self.proj = sparse.csr_matrix(
            (1.0 / count[rows], (inverse, rows)), shape=(self.n_lags, n_rows)
        )
        self.s2 = self.exact_s2()
        self.err = self.compare(self.s2) - self.target

    # -- exact values -------------------------------------------------------------------------
    def exact_s2(self) -> np.ndarray:
        """``S2`` of the tracked phases at the tracked lags by FFT: ``J x U``."""
        return _s2_at(self.labels, self.tracked, self.disp, self.periodic, self.r)

    def compare(self, s2: np.ndarray) -> np.ndarray:
        """The compared entries (``... x M``) of ``S2`` values (``... x U``)."""
        return np.asarray((self.proj.T @ s2.reshape(-1, self.n_lags).T).T).reshape(
            *s2.shape[:-1], -1
        )

    def energy(self) -> float:
        return float((self.err**2).mean())

    def structure_scale(self, fractions: np.ndarray) -> float:
        """Mean square of the targets' compared entries less ``phi^2`` (their structure): the
        scale of the ``S2`` term, ``fractions`` those of the tracked phases."""
        return float(((self.target - fractions[:, None] ** 2) ** 2).mean())

    # -- moves --------------------------------------------------------------------------------
    def coords(self, v: np.ndarray) -> np.ndarray:
        """``B x 3`` coordinates of flat voxel indices."""
        return np.stack(np.unravel_index(v, tuple(self.shape)), 1)

    def base(self, v: np.ndarray) -> np.ndarray:
        """Flat indices in the padded copy."""
        return (self.coords(v) + self.r) @ self.strides

    def _flip(self, v: np.ndarray, new: np.ndarray):
        """Indicator changes (``B x J``) and ``n dS2`` (``B x J x U``) of flipping ``v``."""
        dind = (self.tracked[None, :] == new[:, None]).astype(np.float64) - (
            self.tracked[None, :] == self.flat[v][:, None]
        )
        b = self.base(v)[:, None]
        plus = self.padded[b + self.offsets]
        minus = self.padded[b - self.offsets]
        ds = np.empty((v.size, len(self.tracked), self.n_lags))
        for j, ph in enumerate(self.tracked):
            np.add(plus == ph, minus == ph, out=ds[:, j], dtype=np.float64)
        ds *= dind[:, :, None]
        ds[:, :, 0] += dind**2
        return dind, ds

    def displacement(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``B x 3`` displacements ``u - v`` of coordinate arrays (nearest image if periodic)."""
        s = u - v
        if self.periodic:
            s = (s + self.shape // 2) % self.shape - self.shape // 2
        return s

    def tracked_index(self, s: np.ndarray) -> np.ndarray:
        """Index of the pair of each displacement (``B x 3``), -1 if not tracked."""
        near = (np.abs(s) <= self.r).all(1)
        idx = np.full(len(s), -1)
        idx[near] = self.lag_index[tuple((s[near] + self.r).T)]
        return idx

    def near_any(self, c: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Whether any of the voxels ``c[:, b]`` (``m x B x 3``) is at a tracked lag (or 0) from
        any of ``ref`` (``r x 3``): ``B``."""
        s = c[:, None, :, :] - ref[None, :, None, :]  # m x r x B x 3
        if self.periodic:
            s = (s + self.shape // 2) % self.shape - self.shape // 2
        near = (np.abs(s) <= self.r).all(-1)
        key = np.where(near, (s + self.r) @ self.lag_strides, 0)
        return (near & (self.lag_flat[key] >= 0)).any((0, 1))

    def delta(self, p, new, q=None, q_new=None) -> np.ndarray:
        """``S2`` change (``B x J x U``) of flipping voxels ``p`` to ``new`` (then ``q``)."""
        d_p, ds = self._flip(p, new)
        if q is not None:
            d_q, dq = self._flip(q, q_new)
            ds += dq
            # the second flip sees the first: p is at lag +-(p - q) from q
            idx = self.tracked_index(self.displacement(self.coords(p), self.coords(q)))
            b = np.flatnonzero(idx >= 0)
            ds[b, :, idx[b]] += d_q[b] * d_p[b]
        ds *= self.inv_pairs
        return ds

    def energy_change(self, dc: np.ndarray) -> np.ndarray:
        """``dE`` (``B``) of compared changes ``dc`` (``B x J x M``) from the current error."""
        return ((2 * self.err + dc) * dc).mean((1, 2))

    def set_label(self, v: int, new: int) -> None:
        """Set the label of voxel ``v`` (and its copies in the padded array)."""
        self.flat[v] = new
        c = np.unravel_index(v, tuple(self.shape))
        per_axis = []
        for x, n in zip(c, self.shape, strict=True):
            pos = [x + self.r]
            if self.periodic:
                if x < self.r:
                    pos.append(x + self.r + n)
                if x >= n - self.r:
                    pos.append(x + self.r - n)
            per_axis.append(pos)
        for i in per_axis[0]:
            for j in per_axis[1]:
                for k in per_axis[2]:
                    self.padded[i * self.strides[0] + j * self.strides[1] + k] = new

    def add_s2(self, ds: np.ndarray, dc: np.ndarray) -> None:
        self.s2 += ds
        self.err += dc

    def finish(self) -> None:
        """Recompute ``S2`` exactly (the incremental sums drift by rounding only)."""
        self.s2 = self.exact_s2()
        self.err = self.compare(self.s2) - self.target


def _s2_at(labels, tracked, disp, periodic, max_lag) -> np.ndarray:
    """``S2`` of each tracked phase of a volume at 3D displacements ``disp`` (``U x 3``) by FFT.

    Periodic: on the torus. Else over the voxel pairs inside the volume (zero padding by
    ``max_lag``, divided by the pair count).
    """
    shape = np.array(labels.shape)
    size = shape if periodic else shape + max_lag
    out = np.empty((len(tracked), len(disp)))
    for j, ph in enumerate(tracked):
        f = np.fft.rfftn((labels == ph).astype(np.float64), s=tuple(size), axes=(0, 1, 2))
        corr = np.fft.irfftn(f.real**2 + f.imag**2, s=tuple(size), axes=(0, 1, 2))
        vals = corr[tuple((disp % size).T)]
        if periodic:
            out[j] = vals / shape.prod()
        else:
            out[j] = vals / np.prod(shape[None, :] - np.abs(disp), 1)
    return out
