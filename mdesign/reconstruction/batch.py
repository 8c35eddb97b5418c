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
from mdesign.io import (
    READ_SUFFIXES,
    atomic_path,
    check_free_space,
    check_outputs,
    read_images,
    write_images,
)
from mdesign.runs import LOCK_NAME

__all__ = [
    "FOLDER_FILES",
    "TABLE_COLUMNS",
    "check_folder",
    "exemplar_files",
    "exemplar_outputs",
    "reconstruct_file",
    "write_table",
]

FOLDER_FILES = ("reconstructions.csv", ".prefect", LOCK_NAME)
"""What the folder flow writes in its output folder besides each exemplar's outputs."""
FOLDER_MIN_FREE = 64 << 20
"""Bytes the output folder's filesystem must have free at the start (the embedded Prefect
server's database, and the first outputs)."""

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


def exemplar_outputs(
    path: str | os.PathLike, out_dir: str | os.PathLike, *, baseline: bool = True
) -> dict[str, Path]:
    """The files :func:`reconstruct_file` writes for the exemplar ``path``: ``reconstruction``
    (``OUT/STEM.npz``), ``report`` (``.json``), ``plot`` (``.png``) and, with ``baseline``,
    ``baseline`` (``OUT/STEM_grf.npz``)."""
    stem, out_dir = Path(path).stem, Path(out_dir)
    outs = {
        "reconstruction": out_dir / f"{stem}.npz",
        "report": out_dir / f"{stem}.json",
        "plot": out_dir / f"{stem}.png",
    }
    if baseline:
        outs["baseline"] = out_dir / f"{stem}_grf.npz"
    return outs


def check_folder(
    folder: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    config: dict[str, Any] | None = None,
    size: tuple[int, int] | None = None,
    baseline: bool = True,
    phases: int = 2,
    inputs: dict[str, str | os.PathLike | None] | None = None,
) -> list[Path]:
    """Check a folder reconstruction before any work, as ``mdesign reconstruct`` checks one.

    Every exemplar is read and checked (:func:`~mdesign.reconstruction.pipeline.
    check_exemplar`), the size and the memory of the largest reconstruction, the weights are
    loaded, and every output is checked (:func:`mdesign.io.check_outputs`): none may be an input
    (``out_dir`` may not be ``folder``, whose files the outputs would replace or, on a rerun,
    join as exemplars) and no two exemplars may write one file (``b.npy`` and ``b.png`` both
    write ``b.npz``; ``a_grf.npy``'s reconstruction is ``a.npz``'s baseline).

    Parameters
    ----------
    folder, out_dir, config, size, baseline, phases
        As in :func:`reconstruct_file`.
    inputs : dict, optional
        Other input files, by the option that names them (``{"--config": "fast.yaml"}``).

    Returns
    -------
    list of Path
        The exemplar files.

    Raises
    ------
    InputError
        Naming the file or parameter at fault.
    """
    from mdesign.errors import InputError
    from mdesign.memory import check_memory
    from mdesign.reconstruction.pipeline import check_exemplar, check_size, reconstruction_memory
    from mdesign.reconstruction.vgg import load_vgg19_weights

    files = exemplar_files(folder)
    if Path(out_dir).resolve() == Path(folder).resolve():
        raise InputError(
            f"{out_dir}: is the input folder {folder}; its outputs would replace exemplars or be "
            "read as exemplars by the next run, choose another folder",
            param="out_dir",
        )
    cfg = config_from_dict(ReconstructionConfig, config or {}, source="config")
    outputs: list[tuple[str, Path, tuple[str, ...] | None]] = [("out_dir", Path(out_dir), None)]
    for path in files:
        for what, out in exemplar_outputs(path, out_dir, baseline=baseline).items():
            outputs.append((f"the {what} of {path.name}", out, (out.suffix,)))
    check_free_space(out_dir, FOLDER_MIN_FREE, what="the folder flow", param="out_dir")
    given = [(opt, p) for opt, p in (inputs or {}).items() if p is not None]
    check_outputs(
        outputs,
        inputs=[*given, *((f"exemplar {p.name}", p) for p in files)],
        writes={"out_dir": FOLDER_FILES},
    )
    shapes = []
    for path in files:
        images = read_images(path, phases=phases).images
        check_exemplar(images, source=str(path))
        shapes.append(images.shape[1:])
    sizes = [check_size(size)] if size is not None else shapes
    h, w = max(s[0] for s in sizes), max(s[1] for s in sizes)
    check_memory(reconstruction_memory((h, w)), what=f"reconstructing {h} x {w}", param="size")
    if cfg.texture.weights != "random":
        load_vgg19_weights(cfg.texture.weights)
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
    outs = exemplar_outputs(path, out_dir, baseline=baseline)
    out = outs["reconstruction"]
    meta = {"command": "flows.reconstruct", "exemplar": str(path), "config": cfg.model_dump()}
    write_images(out, res.labels, meta=meta)
    with atomic_path(outs["report"]) as tmp:
        tmp.write_text(json.dumps(res.report(), indent=1) + "\n")
    plot_reconstruction(exemplar, res, outs["plot"], title=path.name)
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
        write_images(outs["baseline"], grf, meta={**meta, "grf": fit.covariance})
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
