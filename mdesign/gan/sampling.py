"""Decoding latents to microstructures: the design space's map from ``z`` to images.

The latent prior, and the box a design optimiser searches, is uniform on ``[-1, 1]^d`` with ``d = C
h w`` (16 for the default ``1 x 4 x 4`` latent; Yang et al. 2018), plus ``G`` for a generator with
global channels (one value per image each, broadcast over the map); :func:`sample_latents` draws it.
A latent map of side ``K`` decodes to an image of side ``32 K`` (the generator is fully
convolutional), so a model trained on 4x4 latents makes 256x256 images from 8x8 latents.

:func:`decode` binarises the generator's tanh output ``y`` by ``midpoint`` (phase 1 where ``y > 0``,
decided on the pre-tanh output) or ``otsu`` (Otsu's threshold of each image; Otsu 1979), or, with
``fractions`` given, cuts each image's output at the quantile that gives exactly that phase-1
fraction, after removing its drift at the scale of a latent cell (a Gaussian high-pass one cell, 32
px, wide): the level cut that makes the GRF training images (:func:`mdesign.grf.level_cut`). The
fraction is then a design variable of its own; :func:`training_fractions` and
:func:`sample_fractions` draw it from the training distribution, which a random latent's own
fraction covers poorly (the design space guide, ``docs/guide/gan.md``, says why; the figures are on
the performance page).

:func:`decode` runs the generator with BatchNorm folded into the convolutions, channels-last, under
:func:`torch.inference_mode` (:class:`~mdesign.gan.networks.FusedGenerator`), in eval mode, so an
image depends only on its own latent; ``precision="bfloat16"`` is an opt-in (float32 is the default
and what the design campaign uses).
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from mdesign.config import GAN_DEFAULTS, GANConfig
from mdesign.errors import InputError
from mdesign.gan.networks import FusedGenerator, Generator
from mdesign.grf import level_cut, phase_counts
from mdesign.memory import check_memory
from mdesign.seeds import SeedLike, seed_int

__all__ = [
    "check_fractions",
    "check_latents",
    "decode",
    "decode_memory",
    "fractions_at",
    "latent_maps",
    "latent_shape",
    "sample_fractions",
    "sample_latents",
    "training_fractions",
]

_S = GAN_DEFAULTS.sample


def latent_shape(config: GANConfig = GAN_DEFAULTS, *, size: int | None = None) -> tuple:
    """``(C + G, h, w)`` of the latent map: the training one, or ``size x size`` if given.

    The design space has ``C h w + G`` variables (:func:`latent_maps`), 16 for the default
    ``(1, 4, 4)`` without global channels.
    """
    side = config.generator.latent_size if size is None else int(size)
    if side < 1:
        raise InputError(f"must be at least 1, got {side}", param="size")
    g = config.generator
    return (g.latent_channels + g.global_channels, side, side)


def latent_maps(
    x: np.ndarray | torch.Tensor, shape: Sequence[int], *, global_channels: int = 0
) -> torch.Tensor:
    """Latent maps from design vectors: the inverse of flattening a map's free variables.

    Parameters
    ----------
    x : array, ``n x (C h w + G)``
        Per design, the local cells (``C x h x w`` in C order), then the ``G`` global values.
    shape : sequence of int
        ``(C + G, h, w)``, e.g. :func:`latent_shape`.
    global_channels : int
        ``G``, the generator's global channels (``config.generator.global_channels``).

    Returns
    -------
    Tensor, ``n x (C + G) x h x w``, float32; each global channel constant over the map.
    """
    cg, h, w = (int(s) for s in shape)
    g = int(global_channels)
    local = (cg - g) * h * w
    t = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(-1, local + g)
    maps = t[:, :local].reshape(-1, cg - g, h, w)
    glob = t[:, local:, None, None].expand(-1, g, h, w)
    return torch.cat([maps, glob], dim=1)


def sample_latents(
    n: int,
    shape: Sequence[int],
    *,
    seed: SeedLike | None = None,
    generator: torch.Generator | None = None,
    global_channels: int = 0,
) -> np.ndarray:
    """``n`` latents drawn uniformly from the latent box ``[-1, 1]``: the GAN's latent prior.

    The one place the prior is written; training, sampling and the study all draw from it.

    Parameters
    ----------
    n : int
        Number of latents.
    shape : sequence of int
        ``(C + G, h, w)``, e.g. :func:`latent_shape`.
    seed : int, numpy.random.Generator or numpy.random.SeedSequence, optional
        The same seed gives the same latents (a private :class:`torch.Generator` seeded with
        :func:`mdesign.seeds.seed_int`: an int as it is).
    generator : torch.Generator, optional
        Draw from this CPU generator instead (a stream shared with other draws, as in the
        training loop). Exactly one of ``seed`` and ``generator`` is given.
    global_channels : int
        ``G`` (``config.generator.global_channels``): the last ``G`` channels take one uniform
        value per latent, constant over the map (the value drawn for cell ``(0, 0)``, so the
        local channels are the same draws as without them).

    Returns
    -------
    ndarray, ``n x (C + G) x h x w``, float32
    """
    return _sample_latents(
        n, shape, seed=seed, generator=generator, global_channels=global_channels
    ).numpy()


def _sample_latents(
    n: int,
    shape: Sequence[int],
    *,
    seed: SeedLike | None = None,
    generator: torch.Generator | None = None,
    global_channels: int = 0,
) -> torch.Tensor:
    """:func:`sample_latents` as a CPU tensor (training draws from a shared stream)."""
    if int(n) != n or n < 1:
        raise InputError(f"the number of samples must be a positive integer, got {n}", param="n")
    if (seed is None) == (generator is None):
        raise TypeError("sample_latents: give exactly one of seed and generator")
    cells = math.prod(int(s) for s in shape)
    check_memory(
        4 * int(n) * cells,
        what=f"{n} latents of {' x '.join(map(str, shape))}",
        param="n" if int(n) >= cells else "shape",  # the larger factor
    )
    g = int(global_channels)
    if not 0 <= g <= int(shape[0]):
        raise InputError(
            f"{g} global channels in a latent map of {shape[0]} channels", param="global_channels"
        )
    gen = generator if generator is not None else torch.Generator().manual_seed(seed_int(seed))
    z = torch.rand((int(n), *(int(s) for s in shape)), generator=gen) * 2 - 1
    if g:
        z[:, z.shape[1] - g :] = z[:, z.shape[1] - g :, :1, :1].clone()
    return z


QUANTILE_POINTS = 101
"""Points of the quantile function of the training fractions kept in a checkpoint."""


def training_fractions(data_meta: dict[str, Any] | None) -> np.ndarray | None:
    """The quantile function of the phase-1 fractions a GAN was trained on.

    Parameters
    ----------
    data_meta : dict
        A checkpoint's ``data_meta`` (:func:`mdesign.gan.data_provenance`). Checkpoints record
        ``volume_fraction_quantiles``; older ones made from ``mdesign grf`` data give it by the
        recorded ``--volume-fraction`` (a value, or ``A:B`` drawn uniformly).

    Returns
    -------
    ndarray, ``Q``, or None
        Non-decreasing fractions at ``u = 0, 1/(Q-1), ..., 1`` (``Q = 101``): the inverse CDF
        that :func:`fractions_at` interpolates. None when the checkpoint records neither.
    """
    meta = data_meta or {}
    q = meta.get("volume_fraction_quantiles")
    if q is not None:
        return np.asarray(q, dtype=np.float64)
    grf = meta.get("grf")
    if not isinstance(grf, dict) or grf.get("volume_fraction") is None:
        return None
    from mdesign.gan.validation import grf_training_parameters

    vf = grf_training_parameters(meta)["volume_fraction"]
    if isinstance(vf, list):  # k-phase fractions: not a two-phase generator's training set
        return None
    lo, hi = (vf, vf) if isinstance(vf, float) else vf
    return np.linspace(lo, hi, QUANTILE_POINTS)


def fractions_at(u: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Fractions at the probabilities ``u`` in ``[0, 1]`` of a quantile function.

    A design coordinate ``x`` in ``[-1, 1]`` maps to ``u = (x + 1) / 2``: uniform points of the
    box then have exactly the training distribution of fractions.
    """
    q = np.asarray(quantiles, dtype=np.float64)
    return np.interp(np.clip(np.asarray(u, dtype=np.float64), 0, 1), np.linspace(0, 1, len(q)), q)


def sample_fractions(n: int, quantiles: np.ndarray, *, seed: SeedLike) -> np.ndarray:
    """``n`` phase-1 fractions drawn from the training distribution (inverse-CDF sampling).

    The stream is derived from ``seed`` apart from :func:`sample_latents`' (the same seed gives
    independent latents and fractions).
    """
    rng = np.random.default_rng([seed_int(seed), 0xF4AC])
    return fractions_at(rng.uniform(0, 1, int(n)), quantiles)


def check_fractions(fractions, n: int, *, source: str = "fractions") -> np.ndarray:
    """``n`` finite phase-1 fractions in ``[0, 1]`` as float64 (one value is repeated)."""
    f = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if f.size == 1:
        f = np.full(int(n), float(f[0]))
    if f.shape != (int(n),):
        raise InputError(f"{source}: expected {n} fractions (one per latent), got {f.size}")
    if not np.isfinite(f).all() or (f < 0).any() or (f > 1).any():
        raise InputError(f"{source}: fractions must be in [0, 1]")
    return f


# Latents may leave the box [-1, 1] by float rounding (a float64 optimiser cast to float32,
# a text round trip), not by more.
LATENT_BOX_TOLERANCE = 1e-4
# relative spread over the map allowed in a global channel (interpolated maps round a constant)
GLOBAL_TOLERANCE = 1e-5


def check_latents(
    z: np.ndarray | torch.Tensor,
    *,
    latent_channels: int,
    global_channels: int = 0,
    source: str = "latents",
    in_box: bool = False,
) -> torch.Tensor:
    """Check a latent array ``N x C x h x w`` (or one ``C x h x w``) and return it as float32.

    Parameters
    ----------
    z : ndarray or Tensor
        The latents.
    latent_channels : int
        The generator's input channels, ``C + G`` (``Generator.in_channels``).
    global_channels : int
        ``G``: the last ``G`` channels are global, one value per image, so each must be constant
        over the map (to within float rounding). A map drawn without ``global_channels`` in
        :func:`sample_latents` is refused here: the generator would silently use its mean, a
        narrower distribution than the prior's.
    source : str
        Named in the error messages.
    in_box : bool
        Also require every value in the latent box ``[-1, 1]`` (to within
        ``LATENT_BOX_TOLERANCE``): the generator was trained on that box only, so a latent far
        outside it decodes to images it never learned (and is most likely a wrong file).

    Raises
    ------
    InputError
        Wrong number of dimensions, a channel count other than the generator's, an empty
        array, NaN/infinite values, a global channel that varies over the map, or (``in_box``) a
        value outside the box.
    """
    t = torch.as_tensor(z) if not isinstance(z, torch.Tensor) else z
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4:
        raise InputError(
            f"{source}: expected latents of shape N x C x h x w, got shape {tuple(t.shape)}"
        )
    if t.shape[1] != latent_channels:
        raise InputError(
            f"{source}: latents have {t.shape[1]} channels, the generator takes "
            f"{latent_channels} (shape N x {latent_channels} x h x w, got {tuple(t.shape)})"
        )
    if t.numel() == 0:
        raise InputError(f"{source}: no latents (shape {tuple(t.shape)})")
    if not t.is_floating_point() and t.dtype not in (torch.int8, torch.int16, torch.int32):
        raise InputError(f"{source}: expected float latents, got {t.dtype}")
    t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        raise InputError(f"{source}: latents contain NaN or infinite values")
    g = int(global_channels)
    if g:
        glob = t[:, t.shape[1] - g :].flatten(2)
        spread = glob.amax(2) - glob.amin(2)
        bad = spread > GLOBAL_TOLERANCE * glob.abs().amax(2).clamp(min=1)
        if bad.any():
            i = int(bad.any(1).nonzero()[0, 0])
            raise InputError(
                f"{source}: the last {g} channel(s) are global (one value per image), but latent "
                f"{i} varies over the map by {float(spread[i].max()):.3g}; draw latents with "
                f"sample_latents(..., global_channels={g}) or make those channels constant"
            )
    if in_box:
        worst = float(t.abs().max())
        if worst > 1 + LATENT_BOX_TOLERANCE:
            raise InputError(
                f"{source}: latents reach {worst:.4g}, outside the latent box [-1, 1] the "
                "generator was trained on"
            )
    return t


# Fused copies of generators, rebuilt when the generator's weights change (training, loading)
_FUSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fused(generator: Generator | FusedGenerator, dtype: torch.dtype) -> FusedGenerator:
    if isinstance(generator, FusedGenerator):
        return generator
    tensors = [*generator.parameters(), *generator.buffers()]
    key = (dtype, *((t.data_ptr(), t._version) for t in tensors))
    hit = _FUSED.get(generator)
    if hit is not None and hit[0] == key:
        return hit[1]
    fused = FusedGenerator(generator, dtype=dtype)
    _FUSED[generator] = (key, fused)
    return fused


def _detrend(y: np.ndarray, *, width: int, periodic: bool) -> np.ndarray:
    """``y`` less its Gaussian-smoothed self (standard deviation ``width`` pixels), per image.

    A level cut then sees the same level everywhere: the generator's output drifts from one
    latent cell to the next (each cell sets its own level), which a global cut would turn into
    regions richer or poorer in phase 1 than the training images ever are. The reference of
    :func:`_detrend_torch` (scipy, float64, image by image).
    """
    from scipy.ndimage import gaussian_filter

    mode = "wrap" if periodic else "reflect"
    y = np.asarray(y, dtype=np.float64)
    return np.stack([img - gaussian_filter(img, float(width), mode=mode) for img in y])


def _gaussian_response(n: int, width: float, device: torch.device) -> torch.Tensor:
    """DFT (length ``n``) of scipy's sampled Gaussian kernel (``truncate=4``), wrapped mod ``n``.

    The kernel taps ``exp(-x^2 / 2 w^2)``, ``|x| <= int(4 w + 0.5)``, normalised to sum 1, are
    what :func:`scipy.ndimage.gaussian_filter` convolves with; on a periodic axis of length
    ``n`` they act as a circular convolution, i.e. a product with this real, even response.
    """
    radius = int(4.0 * float(width) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * x**2 / float(width) ** 2)
    taps = taps / taps.sum()
    k = torch.arange(n, dtype=torch.float64)
    response = (taps[None, :] * torch.cos(2 * math.pi * k[:, None] * x[None, :] / n)).sum(1)
    return response.to(device)


@functools.lru_cache(maxsize=16)
def _smoothing_matrix(
    n: int, width: int, periodic: bool, device: torch.device, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The ``n x n`` matrix of scipy's 1D Gaussian filter on an axis of ``n`` pixels.

    Built in float64 by filtering the identity in Fourier space: the kernel wrapped onto the
    axis (scipy's ``wrap``), or, without ``periodic``, onto the axis mirrored to twice its
    length, whose periodic extension is scipy's ``reflect`` extension (``d c b a | a b c d |
    d c b a``), cropped back; then cast to ``dtype`` (cached: read-only).
    """
    eye = torch.eye(n, dtype=torch.float64)
    ext = eye if periodic else torch.cat([eye, eye.flip(0)], dim=0)
    m = ext.shape[0]
    response = _gaussian_response(m, width, torch.device("cpu"))[: m // 2 + 1]
    spec = torch.fft.rfft(ext, dim=0) * response[:, None]
    s = torch.fft.irfft(spec, n=m, dim=0)[:n]  # column j: the filtered e_j
    return s.to(device=device, dtype=dtype)


def _detrend_torch(y: torch.Tensor, *, width: int, periodic: bool) -> torch.Tensor:
    """:func:`_detrend` of a batch ``B x H x W`` on its own device: ``y - S_H y S_W^T``.

    The Gaussian is separable, so the filter is two matrix products with the 1D filters'
    matrices (:func:`_smoothing_matrix`): exact, and on a 128x128 image cheaper than FFTs.
    """
    sh = _smoothing_matrix(y.shape[-2], width, periodic, y.device, y.dtype)
    sw = _smoothing_matrix(y.shape[-1], width, periodic, y.device, y.dtype)
    return y - sh @ y @ sw.T


# values of each image ranked to bracket its k-th value (a fixed random sample of its pixels), and
# the margin around the sample's estimate, in sample ranks: 6 binomial standard deviations at
# most (sqrt(1024 / 4) = 16), so a bracket misses with odds of about 1e-9 per image
_BRACKET_SAMPLE = 1024
_BRACKET_MARGIN = 96


@functools.lru_cache(maxsize=16)
def _bracket_pixels(n_pixels: int, device: torch.device) -> torch.Tensor:
    """Sorted indices of a fixed random sample of ``_BRACKET_SAMPLE`` of ``n_pixels`` pixels."""
    gen = torch.Generator().manual_seed(n_pixels)
    pick = torch.randperm(n_pixels, generator=gen)[: min(n_pixels, _BRACKET_SAMPLE)]
    return pick.sort().values.to(device)


def _cut_exact(y: torch.Tensor, fractions: np.ndarray) -> np.ndarray:
    """:func:`mdesign.grf.level_cut` of two phases for a batch ``B x H x W`` on its device.

    Each image's level is its ``k = (1 - f) H W``-th smallest value, phase 1 the pixels above
    it. On the CPU that is :func:`~mdesign.grf.level_cut` itself on the tensor's memory
    (numpy's introselect, faster there than ``torch.kthvalue``; the performance page); on
    another device :func:`_kth_smallest`, so the batch leaves the device as uint8 labels only.
    """
    f = np.asarray(fractions, dtype=np.float64)
    if y.device.type == "cpu":
        return level_cut(y, np.stack([1 - f, f], axis=1))
    return _cut_torch(y, f)


def _cut_torch(y: torch.Tensor, f: np.ndarray) -> np.ndarray:
    """:func:`_cut_exact` in torch, on any device. Images with equal values at their level
    (rare in float32) are cut by :func:`~mdesign.grf.level_cut`, which ranks ties stably."""
    b = y.shape[0]
    flat = y.reshape(b, -1)
    n_pixels = flat.shape[1]
    below = phase_counts(np.stack([1 - f, f], axis=1), n_pixels)[:, 0]
    level = _kth_smallest(flat, torch.as_tensor(below, device=flat.device))
    labels = flat > level[:, None]
    ties = (labels.sum(1).cpu().numpy() != n_pixels - below).nonzero()[0]
    out = labels.to(torch.uint8).cpu().numpy()
    if ties.size:
        g = f[ties, None]
        out[ties] = level_cut(flat[ties], np.hstack([1 - g, g])).reshape(len(ties), -1)
    return out.reshape(y.shape)


def _kth_smallest(flat: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The ``k[i]``-th smallest value of each row of ``flat`` (``B x P``), ``-inf`` where 0.

    Equal to ``torch.kthvalue`` row by row, without sorting the rows: the k-th values of a
    random sample of each row bracket its k-th value between two of its values, one pass counts
    the values below the bracket, and the k-th value is found among the few inside it. A row
    whose bracket misses (odds of about one in a billion) falls back to ``torch.kthvalue``.
    """
    p = flat.shape[1]
    k = k.to(device=flat.device, dtype=torch.int64)
    sample = flat.index_select(1, _bracket_pixels(p, flat.device))
    m = sample.shape[1]
    centre = (k * m) // p
    inf = torch.tensor(math.inf, dtype=flat.dtype, device=flat.device)
    lo_i, hi_i = centre - _BRACKET_MARGIN, centre + _BRACKET_MARGIN
    lo = torch.where(lo_i < 0, -inf, _kth_rows(sample, lo_i.clamp(0, m - 1) + 1))
    hi = torch.where(hi_i >= m, inf, _kth_rows(sample, hi_i.clamp(0, m - 1) + 1))
    below = (flat < lo[:, None]).sum(1)
    inside = (flat >= lo[:, None]) & (flat <= hi[:, None])
    n_in = inside.sum(1)
    level = _kth_rows(flat, (k - below).clamp(1, None), keep=inside, count=n_in)
    level = torch.where(k <= 0, -inf, level)
    missed = ((k > 0) & ((k <= below) | (k > below + n_in))).nonzero()[:, 0]
    for i in missed.tolist():
        level[i] = torch.kthvalue(flat[i], int(k[i])).values
    return level


def _kth_rows(
    x: torch.Tensor,
    r: torch.Tensor,
    *,
    keep: torch.Tensor | None = None,
    count: torch.Tensor | None = None,
) -> torch.Tensor:
    """The ``r[i]``-th smallest of row ``i`` of ``x`` (of its values where ``keep``), by one
    batched ``torch.kthvalue``: each row's kept values are packed behind ``R - r[i]`` values of
    ``-inf`` (``R = max r``), so the R-th smallest of every packed row is the one asked for.
    ``r[i]`` beyond a row's kept values gives ``+inf``."""
    b, n = x.shape
    shift = int(r.max()) - r
    if keep is None:
        pos = shift[:, None] + torch.arange(n, device=x.device)
        count = torch.full_like(r, n)
    else:
        pos = keep.cumsum(1)
        pos += shift[:, None] - 1
    width = max(int((shift + count).max()), int(r.max()))  # r beyond every row's values
    if keep is not None:
        pos.masked_fill_(~keep, width)  # column `width` takes the rest, then is dropped
    packed = torch.full((b, width + 1), math.inf, dtype=x.dtype, device=x.device)
    packed.scatter_(1, pos, x)
    packed = packed[:, :width]
    packed.masked_fill_(torch.arange(width, device=x.device) < shift[:, None], -math.inf)
    return packed.kthvalue(int(r.max()), dim=1).values


def _otsu_labels(y: torch.Tensor) -> torch.Tensor:
    """Per-image Otsu binarisation of ``batch x H x W`` values (256-bin histogram)."""
    from skimage.filters import threshold_otsu

    arr = y.float().cpu().numpy()
    out = np.empty(arr.shape, dtype=np.uint8)
    for i, img in enumerate(arr):
        lo, hi = float(img.min()), float(img.max())
        t = threshold_otsu(img) if hi > lo else 0.0  # a flat image: fall back to the midpoint
        out[i] = img > t
    return torch.from_numpy(out)


def decode_memory(
    generator: Generator | FusedGenerator,
    n: int,
    latent_size: tuple[int, int],
    *,
    batch_size: int = _S.batch_size,
) -> int:
    """Estimated peak bytes of :func:`decode` for ``n`` latents of ``h x w`` cells.

    The uint8 labels of every image, plus the activations of the batches decoded at once (one
    per torch thread on the CPU): each layer's output (its channels at its resolution) and
    input alive at once, with a padded copy, in float32: three times the layers' floats per
    output pixel (8.5 for the default widths 128, 64, 32, 16).
    """
    fused = _fused(generator, torch.float32)
    depth = len(fused.biases)
    floats = sum(len(b) * 4.0 ** (i + 1 - depth) for i, b in enumerate(fused.biases))
    pixels = math.prod(int(s) for s in latent_size) * fused.scale**2
    device = fused.biases[0].device
    live = int(batch_size) * (torch.get_num_threads() if device.type == "cpu" else 1)
    return int(int(n) * pixels + min(int(n), live) * pixels * 4 * 3 * floats)


def decode(
    generator: Generator | FusedGenerator,
    z: np.ndarray | torch.Tensor,
    *,
    fractions: np.ndarray | float | None = None,
    periodic: bool = _S.periodic,
    binarize: str = _S.binarize,
    batch_size: int = _S.batch_size,
    precision: str = _S.precision,
) -> np.ndarray:
    """Decode latents to two-phase microstructures (Yang et al. 2018).

    Parameters
    ----------
    generator : Generator or FusedGenerator
        The trained generator. Its BatchNorm running statistics are used whatever its mode, so
        each image depends only on its own latent.
    z : ndarray or Tensor, ``N x C x h x w``
        Latents, nominally in ``[-1, 1]`` (the prior's box); any ``h, w >= 1``.
    fractions : ndarray ``N`` or float, optional
        Phase-1 fraction of each image: its output, less its drift at the scale of a latent
        cell, is cut at the quantile that gives exactly ``round(f H W)`` pixels of phase 1
        (:func:`mdesign.grf.level_cut`), and ``binarize`` is not used. See the module docstring.
    periodic : bool
        Circular padding in every layer: the images tile seamlessly, and a latent tiled ``m``
        times decodes to the image tiled ``m`` times.
    binarize : {"midpoint", "otsu"}
        See the module docstring.
    batch_size : int
        Latents per forward pass (bounds memory; does not change the result).
    precision : {"float32", "bfloat16"}
        Arithmetic of the forward pass. ``bfloat16`` is about twice as fast on CPUs with
        AVX512-BF16 or AMX, and flips the few pixels whose output is within rounding of the
        cut (:class:`~mdesign.gan.networks.FusedGenerator`); ignored for a given
        ``FusedGenerator``, which has its own.

    Returns
    -------
    ndarray of uint8, ``N x (32 h) x (32 w)``
        Phase labels 0 and 1 (side ``2**depth`` per latent cell for other depths).

    Raises
    ------
    InputError
        Latents of the wrong shape or with non-finite values, or an unknown ``binarize``.
    """
    if binarize not in ("midpoint", "otsu"):
        raise InputError(f"expected midpoint or otsu, got {binarize!r}", param="binarize")
    if int(batch_size) < 1:
        raise InputError(f"must be at least 1, got {batch_size}", param="batch_size")
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    if precision not in dtypes:
        raise InputError(f"expected float32 or bfloat16, got {precision!r}", param="precision")
    fused = _fused(generator, dtypes[precision])
    device = fused.biases[0].device
    zt = check_latents(z, latent_channels=fused.in_channels, global_channels=fused.global_channels)
    n, _, h, w = zt.shape
    if fractions is not None:
        fractions = check_fractions(fractions, n)
    check_memory(
        decode_memory(fused, n, (h, w), batch_size=int(batch_size)),
        what=f"decoding {n} images of {h * fused.scale} x {w * fused.scale}",
        param="z",
    )
    out = np.empty((n, h * fused.scale, w * fused.scale), dtype=np.uint8)
    cut = fractions is not None or binarize == "midpoint"
    size = int(batch_size)

    def run(start: int) -> None:
        with torch.inference_mode():
            chunk = zt[start : start + size].to(device)
            stop = start + chunk.shape[0]
            y = fused(chunk, periodic=periodic, logits=cut)[:, 0]
            if fractions is not None:
                y = _detrend_torch(y.float(), width=fused.scale, periodic=periodic)
                out[start:stop] = _cut_exact(y, fractions[start:stop])
            elif binarize == "midpoint":
                out[start:stop] = (y > 0).to(torch.uint8).cpu().numpy()
            else:
                out[start:stop] = _otsu_labels(y).numpy()

    _each_batch(run, range(0, n, size), device)
    return out


def _each_batch(run, starts: range, device: torch.device) -> None:
    """``run(start)`` for each batch; on the CPU one batch per torch thread, in parallel.

    Each of the ``torch.get_num_threads()`` threads decodes whole batches with one torch thread
    of its own: small convolutions parallelise poorly inside, and the cut's numpy and Python
    steps not at all. The images do not depend on the number of threads.
    """
    threads = torch.get_num_threads()
    workers = min(threads, len(starts))
    if device.type != "cpu" or workers < 2:
        for start in starts:
            run(start)
        return

    def one_thread(start: int) -> None:
        torch.set_num_threads(1)
        run(start)

    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one_thread, starts))
    finally:
        torch.set_num_threads(threads)
