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
