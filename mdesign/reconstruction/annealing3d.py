"""Simulated annealing of a label volume to exact phase fractions with slice ``S2`` matching 2D.

The 2D-to-3D reconstruction decodes its optimised voxels into a label volume ``H x W x D`` whose
fractions are close to the exemplars' but not exact. :func:`anneal_volume` moves labels at
interfaces until every phase count is the target fraction times the number of voxels, rounded as in
:func:`mdesign.grf.phase_counts`, while keeping the two-point correlation of the slices of each
orientation close to the exemplar's for that orientation: the 3D counterpart of
:func:`mdesign.reconstruction.annealing.anneal_fractions` (Yeong & Torquato 1998, who reconstructed
3D media from 2D ``S2``).

``exemplars[a]`` describes the slices normal to axis ``a``, ``np.take(volume, i, axis=a)``; the
target fractions are the mean of the distinct exemplars' (:func:`volume_fractions`). The energy is
the mean over the three planes of displacements, the tracked phases and the lags of ``(S2_{a,j}(d) -
T_{a,j}(d))^2`` (radial averages with ``radial``), updated incrementally per move. Stage 1 flips
interface voxels greedily until the counts are exact, stage 2 swaps interface voxels by Metropolis,
stage 3 (``surface``) is the surface stage of 2D. The neighbourhood term, the cluster guard and the
cleanup of 2D are left out.

The energy, the incremental update, the stages and the batch walk are described in full in the
reconstruction guide ("How each stage works", ``docs/guide/reconstruction.md``); their costs are on
the performance page.

References
----------
Yeong, C. L. Y. & Torquato, S. "Reconstructing random media. II. Three-dimensional media from
two-dimensional cuts", Phys. Rev. E 58, 224 (1998); "Reconstructing random media", Phys. Rev. E
57, 495 (1998).
Kirkpatrick, S., Gelatt, C. D. & Vecchi, M. P. "Optimization by simulated annealing", Science
220, 671 (1983).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import sparse
from tqdm.auto import tqdm

from mdesign.config import RECONSTRUCTION_DEFAULTS as D
from mdesign.errors import InputError
from mdesign.grf import phase_counts
from mdesign.reconstruction.annealing import AnnealingResult
from mdesign.reconstruction.loss import s2_window

__all__ = ["VOLUME_BATCH", "VOLUME_MAX_LAG", "anneal_volume", "volume_fractions"]

VOLUME_MAX_LAG = 16
"""Recommended ``max_lag`` of the 3D annealing: a move costs about ``1.5 pi R^2`` lags (three
planes), so ``R = 16`` is ~1200 lags per voxel flip."""
VOLUME_BATCH = 256
"""Proposals evaluated at once in 3D: the walk past an accepted swap (module docstring) wastes
few of them, and larger batches amortise the per-batch overhead."""

# the 6 edge neighbours of a voxel
_FACES = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]])


def _plane_axes(axis: int) -> tuple[int, int]:
    """The in-plane axes of the slices normal to ``axis``, lower first (rows, then columns)."""
    return tuple(a for a in range(3) if a != axis)  # type: ignore[return-value]


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


class _VolumeS2State:
    """Labels of a volume and the ``S2`` of its three slice planes, updated move by move."""

    def __init__(
        self, labels, targets, tracked, max_lag, periodic, radial=False, dense_lag=None
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
        self.lag_strides = np.array([(2 * r + 1) ** 2, 2 * r + 1, 1])
        # compared entries: every tracked lag of each plane, or each plane's radial averages
        n_plane = win1.size
        rows_plane = np.arange(3 * n_plane)
        tgt = np.concatenate([t[:, keep] for t in targets], 1)  # J x 3 L
        if radial:
            dist = np.rint(np.hypot(win1, win2)).astype(np.int64)
            rows = np.concatenate([a * (r + 1) + dist for a in range(3)])
            n_rows = 3 * (r + 1)
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

    def apply(self, v: int, new: int) -> None:
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

    # -- neighbourhoods -----------------------------------------------------------------------
    def face_labels(self, v: np.ndarray) -> np.ndarray:
        """``B x 6`` labels of the edge neighbours (-1 outside a non-periodic volume)."""
        return self.padded[self.base(v)[:, None] + _FACES @ self.strides]

    def is_interface(self, v: np.ndarray) -> np.ndarray:
        nb = self.face_labels(v)
        return ((nb != self.flat[v][:, None]) & (nb >= 0)).any(1)

    def interface(self) -> np.ndarray:
        """Mask (flat) of the voxels with an edge neighbour of another phase."""
        p3 = self.padded.reshape(tuple(self.pad_shape))
        r = self.r
        core = tuple(slice(r, r + n) for n in self.shape)
        out = np.zeros(tuple(self.shape), dtype=bool)
        for f in _FACES:
            nb = p3[tuple(slice(r + s, r + s + n) for s, n in zip(f, self.shape, strict=True))]
            out |= (nb != p3[core]) & (nb >= 0)
        return out.ravel()

    def neighbours(self, v: int) -> np.ndarray:
        """Flat indices of the edge neighbours of voxel ``v`` inside the volume."""
        c = np.array(np.unravel_index(v, tuple(self.shape))) + _FACES
        if self.periodic:
            c %= self.shape
        else:
            c = c[((c >= 0) & (c < self.shape)).all(1)]
        return np.ravel_multi_index(tuple(c.T), tuple(self.shape))


class _VolumeMoves:
    """A volume's state seen through the moves of the 2D state (``delta``, ``energy_change`` of
    ``dS2``, ``apply`` of a flip with its ``dS2``), for the stages both share
    (:func:`~mdesign.reconstruction.annealing._reduce_surface`)."""

    def __init__(self, state: _VolumeS2State) -> None:
        self.state = state
        self.labels = state.labels
        self.periodic = state.periodic

    def delta(self, p, new, q=None, q_new=None) -> np.ndarray:
        return self.state.delta(p, new, q, q_new)

    def energy_change(self, ds: np.ndarray) -> np.ndarray:
        return self.state.energy_change(self.state.compare(ds))

    def apply(self, v: int, new: int, ds: np.ndarray) -> None:
        self.state.apply(v, new)
        self.state.add_s2(ds, self.state.compare(ds))


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


class _Pool:
    """A list of voxels to draw from, with lazy removal (the caller filters) and appends."""

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


def _check(labels, exemplars, phases, max_lag, steps, batch) -> None:
    if labels.ndim != 3:
        raise InputError(f"should be an H x W x D volume, got shape {labels.shape}", param="labels")
    if len(exemplars) != 3:
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
            f"should be at least 1 and below half of the smallest side ({smallest}), got {max_lag}",
            param="max_lag",
        )
    if steps < 0:
        raise InputError(f"should be non-negative, got {steps}", param="steps")
    if batch < 1:
        raise InputError(f"should be at least 1, got {batch}", param="batch")


def anneal_volume(
    labels: np.ndarray,
    exemplars: Sequence[np.ndarray],
    *,
    phases: int,
    max_lag: int,
    steps: int,
    seed: int,
    periodic: bool = D.periodic,
    exemplar_periodic: bool = D.exemplar_periodic,
    batch: int = D.anneal.volume_batch,
    initial_acceptance: float = D.anneal.initial_acceptance,
    final_temperature_ratio: float = D.anneal.final_temperature,
    radial: bool = D.anneal.radial,
    dense_lag: int = D.anneal.dense_lag,
    surface: bool = D.anneal.volume_surface,
    progress: bool = False,
) -> AnnealingResult:
    """Make a volume's phase fractions exact by interface moves that keep slice ``S2`` close.

    See the module docstring for the energy, the stages and the temperature schedule.

    Parameters
    ----------
    labels : ndarray, ``H x W x D``
        Labels to correct (the decoded volume), ``0..k-1``.
    exemplars : sequence of 3 ndarray, each ``H_a x W_a``
        ``exemplars[a]`` describes the slices normal to axis ``a`` (``np.take(labels, i,
        axis=a)``; rows along the lower remaining axis, columns along the higher one). May be
        the same image three times.
    phases : int
        k.
    max_lag : int
        ``R`` of each plane's ``S2`` window, below half of the volume's and every exemplar's
        smallest side (:data:`VOLUME_MAX_LAG` is a good choice).
    steps : int
        Swap proposals of the Metropolis stage (0: fractions only).
    seed : int
        Seed of the proposals and acceptances.
    periodic : bool
        ``labels`` is periodic: ``S2`` on the torus and wrapping neighbourhoods.
    exemplar_periodic : bool
        Estimate the exemplars' ``S2`` on the torus.
    batch : int
        Proposals evaluated at once.
    initial_acceptance : float
        Acceptance probability of the median uphill swap at the start (sets ``T0``).
    final_temperature_ratio : float
        Last temperature over the first.
    radial : bool
        Compare each plane's radial averages of ``S2`` instead of its lag window.
    dense_lag : int
        With ``radial``, the lags beyond this distance are tracked on the even lattice only.
    surface : bool
        After the swaps, shorten the interface to the exemplars' length per face pair by swaps of
        least energy rise: the surface stage of 2D (stage 3 of
        :mod:`~mdesign.reconstruction.annealing`, the same function), on the volume's 6 face
        neighbours, without a cluster guard or neighbourhood term.
    progress : bool
        Show a progress bar over the swap proposals.

    Returns
    -------
    AnnealingResult
        ``labels`` (``H x W x D`` uint8) whose count of phase ``j`` is
        ``phase_counts(volume_fractions(exemplars))[j]``.

    Raises
    ------
    InputError
        Not a volume, not 3 exemplars, labels out of range, ``max_lag`` too large.
    """
    labels = np.asarray(labels)
    exemplars = [np.asarray(ex) for ex in exemplars]
    _check(labels, exemplars, phases, max_lag, steps, batch)
    rng = np.random.default_rng(seed)
    tracked = [1] if phases == 2 else list(range(phases))
    targets = []
    for ex in exemplars:
        onehot = torch.as_tensor(np.stack([ex == ph for ph in tracked]), dtype=torch.float64)
        win = s2_window(onehot[None], max_lag, periodic=exemplar_periodic)[0]
        targets.append(win.reshape(len(tracked), -1).numpy())
    fractions = volume_fractions(exemplars, phases)
    counts_target = phase_counts(fractions[None], labels.size)[0]
    state = _VolumeS2State(labels, targets, tracked, max_lag, periodic, radial, dense_lag)
    e_initial = state.energy()

    # stage 1: greedy flips from the largest surplus to the largest deficit
    flips = 0
    counts = np.bincount(state.flat, minlength=phases)
    pool = _Pool(labels.size, np.empty(0, dtype=np.int64))
    pair = None
    while (counts != counts_target).any():
        surplus = counts - counts_target
        a, b = int(np.argmax(surplus)), int(np.argmin(surplus))
        cand = np.empty(0, dtype=np.int64)
        for attempt in range(2):
            if pair != (a, b) or attempt == 1:
                pair = (a, b)
                of_a = np.flatnonzero(state.flat == a)
                pool.reset(of_a[(state.face_labels(of_a) == b).any(1)])
            cand = np.unique(pool.draw(rng, batch))
            cand = cand[(state.flat[cand] == a) & (state.face_labels(cand) == b).any(1)]
            if cand.size:
                break
        if cand.size == 0:  # no voxel of a touches b
            cand = np.flatnonzero(state.flat == a)
            cand = cand[rng.choice(cand.size, min(batch, cand.size), replace=False)]
        ds = state.delta(cand, np.full(cand.size, b))
        dc = state.compare(ds)
        de = state.energy_change(dc)
        coords = state.coords(cand)
        # several flips per batch: after each, the candidates near it (their dS2 changed) drop
        # out and the others' dE is recomputed from the new error; each flip is still the least
        # rise among at least half a batch
        alive = np.ones(cand.size, dtype=bool)
        while True:
            best = int(np.argmin(np.where(alive, de, np.inf)))
            v = int(cand[best])
            state.apply(v, b)
            state.add_s2(ds[best], dc[best])
            nb = state.neighbours(v)
            pool.add(nb[state.flat[nb] == a])
            counts[a] -= 1
            counts[b] += 1
            flips += 1
            alive &= ~state.near_any(coords[None], coords[best][None])
            surplus = counts - counts_target
            if (
                alive.sum() * 2 < cand.size
                or (surplus == 0).all()
                or (int(np.argmax(surplus)), int(np.argmin(surplus))) != (a, b)
            ):
                break
            de[alive] = state.energy_change(dc[alive])
    e_fractions = state.energy()

    # stage 2: Metropolis swaps of interface voxels of different phases, geometric cooling
    accepted = done = 0
    if steps > 0:
        iface = state.interface()
        pool.reset(np.flatnonzero(iface))
        n_iface = int(iface.sum())
        t0 = _initial_temperature(state, pool, iface, rng, initial_acceptance)
        decay = final_temperature_ratio ** (1.0 / max(steps - 1, 1))
        bar = tqdm(total=steps, desc="annealing", unit="prop", disable=not progress, leave=False)
        while done < steps and n_iface >= 2 and t0 > 0:
            if pool.n > 2 * n_iface:  # mostly stale: rebuild
                pool.reset(np.flatnonzero(iface))
            n = min(batch, steps - done)
            p, q = _draw_interface(pool, iface, rng, n)
            lp, lq = state.flat[p], state.flat[q]
            # a pair of one phase is a no-op (zero change) and never accepted
            ds = state.delta(p, lq, q, lp)
            dc = state.compare(ds)
            de = np.where(lp != lq, state.energy_change(dc), np.inf)
            temps = t0 * decay ** (done + np.arange(n))
            u = rng.random(n)
            cpq = np.stack([state.coords(p), state.coords(q)])  # 2 x n x 3
            start = 0
            while start < n:
                with np.errstate(over="ignore", divide="ignore"):
                    ok = u[start:] < np.exp(-np.clip(de[start:], 0, None) / temps[start:])
                if not ok.any():
                    break
                i = start + int(np.argmax(ok))
                pi, qi = int(p[i]), int(q[i])
                state.apply(pi, int(lq[i]))
                state.apply(qi, int(lp[i]))
                state.add_s2(ds[i], dc[i])
                accepted += 1
                # the interface changes at the two voxels and their edge neighbours
                near = np.unique(
                    np.concatenate([[pi, qi], state.neighbours(pi), state.neighbours(qi)])
                )
                now = state.is_interface(near)
                n_iface += int(now.sum()) - int(iface[near].sum())
                iface[near] = now
                pool.add(near[now])
                # the later proposals with a voxel within a tracked lag of the swap are
                # evaluated again against the new state; the others keep their dS2
                start = i + 1
                later = np.arange(start, n)
                d = later[state.near_any(cpq[:, later], cpq[:, i])]
                if d.size:
                    lp[d], lq[d] = state.flat[p[d]], state.flat[q[d]]
                    ds[d] = state.delta(p[d], lq[d], q[d], lp[d])
                    dc[d] = state.compare(ds[d])
                later = later[lp[later] != lq[later]]
                de[start:] = np.inf
                if later.size:
                    de[later] = state.energy_change(dc[later])
            done += n
            bar.update(n)
        bar.close()
    surface_swaps = 0
    if surface:
        from mdesign.reconstruction.annealing import (
            _face_table,
            _reduce_surface,
            interface_density,
        )

        shape = labels.shape
        faces = _face_table(shape, periodic)
        if periodic:
            pairs = 3 * labels.size
        else:
            pairs = sum(labels.size // n * (n - 1) for n in shape)
        # the face pairs along each axis lie in the slices of two orientations: the mean density
        # of the three exemplars (one per orientation)
        density = np.mean([interface_density(ex, periodic=exemplar_periodic) for ex in exemplars])
        surface_swaps = _reduce_surface(
            _VolumeMoves(state),
            faces,
            density * pairs,
            phases,
            rng,
            batch,
            None,
            lambda p, q: (0.0, None),
            None,
        )
    # recompute exactly: the incremental sums drift by rounding only, but the result is reported
    state.s2 = state.exact_s2()
    state.err = state.compare(state.s2) - state.target
    return AnnealingResult(
        labels=state.labels.astype(np.uint8),
        energy_initial=e_initial,
        energy_fractions=e_fractions,
        energy_final=state.energy(),
        flips=flips,
        proposals=done,
        accepted=accepted,
        target_counts=counts_target,
        surface_swaps=surface_swaps,
    )


def _draw_interface(pool: _Pool, iface: np.ndarray, rng, n: int):
    """``n`` pairs of voxels drawn uniformly among the current interface voxels."""
    got = np.empty(0, dtype=np.int64)
    while got.size < 2 * n:
        v = pool.draw(rng, 2 * (2 * n - got.size))
        got = np.concatenate([got, v[iface[v]]])
    return got[:n], got[n : 2 * n]


def _initial_temperature(state, pool, iface, rng, acceptance: float) -> float:
    """The temperature at which the median rise of 256 random swaps is accepted as given."""
    if iface.sum() < 2:
        return 0.0
    p, q = _draw_interface(pool, iface, rng, 256)
    lp, lq = state.flat[p], state.flat[q]
    valid = lp != lq
    if not valid.any():
        return 0.0
    ds = state.delta(p[valid], lq[valid], q[valid], lp[valid])
    de = state.energy_change(state.compare(ds))
    rises = de[de > 0]
    return float(np.median(rises) / np.log(1 / acceptance)) if rises.size else 0.0
