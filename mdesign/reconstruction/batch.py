"""Reconstruct exemplar files into a folder and tabulate the results (the flow's library half).

:func:`reconstruct_file` does everything for one exemplar file: reconstruction, GRF baseline,
outputs and one table row; :func:`write_table` writes the rows as one CSV. ``flows/`` wraps
them as Prefect tasks; nothing here imports prefect.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from mdesign.config import ReconstructionConfig, config_from_dict
from mdesign.io import READ_SUFFIXES, atomic_path, read_images, write_images

__all__ = ["TABLE_COLUMNS", "exemplar_files", "reconstruct_file", "write_table"]

TABLE_COLUMNS = (
    "exemplar",
    "output",
    "shape",
    "phases",
    "weights",
    "iterations",
    "seconds",
    "s2_rmse",
    "lineal_path_rmse",
    "fraction_error_pixels",
    "converged",
    "grf_s2_rmse",
    "grf_lineal_path_rmse",
    "grf_covariance",
    "grf_correlation_length",
    "grf_seconds",
)


def exemplar_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (``.npy``, ``.npz``, ``.png``, ``.tif``), sorted by name."""
    from mdesign.errors import InputError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in READ_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no exemplar files ({', '.join(READ_SUFFIXES)})")
    return files


def reconstruct_file(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    config: dict[str, Any] | None = None,
    size: tuple[int, int] | None = None,
    baseline: bool = True,
    phases: int = 2,
) -> dict[str, Any]:
    """Reconstruct one exemplar file; write ``STEM.npz``, ``STEM.json`` and ``STEM.png``.

    Parameters
    ----------
    path : path-like
        The exemplar (one 2D image).
    out_dir : path-like
        Where the outputs go (created).
    config : dict, optional
        :class:`~mdesign.config.ReconstructionConfig` values; the defaults elsewhere.
    size : (int, int), optional
        Output size; the exemplar's by default.
    baseline : bool
        Also fit the GRF baseline (:func:`~mdesign.reconstruction.baseline.grf_baseline`) and
        write ``STEM_grf.npz``.
    phases : int
        Phases to segment a grayscale exemplar into.

    Returns
    -------
    dict
        One row of the table (:data:`TABLE_COLUMNS`).
    """
    import time

    from mdesign.reconstruction.baseline import grf_baseline
    from mdesign.reconstruction.metrics import reconstruction_errors
    from mdesign.reconstruction.pipeline import check_exemplar, reconstruct
    from mdesign.reconstruction.plot import plot_reconstruction

    path, out_dir = Path(path), Path(out_dir)
    cfg = config_from_dict(ReconstructionConfig, config or {}, source="config")
    stack = read_images(path, phases=phases)
    k = check_exemplar(stack.images, source=str(path))
    exemplar = stack.images[0]
    res = reconstruct(exemplar, size, cfg)
    out = out_dir / f"{path.stem}.npz"
    meta = {"command": "flows.reconstruct", "exemplar": str(path), "config": cfg.model_dump()}
    write_images(out, res.labels, meta=meta)
    with atomic_path(out_dir / f"{path.stem}.json") as tmp:
        tmp.write_text(json.dumps(res.report(), indent=1) + "\n")
    plot_reconstruction(exemplar, res, out_dir / f"{path.stem}.png", title=path.name)
    row: dict[str, Any] = {
        "exemplar": str(path),
        "output": str(out),
        "shape": "x".join(map(str, res.labels.shape)),
        "phases": k,
        "weights": res.weights,
        "iterations": res.iterations,
        "seconds": round(res.seconds, 3),
        "s2_rmse": res.errors.s2_rmse,
        "lineal_path_rmse": res.errors.lineal_path_rmse,
        "fraction_error_pixels": res.errors.fraction_error_pixels,
        "converged": res.converged,
    }
    if baseline:
        t = time.perf_counter()
        grf, fit = grf_baseline(
            exemplar,
            res.labels.shape,
            phases=k,
            seed=cfg.seed,
            exemplar_periodic=cfg.exemplar_periodic,
        )
        seconds = time.perf_counter() - t
        err = reconstruction_errors(
            exemplar, grf, phases=k, exemplar_periodic=cfg.exemplar_periodic
        )
        write_images(out_dir / f"{path.stem}_grf.npz", grf, meta={**meta, "grf": fit.covariance})
        row |= {
            "grf_s2_rmse": err.s2_rmse,
            "grf_lineal_path_rmse": err.lineal_path_rmse,
            "grf_covariance": fit.covariance,
            "grf_correlation_length": round(fit.correlation_length, 4),
            "grf_seconds": round(seconds, 3),
        }
    return row


def write_table(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write the rows as one CSV (columns :data:`TABLE_COLUMNS`), atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    return Path(path)
