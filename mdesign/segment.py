"""Segmentation of a grayscale micrograph into phase labels (``mdesign segment``).

Five steps, with their settings in :class:`~mdesign.config.SegmentConfig`: crop (a scale bar
or data bar away), denoise (scikit-image's median, bilateral or non-local means filters; off by
default), correct the background (uneven illumination: a smooth field ``B`` with
``image ~ m[phase] * B``, flat-field, or ``m[phase] + B``, fitted by alternating with the
segmentation so that the microstructure does not leak into ``B``), Otsu's threshold (two
phases; Otsu 1979), multi-Otsu (more; Liao et al. 2001) or Kittler & Illingworth's (1986)
minimum-error thresholds, then a relabelling: under a Potts prior by iterated conditional modes
(Besag 1986), and by default then under a Markov random field whose local conditional
probabilities are learned from the labelling itself (a nonparametric MRF in the spirit of
Paget & Longstaff 1998). :func:`segment` takes an array and returns the labels with a frozen
record of what was done (:class:`SegmentResult`), which the command writes into the output's
``meta``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mdesign.config import SEGMENT_DEFAULTS, SegmentConfig, config_from_dict
from mdesign.errors import InputError

__all__ = [
    "SegmentResult",
    "find_bars",
    "min_error_thresholds",
    "neighbourhood_statistics",
    "noise_sigma",
    "segment",
    "synthetic_micrograph",
]


@dataclass(frozen=True)
class SegmentResult:
    """Labels of a segmented image and how they were made.

    Attributes
    ----------
    labels : ndarray of uint8, ``H' x W'``
        Phase labels ``0..K-1`` of the cropped image, in order of increasing gray level.
    thresholds : tuple of float
        The ``K - 1`` levels cut at, on the processed image (the cropped input over its largest
        level with ``background_mode: divide``, else over its range from 0 to 1; denoised,
        background-corrected).
    crop : tuple of int
        ``(y0, y1, x0, x1)``: the region of the input the labels cover.
    config : SegmentConfig
        The settings used.
    processed : ndarray of float, ``H' x W'``
        The image that was thresholded.
    background : ndarray of float, ``H' x W'``, or None
        The fitted background ``B`` (mean 1 for ``divide``, 0 for ``subtract``).
    levels : tuple of float
        Mean processed gray level of each phase.
    steps : tuple of str
        What was done, in words, in order.
    """

    labels: np.ndarray
    thresholds: tuple[float, ...]
    crop: tuple[int, int, int, int]
    config: SegmentConfig
    processed: np.ndarray = field(repr=False)
    background: np.ndarray | None = field(default=None, repr=False)
    levels: tuple[float, ...] = ()
    steps: tuple[str, ...] = ()

    @property
    def fractions(self) -> list[float]:
        """Area fraction of each phase."""
        k = self.config.phases
        return (np.bincount(self.labels.ravel(), minlength=k) / self.labels.size).tolist()

    def meta(self) -> dict[str, Any]:
        """The JSON record written beside the labels (the ``segment`` key of ``meta``)."""
        return {
            "config": self.config.model_dump(mode="json"),
            "crop": list(self.crop),
            "thresholds": list(self.thresholds),
            "levels": list(self.levels),
            "fractions": self.fractions,
            "steps": list(self.steps),
        }

    def describe(self) -> str:
        """One sentence: the steps and the thresholds."""
        cut = ", ".join(f"{t:.4g}" for t in self.thresholds)
        return (
            "; ".join(self.steps)
            + f" (thresholds {cut}; fractions "
            + ", ".join(f"{f:.3f}" for f in self.fractions)
            + ")"
        )


def _check_image(image: np.ndarray, *, source: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3]
        if (rgb == rgb[..., :1]).all():
            arr = rgb[..., 0]
        else:
            raise InputError(
                f"{source}: a colour image ({arr.shape[-1]} channels that differ); segment takes "
                "a grayscale micrograph: save it as grayscale, or one channel of it"
            )
    if arr.ndim != 2:
        raise InputError(f"{source}: expected a grayscale image H x W, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{source}: expected numbers, got an array of dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{source}: contains NaN or infinite values")
    return arr


def _crop(arr: np.ndarray, crop, *, source: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    h, w = arr.shape
    if crop is None:
        return arr, (0, h, 0, w)
    y0, y1, _ = slice(crop[0], crop[1]).indices(h)
    x0, x1, _ = slice(crop[2], crop[3]).indices(w)
    if y1 - y0 < 8 or x1 - x0 < 8:
        raise InputError(
            f"{source}: crop {list(crop)} leaves {max(y1 - y0, 0)} x {max(x1 - x0, 0)} pixels of "
            f"a {h} x {w} image; at least 8 x 8 are needed",
            param="crop",
        )
    return arr[y0:y1, x0:x1], (y0, y1, x0, x1)


def find_bars(image: np.ndarray, *, min_length: float = SEGMENT_DEFAULTS.bar_min_length):
    """Rectangles of identical pixel values: scale bars, data bars, text boxes.

    A micrograph has noise, so no stretch of it is exactly flat; an annotation drawn on it is.
    Finds the connected regions (8-connectivity) of pixels equal to all their neighbours whose
    bounding box is at least ``min_length`` of the width long and which fill at least 60% of
    it, an elongated box (twice as wide as high, or the reverse) or one spanning the image.

    Parameters
    ----------
    image : ndarray, ``H x W``
    min_length : float
        Shortest bar, as a fraction of the image width.

    Returns
    -------
    list of tuple
        ``(y0, y1, x0, x1)`` of each bar found, in pixels (end exclusive).
    """
    from scipy import ndimage

    a = np.asarray(image)
    h, w = a.shape
    flat = np.ones((h, w), dtype=bool)
    # a pixel equal to its 8 neighbours (edges compare with the pixels that exist)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == dx == 0:
                continue
            ys = slice(max(dy, 0), h + min(dy, 0))
            yd = slice(max(-dy, 0), h + min(-dy, 0))
            xs = slice(max(dx, 0), w + min(dx, 0))
            xd = slice(max(-dx, 0), w + min(-dx, 0))
            flat[yd, xd] &= a[yd, xd] == a[ys, xs]
    lab, _ = ndimage.label(ndimage.binary_dilation(flat), structure=np.ones((3, 3), bool))
    bars = []
    for i, sl in enumerate(ndimage.find_objects(lab)):
        if sl is None:
            continue
        bh, bw = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        if max(bw, bh) < min_length * w:
            continue
        fill = float((lab[sl] == i + 1).mean())
        elongated = bw >= 2 * bh or bh >= 2 * bw or bw >= 0.9 * w
        if fill >= 0.6 and elongated:
            bars.append((sl[0].start, sl[0].stop, sl[1].start, sl[1].stop))
    return bars


def _denoise(x: np.ndarray, cfg: SegmentConfig) -> tuple[np.ndarray, str | None]:
    if cfg.denoise == "none":
        return x, None
    if cfg.denoise == "median":
        from skimage.filters import median
        from skimage.morphology import disk

        return median(
            x, disk(cfg.median_radius)
        ), f"median filter, disk of radius {cfg.median_radius}"
    if cfg.denoise == "bilateral":
        from skimage.restoration import denoise_bilateral

        out = denoise_bilateral(
            x, sigma_color=cfg.bilateral_sigma, sigma_spatial=cfg.bilateral_spatial
        )
        return out, (
            f"bilateral filter (range {cfg.bilateral_sigma:g}, "
            f"spatial {cfg.bilateral_spatial:g} px)"
        )
    from skimage.restoration import denoise_nl_means

    sigma = noise_sigma(x)
    out = denoise_nl_means(
        x,
        h=cfg.nl_means_h * sigma,
        sigma=sigma,
        patch_size=cfg.nl_means_patch,
        patch_distance=cfg.nl_means_distance,
        fast_mode=True,
    )
    return out, f"non-local means (noise sigma {sigma:.3g} estimated, h {cfg.nl_means_h:g} sigma)"


def noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of white noise in an image: Donoho's estimator, ``median(|d|) /
    0.6745`` over the finest diagonal Haar wavelet coefficients
    ``d = (x[i, j] - x[i+1, j] - x[i, j+1] + x[i+1, j+1]) / 2`` of non-overlapping 2 x 2 blocks
    (Donoho & Johnstone 1994): smooth structure and the few edges leave the median alone."""
    x = np.asarray(image, dtype=np.float64)
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    b = x[:h, :w]
    d = (b[0::2, 0::2] - b[1::2, 0::2] - b[0::2, 1::2] + b[1::2, 1::2]) / 2
    return float(np.median(np.abs(d)) / 0.6745)


def _sweep_state(
    x: np.ndarray, labels: np.ndarray, background: np.ndarray | None, cfg: SegmentConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What both relabellings start from: the labels as indices (a copy), the noise's scale over
    the image (the flat field where it divided, else 1) and the checkerboard of the two halves."""
    h, w = x.shape
    scale = (
        background
        if background is not None and cfg.background_mode == "divide"
        else np.ones_like(x)
    )
    checker = (np.add.outer(np.arange(h), np.arange(w)) % 2).astype(bool)
    return labels.astype(np.intp), scale, checker


def _potts(
    x: np.ndarray, labels: np.ndarray, background: np.ndarray | None, cfg: SegmentConfig
) -> tuple[np.ndarray, float]:
    """Iterated conditional modes on ``-log p(x | phase) - beta * sum agreeing neighbours``.

    The likelihood is Gaussian about each phase's mean level, with the noise of the raw image
    homogeneous: on the flat-field-corrected image (``x = raw / B``) its sigma is ``s / B``.
    The levels and ``s`` are refitted from the current labels every sweep. Returns the labels
    and ``s`` (on the processed scale at ``B = 1``).
    """
    k = cfg.phases
    lab, scale, checker = _sweep_state(x, labels, background, cfg)
    h, w = x.shape
    s = 0.0
    for _ in range(cfg.potts_iterations):
        mu, var, s = _noise_model(x, lab, scale, k)
        if s <= 0:
            break
        for half in (False, True):
            padded = np.pad(lab, 1, mode="edge")
            energy = (x[None] - mu[:, None, None]) ** 2 / var[None]
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if dy == dx == 0:
                        continue
                    weight = cfg.potts_beta * (cfg.potts_diagonal if dy and dx else 1.0)
                    nb = padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
                    energy -= weight * (nb[None] == np.arange(k)[:, None, None])
            new = energy.argmin(0)
            sel = checker == half
            lab[sel] = new[sel]
    return lab.astype(np.uint8), s


# the 8 neighbours, in the order of their digits in a configuration's code
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _configurations(labels: np.ndarray, phases: int) -> np.ndarray:
    """The code ``sum_i labels[p + d_i] K^(7 - i)`` of each pixel's 8 neighbours' phases (the
    edge replicated), an integer in ``[0, K^8)``."""
    h, w = labels.shape
    padded = np.pad(labels.astype(np.intp), 1, mode="edge")
    code = np.zeros((h, w), dtype=np.intp)
    for dy, dx in _NEIGHBOURS:
        code = code * phases + padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    return code


def neighbourhood_statistics(
    labels: np.ndarray, *, phases: int, alpha: float = SEGMENT_DEFAULTS.learned_alpha
) -> tuple[np.ndarray, np.ndarray]:
    """Local conditional probabilities of a labelling's phases given their 8 neighbours.

    ``P[c, k] = (n(c, k) + alpha) / (n(c) + K alpha)``, with ``n(c, k)`` the pixels of phase
    ``k`` whose neighbours are in configuration ``c`` (the code
    ``sum_i labels[y + dy_i, x + dx_i] K^(7 - i)`` over the 8 offsets, row by row from the
    upper left; the image's edge replicated): the nonparametric estimate of the Markov random
    field's local characteristics (Paget & Longstaff 1998), with ``alpha`` pseudo-counts (a
    configuration never seen gives every phase ``1 / K``).

    Parameters
    ----------
    labels : ndarray of int, ``H x W``
        Phases ``0..K-1``.
    phases : int
        ``K``.
    alpha : float
        Pseudo-count added to every (configuration, phase), > 0.

    Returns
    -------
    codes : ndarray of int, ``C``
        The configurations that occur, increasing.
    probabilities : ndarray of float, ``C x K``
        ``P[c, k]`` for each of them; rows sum to 1.
    """
    lab = np.asarray(labels).astype(np.intp)
    codes, inverse = np.unique(_configurations(lab, phases), return_inverse=True)
    counts = np.zeros((codes.size, phases))
    np.add.at(counts, (inverse.ravel(), lab.ravel()), 1.0)
    return codes, (counts + alpha) / (counts.sum(1, keepdims=True) + phases * alpha)


def _noise_model(
    x: np.ndarray, lab: np.ndarray, scale: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """The phases' levels, ``2 sigma^2`` per pixel and the raw noise ``s`` from the labels."""
    mu = np.array([x[lab == j].mean() if (lab == j).any() else np.inf for j in range(k)])
    resid = (x - mu[lab]) * scale
    s = float(np.sqrt(np.mean(resid[np.isfinite(resid)] ** 2)))
    return mu, 2 * (s / scale) ** 2, s


def _learned(
    x: np.ndarray, labels: np.ndarray, background: np.ndarray | None, cfg: SegmentConfig
) -> np.ndarray:
    """Relabel by the posterior under a Markov random field learned from the labelling.

    Each sweep re-estimates the local conditional probabilities ``P(phase | 8 neighbours)``
    (:func:`neighbourhood_statistics`) and the Gaussian noise model from the current labels,
    then gives each pixel the phase maximising ``log p(x | phase) + log P(phase | neighbours)``
    (the two checkerboard halves in turn), in place of the Potts prior's fixed ``beta``.
    """
    k = cfg.phases
    lab, scale, checker = _sweep_state(x, labels, background, cfg)
    for _ in range(cfg.learned_iterations):
        mu, var, s = _noise_model(x, lab, scale, k)
        if s <= 0:
            break
        codes, p = neighbourhood_statistics(lab, phases=k, alpha=cfg.learned_alpha)
        # a configuration not seen when counting (made by this sweep) gives no preference
        log_p = np.log(np.vstack([p, np.full((1, k), 1.0 / k)]))
        likelihood = (x[None] - mu[:, None, None]) ** 2 / var[None]
        for half in (False, True):
            code = _configurations(lab, k)
            row = np.minimum(np.searchsorted(codes, code), codes.size - 1)
            row = np.where(codes[row] == code, row, codes.size)
            prior = np.moveaxis(log_p[row], -1, 0)
            new = (likelihood - prior).argmin(0)
            sel = checker == half
            lab[sel] = new[sel]
    return lab.astype(np.uint8)


def min_error_thresholds(x: np.ndarray, phases: int, *, bins: int = 256) -> np.ndarray:
    """Kittler & Illingworth's (1986) minimum-error thresholds, for any number of phases.

    Models the histogram as a mixture of ``K`` Gaussians, one per class of gray levels between
    consecutive thresholds, and minimises
    ``J = sum_k P_k log sigma_k - P_k log P_k`` (half the criterion, less a constant) over the
    thresholds, exactly, by dynamic programming over the histogram's bins. Unlike Otsu's, the
    criterion allows classes of unequal spread and size.

    Parameters
    ----------
    x : ndarray of float
        Gray levels.
    phases : int
        ``K``, the classes.
    bins : int
        Histogram bins over ``[min x, max x]``.

    Returns
    -------
    ndarray of float, ``K - 1``
        Increasing thresholds (a pixel ``> t`` is above it, as ``numpy.digitize``).
    """
    v = np.asarray(x, dtype=np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    p = hist / hist.sum()
    c0 = np.concatenate([[0.0], np.cumsum(p)])
    c1 = np.concatenate([[0.0], np.cumsum(p * centres)])
    c2 = np.concatenate([[0.0], np.cumsum(p * centres**2)])
    # cost[a, b]: the class of bins a..b-1 (an empty one costs infinity; one of a single
    # level has the spread of a bin)
    a, b = np.triu_indices(bins + 1, 1)
    w = c0[b] - c0[a]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (c1[b] - c1[a]) / w
        var = (c2[b] - c2[a]) / w - mean**2
        floor = ((hi - lo) / bins) ** 2 / 12  # the spread of one bin
        term = w * 0.5 * np.log(np.maximum(var, floor)) - w * np.log(w)
    term = np.where(w > 0, term, np.inf)
    cost = np.full((bins + 1, bins + 1), np.inf)
    cost[a, b] = term
    best = cost[0].copy()  # best[b]: one class over bins 0..b-1
    back = []
    for _ in range(phases - 1):
        total = best[:, None] + cost  # last class a..b-1 after classes over 0..a-1
        arg = total.argmin(0)
        back.append(arg)
        best = total[arg, np.arange(bins + 1)]
    cuts, end = [], bins
    for arg in reversed(back):
        end = int(arg[end])
        cuts.append(end)
    cuts = sorted(cuts)
    if len(set(cuts)) < phases - 1 or cuts[0] <= 0 or cuts[-1] >= bins:
        raise InputError(
            f"cannot find {phases - 1} minimum-error thresholds in the histogram", param="phases"
        )
    return np.array([edges[c] for c in cuts])


def _thresholds(x: np.ndarray, phases: int, method: str = "otsu") -> np.ndarray:
    from skimage.filters import threshold_multiotsu, threshold_otsu

    if method == "min_error":
        return min_error_thresholds(x, phases)
    if phases == 2:
        return np.array([threshold_otsu(x)])
    try:
        return np.asarray(threshold_multiotsu(x, classes=phases), dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"cannot segment into {phases} phases ({exc})", param="phases") from None


class _Smoother:
    """Weighted least-squares fit of a smooth field: a polynomial, or a Gaussian-weighted local
    constant (``sum_y G(x - y) w(y) v(y) / sum_y G(x - y) w(y)``)."""

    def __init__(self, shape: tuple[int, int], cfg: SegmentConfig) -> None:
        self.cfg = cfg
        self.shape = shape
        if cfg.background == "polynomial":
            h, w = shape
            yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
            d = cfg.background_order
            self.basis = np.stack(
                [(xx**i * yy**j).ravel() for i in range(d + 1) for j in range(d + 1 - i)], 1
            )
        else:
            self.sigma = cfg.background_sigma * min(shape)

    def fit(self, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The smooth ``B`` minimising ``sum w (v - B)^2`` (globally, or Gaussian-locally)."""
        if self.cfg.background == "polynomial":
            sw = np.sqrt(weights.ravel())
            coef, *_ = np.linalg.lstsq(self.basis * sw[:, None], values.ravel() * sw, rcond=None)
            return (self.basis @ coef).reshape(self.shape)
        from scipy.ndimage import gaussian_filter

        num = gaussian_filter(weights * values, self.sigma, mode="reflect")
        den = gaussian_filter(weights, self.sigma, mode="reflect")
        return num / np.maximum(den, 1e-12)


def _correct(x: np.ndarray, cfg: SegmentConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background-corrected image, the background, and the labels of the last round.

    ``divide``: ``x ~ m[label] B``, so with the phase levels ``m`` known, ``B`` is the weighted
    fit of ``x / m`` with weights ``m^2`` (least squares of ``x - m B``); ``subtract``:
    ``x ~ m[label] + B``, the fit of ``x - m``. The first round fits ``x`` itself.
    """
    divide = cfg.background_mode == "divide"
    smooth = _Smoother(x.shape, cfg)
    ones = np.ones_like(x)
    b = smooth.fit(x, ones)
    labels = None
    for _ in range(cfg.background_iterations):
        if divide:
            b = b / b.mean()
            if (b <= 0).any():
                raise InputError(
                    "the fitted background is not positive everywhere: the image is not a "
                    "multiplicative illumination of its phases; use background_mode: subtract",
                    param="background_mode",
                )
            y = x / b
        else:
            b = b - b.mean()
            y = x - b
        labels = np.digitize(y, _thresholds(y, cfg.phases, cfg.threshold))
        if cfg.regularize != "none":
            # thresholded labels flip more pixels of the majority phase where the noise is
            # high (the dark side), which pulls B down there; the Potts labels flip few
            labels = _potts(y, labels, b if divide else None, cfg)[0]
        m = np.array(
            [y[labels == k].mean() if (labels == k).any() else np.nan for k in range(cfg.phases)]
        )
        if np.isnan(m).any():
            break
        mk = m[labels]
        if divide:
            w = mk**2
            b = smooth.fit(np.where(w > 0, x / np.where(mk == 0, 1, mk), 0), w)
        else:
            b = smooth.fit(x - mk, ones)
    if divide:
        b = b / b.mean()
        return x / b, b, labels
    b = b - b.mean()
    return x - b, b, labels


def segment(
    image: np.ndarray,
    config: SegmentConfig | dict[str, Any] | None = None,
    *,
    phases: int | None = None,
    crop: tuple[int | None, int | None, int | None, int | None] | None = None,
    denoise: str | None = None,
    background: str | None = None,
    background_mode: str | None = None,
    regularize: str | None = None,
    threshold: str | None = None,
    source: str = "image",
    **settings: Any,
) -> SegmentResult:
    """Segment a grayscale micrograph into phases.

    Parameters
    ----------
    image : ndarray, ``H x W``
        Gray levels (any numeric dtype; an RGB array whose channels are equal is accepted as
        gray; a colour image is refused).
    config : SegmentConfig or dict, optional
        Settings (:class:`~mdesign.config.SegmentConfig`); its defaults where omitted.
    phases : int, optional
        Number of phases (2: Otsu's threshold; more: multi-Otsu).
    crop : tuple, optional
        ``(y0, y1, x0, x1)``, Python slices (None for an edge): the region kept, e.g.
        ``(0, -40, None, None)`` drops a 40-row data bar at the bottom.
    denoise : {"none", "median", "bilateral", "nl_means"}, optional
    background : {"none", "polynomial", "gaussian"}, optional
    background_mode : {"divide", "subtract"}, optional
    regularize : {"none", "potts", "learned"}, optional
    threshold : {"otsu", "min_error"}, optional
    source : str
        Names the image in error messages.
    **settings
        Any other field of :class:`~mdesign.config.SegmentConfig` (``median_radius``,
        ``background_order``, ``potts_beta``, ...). Each keyword given overrides ``config``.

    Returns
    -------
    SegmentResult
        Labels ``H' x W'`` (the crop) ordered by gray level, the thresholds and the steps.

    Raises
    ------
    InputError
        A colour, non-2D, non-finite or constant image, a crop that leaves too little, a scale
        bar or data bar left in the image (``check_bars``), or too few gray levels for the
        phases.
    """
    if isinstance(config, SegmentConfig):
        base = config.model_dump()
    else:
        base = dict(config or {})
    named = {
        "phases": phases,
        "crop": crop,
        "denoise": denoise,
        "background": background,
        "background_mode": background_mode,
        "regularize": regularize,
        "threshold": threshold,
    }
    given = {k: v for k, v in named.items() if v is not None}
    cfg = config_from_dict(SegmentConfig, {**base, **given, **settings}, source="segment settings")
    arr = _check_image(image, source=source)
    arr, crop = _crop(arr, cfg.crop, source=source)
    steps = []
    if cfg.crop is not None:
        steps.append(f"cropped to rows {crop[0]}:{crop[1]}, columns {crop[2]}:{crop[3]}")
    if cfg.check_bars:
        bars = find_bars(arr, min_length=cfg.bar_min_length)
        if bars:
            y0, y1, x0, x1 = bars[0]
            raise InputError(
                f"{source}: rows {crop[0] + y0}:{crop[0] + y1}, columns {crop[2] + x0}:"
                f"{crop[2] + x1} are a flat bar (a scale bar or data bar?), which would be "
                "segmented as material; crop it away (crop / --crop Y0:Y1,X0:X1), or set "
                "check_bars: false for a noise-free image"
            )
    x = arr.astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        raise InputError(f"{source}: the image is constant ({lo:g}); nothing to segment")
    # to [0, 1]: divided by the largest level when the flat field multiplies the signal (a
    # shift would break image = m[phase] B), else shifted and scaled by the range
    divide = cfg.background != "none" and cfg.background_mode == "divide"
    if divide and lo < 0:
        raise InputError(
            f"{source}: negative gray levels cannot be a multiplied illumination; use "
            "background_mode: subtract",
            param="background_mode",
        )
    x = x / hi if divide else (x - lo) / (hi - lo)
    x, how = _denoise(x, cfg)
    if how:
        steps.append(how)
    background = None
    if cfg.background != "none":
        x, background, _ = _correct(x, cfg)
        what = (
            f"polynomial of degree {cfg.background_order}"
            if cfg.background == "polynomial"
            else f"Gaussian of width {cfg.background_sigma:g} x the smaller side"
        )
        steps.append(
            f"background ({what}, {cfg.background_mode}d, "
            f"{cfg.background_iterations} rounds) corrected"
        )
    cut = _thresholds(x, cfg.phases, cfg.threshold)
    labels = np.digitize(x, cut).astype(np.uint8)
    if cfg.threshold == "min_error":
        steps.append(f"minimum-error thresholds (Kittler-Illingworth) for {cfg.phases} phases")
    else:
        steps.append(
            "Otsu's threshold"
            if cfg.phases == 2
            else f"multi-Otsu thresholds for {cfg.phases} phases"
        )
    if cfg.regularize != "none":
        labels, s = _potts(x, labels, background, cfg)
        steps.append(
            f"Potts relabelling (beta {cfg.potts_beta:g}, diagonal x{cfg.potts_diagonal:g}, "
            f"{cfg.potts_iterations} sweeps; noise sigma {s:.3g} of the gray range)"
        )
    if cfg.regularize == "learned":
        labels = _learned(x, labels, background, cfg)
        steps.append(
            "relabelling under a Markov random field learned from the labels (8-neighbour "
            f"configurations, pseudo-count {cfg.learned_alpha:g}, {cfg.learned_iterations} "
            "sweeps)"
        )
    levels = tuple(
        float(x[labels == k].mean()) if (labels == k).any() else math.nan for k in range(cfg.phases)
    )
    return SegmentResult(
        labels=labels,
        thresholds=tuple(float(t) for t in cut),
        crop=crop,
        config=cfg,
        processed=x,
        background=background,
        levels=levels,
        steps=tuple(steps),
    )


def synthetic_micrograph(
    labels: np.ndarray,
    *,
    gradient: float = 0.35,
    snr: float = 5.0,
    seed: int | np.random.Generator | np.random.SeedSequence,
    levels: tuple[float, ...] | None = None,
) -> np.ndarray:
    """A grayscale "micrograph" of known labels: phase levels, an illumination gradient, noise.

    ``gray = levels[label] * (1 - gradient * x / (W - 1)) + noise``, as 8-bit levels: the
    illumination falls by ``gradient`` (0.35: 35%) from the left edge to the right one, and the
    noise is white and Gaussian with ``sigma = (levels[1] - levels[0]) / snr``: **SNR** is the
    contrast between adjacent phases (at full illumination) over the noise's standard deviation.

    Parameters
    ----------
    labels : ndarray of int, ``H x W``
        Phases ``0..K-1``.
    gradient : float
        Fall of the illumination across the image, in ``[0, 1)``.
    snr : float
        Adjacent-phase contrast over the noise sigma.
    seed : int, numpy.random.Generator or numpy.random.SeedSequence
        Seeds the noise.
    levels : tuple of float, optional
        Gray level of each phase in ``[0, 1]``; ``K`` evenly spaced levels from 0.25 to 0.75 by
        default.

    Returns
    -------
    ndarray of uint8, ``H x W``
    """
    from mdesign.seeds import as_seed_sequence

    lab = np.asarray(labels)
    k = int(lab.max()) + 1
    lv = np.linspace(0.25, 0.75, max(k, 2)) if levels is None else np.asarray(levels, float)
    if len(lv) < k:
        raise InputError(f"{len(lv)} levels for {k} phases", param="levels")
    if not 0 <= gradient < 1:
        raise InputError(f"must be in [0, 1), got {gradient}", param="gradient")
    if snr <= 0:
        raise InputError(f"must be positive, got {snr}", param="snr")
    w = lab.shape[1]
    illum = 1 - gradient * np.linspace(0, 1, w)[None, :]
    rng = np.random.default_rng(as_seed_sequence(seed))  # an int s draws as it always did
    sigma = abs(lv[1] - lv[0]) / snr
    gray = lv[lab] * illum + rng.normal(0, sigma, lab.shape)
    return np.clip(np.round(gray * 255), 0, 255).astype(np.uint8)
