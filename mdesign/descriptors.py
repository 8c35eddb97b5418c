"""Microstructure descriptors, batched over ``N x H x W`` label stacks and ``N x H x W x D``
stacks of volumes: :func:`volume_fractions`; the two-point probability ``S2(d)`` of a phase as a
full map of displacements by FFT, periodic or not (:func:`two_point_correlation`; averaged over
directions by :func:`two_point_correlation_radial`; :func:`autocorrelation` is the differentiable
core); Torquato's :func:`lineal_path`; :func:`chord_lengths` along each axis;
:func:`specific_surface`; and :func:`characterize`, all of them over a stack, as the
``characterize`` command reports them.

Shapes: a 2D array is one image ``H x W``, a 3D array a stack of images ``N x H x W``, a 4D array
a stack of volumes ``N x H x W x D`` (a single volume is passed as ``1 x H x W x D``). Spatial axis
``a`` is array axis ``a + 1``: axis 0 runs along ``H`` (y), axis 1 along ``W`` (x), axis 2 along
``D`` (z).

Definitions on the pixel (voxel) grid (the contract's):

* ``S2`` radial: ``s2[r]`` averages ``S2(d)`` over all displacements ``d`` with
  ``round(|d|) = r``, periodic by default, so ``s2[0]`` is the phase fraction.
* ``L`` radial: ``lineal_path[r]`` is the probability that the ``r + 1`` consecutive pixels from a
  point along an axis all lie in the phase, periodic by default, averaged over the axes
  (``axis=`` gives one); ``lineal_path[0]`` is the fraction. (PoreSpy's
  ``lineal_path_distribution`` is a histogram of chord lengths, a different quantity.)
* Specific surface by Crofton's formula from ``P_L``, the phase changes per unit length of test
  line along the axes: ``(pi / 2) P_L`` (length per area) in 2D, ``2 P_L`` (area per volume) in 3D.

References
----------
Torquato, S. *Random Heterogeneous Materials*, Springer (2002): S2 (ch. 2.2), lineal path
(2.4), chord-length density (2.5), specific surface and Crofton's formula (2.2, 12.3).
Underwood, E. E. *Quantitative Stereology*, Addison-Wesley (1970): ``S_V = 2 P_L``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mdesign.errors import InputError
from mdesign.memory import check_memory

__all__ = [
    "Characterization",
    "ChordLengths",
    "LocalThickness",
    "autocorrelation",
    "characterize",
    "characterize_memory",
    "chord_lengths",
    "lag_distances",
    "lineal_path",
    "local_thickness",
    "local_thickness_map",
    "radial_average",
    "specific_surface",
    "two_point_correlation",
    "two_point_correlation_directional",
    "two_point_correlation_radial",
    "volume_fractions",
]

# volumes are FFT-batched by at most this many voxels (a 512-image batch of 128^2 images is 2^23)
_VOLUME_BATCH_VOXELS = 2**24


def _as_stack(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Labels as ``N x H x W`` (a 2D image gains the batch axis) or ``N x H x W x D``."""
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim not in (3, 4):
        raise InputError(
            f"expected images of shape N x H x W or volumes N x H x W x D, got {arr.shape}"
        )
    if arr.size == 0:
        raise InputError(f"no images (shape {arr.shape})", param="images")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"expected integer phase labels, got an array of {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError("the images contain NaN or infinite values", param="images")
    return arr


def _spatial_shape(images: np.ndarray | torch.Tensor) -> tuple[int, ...]:
    """``(H, W)`` or ``(H, W, D)`` of an image, a stack of images or a stack of volumes."""
    if images.ndim == 2:
        return tuple(images.shape)
    if images.ndim not in (3, 4):
        shape = tuple(images.shape)
        raise InputError(
            f"expected images of shape N x H x W or volumes N x H x W x D, got {shape}"
        )
    return tuple(images.shape[1:])


def _check_axis(axis: int, dims: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not 0 <= axis < dims:
        raise InputError(f"must be one of 0..{dims - 1} (or None), got {axis!r}", param="axis")
    return int(axis)


def default_max_distance(shape: tuple[int, ...]) -> int:
    """A quarter of the smallest side: the default largest distance ``R`` of the radial curves.

    ``shape`` is the spatial shape, ``(H, W)`` or ``(H, W, D)``.

    Raises
    ------
    InputError
        A side below 2 pixels: no distance to measure (the images are at fault, not ``R``).
    """
    if min(shape) < 2:
        dims = " x ".join(map(str, shape))
        raise InputError(f"images of {dims} pixels are too small; sides of at least 2 are needed")
    return max(1, min(shape) // 4)


def volume_fractions(images: np.ndarray, *, phases: int | None = None) -> np.ndarray:
    """Fraction of each phase in each image or volume.

    Parameters
    ----------
    images : ndarray, ``N x H x W`` or ``N x H x W x D``
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
    x: torch.Tensor, *, periodic: bool = True, max_lag: int | None = None, dims: int = 2
) -> torch.Tensor:
    """Two-point autocorrelation of a (soft) indicator by FFT, in lag layout.

    Differentiable in ``x``; runs on ``x``'s device and dtype. ``S2`` of a phase is this of its
    0/1 indicator.

    Parameters
    ----------
    x : Tensor, ``batch x H x W`` or (``dims=3``) ``batch x H x W x D`` (floating)
        Indicator values, typically in [0, 1]; the last ``dims`` axes are spatial, any leading
        axes are batch axes.
    periodic : bool
        If True, ``out[b, i, j] = mean_y x[y] x[y + (i, j)]`` on the torus, shape
        ``batch x H x W``. If False, the image is zero-padded to ``2H x 2W`` and each lag is
        divided by the number of pixel pairs inside the image, shape ``batch x 2H x 2W``; the lags
        ``+-H`` and ``+-W`` have no pairs and are 0. Volumes likewise over three axes.
    max_lag : int, optional
        Non-periodic only: the largest lag needed. Padding each side ``n`` to ``n + max_lag + 1``
        (rounded up to a fast FFT size) instead of ``2n`` keeps the lags up to ``max_lag`` exact
        at a fraction of the cost; the larger lags of the output are then meaningless
        (:func:`lag_distances` with the same ``max_lag`` marks them ``inf``).
    dims : int
        Number of spatial axes: 2 (images) or 3 (volumes).

    Returns
    -------
    Tensor
        Lag layout as ``torch.fft``: index ``i`` is lag ``i`` for ``i <= M/2`` and ``i - M``
        above (see :func:`lag_distances`); ``out[..., 0, 0]`` (``[..., 0, 0, 0]``) is
        ``mean(x**2)``.
    """
    if dims not in (2, 3) or x.ndim < dims:
        raise InputError(f"must be 2 or 3 and at most x.ndim ({x.ndim}), got {dims}", param="dims")
    axes = tuple(range(-dims, 0))
    shape = tuple(x.shape[-dims:])
    if periodic:
        f = torch.fft.rfftn(x, dim=axes)
        return torch.fft.irfftn(f.real**2 + f.imag**2, s=shape, dim=axes) / math.prod(shape)
    size = _padded_size(shape, max_lag)
    f = torch.fft.rfftn(x, s=size, dim=axes)
    corr = torch.fft.irfftn(f.real**2 + f.imag**2, s=size, dim=axes)
    return corr / _pair_counts(shape, size, device=x.device, dtype=x.dtype)


def _padded_size(shape: tuple[int, ...], max_lag: int | None) -> tuple[int, ...]:
    """Zero-padded FFT size for non-periodic correlation: twice each side, or ``n + max_lag``."""
    if max_lag is None:
        return tuple(2 * n for n in shape)
    from scipy.fft import next_fast_len

    return tuple(min(2 * n, next_fast_len(n + int(max_lag) + 1, real=True)) for n in shape)


def _pair_counts(
    shape: tuple[int, ...], size: tuple[int, ...], *, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Number of in-image pixel pairs per lag on the padded lag grid (at least 1)."""
    counts = []
    for n, m in zip(shape, size, strict=True):
        lag = torch.arange(m, device=device)
        counts.append((n - torch.minimum(lag, m - lag)).clamp_min(0))
    out = counts[0]
    for c in counts[1:]:
        out = out[..., None] * c  # outer product: the pairs per lag multiply over the axes
    return out.clamp_min(1).to(dtype)


def lag_distances(
    shape: tuple[int, ...], *, periodic: bool = True, max_lag: int | None = None
) -> np.ndarray:
    """Length of the displacement at each index of :func:`autocorrelation`'s lag layout.

    ``shape`` is ``(H, W)`` or ``(H, W, D)``. Periodic: minimum-image displacements on the torus,
    an array of ``shape``. Non-periodic: the padded grid (twice each side, or
    ``n + max_lag + 1`` rounded up as in :func:`autocorrelation`), with ``inf`` at the lags that
    have no pixel pairs or lie beyond ``max_lag``.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3):
        raise InputError(f"expected (H, W) or (H, W, D), got {shape}", param="shape")
    size = shape if periodic else _padded_size(shape, max_lag)
    lags = []
    for m in size:
        i = np.arange(m)
        lags.append(np.where(i <= m // 2, i, i - m).astype(np.float64))
    grids = np.meshgrid(*lags, indexing="ij", sparse=True)
    if len(shape) == 2:
        dist = np.hypot(grids[0], grids[1])
    else:
        dist = np.sqrt(grids[0] ** 2 + grids[1] ** 2 + grids[2] ** 2)
    if not periodic:
        for axis, (n, g) in enumerate(zip(shape, grids, strict=True)):
            limit = n if max_lag is None else min(n, max_lag + 1)
            index = [slice(None)] * len(shape)
            index[axis] = np.abs(g.ravel()) >= limit
            dist[tuple(index)] = np.inf
    return dist


def radial_average(maps: torch.Tensor, dist: np.ndarray, max_distance: int) -> torch.Tensor:
    """Average lag-layout maps over displacements with ``round(|d|) = r``, ``r = 0..R``.

    Parameters
    ----------
    maps : Tensor, ``batch x M x N`` or ``batch x M x N x P``
        Maps in the lag layout whose displacement lengths are ``dist``.
    dist : ndarray, ``M x N`` or ``M x N x P``
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
        _spatial_shape(images)
        x = images if images.ndim in (3, 4) else images[None]
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
    images : ndarray or Tensor, ``N x H x W`` or ``N x H x W x D``
        Phase labels.
    phase : int
        The phase whose indicator is correlated.
    periodic : bool
        Periodic (torus) or non-periodic (pairs inside the image only) estimate.
    device : optional
        Where to run the FFTs.

    Returns
    -------
    ndarray, ``N x H x W`` (periodic) or ``N x (2H - 1) x (2W - 1)``; volumes likewise
        ``S2``; the centre ``[H // 2, W // 2]`` (periodic) or ``[H - 1, W - 1]`` is the fraction
        (volumes: ``[H // 2, W // 2, D // 2]`` or ``[H - 1, W - 1, D - 1]``).
    """
    x = _indicator(images, phase, device=device)
    dims = x.ndim - 1
    corr = autocorrelation(x, periodic=periodic, dims=dims)
    corr = torch.fft.fftshift(corr, dim=tuple(range(-dims, 0))).cpu().numpy()
    if not periodic:
        corr = corr[(slice(None),) + (slice(1, None),) * dims]  # drop the lags +-n: no pairs
    return corr


def _indicator_batches(
    images: np.ndarray | torch.Tensor,
    phase: int,
    *,
    chunk_size: int,
    device: torch.device | str | None,
):
    """The phase indicator of a stack in batches of ``chunk_size`` images (volumes: at most
    2^24 voxels a batch); one batch for a single image."""
    shape = _spatial_shape(images)
    if images.ndim == 2:
        yield _indicator(images, phase, device=device)
        return
    step = chunk_size
    if len(shape) == 3:
        step = max(1, min(chunk_size, _VOLUME_BATCH_VOXELS // math.prod(shape)))
    for start in range(0, images.shape[0], step):
        yield _indicator(images[start : start + step], phase, device=device)


def two_point_correlation_radial(
    images: np.ndarray | torch.Tensor,
    *,
    phase: int = 1,
    max_distance: int | None = None,
    periodic: bool = True,
    device: torch.device | str | None = None,
    chunk_size: int = 512,
) -> np.ndarray:
    """Direction-averaged ``S2(r)``, ``r = 0..R``, one curve per image or volume.

    Parameters
    ----------
    images : ndarray or Tensor, ``N x H x W`` or ``N x H x W x D``
        Phase labels.
    phase : int
        The phase.
    max_distance : int, optional
        ``R``; a quarter of the smallest side by default.
    periodic : bool
        See :func:`two_point_correlation`.
    device : optional
        Where to run the FFTs.
    chunk_size : int
        Images per FFT batch (bounds memory); volumes are batched by at most 2^24 voxels.

    Returns
    -------
    ndarray, ``N x (R + 1)``
        ``s2[:, r]`` is the mean of ``S2(d)`` over the 2D (volumes: 3D) displacements with
        ``round(|d|) = r``; ``s2[:, 0]`` is the fraction.
    """
    shape = _spatial_shape(images)
    r_max = default_max_distance(shape) if max_distance is None else int(max_distance)
    # lags beyond R are not needed: a round(|d|) <= R lag has components <= R
    dist = lag_distances(shape, periodic=periodic, max_lag=r_max)
    out = []
    for x in _indicator_batches(images, phase, chunk_size=chunk_size, device=device):
        corr = autocorrelation(x, periodic=periodic, max_lag=r_max, dims=len(shape))
        out.append(radial_average(corr, dist, r_max).cpu())
    return torch.cat(out).numpy().astype(np.float64)


def two_point_correlation_directional(
    images: np.ndarray | torch.Tensor,
    *,
    directions: Sequence[Sequence[int]] | None = None,
    phase: int = 1,
    max_distance: int | None = None,
    periodic: bool = True,
    device: torch.device | str | None = None,
    chunk_size: int = 512,
) -> np.ndarray:
    """``S2`` along lattice directions: at displacements ``k d``, ``k = 0..R``, one curve per
    direction ``d`` and image or volume.

    An isotropic structure has the same curve along directions of the same length, up to
    sampling noise; stripes, bars and streaks aligned with one of them make the curves differ
    (Torquato 2002, ch. 2.2: ``S2`` depends on the direction of the displacement for
    anisotropic media). The radial average of :func:`two_point_correlation_radial` hides this.

    Parameters
    ----------
    images : ndarray or Tensor, ``N x H x W`` or ``N x H x W x D``
        Phase labels.
    directions : sequence of integer vectors, optional
        One entry per spatial axis each, e.g. ``(1, 0)`` down the rows, ``(0, 1)`` along them,
        ``(1, 1)`` and ``(1, -1)`` the diagonals. Default: the unit vector of each axis.
    phase : int
        The phase.
    max_distance : int, optional
        ``R``, the largest multiple ``k``; a quarter of the smallest side by default. ``R``
        times each component must stay below the image's side.
    periodic : bool
        See :func:`two_point_correlation`.
    device : optional
        Where to run the FFTs.
    chunk_size : int
        Images per FFT batch (bounds memory); volumes are batched by at most 2^24 voxels.

    Returns
    -------
    ndarray, ``N x len(directions) x (R + 1)``
        ``s2[:, j, k]``: ``S2`` at displacement ``k * directions[j]``; ``s2[:, j, 0]`` is the
        fraction.
    """
    shape = _spatial_shape(images)
    dims = len(shape)
    if directions is None:
        directions = [tuple(int(a == b) for b in range(dims)) for a in range(dims)]
    dirs = np.array(directions, dtype=np.int64).reshape(len(directions), -1)
    if dirs.shape[1] != dims or len(dirs) == 0 or (dirs == 0).all(1).any():
        raise InputError(
            f"expected non-zero integer vectors of {dims} components, got {directions}",
            param="directions",
        )
    r_max = default_max_distance(shape) if max_distance is None else int(max_distance)
    reach = r_max * np.abs(dirs).max(0)
    if r_max < 0 or (reach >= np.array(shape)).any():
        raise InputError(
            f"{r_max} times the directions {dirs.tolist()} reaches beyond images of {shape}",
            param="max_distance",
        )
    max_lag = int(reach.max())
    k = np.arange(r_max + 1)
    out = []
    for x in _indicator_batches(images, phase, chunk_size=chunk_size, device=device):
        corr = autocorrelation(x, periodic=periodic, max_lag=max_lag, dims=dims)
        size = corr.shape[-dims:]
        curves = []
        for d in dirs:
            # lag layout: a negative lag -m sits at index size - m
            index = tuple(
                torch.as_tensor((k * c) % m, device=corr.device)
                for c, m in zip(d, size, strict=True)
            )
            curves.append(corr[(Ellipsis, *index)])
        out.append(torch.stack(curves, 1).cpu())
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


def _lines(arr: np.ndarray, axis: int) -> np.ndarray:
    """The lines of ``N x H x W (x D)`` along spatial ``axis`` as rows: ``(N * ...) x n``.

    Rows are ordered image by image, so row ``i`` belongs to image ``i // (lines per image)``.
    """
    n = arr.shape[axis + 1]
    if axis + 1 == arr.ndim - 1:
        return arr.reshape(-1, n)
    return np.ascontiguousarray(np.moveaxis(arr, axis + 1, -1)).reshape(-1, n)


def _axis_order(dims: int, axis: int | None) -> list[int]:
    """Spatial axes to visit: x then y in 2D (the historical order), 0, 1, 2 for volumes."""
    if axis is not None:
        return [_check_axis(axis, dims)]
    return [1, 0] if dims == 2 else [0, 1, 2]


def lineal_path(
    images: np.ndarray,
    *,
    phase: int = 1,
    max_distance: int | None = None,
    periodic: bool = True,
    axis: int | None = None,
) -> np.ndarray:
    """Lineal-path function ``L(r)``, ``r = 0..R``, averaged over the axes or along one.

    ``L(r)`` is the probability that the ``r + 1`` consecutive pixels from a random pixel to the
    pixel ``r`` away along an axis all lie in ``phase`` (Torquato 2002, sec. 2.4). It is computed
    from the runs of the phase along each line: a run of length ``l`` holds ``max(l - r, 0)``
    such segments.

    Parameters
    ----------
    images : ndarray, ``N x H x W`` or ``N x H x W x D``
        Phase labels.
    phase : int
        The phase.
    max_distance : int, optional
        ``R``; a quarter of the smallest side by default.
    periodic : bool
        Periodic lines (segments may wrap), or only segments inside the image (normalised by the
        number of start pixels whose segment fits).
    axis : int, optional
        ``None`` (default): the mean over the axes, x and y for images, all three for volumes.
        ``0``, ``1`` (or ``2`` for volumes): only the segments along that spatial axis, i.e.
        along ``H`` (y), ``W`` (x) or ``D`` (z).

    Returns
    -------
    ndarray, ``N x (R + 1)``
        ``L[:, 0]`` is the fraction; ``L`` is non-increasing in ``r``.
    """
    arr = _as_stack(images)
    n_img, *spatial = arr.shape
    axes = _axis_order(len(spatial), axis)
    r_max = default_max_distance(spatial) if max_distance is None else int(max_distance)
    shortest = min(spatial[a] for a in axes)
    if r_max >= shortest and not periodic:
        raise InputError(
            f"{r_max} must be below the smallest side {shortest}", param="max_distance"
        )
    r = np.arange(r_max + 1)
    total = np.zeros((n_img, r_max + 1))
    for a in axes:
        length = spatial[a]
        n_lines = math.prod(spatial) // length
        line, run, full = _runs(_lines(arr == phase, a), periodic=periodic)
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
    return total / len(axes)


@dataclass(frozen=True)
class ChordLengths:
    """Chord-length distribution of a phase, counted over a stack.

    Attributes
    ----------
    lengths : ndarray, ``L``
        Chord lengths ``1..max`` in pixels.
    counts : ndarray, ``A x L``
        Number of chords of each length along each spatial axis ``a`` (``A`` = 2 for images,
        3 for volumes): row 0 along ``H`` (y), row 1 along ``W`` (x), row 2 along ``D`` (z).
    spanning : int
        Lines lying wholly in the phase (periodic: chords without ends, not counted).
    """

    lengths: np.ndarray
    counts: np.ndarray
    spanning: int

    @property
    def counts_x(self) -> np.ndarray:
        """Chords along rows (x, spatial axis 1), ``L``."""
        return self.counts[1]

    @property
    def counts_y(self) -> np.ndarray:
        """Chords along columns (y, spatial axis 0), ``L``."""
        return self.counts[0]

    @property
    def probability(self) -> np.ndarray:
        """Number-weighted chord-length probability ``p(l)``, all axes pooled."""
        c = self.counts.sum(0)
        return c / max(c.sum(), 1)

    @property
    def mean(self) -> float:
        """Mean chord length in pixels over all axes (nan when there are no chords)."""
        return _mean_chord(self.counts.sum(0), self.lengths)

    def mean_along(self, axis: int) -> float:
        """Mean chord length along spatial ``axis`` (0 = y, 1 = x, 2 = z), nan without chords."""
        return _mean_chord(self.counts[_check_axis(axis, len(self.counts))], self.lengths)


def _mean_chord(counts: np.ndarray, lengths: np.ndarray) -> float:
    return float((counts * lengths).sum() / counts.sum()) if counts.sum() else float("nan")


def chord_lengths(images: np.ndarray, *, phase: int = 1, periodic: bool = True) -> ChordLengths:
    """Chord-length distribution along each axis (Torquato 2002, sec. 2.5).

    A chord is a maximal run of ``phase`` pixels along a line parallel to an axis (x and y for
    images; x, y and z for volumes). With ``periodic`` runs continue across the edges; otherwise
    runs that touch an edge are cut by it and left out.

    Parameters
    ----------
    images : ndarray, ``N x H x W`` or ``N x H x W x D``
        Phase labels.
    phase : int
        The phase.
    periodic : bool
        Periodic lines, or drop chords cut by the image edge.

    Returns
    -------
    ChordLengths
        ``counts`` per axis (``2 x L`` or ``3 x L``), ``L`` the longest side.
    """
    arr = _as_stack(images)
    spatial = arr.shape[1:]
    longest = max(spatial)
    counts = np.zeros((len(spatial), longest), dtype=np.int64)
    spanning = 0
    for a in _axis_order(len(spatial), None):
        lines = _lines(arr == phase, a)
        line, run, full = _runs(lines, periodic=periodic)
        if periodic:
            keep = np.ones(run.shape, dtype=bool)
        else:
            # runs are listed in order per line: the first run of a line starting with the
            # phase, and the last of a line ending with it, are cut by the edge
            first = lines[line, 0]
            last = lines[line, -1]
            new_line = np.r_[True, line[1:] != line[:-1]]
            end_line = np.r_[line[1:] != line[:-1], True]
            keep = ~((new_line & first) | (end_line & last))
        spanning += int(full.sum())
        counts[a] = np.bincount(run[keep], minlength=longest + 1)[1 : longest + 1]
    return ChordLengths(np.arange(1, longest + 1), counts, spanning)


@dataclass(frozen=True)
class LocalThickness:
    """Local-thickness distribution of a phase, pooled over a stack.

    Attributes
    ----------
    radii : ndarray, ``M``
        Radii ``1..M`` in pixels (voxels).
    counts : ndarray, ``M``
        Number of the phase's pixels whose local thickness is each radius.
    """

    radii: np.ndarray
    counts: np.ndarray

    @property
    def mean(self) -> float:
        """Mean local thickness over the phase's pixels (nan for an absent phase)."""
        total = self.counts.sum()
        return float((self.radii * self.counts).sum() / total) if total else float("nan")

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (``0..1``) of the pixels' local thickness (nan when absent): the
        smallest radius with at least a fraction ``q`` of the pixels at or below it."""
        total = self.counts.sum()
        if not total:
            return float("nan")
        return float(self.radii[np.searchsorted(np.cumsum(self.counts), q * total)])


def local_thickness_map(mask: np.ndarray) -> np.ndarray:
    """Local thickness of every pixel of a mask: the largest inscribed disk (ball) covering it.

    The radius (not the diameter, PoreSpy's convention) of the largest disk, centred on a pixel
    of the mask with Euclidean distance to the nearest pixel outside at least the radius, whose
    pixels at distance below the radius from its centre cover the pixel; radii are the integers
    ``1..floor(max distance)`` (Hildebrand & Ruegsegger 1997; PoreSpy's
    ``filters.local_thickness``, which it is tested against). Pixels outside the mask are 0.
    The image edge is not a boundary (a window: the phase may continue beyond it); a mask
    filling the image is given half its smallest side.

    Parameters
    ----------
    mask : ndarray of bool, ``H x W`` or ``H x W x D``

    Returns
    -------
    ndarray of int, the shape of ``mask``
    """
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.shape, dtype=np.int64)
    if not mask.any():
        return out
    if mask.all():  # no boundary inside the window: half the smallest side
        return np.full(mask.shape, max(1, min(mask.shape) // 2), dtype=np.int64)
    dist = ndimage.distance_transform_edt(mask)
    for r in range(int(dist.max()), 0, -1):
        # the balls of radius r: dilate the centres (distance >= r) by r
        covered = ndimage.distance_transform_edt(dist < r) < r
        out[covered & (out == 0)] = r
    return out


def local_thickness(images: np.ndarray, *, phase: int = 1) -> LocalThickness:
    """Local-thickness distribution of a phase (:func:`local_thickness_map`), over a stack.

    A shape descriptor that ``S2`` and cluster counts miss: a grain-boundary network keeps a
    thickness of 1-2 pixels where a puddle of the same phase is many pixels thick; round
    particles have a narrow distribution at their radius.

    Parameters
    ----------
    images : ndarray, ``N x H x W`` or ``N x H x W x D``
        Phase labels.
    phase : int
        The phase.

    Returns
    -------
    LocalThickness
        ``mean`` and ``quantile(0.9)`` in pixels.
    """
    arr = _as_stack(images)
    maps = [local_thickness_map(img == phase) for img in arr]
    longest = max(1, max(int(m.max()) for m in maps))
    counts = sum(np.bincount(m.ravel(), minlength=longest + 1)[1:] for m in maps)
    return LocalThickness(np.arange(1, longest + 1), counts)


def specific_surface(images: np.ndarray, *, phase: int = 1, periodic: bool = True) -> np.ndarray:
    """Interface of ``phase`` per unit area (images) or volume (volumes), in pixel units.

    Crofton's formula from ``P_L``, the number of phase changes per unit length of a test line,
    counted along each axis and averaged over the axes: for isotropic 2D structures the
    perimeter per unit area is ``(pi / 2) P_L``; for isotropic 3D structures the surface area per
    unit volume is ``S_V = 2 P_L`` (Underwood 1970; Torquato 2002, ch. 2.2). Unlike counting
    pixel edges (voxel faces), which overestimates a smooth interface by up to ``4 / pi`` (3/2
    in 3D), this is unbiased for isotropic structures: a disk of radius ``a`` gives ``2 pi a``
    per area, a ball ``4 pi a^2`` per volume, to discretisation error. The axes are not a
    directional average for anisotropic structures: an axis-aligned laminate whose true
    interface per volume is ``s`` gives ``2 s / 3`` (images: ``pi s / 4``).

    Parameters
    ----------
    images : ndarray, ``N x H x W`` or ``N x H x W x D``
        Phase labels.
    phase : int
        The phase whose boundary with all others is measured.
    periodic : bool
        Count the crossings at the wrap-around too.

    Returns
    -------
    ndarray, ``N``
        Length per area (1/pixel) for images, area per volume (1/voxel) for volumes.
    """
    arr = _as_stack(images) == phase
    if arr.ndim == 3:
        if periodic:
            cx = (arr != np.roll(arr, 1, axis=2)).sum((1, 2)) / arr[0].size
            cy = (arr != np.roll(arr, 1, axis=1)).sum((1, 2)) / arr[0].size
        else:
            h, w = arr.shape[1:]
            cx = (arr[:, :, 1:] != arr[:, :, :-1]).sum((1, 2)) / (h * (w - 1))
            cy = (arr[:, 1:, :] != arr[:, :-1, :]).sum((1, 2)) / ((h - 1) * w)
        return np.pi / 2 * (cx + cy) / 2
    p_l = np.zeros(arr.shape[0])
    for axis in (1, 2, 3):
        if periodic:
            changes = arr != np.roll(arr, 1, axis=axis)
        else:
            n = arr.shape[axis]
            changes = arr.take(range(1, n), axis=axis) != arr.take(range(n - 1), axis=axis)
        p_l += changes.sum((1, 2, 3)) / changes[0].size
    return 2 * p_l / 3


@dataclass(frozen=True)
class Characterization:
    """Descriptors of a stack, per image and averaged (the ``characterize`` report).

    Attributes
    ----------
    shape : tuple
        ``(N, H, W)``, or ``(N, H, W, D)`` for volumes.
    phase : int
        The phase of ``s2``, ``lineal_path``, ``specific_surface`` and the chords.
    volume_fractions : ndarray, ``N x k``
    s2 : ndarray, ``N x (R + 1)``
        Periodic radial ``S2`` of ``phase`` (over 3D displacements for volumes).
    lineal_path : ndarray, ``N x (R + 1)``
        Periodic ``L(r)`` of ``phase``, averaged over x and y (x, y and z for volumes).
    specific_surface : ndarray, ``N``
        Interface length per area (images) or area per volume (volumes).
    chords : ChordLengths
        Chord lengths of ``phase`` over the stack, per axis.
    """

    shape: tuple[int, ...]
    phase: int
    volume_fractions: np.ndarray
    s2: np.ndarray
    lineal_path: np.ndarray
    specific_surface: np.ndarray
    chords: ChordLengths

    def summary(self) -> dict:
        """The contract's JSON report: averages over the images (``shape`` is one image's)."""
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

    ``shape`` is ``(H, W)``, ``(N, H, W)`` or ``(N, H, W, D)``. Images: about ``128 + 2.5 R``
    bytes per pixel with ``R`` the largest distance, mostly the radial average's dense
    ``lags x (R + 1)`` matrix. Volumes: 96 bytes per voxel plus that matrix over the
    ``4/3 pi (R + 1)^3`` lags within ``R`` with half again for copies. Both are calibrated
    against measured peaks (the docs' performance page).
    """
    spatial = tuple(shape[1:]) if len(shape) > 2 else tuple(shape)
    r_max = default_max_distance(spatial) if max_distance is None else int(max_distance)
    if len(spatial) != 3:
        return int(math.prod(shape) * (128 + 2.5 * r_max))
    lags = 4 / 3 * math.pi * (r_max + 1) ** 3
    return int(math.prod(shape) * 96 + lags * (r_max + 1) * 8 * 1.5)


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
    images : ndarray, ``N x H x W`` or ``N x H x W x D``
        Phase labels (a stack of images or of volumes).
    phase : int
        The phase the correlation functions describe.
    max_distance : int, optional
        ``R``; a quarter of the smallest side by default; at most half the smallest side.
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
    spatial = arr.shape[1:]
    r_max = default_max_distance(spatial) if max_distance is None else int(max_distance)
    side = "smaller" if len(spatial) == 2 else "smallest"
    if not 1 <= r_max <= min(spatial) // 2:
        raise InputError(
            f"must be between 1 and half the {side} side ({min(spatial) // 2}), got {r_max}",
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
