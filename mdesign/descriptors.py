"""Microstructure descriptors, batched over ``N x H x W`` label stacks.

* :func:`volume_fractions`: the fraction of each phase.
* :func:`two_point_correlation`: the two-point probability ``S2(d)`` of a phase, the probability
  that two points a displacement ``d`` apart both lie in it, as a full map of displacements by
  FFT, periodic or not; :func:`two_point_correlation_radial` averages it over directions.
  :func:`autocorrelation` is the differentiable core (soft indicators, any device).
* :func:`lineal_path`: Torquato's lineal-path function ``L(r)``, the probability that a whole
  segment of length ``r`` lies in the phase.
* :func:`chord_lengths`: the distribution of chord lengths of the phase along x and y.
* :func:`specific_surface`: interface length per unit area.
* :func:`characterize`: all of them averaged over a stack, as the ``characterize`` command
  reports them.

Definitions on the pixel grid (these are the contract's):

* ``S2`` radial: ``s2[r]`` averages ``S2(d)`` over all displacements with ``round(|d|) = r``,
  periodic by default, so ``s2[0]`` is the phase fraction.
* ``L`` radial: ``lineal_path[r]`` is the probability that the ``r + 1`` consecutive pixels from a
  point to the point ``r`` pixels away along an axis all lie in the phase, periodic by default,
  averaged over x and y; ``lineal_path[0]`` is the fraction. (PoreSpy's
  ``lineal_path_distribution`` is a histogram of chord lengths, a different quantity.)

References
----------
Torquato, S. *Random Heterogeneous Materials*, Springer (2002): S2 (ch. 2.2), lineal path
(2.4), chord-length density (2.5), specific surface and Crofton's formula (2.2, 12.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mdesign.errors import InputError
from mdesign.memory import check_memory

__all__ = [
    "Characterization",
    "ChordLengths",
    "autocorrelation",
    "characterize",
    "characterize_memory",
    "chord_lengths",
    "lag_distances",
    "lineal_path",
    "radial_average",
    "specific_surface",
    "two_point_correlation",
    "two_point_correlation_radial",
    "volume_fractions",
]


def _as_stack(images: np.ndarray | torch.Tensor) -> np.ndarray:
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"expected images of shape N x H x W, got {arr.shape}")
    return arr


def default_max_distance(shape: tuple[int, ...]) -> int:
    """A quarter of the smaller side: the default largest distance ``R`` of the radial curves."""
    return max(1, min(shape[-2:]) // 4)


def volume_fractions(images: np.ndarray, *, phases: int | None = None) -> np.ndarray:
    """Fraction of each phase in each image.

    Parameters
    ----------
    images : ndarray, ``N x H x W``
        Phase labels.
    phases : int, optional
        Number of phases k; defaults to one more than the largest label (at least 2).

    Returns
    -------
    ndarray, ``N x k``
        Rows sum to 1.
    """
    arr = _as_stack(images)
    n = arr.shape[0]
    k = phases or max(2, int(arr.max()) + 1)
    flat = arr.reshape(n, -1).astype(np.int64)
    counts = np.zeros((n, k))
    for p in range(k):
        counts[:, p] = (flat == p).sum(1)
    return counts / flat.shape[1]


def autocorrelation(
    x: torch.Tensor, *, periodic: bool = True, max_lag: int | None = None
) -> torch.Tensor:
    """Two-point autocorrelation of a (soft) indicator by FFT, in lag layout.

    Differentiable in ``x``; runs on ``x``'s device and dtype. ``S2`` of a phase is this of its
    0/1 indicator.

    Parameters
    ----------
    x : Tensor, ``batch x H x W`` (floating)
        Indicator values, typically in [0, 1].
    periodic : bool
        If True, ``out[b, i, j] = mean_y x[y] x[y + (i, j)]`` on the torus, shape
        ``batch x H x W``. If False, the image is zero-padded to ``2H x 2W`` and each lag is
        divided by the number of pixel pairs inside the image, shape ``batch x 2H x 2W``; the lags
        ``+-H`` and ``+-W`` have no pairs and are 0.
    max_lag : int, optional
        Non-periodic only: the largest lag needed. Padding to ``(H + max_lag) x (W + max_lag)``
        instead of twice the size keeps the lags up to ``max_lag`` exact at a fraction of the
        cost; the larger lags of the output are then meaningless (:func:`lag_distances` with the
        same ``max_lag`` marks them ``inf``).

    Returns
    -------
    Tensor
        Lag layout as ``torch.fft``: index ``i`` is lag ``i`` for ``i <= M/2`` and ``i - M``
        above (see :func:`lag_distances`); ``out[..., 0, 0]`` is ``mean(x**2)``.
    """
    h, w = x.shape[-2:]
    if periodic:
        f = torch.fft.rfft2(x)
        return torch.fft.irfft2(f.real**2 + f.imag**2, s=(h, w)) / (h * w)
    size = _padded_size((h, w), max_lag)
    f = torch.fft.rfft2(x, s=size)
    corr = torch.fft.irfft2(f.real**2 + f.imag**2, s=size)
    return corr / _pair_counts((h, w), size, device=x.device, dtype=x.dtype)


def _padded_size(shape: tuple[int, int], max_lag: int | None) -> tuple[int, int]:
    """Zero-padded FFT size for non-periodic correlation: twice the image, or ``n + max_lag``."""
    if max_lag is None:
        return (2 * shape[0], 2 * shape[1])
    from scipy.fft import next_fast_len

    return tuple(min(2 * n, next_fast_len(n + int(max_lag) + 1, real=True)) for n in shape)


def _pair_counts(
    shape: tuple[int, int], size: tuple[int, int], *, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Number of in-image pixel pairs per lag on the padded lag grid (at least 1)."""
    counts = []
    for n, m in zip(shape, size, strict=True):
        lag = torch.arange(m, device=device)
        counts.append((n - torch.minimum(lag, m - lag)).clamp_min(0))
    return (counts[0][:, None] * counts[1][None, :]).clamp_min(1).to(dtype)


def lag_distances(
    shape: tuple[int, int], *, periodic: bool = True, max_lag: int | None = None
) -> np.ndarray:
    """Length of the displacement at each index of :func:`autocorrelation`'s lag layout.

    Periodic: minimum-image displacements on the ``H x W`` torus. Non-periodic: the padded grid
    (``2H x 2W``, or ``(H + max_lag + 1) x (W + max_lag + 1)``), with ``inf`` at the lags that
    have no pixel pairs or lie beyond ``max_lag``.
    """
    h, w = shape
    m, n = (h, w) if periodic else _padded_size(shape, max_lag)
    iy, ix = np.arange(m), np.arange(n)
    dy = np.where(iy <= m // 2, iy, iy - m).astype(np.float64)
    dx = np.where(ix <= n // 2, ix, ix - n).astype(np.float64)
    dist = np.hypot(dy[:, None], dx[None, :])
    if not periodic:
        limit_y = h if max_lag is None else min(h, max_lag + 1)
        limit_x = w if max_lag is None else min(w, max_lag + 1)
        dist[np.abs(dy) >= limit_y, :] = np.inf
        dist[:, np.abs(dx) >= limit_x] = np.inf
    return dist


def radial_average(maps: torch.Tensor, dist: np.ndarray, max_distance: int) -> torch.Tensor:
    """Average lag-layout maps over displacements with ``round(|d|) = r``, ``r = 0..R``.

    Parameters
    ----------
    maps : Tensor, ``batch x M x N``
        Maps in the lag layout whose displacement lengths are ``dist``.
    dist : ndarray, ``M x N``
        From :func:`lag_distances`.
    max_distance : int
        ``R``.

    Returns
    -------
    Tensor, ``batch x (R + 1)``
    """
    bins = np.rint(dist).ravel()
    keep = bins <= max_distance
    if not np.isin(np.arange(max_distance + 1), bins[keep]).all():
        raise InputError(f"{max_distance} is beyond the image's lags", param="max_distance")
    one_hot = np.zeros((keep.sum(), max_distance + 1))
    one_hot[np.arange(keep.sum()), bins[keep].astype(np.int64)] = 1
    one_hot /= one_hot.sum(0, keepdims=True)
    idx = torch.as_tensor(np.flatnonzero(keep), device=maps.device)
    flat = maps.reshape(maps.shape[0], -1).index_select(1, idx)
    return flat @ torch.as_tensor(one_hot, dtype=maps.dtype, device=maps.device)


def _indicator(
    images: np.ndarray | torch.Tensor, phase: int, *, device: torch.device | str | None
) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        x = images if images.ndim == 3 else images[None]
        return (x == phase).to(device=device or x.device, dtype=torch.float32)
    arr = _as_stack(images)
    return torch.as_tensor(arr == phase, dtype=torch.float32, device=device)


def two_point_correlation(
    images: np.ndarray | torch.Tensor,
    *,
    phase: int = 1,
    periodic: bool = True,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Two-point probability map ``S2(d)`` of a phase, zero displacement at the centre.

    Parameters
    ----------
    images : ndarray or Tensor, ``N x H x W``
        Phase labels.
    phase : int
        The phase whose indicator is correlated.
    periodic : bool
        Periodic (torus) or non-periodic (pairs inside the image only) estimate.
    device : optional
        Where to run the FFTs.

    Returns
    -------
    ndarray, ``N x H x W`` (periodic) or ``N x (2H - 1) x (2W - 1)``
        ``S2``; the centre ``[H // 2, W // 2]`` (periodic) or ``[H - 1, W - 1]`` is the fraction.
    """
    x = _indicator(images, phase, device=device)
    corr = autocorrelation(x, periodic=periodic)
    corr = torch.fft.fftshift(corr, dim=(-2, -1)).cpu().numpy()
    if not periodic:
        corr = corr[:, 1:, 1:]  # drop the lags +-H, +-W, which have no pairs
    return corr


def two_point_correlation_radial(
    images: np.ndarray | torch.Tensor,
    *,
    phase: int = 1,
    max_distance: int | None = None,
    periodic: bool = True,
    device: torch.device | str | None = None,
    chunk_size: int = 512,
) -> np.ndarray:
    """Direction-averaged ``S2(r)``, ``r = 0..R``, one curve per image.

    Parameters
    ----------
    images : ndarray or Tensor, ``N x H x W``
        Phase labels.
    phase : int
        The phase.
    max_distance : int, optional
        ``R``; a quarter of the smaller side by default.
    periodic : bool
        See :func:`two_point_correlation`.
    device : optional
        Where to run the FFTs.
    chunk_size : int
        Images per FFT batch (bounds memory).

    Returns
    -------
    ndarray, ``N x (R + 1)``
        ``s2[:, r]`` is the mean of ``S2(d)`` over ``round(|d|) = r``; ``s2[:, 0]`` is the
        fraction.
    """
    shape = tuple(images.shape[-2:])
    r_max = default_max_distance(shape) if max_distance is None else int(max_distance)
    # lags beyond R are not needed: a round(|d|) <= R lag has components <= R
    dist = lag_distances(shape, periodic=periodic, max_lag=r_max)
    out = []
    for start in range(0, images.shape[0] if images.ndim == 3 else 1, chunk_size):
        chunk = images[start : start + chunk_size] if images.ndim == 3 else images
        x = _indicator(chunk, phase, device=device)
        corr = autocorrelation(x, periodic=periodic, max_lag=r_max)
        out.append(radial_average(corr, dist, r_max).cpu())
    return torch.cat(out).numpy().astype(np.float64)


def _runs(lines: np.ndarray, *, periodic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of True in each row of ``lines`` (``m x n`` bool).

    Returns ``(line_index, length, full)``: the line and length of each run, and a mask of the
    lines that are True throughout (periodic: these have no ends and are not listed as runs).
    With ``periodic``, a run that crosses the end of a line continues at its start.
    """
    m, n = lines.shape
    full = lines.all(1)
    if periodic:
        # rotate each line to start at one of its False pixels, so no run wraps
        start = np.argmin(lines, axis=1)
        idx = (np.arange(n)[None, :] + start[:, None]) % n
        lines = np.take_along_axis(lines, idx, axis=1)
        lines = lines[~full]
        owner = np.flatnonzero(~full)
    else:
        owner = np.arange(m)
    padded = np.zeros((lines.shape[0], n + 2), dtype=np.int8)
    padded[:, 1:-1] = lines
    d = np.diff(padded.ravel())
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return owner[starts // (n + 2)], ends - starts, full


def _lines(arr: np.ndarray, axis: str) -> np.ndarray:
    """``N x H x W`` to the rows (``x``) or columns (``y``) as lines: ``N*H x W`` or ``N*W x H``."""
    if axis == "x":
        return arr.reshape(-1, arr.shape[2])
    return np.ascontiguousarray(arr.transpose(0, 2, 1)).reshape(-1, arr.shape[1])


def lineal_path(
    images: np.ndarray, *, phase: int = 1, max_distance: int | None = None, periodic: bool = True
) -> np.ndarray:
    """Lineal-path function ``L(r)``, ``r = 0..R``, averaged over the x and y axes.

    ``L(r)`` is the probability that the ``r + 1`` consecutive pixels from a random pixel to the
    pixel ``r`` away along an axis all lie in ``phase`` (Torquato 2002, sec. 2.4). It is computed
    from the runs of the phase along each line: a run of length ``l`` holds ``max(l - r, 0)``
    such segments.

    Parameters
    ----------
    images : ndarray, ``N x H x W``
        Phase labels.
    phase : int
        The phase.
    max_distance : int, optional
        ``R``; a quarter of the smaller side by default.
    periodic : bool
        Periodic lines (segments may wrap), or only segments inside the image (normalised by the
        number of start pixels whose segment fits).

    Returns
    -------
    ndarray, ``N x (R + 1)``
        ``L[:, 0]`` is the fraction; ``L`` is non-increasing in ``r``.
    """
    arr = _as_stack(images)
    n_img, h, w = arr.shape
    r_max = default_max_distance((h, w)) if max_distance is None else int(max_distance)
    if r_max >= min(h, w) and not periodic:
        raise InputError(
            f"{r_max} must be below the smaller side {min(h, w)}", param="max_distance"
        )
    r = np.arange(r_max + 1)
    total = np.zeros((n_img, r_max + 1))
    for axis, n_lines, length in (("x", h, w), ("y", w, h)):
        line, run, full = _runs(_lines(arr == phase, axis), periodic=periodic)
        hist = np.bincount(
            (line // n_lines) * (length + 1) + run, minlength=n_img * (length + 1)
        ).reshape(n_img, length + 1)
        segments = np.clip(np.arange(length + 1)[:, None] - r[None, :], 0, None)
        counts = hist @ segments
        if periodic:
            counts = counts + full.reshape(n_img, n_lines).sum(1)[:, None] * length
            total += counts / (n_lines * length)
        else:
            total += counts / (n_lines * (length - r)[None, :])
    return total / 2


@dataclass(frozen=True)
class ChordLengths:
    """Chord-length distribution of a phase, counted over a stack.

    Attributes
    ----------
    lengths : ndarray, ``L``
        Chord lengths ``1..max`` in pixels.
    counts_x, counts_y : ndarray, ``L``
        Number of chords of each length along rows (x) and columns (y).
    spanning : int
        Lines lying wholly in the phase (periodic: chords without ends, not counted).
    """

    lengths: np.ndarray
    counts_x: np.ndarray
    counts_y: np.ndarray
    spanning: int

    @property
    def probability(self) -> np.ndarray:
        """Number-weighted chord-length probability ``p(l)``, both axes pooled."""
        c = self.counts_x + self.counts_y
        return c / max(c.sum(), 1)

    @property
    def mean(self) -> float:
        """Mean chord length in pixels (nan when there are no chords)."""
        c = self.counts_x + self.counts_y
        return float((c * self.lengths).sum() / c.sum()) if c.sum() else float("nan")


def chord_lengths(images: np.ndarray, *, phase: int = 1, periodic: bool = True) -> ChordLengths:
    """Chord-length distribution along x and y (Torquato 2002, sec. 2.5).

    A chord is a maximal run of ``phase`` pixels along a row or column. With ``periodic`` runs
    continue across the edges; otherwise runs that touch an edge are cut by it and left out.

    Parameters
    ----------
    images : ndarray, ``N x H x W``
        Phase labels.
    phase : int
        The phase.
    periodic : bool
        Periodic lines, or drop chords cut by the image edge.

    Returns
    -------
    ChordLengths
    """
    arr = _as_stack(images)
    longest = max(arr.shape[1:])
    counts = {}
    spanning = 0
    for axis in ("x", "y"):
        lines = _lines(arr == phase, axis)
        line, run, full = _runs(lines, periodic=periodic)
        if periodic:
            keep = np.ones(run.shape, dtype=bool)
            spanning += int(full.sum())
        else:
            # a run touches the edge if it starts at 0 or ends at the last pixel
            first = lines[line, 0]
            last = lines[line, -1]
            # runs are listed in order per line: the first run of a line starting with the
            # phase, and the last of a line ending with it, are cut by the edge
            new_line = np.r_[True, line[1:] != line[:-1]]
            end_line = np.r_[line[1:] != line[:-1], True]
            keep = ~((new_line & first) | (end_line & last))
            spanning += int(full.sum())
        counts[axis] = np.bincount(run[keep], minlength=longest + 1)[1 : longest + 1]
    return ChordLengths(np.arange(1, longest + 1), counts["x"], counts["y"], spanning)


def specific_surface(images: np.ndarray, *, phase: int = 1, periodic: bool = True) -> np.ndarray:
    """Interface length of ``phase`` per unit area, in pixel units (1/pixel).

    Crofton's formula for isotropic 2D structures: the perimeter per unit area is
    ``(pi / 2) P_L``, where ``P_L`` is the number of phase changes per unit length of a test
    line, counted along rows and columns and averaged. Unlike counting pixel edges, which
    overestimates a smooth interface by up to ``4 / pi``, this is unbiased for isotropic
    structures (a disk of radius ``a`` gives ``2 pi a`` per area, to discretisation error).

    Parameters
    ----------
    images : ndarray, ``N x H x W``
        Phase labels.
    phase : int
        The phase whose boundary with all others is measured.
    periodic : bool
        Count the crossings at the wrap-around too.

    Returns
    -------
    ndarray, ``N``
    """
    arr = _as_stack(images) == phase
    if periodic:
        cx = (arr != np.roll(arr, 1, axis=2)).sum((1, 2)) / arr[0].size
        cy = (arr != np.roll(arr, 1, axis=1)).sum((1, 2)) / arr[0].size
    else:
        h, w = arr.shape[1:]
        cx = (arr[:, :, 1:] != arr[:, :, :-1]).sum((1, 2)) / (h * (w - 1))
        cy = (arr[:, 1:, :] != arr[:, :-1, :]).sum((1, 2)) / ((h - 1) * w)
    return np.pi / 2 * (cx + cy) / 2


@dataclass(frozen=True)
class Characterization:
    """Descriptors of a stack, per image and averaged (the ``characterize`` report).

    Attributes
    ----------
    shape : tuple
        ``(N, H, W)``.
    phase : int
        The phase of ``s2``, ``lineal_path``, ``specific_surface`` and the chords.
    volume_fractions : ndarray, ``N x k``
    s2 : ndarray, ``N x (R + 1)``
        Periodic radial ``S2`` of ``phase``.
    lineal_path : ndarray, ``N x (R + 1)``
        Periodic ``L(r)`` of ``phase``, averaged over x and y.
    specific_surface : ndarray, ``N``
    chords : ChordLengths
        Chord lengths of ``phase`` over the stack.
    """

    shape: tuple[int, int, int]
    phase: int
    volume_fractions: np.ndarray
    s2: np.ndarray
    lineal_path: np.ndarray
    specific_surface: np.ndarray
    chords: ChordLengths

    def summary(self) -> dict:
        """The contract's JSON report: averages over the images."""
        return {
            "n_images": int(self.shape[0]),
            "shape": [int(s) for s in self.shape[1:]],
            "phase": self.phase,
            "max_distance": int(self.s2.shape[1] - 1),
            "volume_fractions": self.volume_fractions.mean(0).tolist(),
            "s2": self.s2.mean(0).tolist(),
            "lineal_path": self.lineal_path.mean(0).tolist(),
            "specific_surface": float(self.specific_surface.mean()),
            "mean_chord_length": _finite_or_none(self.chords.mean),
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def characterize_memory(shape: tuple[int, ...], *, max_distance: int | None = None) -> int:
    """Estimated peak bytes of :func:`characterize` for a label stack of this shape.

    About ``128 + 2.5 R`` bytes per pixel with ``R`` the largest distance (measured: 378, 646
    and 1236 bytes per pixel for one 512^2, 1024^2 and 2048^2 image at the default ``R``); the
    lineal path and chords hold ``R``-long runs per pixel.
    """
    spatial = tuple(shape[1:]) if len(shape) > 2 else tuple(shape)
    r_max = default_max_distance(spatial) if max_distance is None else int(max_distance)
    return int(math.prod(shape) * (128 + 2.5 * r_max))


def characterize(
    images: np.ndarray,
    *,
    phase: int = 1,
    max_distance: int | None = None,
    phases: int | None = None,
) -> Characterization:
    """All descriptors of a label stack (periodic estimates).

    Parameters
    ----------
    images : ndarray, ``N x H x W``
        Phase labels.
    phase : int
        The phase the correlation functions describe.
    max_distance : int, optional
        ``R``; a quarter of the smaller side by default; at most half the smaller side.
    phases : int, optional
        Number of phases; defaults to one more than the largest label.

    Returns
    -------
    Characterization
    """
    arr = _as_stack(images)
    k = phases or max(2, int(arr.max()) + 1)
    if not 0 <= phase < k:
        raise InputError(f"{phase} is not a phase of these images (0..{k - 1})", param="phase")
    h, w = arr.shape[1:]
    r_max = default_max_distance((h, w)) if max_distance is None else int(max_distance)
    if not 1 <= r_max <= min(h, w) // 2:
        raise InputError(
            f"must be between 1 and half the smaller side ({min(h, w) // 2}), got {r_max}",
            param="max_distance",
        )
    check_memory(
        characterize_memory(arr.shape, max_distance=r_max),
        what=f"characterizing {' x '.join(map(str, arr.shape))} images",
    )
    return Characterization(
        shape=arr.shape,
        phase=phase,
        volume_fractions=volume_fractions(arr, phases=k),
        s2=two_point_correlation_radial(arr, phase=phase, max_distance=r_max),
        lineal_path=lineal_path(arr, phase=phase, max_distance=r_max),
        specific_surface=specific_surface(arr, phase=phase),
        chords=chord_lengths(arr, phase=phase),
    )
