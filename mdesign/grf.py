"""Level-cut Gaussian random fields: training images with exact phase fractions.

A stationary Gaussian field ``Y`` with unit variance and correlation function ``rho`` is cut at
``k - 1`` levels; phase ``j`` is where ``t_j < Y <= t_{j+1}``. The levels are chosen per image from
the image's own field values, so each phase fraction hits its target to within one pixel (not
only on average, as a cut at the theoretical quantile would).

``correlation_length`` (``l``, in pixels) is the length scale of ``rho`` (:func:`covariance`):
``exp(-(r / l)**2)`` for ``gaussian`` and ``exp(-r / l)`` for ``exponential``, both ``1/e`` at
``r = l``; ``matern`` (``nu`` = 1/2, 3/2, 5/2) is ``2**(1-nu)/Gamma(nu) (s**nu) K_nu(s)`` with
``s = sqrt(2 nu) r / l`` (Rasmussen & Williams 2006, eq. 4.14). With the default gaussian, a blob
of the binary image is about ``2 l`` pixels across (chord lengths and ``S2`` per covariance,
measured by ``bench/bench_grf.py``, are in the docs' performance page); :func:`level_cut_s2`
gives the exact ``S2`` for any fraction. PoreSpy's ``blobs(blobiness=b)`` is the same family with
``l = 2 sigma``, ``sigma = mean(shape) / (40 b)``.

``anisotropy`` ``R`` stretches the correlation: the length is ``l`` along the direction ``angle``
(degrees counter-clockwise from the x axis as displayed, rows running downwards) and ``l / R``
across it.

References
----------
Torquato, S. *Random Heterogeneous Materials*, Springer (2002), sections 8.2 and 12.3.
Grigoriu, M. "Random field models for two-phase microstructures", J. Appl. Phys. 94, 3762 (2003).
Dietrich, C. R. & Newsam, G. N. "Fast and exact simulation of stationary Gaussian processes
through circulant embedding of the covariance matrix", SIAM J. Sci. Comput. 18, 1088 (1997).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from mdesign.config import GRF_DEFAULTS, Covariance
from mdesign.device import default_device
from mdesign.errors import InputError
from mdesign.memory import check_memory
from mdesign.seeds import SeedLike, as_seed_sequence

__all__ = [
    "GRFResult",
    "covariance",
    "gaussian_random_field",
    "grf_memory",
    "grf_microstructures",
    "level_cut",
    "level_cut_s2",
    "phase_counts",
]

Range = float | tuple[float, float]


def covariance(
    r: torch.Tensor | np.ndarray | float,
    *,
    kind: Covariance = GRF_DEFAULTS.covariance,
    nu: float = GRF_DEFAULTS.matern_nu,
) -> torch.Tensor | np.ndarray:
    """Correlation function ``rho(r)`` of the unit-variance field, ``r`` in correlation lengths.

    Parameters
    ----------
    r : ndarray, float or Tensor
        Distances divided by the correlation length, any shape, non-negative.
    kind : {"gaussian", "exponential", "matern"}
        The family; see the module docstring for the formulas.
    nu : {0.5, 1.5, 2.5}
        Matérn smoothness (closed forms).

    Returns
    -------
    ndarray (float64), or Tensor for a Tensor ``r``
        ``rho(r)``, same shape as ``r``, with ``rho(0) = 1``.
    """
    if not isinstance(r, torch.Tensor):
        return covariance(torch.as_tensor(r, dtype=torch.float64), kind=kind, nu=nu).numpy()
    if kind == "gaussian":
        return torch.exp(-(r**2))
    if kind == "exponential":
        return torch.exp(-r)
    if kind == "matern":
        s = math.sqrt(2 * nu) * r
        if nu == 0.5:
            return torch.exp(-s)
        if nu == 1.5:
            return (1 + s) * torch.exp(-s)
        if nu == 2.5:
            return (1 + s + s**2 / 3) * torch.exp(-s)
        raise InputError(f"must be 0.5, 1.5 or 2.5 (matern), got {nu}", param="nu")
    raise InputError(
        f"unknown covariance {kind!r}: expected gaussian, exponential or matern", param="covariance"
    )


def _lags(n: int, periodic: bool) -> tuple[int, torch.Tensor]:
    """Grid size ``m`` of the torus that carries an axis of ``n`` pixels, and its signed lags."""
    m = n if periodic else 2 * n
    i = torch.arange(m, dtype=torch.float64)
    return m, torch.where(i <= m // 2, i, i - m)


def _sqrt_spectrum(
    shape: tuple[int, ...],
    length: torch.Tensor,
    anisotropy: torch.Tensor,
    angle: torch.Tensor,
    *,
    kind: Covariance,
    nu: float,
    periodic: bool,
    device: torch.device,
) -> torch.Tensor:
    """Square root of the circulant eigenvalues for each image's covariance.

    ``length``, ``anisotropy`` and ``angle`` have shape ``b`` (one per image, or one for all).
    Returns ``b x m1 x ... x (md // 2 + 1)`` (float32) on ``device``, laid out as ``rfftn``'s.

    On the torus (``periodic``) the covariance is evaluated at minimum-image lags, which is the
    exact circulant covariance of a periodic field. Otherwise each axis is embedded in a torus of
    twice its size (Dietrich & Newsam 1997); negative eigenvalues, which appear when the
    correlation length approaches the image size, are clipped to zero.
    """
    grids = [_lags(n, periodic) for n in shape]
    sizes = tuple(m for m, _ in grids)
    b = length.shape[0]
    inv_l2 = 1.0 / length.to(torch.float64) ** 2
    if len(shape) == 2:
        # r^2 as a quadratic form in the lags, one coefficient row per image (columns: dy^2,
        # dx^2, dy dx): r^2 = [(dx c + dy s)^2 + R^2 (dy c - dx s)^2] / l^2. Rows run
        # downwards, so "counter-clockwise as displayed" flips the sign of the row lag.
        theta = torch.deg2rad(angle.to(torch.float64))
        c, s, r2 = torch.cos(theta), torch.sin(theta), anisotropy.to(torch.float64) ** 2
        coef = torch.stack([s**2 + r2 * c**2, c**2 + r2 * s**2, 2 * c * s * (1 - r2)], 1)
        coef = coef * inv_l2[:, None]
    else:
        # 3D: isotropic (anisotropy and angle are 2D options); the last column is a zero cross term
        coef = torch.cat([inv_l2[:, None].expand(b, len(shape)), torch.zeros(b, 1)], 1)
    dims = tuple(range(1, len(shape) + 1))
    if kind == "gaussian" and bool((coef[:, -1].abs() <= 1e-12 * coef[:, 0]).all()):
        # axis-aligned gaussian: the kernel is a product over axes, so its DFT is the outer
        # product of 1D DFTs (O(H + W) per image instead of a 2D FFT of an H x W grid)
        lam = torch.ones((b,) + (1,) * len(shape), dtype=torch.float64)
        for axis, (_, g) in enumerate(grids):
            k1 = torch.exp(-coef[:, axis : axis + 1] * g**2)
            f1 = (torch.fft.rfft(k1) if axis == len(shape) - 1 else torch.fft.fft(k1)).real
            view = [b] + [1] * len(shape)
            view[axis + 1] = f1.shape[1]
            lam = lam * f1.view(view)
    else:
        lag = torch.meshgrid(*[g for _, g in grids], indexing="ij")
        if len(shape) == 2:
            basis = torch.stack([lag[0] ** 2, lag[1] ** 2, -lag[0] * lag[1]])
        else:
            basis = torch.stack([*(g**2 for g in lag), torch.zeros_like(lag[0])])
        dist2 = coef.to(torch.float32) @ basis.reshape(len(basis), -1).to(torch.float32)
        dist2 = dist2.reshape(b, *sizes)
        # the gaussian needs no square root
        if kind == "gaussian":
            cov = torch.exp(-dist2)
        else:
            cov = covariance(dist2.sqrt(), kind=kind, nu=nu)
        lam = torch.fft.rfftn(cov, dim=dims)
    return (
        torch.sqrt(lam.real.clamp_min(0))
        .to(device=device, dtype=torch.float32)
        .reshape(b, *sizes[:-1], sizes[-1] // 2 + 1)
    )


def gaussian_random_field(
    n: int,
    shape: Sequence[int],
    *,
    correlation_length: float | Sequence[float] | np.ndarray,
    anisotropy: float | Sequence[float] | np.ndarray = GRF_DEFAULTS.anisotropy,
    angle: float | Sequence[float] | np.ndarray = GRF_DEFAULTS.angle,
    covariance: Covariance = GRF_DEFAULTS.covariance,
    nu: float = GRF_DEFAULTS.matern_nu,
    periodic: bool = GRF_DEFAULTS.periodic,
    seeds: Sequence[int] | np.ndarray,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Stationary unit-variance Gaussian random fields by spectral (circulant) synthesis.

    ``Y = C^{1/2} W`` with white noise ``W`` and ``C^{1/2}`` applied in Fourier space, which gives
    the covariance exactly on the torus (Dietrich & Newsam 1997).

    Parameters
    ----------
    n : int
        Number of fields.
    shape : sequence of int
        ``(H, W)`` or ``(H, W, D)``.
    correlation_length, anisotropy, angle : float or array of shape ``n``
        One value for all fields, or one per field (see the module docstring).
    covariance, nu, periodic
        As in :class:`mdesign.config.GRFConfig`.
    seeds : array of int, shape ``n``
        One seed per field: field ``i`` depends only on ``seeds[i]`` and its parameters.
    device : torch.device, optional
        Where to compute; defaults to CUDA when available.

    Returns
    -------
    ndarray
        ``n x H x W`` (or ``n x H x W x D``) float32 fields (computed on ``device``).
    """
    shape = tuple(int(s) for s in shape)
    device = default_device(device)
    params = [
        torch.as_tensor(np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy())
        for v in (correlation_length, anisotropy, angle)
    ]
    if all(bool((p == p[0]).all()) for p in params):
        params = [p[:1] for p in params]  # one spectrum serves every field
    amp = _sqrt_spectrum(shape, *params, kind=covariance, nu=nu, periodic=periodic, device=device)
    sizes = tuple(2 * s for s in shape) if not periodic else shape
    noise = torch.empty((n, *sizes), dtype=torch.float32, device=device)
    for i, s in enumerate(seeds):
        gen = torch.Generator(device=device).manual_seed(int(s))
        torch.randn(sizes, generator=gen, device=device, out=noise[i])
    dims = tuple(range(1, len(shape) + 1))
    field = torch.fft.irfftn(torch.fft.rfftn(noise, dim=dims) * amp, s=sizes, dim=dims)
    if not periodic:
        field = field[(slice(None), *[slice(0, s) for s in shape])]
    return field.cpu().numpy()


def phase_counts(fractions: np.ndarray, n_pixels: int) -> np.ndarray:
    """Pixel counts per phase that sum to ``n_pixels``, each within one pixel of its target.

    Parameters
    ----------
    fractions : array, ``n x k``
        Target fractions of each phase; rows sum to 1.
    n_pixels : int
        Pixels per image.

    Returns
    -------
    ndarray of int64, ``n x k``
        Counts from rounding the cumulative targets, so ``|count - n_pixels * f| < 1``.
    """
    cum = np.rint(np.cumsum(fractions, axis=1) * n_pixels).astype(np.int64)
    cum[:, -1] = n_pixels
    return np.diff(cum, axis=1, prepend=0)


def level_cut(fields: torch.Tensor | np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Cut each field at its own quantiles so the phase counts are exact.

    Phase 0 takes the lowest values, phase k-1 the highest (k - 1 levels on one field).

    Parameters
    ----------
    fields : Tensor or ndarray, ``n x H x W`` (or 3D)
        Continuous fields.
    fractions : ndarray, ``n x k``
        Target fraction of each phase per image; rows sum to 1.

    Returns
    -------
    ndarray of uint8, same shape as ``fields``
        Labels whose counts are :func:`phase_counts` of the targets.
    """
    if isinstance(fields, torch.Tensor):
        fields = fields.detach().cpu().numpy()
    n = fields.shape[0]
    flat = fields.reshape(n, -1)
    n_pixels = flat.shape[1]
    counts = phase_counts(np.asarray(fractions, dtype=np.float64), n_pixels)
    cum = np.cumsum(counts, axis=1)[:, :-1]  # pixels below each of the k - 1 levels
    k = counts.shape[1]
    # level j is the cum[j]-th smallest value: np.partition (introselect) finds it faster than a
    # full sort; -inf/+inf where the phases below/above it take no pixels
    levels = np.where(cum <= 0, -np.inf, np.inf).astype(flat.dtype)
    for i in range(n):
        inner = (cum[i] > 0) & (cum[i] < n_pixels)
        if inner.any():
            kth = cum[i][inner] - 1
            levels[i, inner] = np.partition(flat[i], kth)[kth]
    labels = np.zeros(flat.shape, dtype=np.uint8)
    for j in range(k - 1):
        labels += flat > levels[:, j : j + 1]
    got = np.stack([(labels == p).sum(1) for p in range(k)], axis=1)
    for i in np.flatnonzero((got != counts).any(1)):
        # ties at a level (rare in float32): assign by stable rank instead
        rank = np.empty(n_pixels, dtype=np.int64)
        rank[np.argsort(flat[i], kind="stable")] = np.arange(n_pixels)
        labels[i] = np.searchsorted(cum[i], rank, side="right")
    return labels.reshape(fields.shape)


def level_cut_s2(rho: np.ndarray | float, fraction: float) -> np.ndarray:
    """Closed-form two-point probability of the phase above a level cut of a Gaussian field.

    For the excursion set ``{Y > t}`` with ``P(Y > t) = phi``,

    ``S2(r) = phi**2 + (1 / 2 pi) * integral_0^rho(r) exp(-t**2 / (1 + s)) / sqrt(1 - s**2) ds``

    (Torquato 2002, eq. 8.16; the bivariate normal CDF written as an integral over the
    correlation).

    Parameters
    ----------
    rho : array_like
        Field correlation ``rho(r)`` at the distances of interest, in [-1, 1].
    fraction : float
        ``phi``, the fraction of the phase above the cut.

    Returns
    -------
    ndarray
        ``S2`` at each ``rho``; ``S2 = phi`` where ``rho = 1`` and ``phi**2`` where ``rho = 0``.
    """
    from scipy import integrate
    from scipy.stats import norm

    t = norm.isf(fraction)
    rho = np.asarray(rho, dtype=np.float64)
    flat = rho.ravel()
    out = np.empty_like(flat)
    for i, c in enumerate(flat):
        val, _ = integrate.quad(lambda s: np.exp(-(t**2) / (1 + s)) / np.sqrt(1 - s**2), 0, c)
        out[i] = fraction**2 + val / (2 * np.pi)
    return out.reshape(rho.shape)


@dataclass(frozen=True)
class GRFResult:
    """Microstructures and the parameters each one was drawn with.

    Attributes
    ----------
    images : ndarray of uint8, ``n x H x W`` (or ``n x H x W x D``)
        Phase labels ``0..k-1``.
    volume_fraction : ndarray, ``n``
        Target fraction of phase 1 (the phase the descriptors default to).
    phase_fractions : ndarray, ``n x k``
        Target fraction of every phase.
    correlation_length, anisotropy, angle : ndarray, ``n``
        The field parameters of each image.
    seeds : ndarray of uint64, ``n``
        The per-image noise seeds (image ``i`` is reproducible from its seed alone).
    """

    images: np.ndarray
    volume_fraction: np.ndarray
    phase_fractions: np.ndarray
    correlation_length: np.ndarray
    anisotropy: np.ndarray
    angle: np.ndarray
    seeds: np.ndarray


def _as_range(
    name: str,
    value: Range,
    *,
    low: float,
    high: float,
    low_open: bool = True,
    high_open: bool = False,
) -> tuple[float, float]:
    lo, hi = (value, value) if np.isscalar(value) else (float(value[0]), float(value[1]))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError(f"must be finite, got {value}", param=name)
    if lo > hi:
        raise InputError(f"range {lo}:{hi} is empty (A must be <= B)", param=name)
    bad_lo = lo <= low if low_open else lo < low
    bad_hi = hi >= high if high_open else hi > high
    if bad_lo or bad_hi:
        lo_b, hi_b = "(" if low_open else "[", ")" if high_open else "]"
        raise InputError(f"{value} is outside {lo_b}{low:g}, {high:g}{hi_b}", param=name)
    return float(lo), float(hi)


def grf_memory(
    n: int,
    shape: Sequence[int],
    *,
    periodic: bool = GRF_DEFAULTS.periodic,
    chunk_size: int = GRF_DEFAULTS.chunk_size,
) -> int:
    """Estimated peak memory in bytes of :func:`grf_microstructures` (no allocation).

    The uint8 labels of all ``n`` images, plus one chunk of fields with their spectra and the
    level cut's sort: about 32 bytes per pixel of field (calibrated in the docs' performance
    page), on the circulant embedding (twice each side) when not periodic.
    """
    pixels = math.prod(int(s) for s in shape)
    embed = 1 if periodic else 2 ** len(shape)
    return int(n) * pixels + min(int(n), int(chunk_size)) * pixels * embed * 32


def grf_microstructures(
    n: int,
    shape: Sequence[int],
    *,
    volume_fraction: Range | list[Range],
    correlation_length: Range,
    seed: SeedLike,
    covariance: Covariance = GRF_DEFAULTS.covariance,
    nu: float = GRF_DEFAULTS.matern_nu,
    anisotropy: Range = GRF_DEFAULTS.anisotropy,
    angle: Range = GRF_DEFAULTS.angle,
    phases: int = GRF_DEFAULTS.phases,
    periodic: bool = GRF_DEFAULTS.periodic,
    chunk_size: int = GRF_DEFAULTS.chunk_size,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> GRFResult:
    """Level-cut Gaussian random field microstructures with exact phase fractions.

    Parameters
    ----------
    n : int
        Number of images, > 0.
    shape : sequence of int
        ``(H, W)``, or ``(H, W, D)`` for volumes.
    volume_fraction : float, tuple ``(A, B)``, or a list of k - 1 of these
        Target fraction of phase 1 (two phases), or of phases ``1..k-1`` (a list); a tuple
        ``(A, B)`` draws each image's value uniformly in ``[A, B]``. A single value with
        ``phases > 2`` applies to each of phases ``1..k-1``; phase 0 takes the rest, which must
        stay positive.
    correlation_length : float or ``(A, B)``
        Field correlation length in pixels (module docstring), > 0 and <= the smallest side.
    seed : int, numpy.random.Generator or numpy.random.SeedSequence
        Image ``i`` depends only on ``(seed, i)`` and the parameters, not on ``n`` or the chunk
        size: the same seed gives the same bytes. Image ``i`` takes the ``i``-th child that
        :meth:`~numpy.random.SeedSequence.spawn` gives (of ``SeedSequence(seed)`` for an int).
    covariance, nu, anisotropy, angle, phases, periodic, chunk_size
        As in :class:`mdesign.config.GRFConfig`; ``anisotropy`` and ``angle`` also take ranges.
    device : torch.device, optional
        Defaults to CUDA when available, else the CPU.
    progress : bool
        Show a progress bar.

    Returns
    -------
    GRFResult
        Labels ``n x H x W`` and the per-image parameters.

    Examples
    --------
    >>> res = grf_microstructures(4, (64, 64), volume_fraction=0.3, correlation_length=5, seed=0)
    >>> res.images.shape, int(res.images[0].sum())
    ((4, 64, 64), 1229)
    """
    if int(n) != n or n <= 0:
        raise InputError(f"the number of images must be a positive integer, got {n}", param="n")
    seed = as_seed_sequence(seed)
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 2:
        raise InputError(
            f"expected (H, W) or (H, W, D) of at least 2 pixels, got {shape}", param="shape"
        )
    if not 2 <= phases <= 8:
        raise InputError(f"must be between 2 and 8, got {phases}", param="phases")
    if len(shape) == 3 and (np.ndim(anisotropy) or anisotropy != 1 or np.ndim(angle) or angle != 0):
        raise InputError("only 2D fields can be anisotropic", param="anisotropy")
    check_memory(
        grf_memory(n, shape, periodic=periodic, chunk_size=chunk_size),
        what=f"{n} images of {' x '.join(map(str, shape))}",
        param="shape" if n <= chunk_size else "n",
    )
    # volume fractions of phases 1..k-1: a list holds one spec per phase, a tuple is a range
    vf_specs = list(volume_fraction) if isinstance(volume_fraction, list) else [volume_fraction]
    if len(vf_specs) == 1:
        vf_specs = vf_specs * (phases - 1)
    if len(vf_specs) != phases - 1:
        raise InputError(
            f"{phases} phases need {phases - 1} fractions, got {len(vf_specs)}",
            param="volume_fraction",
        )
    vf_ranges = [_as_range("volume_fraction", v, low=0, high=1, high_open=True) for v in vf_specs]
    if sum(hi for _, hi in vf_ranges) >= 1:
        raise InputError(
            "the fractions of phases 1..k-1 must sum to less than 1", param="volume_fraction"
        )
    l_range = _as_range("correlation_length", correlation_length, low=0, high=min(shape))
    a_range = _as_range("anisotropy", anisotropy, low=0, high=np.inf, high_open=True)
    g_range = _as_range("angle", angle, low=-np.inf, high=np.inf, high_open=True)

    # per-image parameters and noise seed, each from the image's own stream: image i depends on
    # (seed, i) only
    ranges = np.array([*vf_ranges, l_range, a_range, g_range])  # (k - 1 + 3) x 2
    draws = np.empty((n, len(ranges)))
    seeds = np.empty(n, dtype=np.uint64)
    for i in range(n):
        child = np.random.SeedSequence(
            entropy=seed.entropy, spawn_key=(*seed.spawn_key, i), pool_size=seed.pool_size
        )
        rng = np.random.default_rng(child)
        u = rng.random(len(ranges))
        draws[i] = ranges[:, 0] + u * (ranges[:, 1] - ranges[:, 0])
        seeds[i] = rng.integers(0, 2**63, dtype=np.uint64)
    fractions = np.concatenate(
        [1 - draws[:, : phases - 1].sum(1, keepdims=True), draws[:, : phases - 1]], axis=1
    )
    lengths, ratios, angles = draws[:, -3], draws[:, -2], draws[:, -1]

    images = np.empty((n, *shape), dtype=np.uint8)
    bar = tqdm(total=n, desc="grf", unit="img", disable=not progress, leave=False)
    for start in range(0, n, chunk_size):
        sl = slice(start, min(start + chunk_size, n))
        fields = gaussian_random_field(
            sl.stop - sl.start,
            shape,
            correlation_length=lengths[sl],
            anisotropy=ratios[sl],
            angle=angles[sl],
            covariance=covariance,
            nu=nu,
            periodic=periodic,
            seeds=seeds[sl],
            device=device,
        )
        images[sl] = level_cut(fields, fractions[sl])
        bar.update(sl.stop - sl.start)
    bar.close()
    return GRFResult(
        images=images,
        volume_fraction=fractions[:, 1].copy(),
        phase_fractions=fractions,
        correlation_length=lengths,
        anisotropy=ratios,
        angle=angles,
        seeds=seeds,
    )
