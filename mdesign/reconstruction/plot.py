"""The reconstruction figure: exemplar | reconstruction | S2 and lineal-path curves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mdesign.plotting import save_figure, show_labels
from mdesign.reconstruction.metrics import ReconstructionErrors

__all__ = ["plot_reconstruction"]


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
    fig = Figure(figsize=(13, 3.4), layout="constrained")
    axes = fig.subplots(1, 4)
    show_labels(axes[0], exemplar, k=k, title=f"exemplar {exemplar.shape[0]}x{exemplar.shape[1]}")
    show_labels(
        axes[1],
        reconstruction,
        k=k,
        title=f"reconstruction {reconstruction.shape[0]}x{reconstruction.shape[1]}",
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
    return save_figure(fig, path)
