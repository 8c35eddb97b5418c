"""The reconstruction figure: exemplar | reconstruction | S2 and lineal-path curves.

The two images are drawn at full resolution or more (at least two figure pixels per image
pixel, nearest neighbour, no smoothing), so speckle and one-pixel lines stay visible; their
titles give the cluster count of each phase (:mod:`~mdesign.reconstruction.metrics`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mdesign.plotting import save_figure, show_labels
from mdesign.reconstruction.metrics import ReconstructionErrors

__all__ = ["plot_reconstruction"]

_DPI = 120
_CURVE_INCHES = 3.2


def plot_reconstruction(
    exemplar: np.ndarray,
    reconstruction: np.ndarray,
    errors: ReconstructionErrors,
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """Write a PNG: the exemplar, the reconstruction, and their ``S2`` and lineal-path curves.

    Parameters
    ----------
    exemplar, reconstruction : ndarray, ``H x W``
        Phase labels.
    errors : ReconstructionErrors
        Their curves and errors (:func:`~mdesign.reconstruction.metrics.reconstruction_errors`).
    path : path-like
        PNG to write (atomically).
    title : str, optional
        Figure title.
    """
    k = len(errors.volume_fraction_exemplar)
    # inches per image so that one image pixel is at least two figure pixels
    sides = [max(im.shape) for im in (exemplar, reconstruction)]
    widths = [max(_CURVE_INCHES, 2 * s / _DPI) for s in sides]
    height = max(_CURVE_INCHES, *widths) + 0.6
    fig = Figure(
        figsize=(sum(widths) + 2 * _CURVE_INCHES + 1.2, height), layout="constrained", dpi=_DPI
    )
    axes = fig.subplots(1, 4, width_ratios=[*widths, _CURVE_INCHES, _CURVE_INCHES])
    for ax, image, name, morph in (
        (axes[0], exemplar, "exemplar", errors.morphology_exemplar),
        (axes[1], reconstruction, "reconstruction", errors.morphology_reconstruction),
    ):
        clusters = ", ".join(str(int(c)) for c in morph.clusters)
        show_labels(
            ax,
            image,
            k=k,
            title=f"{name} {image.shape[0]}x{image.shape[1]}\nclusters per phase: {clusters}",
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
    return save_figure(fig, path, dpi=_DPI)
