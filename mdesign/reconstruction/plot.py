"""The reconstruction figure (:func:`plot_reconstruction`): exemplar | reconstruction | S2 and
lineal-path curves.

Each function returns the :class:`~matplotlib.figure.Figure`, draws into ``fig`` when one is
given (a Figure or a SubFigure) and also writes a PNG when given ``path``
(:mod:`mdesign.plotting`).

For a volume: the exemplar(s) | the three orthogonal middle slices, then the ``S2`` and
lineal-path curves of the slices along each axis against the exemplar's.

The two images are drawn at full resolution or more (at least two figure pixels per image
pixel, nearest neighbour, no smoothing), so speckle and one-pixel lines stay visible; their
titles give the cluster count of each phase (:mod:`~mdesign.reconstruction.metrics`; per window
of the smaller image's size when the two sizes differ).
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure, SubFigure

from mdesign.plotting import finish, show_labels
from mdesign.reconstruction.metrics import ReconstructionErrors

__all__ = ["plot_image", "plot_reconstruction"]

_DPI = 120
_CURVE_INCHES = 3.2


def plot_reconstruction(
    exemplars,
    result,
    path: str | os.PathLike | None = None,
    *,
    fig: Figure | SubFigure | None = None,
    title: str | None = None,
) -> Figure:
    """A reconstruction, an image (:func:`plot_image`) or a volume.

    Parameters
    ----------
    exemplars : ndarray ``h x w`` or a sequence of 1 or 3
        The exemplar(s) as given (``exemplars[a]`` for the slices normal to axis ``a``).
    result : ReconstructionResult
        From :func:`~mdesign.reconstruction.reconstruct`.
    path : path-like, optional
        Also write the figure there (PNG, atomically, 120 dpi).
    fig : Figure or SubFigure, optional
        Draw into it; a new Figure sized to the images by default.
    title : str, optional
        Figure title.

    Returns
    -------
    Figure
    """
    if isinstance(exemplars, np.ndarray) and exemplars.ndim == 2:
        exemplars = [exemplars]
    if result.labels.ndim == 2:
        return plot_image(exemplars[0], result.labels, result.axes[0], path, fig=fig, title=title)
    return _plot_volume(exemplars, result, path, fig=fig, title=title)


def plot_image(
    exemplar: np.ndarray,
    reconstruction: np.ndarray,
    errors: ReconstructionErrors,
    path: str | os.PathLike | None = None,
    *,
    fig: Figure | SubFigure | None = None,
    title: str | None = None,
) -> Figure:
    """The exemplar, the reconstruction, and their ``S2`` and lineal-path curves.

    Parameters
    ----------
    exemplar, reconstruction : ndarray, ``H x W``
        Phase labels.
    errors : ReconstructionErrors
        Their curves and errors (:func:`~mdesign.reconstruction.metrics.reconstruction_errors`).
    path : path-like, optional
        Also write the figure there (PNG, atomically, 120 dpi).
    fig : Figure or SubFigure, optional
        Draw into it (1 x 4 panels); by default a new Figure sized so that one image pixel is at
        least two figure pixels.
    title : str, optional
        Figure title.

    Returns
    -------
    Figure
    """
    k = len(errors.volume_fraction_exemplar)
    # inches per image so that one image pixel is at least two figure pixels
    sides = [max(im.shape) for im in (exemplar, reconstruction)]
    widths = [max(_CURVE_INCHES, 2 * s / _DPI) for s in sides]
    height = max(_CURVE_INCHES, *widths) + 0.6
    if fig is None:
        fig = Figure(
            figsize=(sum(widths) + 2 * _CURVE_INCHES + 1.2, height), layout="constrained", dpi=_DPI
        )
    axes = fig.subplots(1, 4, width_ratios=[*widths, _CURVE_INCHES, _CURVE_INCHES])
    per = "per phase"
    if exemplar.shape != reconstruction.shape:
        window = [min(a, b) for a, b in zip(exemplar.shape, reconstruction.shape, strict=True)]
        per = f"per {window[0]}x{window[1]} window"
    for ax, image, name, morph in (
        (axes[0], exemplar, "exemplar", errors.morphology_exemplar),
        (axes[1], reconstruction, "reconstruction", errors.morphology_reconstruction),
    ):
        clusters = ", ".join(f"{c:.4g}" for c in morph.clusters)
        show_labels(
            ax,
            image,
            k=k,
            title=f"{name} {image.shape[0]}x{image.shape[1]}\nclusters {per}: {clusters}",
        )
    r = np.arange(errors.s2_exemplar.shape[1])
    for ax, (ex, rec, name, rmse) in zip(
        axes[2:],
        [
            (errors.s2_exemplar, errors.s2_reconstruction, "$S_2$", errors.s2_rmse),
            (
                errors.lineal_path_exemplar,
                errors.lineal_path_reconstruction,
                "lineal path $L$",
                errors.lineal_path_rmse,
            ),
        ],
        strict=True,
    ):
        for i, j in enumerate(errors.phases):
            colour = f"C{j}"
            ax.plot(r, ex[i], color=colour, lw=1.8, label=f"exemplar, phase {j}")
            ax.plot(r, rec[i], color=colour, lw=1.4, ls="--", label=f"reconstruction, phase {j}")
        ax.set(xlabel="r (pixels)", ylabel="probability", title=f"{name}, RMSE {rmse:.4f}")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return finish(fig, path, dpi=_DPI)


def _plot_volume(
    exemplars,
    result,
    path: str | os.PathLike | None = None,
    *,
    fig: Figure | SubFigure | None = None,
    title: str | None = None,
) -> Figure:
    """A 2D-to-3D reconstruction: exemplar(s), middle slices, curves per axis.

    Parameters
    ----------
    exemplars : sequence of 1 or 3 ndarrays, ``h x w``
        The exemplar(s) as given (``exemplars[a]`` for the slices normal to axis ``a``).
    result : ReconstructionResult
        A volume's, from :func:`~mdesign.reconstruction.reconstruct`.
    path : path-like, optional
        Also write the figure there (PNG, atomically, 120 dpi).
    fig : Figure or SubFigure, optional
        Draw into it (three rows of panels); a new Figure sized to the images by default.
    title : str, optional
        Figure title.

    Returns
    -------
    Figure
    """
    labels = result.labels
    k = len(result.axes[0].volume_fraction_exemplar)
    distinct = list({id(ex): ex for ex in exemplars}.values())
    images = [
        (ex, "exemplar" if len(distinct) == 1 else f"exemplar, axis {i}")
        for i, ex in enumerate(distinct)
    ]
    for a in range(3):
        mid = labels.shape[a] // 2
        images.append((np.take(labels, mid, axis=a), f"slice {mid} normal to axis {a}"))
    n_img = len(images)
    side = max(max(im.shape) for im, _ in images)
    inches = max(2.4, 2 * side / _DPI)
    if fig is None:
        fig = Figure(
            figsize=(
                max(n_img * inches, 3 * _CURVE_INCHES) + 0.6,
                inches + 2 * _CURVE_INCHES + 1.4,
            ),
            layout="constrained",
            dpi=_DPI,
        )
    top, mid_row, bottom = fig.subfigures(
        3, 1, height_ratios=[inches + 0.6, _CURVE_INCHES, _CURVE_INCHES]
    )
    # widths in proportion to the sides, so a larger exemplar is drawn larger than the slices
    ratios = [im.shape[1] for im, _ in images]
    for ax, (image, name) in zip(top.subplots(1, n_img, width_ratios=ratios), images, strict=True):
        show_labels(ax, image, k=k, title=f"{name}\n{image.shape[0]}x{image.shape[1]}")
    for row, key, label in (
        (mid_row, "s2", "$S_2$"),
        (bottom, "lineal_path", "lineal path $L$"),
    ):
        for a, ax in enumerate(row.subplots(1, 3)):
            e = result.axes[a]
            ex = getattr(e, f"{key}_exemplar")
            rec = getattr(e, f"{key}_reconstruction")
            rmse = e.s2_rmse if key == "s2" else e.lineal_path_rmse
            r = np.arange(ex.shape[1])
            for i, j in enumerate(e.phases):
                ax.plot(r, ex[i], color=f"C{j}", lw=1.8, label=f"exemplar, phase {j}")
                ax.plot(r, rec[i], color=f"C{j}", lw=1.4, ls="--", label=f"slices, phase {j}")
            ax.set(
                xlabel="r (pixels)",
                ylabel="probability",
                title=f"{label}, slices normal to axis {a}, RMSE {rmse:.4f}",
            )
            ax.title.set_fontsize(8)
            ax.legend(fontsize=7)
    h, w, d = labels.shape
    fig.suptitle(
        (f"{title}\n" if title else "") + f"volume {h} x {w} x {d}, {result.seconds:.0f} s",
        fontsize=10,
    )
    return finish(fig, path, dpi=_DPI)
