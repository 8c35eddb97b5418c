"""Figures: every plotting function returns a :class:`matplotlib.figure.Figure`.

Figures are built with :class:`~matplotlib.figure.Figure` directly (no pyplot), so plotting has
no global state and needs no display; the CLI saves them as PNG through :func:`save_figure`
(Agg, atomically). A function that draws one panel takes ``ax``; one that draws a grid takes
``fig`` (a ``Figure`` or a ``SubFigure`` of a larger one) and otherwise makes its own. Saving is
the caller's choice: ``path=`` also writes the PNG, or call :func:`save_figure`. In Jupyter, a
returned Figure displays as a cell's value after ``%matplotlib inline``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure, SubFigure

from mdesign.io import PALETTE, atomic_path

__all__ = [
    "finish",
    "new_figure",
    "phase_cmap",
    "plot_band",
    "plot_characterization",
    "plot_segmentation",
    "root_figure",
    "save_figure",
    "show_labels",
]


def phase_cmap(k: int) -> ListedColormap:
    """The PNG output's colours for ``k`` phases."""
    return ListedColormap(PALETTE[:k] / 255.0)


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (PNG) through a temporary file."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    return Path(path)


def new_figure(fig: Figure | SubFigure | None, **kwargs) -> Figure | SubFigure:
    """``fig`` to draw into, or a new constrained-layout :class:`Figure` made with ``kwargs``."""
    if fig is None:
        return Figure(layout="constrained", **kwargs)
    if not isinstance(fig, (Figure, SubFigure)):
        raise TypeError(f"fig: expected a matplotlib Figure or SubFigure, got {type(fig)}")
    return fig


def root_figure(artist: Figure | SubFigure | Axes) -> Figure:
    """The top-level :class:`Figure` of a figure, subfigure or Axes."""
    try:
        return artist.get_figure(root=True)
    except TypeError:  # matplotlib < 3.10: a subfigure's or an Axes' .figure is the root
        fig = artist.figure if isinstance(artist, Axes) else artist
        return fig.figure if isinstance(fig, SubFigure) else fig


def finish(fig: Figure | SubFigure, path: str | os.PathLike | None, *, dpi: int = 120) -> Figure:
    """The root Figure of ``fig``, written to ``path`` (PNG) first when one is given."""
    root = root_figure(fig)
    if path is not None:
        save_figure(root, path, dpi=dpi)
    return root


def show_labels(
    ax: Axes, image: np.ndarray, *, k: int | None = None, title: str | None = None
) -> Figure:
    """Draw a label image in the phase colours, without ticks; returns the Axes' Figure."""
    k = k or max(2, int(image.max()) + 1)
    ax.imshow(image, cmap=phase_cmap(k), vmin=-0.5, vmax=k - 0.5, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return root_figure(ax)


def plot_band(
    ax: Axes,
    curves: np.ndarray,
    *,
    label: str,
    color: str | None = None,
    quantiles: Sequence[float] = (0.05, 0.95),
) -> Figure:
    """Mean of ``curves`` (``N x R``) against ``r = 0..R-1`` with a quantile band, in ``ax``."""
    r = np.arange(curves.shape[1])
    (line,) = ax.plot(r, curves.mean(0), label=label, color=color, lw=1.6)
    if curves.shape[0] > 1:
        lo, hi = np.quantile(curves, quantiles, axis=0)
        ax.fill_between(r, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    return root_figure(ax)


def plot_characterization(
    char,
    images: np.ndarray,
    path: str | os.PathLike | None = None,
    *,
    fig: Figure | SubFigure | None = None,
    title: str | None = None,
) -> Figure:
    """Example images, S2 and lineal path with 5-95% bands, and the chord-length distribution.

    Parameters
    ----------
    char : mdesign.descriptors.Characterization
        The descriptors.
    images : ndarray, ``N x H x W`` or ``N x H x W x D``
        The labels they came from (up to three images are shown; for volumes, the three
        orthogonal middle slices of the first).
    path : path-like, optional
        Also write the figure there (PNG, atomically).
    fig : Figure or SubFigure, optional
        Draw into it (a grid of 6 panels); a new 12 x 3.4 inch Figure by default.
    title : str, optional
        Figure title.

    Returns
    -------
    Figure
        The figure drawn (the root figure of ``fig``).
    """
    k = char.volume_fractions.shape[1]
    fig = new_figure(fig, figsize=(12, 3.4))
    grid = fig.add_gridspec(1, 6)
    if images.ndim == 4:
        vol = images[0]
        shown = [
            (vol[vol.shape[0] // 2], f"volume 0, H = {vol.shape[0] // 2}"),
            (vol[:, vol.shape[1] // 2], f"W = {vol.shape[1] // 2}"),
            (vol[:, :, vol.shape[2] // 2], f"D = {vol.shape[2] // 2}"),
        ]
        what = "volumes"
    else:
        shown = [(images[i], f"image {i}") for i in range(min(3, images.shape[0]))]
        what = "images"
    n_show = len(shown)
    sub = grid[0, :2].subgridspec(1, n_show) if n_show > 1 else grid[0, :2]
    for i, (img, label) in enumerate(shown):
        ax = fig.add_subplot(sub[0, i] if n_show > 1 else sub)
        show_labels(ax, img, k=k, title=label)
    band = f" (mean, 5-95% of {char.shape[0]} {what})" if char.shape[0] > 1 else ""
    p = char.phase
    ax = fig.add_subplot(grid[0, 2])
    plot_band(ax, char.s2, label=f"$S_2$ of phase {p}")
    phi2 = (char.volume_fractions[:, p] ** 2).mean()
    ax.axhline(phi2, color="0.5", ls="--", lw=1, label=r"$\phi^2$")
    ax.set(xlabel="r (pixels)", ylabel="probability", title="two-point correlation")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[0, 3])
    plot_band(ax, char.lineal_path, label=f"$L$ of phase {p}")
    ax.set(xlabel="r (pixels)", title="lineal path")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[0, 4])
    prob = char.chords.probability
    last = int(np.flatnonzero(prob)[-1]) + 1 if prob.any() else 1
    ax.bar(char.chords.lengths[:last], prob[:last], width=1.0, color="C2")
    ax.set(xlabel="chord length (pixels)", title=f"chords, mean {char.chords.mean:.1f} px")
    ax = fig.add_subplot(grid[0, 5])
    fr = char.volume_fractions
    ax.boxplot([fr[:, j] for j in range(k)], tick_labels=[str(j) for j in range(k)])
    ax.set(xlabel="phase", ylabel="fraction", title="volume fractions")
    fig.suptitle((title or "descriptors") + band, fontsize=10)
    return finish(fig, path)


def plot_segmentation(
    image: np.ndarray,
    result,
    path: str | os.PathLike | None = None,
    *,
    fig: Figure | SubFigure | None = None,
    title: str | None = None,
) -> Figure:
    """A figure a person can check the segmentation on: the input with the crop marked, the
    processed image, the labels' boundaries drawn over the input, and the histogram of the
    processed image with the thresholds.

    Parameters
    ----------
    image : ndarray, ``H x W``
        The input of :func:`segment`.
    result : mdesign.segment.SegmentResult
    path : path-like, optional
        Also write the figure there (a ``.png``, atomically).
    fig : Figure or SubFigure, optional
        Draw into it (1 x 4 panels); a new 13 x 4.2 inch Figure by default.
    title : str, optional
        Figure title.

    Returns
    -------
    Figure
    """
    from matplotlib.patches import Rectangle
    from skimage.segmentation import find_boundaries

    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 3:  # gray stored as RGB (segment refuses colour)
        arr = arr[..., 0]
    y0, y1, x0, x1 = result.crop
    fig = new_figure(fig, figsize=(13, 4.2))
    axes = fig.subplots(1, 4)
    ax = axes[0]
    ax.imshow(arr, cmap="gray", interpolation="nearest")
    if result.crop != (0, arr.shape[0], 0, arr.shape[1]):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="C1", lw=1.5))
    ax.set_title("input" + (" (crop in orange)" if result.config.crop is not None else ""))
    axes[1].imshow(result.processed, cmap="gray", interpolation="nearest")
    done = [
        w
        for w, on in (
            ("denoised", result.config.denoise != "none"),
            ("background-corrected", result.config.background != "none"),
        )
        if on
    ]
    axes[1].set_title(", ".join(done) or "scaled to [0, 1]", fontsize=9)
    crop = arr[y0:y1, x0:x1]
    g = (crop - crop.min()) / max(float(np.ptp(crop)), 1e-12)
    rgb = np.repeat(g[..., None], 3, axis=2)
    edges = find_boundaries(result.labels, mode="inner")
    rgb[edges] = (1.0, 0.25, 0.2)
    tint = 0.25
    for k in range(result.config.phases):
        sel = result.labels == k
        hue = np.array([(0.1, 0.4, 1.0), (1.0, 0.8, 0.1), (0.2, 0.9, 0.3)][k % 3])
        rgb[sel] = (1 - tint) * rgb[sel] + tint * hue
    axes[2].imshow(rgb, interpolation="nearest")
    axes[2].set_title("phases over the input (boundaries red)", fontsize=9)
    ax = axes[3]
    ax.hist(result.processed.ravel(), bins=128, color="0.4")
    for t in result.thresholds:
        ax.axvline(t, color="C3")
    ax.set(xlabel="processed gray level", ylabel="pixels", yscale="log")
    ax.set_title("fractions " + ", ".join(f"{f:.3f}" for f in result.fractions), fontsize=9)
    for a in axes[:3]:
        a.set_axis_off()
    fig.suptitle(title or "segmentation", fontsize=10)
    return finish(fig, path)
