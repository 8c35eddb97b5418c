"""The folder reconstruction as a Prefect flow: one task per exemplar, one table at the end.

Wiring only: each task is :func:`mdesign.reconstruction.batch.reconstruct_file` (reconstruction,
GRF baseline, outputs, one row) and the table is :func:`~mdesign.reconstruction.batch.
write_table`. Tasks take paths and a small config dict. Prefect reads its settings when it is
imported, so call :func:`mdesign_flows._prefect_env.configure_prefect` before importing this
module (``python -m mdesign_flows reconstruct`` does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mdesign_flows._prefect_env import drain_to_api, prefect_api
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_API_URL, temporary_settings

from mdesign.reconstruction.batch import (
    check_folder,
    exemplar_files,
    reconstruct_file,
    write_table,
)
from mdesign.runs import run_lock

__all__ = ["reconstruct_folder", "reconstruct_task", "run_reconstruct_folder", "table_task"]


@task(name="reconstruct-exemplar", cache_policy=NO_CACHE)
def reconstruct_task(
    path: str,
    out_dir: str,
    config: dict[str, Any],
    size: tuple[int, int] | None = None,
    baseline: bool = True,
    phases: int = 2,
) -> dict[str, Any]:
    """Reconstruct one exemplar file into ``out_dir``; returns its table row."""
    return reconstruct_file(
        path, out_dir, config=config, size=size, baseline=baseline, phases=phases
    )


@task(name="write-table", cache_policy=NO_CACHE)
def table_task(rows: list[dict[str, Any]], path: str) -> str:
    """Write the rows as one CSV."""
    return str(write_table(rows, path))


@flow(name="reconstruct-folder")
def reconstruct_folder(
    folder: str,
    out_dir: str,
    config: dict[str, Any] | None = None,
    size: tuple[int, int] | None = None,
    baseline: bool = True,
    phases: int = 2,
) -> str:
    """Reconstruct every exemplar of ``folder`` into ``out_dir`` and write
    ``out_dir/reconstructions.csv``; returns the table's path.

    Exemplars run one after another: each reconstruction already uses every core.
    """
    logger = get_run_logger()
    config = dict(config or {})
    files = exemplar_files(folder)
    logger.info("%d exemplars from %s, seed %s", len(files), folder, config.get("seed", 0))
    rows = []
    for path in files:
        row = reconstruct_task(str(path), out_dir, config, size, baseline, phases)
        logger.info(
            "%s: S2 RMSE %.4g (GRF %s), %.1f s",
            Path(path).name,
            row["s2_rmse"],
            f"{row['grf_s2_rmse']:.4g}" if "grf_s2_rmse" in row else "-",
            row["seconds"],
        )
        rows.append(row)
    return table_task(rows, str(Path(out_dir) / "reconstructions.csv"))


def run_reconstruct_folder(
    folder: str | Path,
    out_dir: str | Path,
    config: dict[str, Any] | None = None,
    size: tuple[int, int] | None = None,
    baseline: bool = True,
    *,
    phases: int = 2,
    check: bool = True,
) -> str:
    """Run :func:`reconstruct_folder` (a ReconstructionConfig as a dict); the table's path.

    Everything is checked first (:func:`mdesign.reconstruction.batch.check_folder`: no output
    may be an input, no two exemplars may write one file), and ``out_dir`` is held for the run
    (:func:`mdesign.runs.run_lock`): one run per folder. Unless ``PREFECT_API_URL`` is set, the
    flow reports to a temporary Prefect server tied to this process
    (:func:`mdesign_flows._prefect_env.prefect_api`), so none outlives the run.
    """
    config = dict(config or {})
    if check:  # python -m mdesign_flows has checked, before importing prefect
        check_folder(folder, out_dir, config=config, size=size, baseline=baseline, phases=phases)
    with (
        run_lock(out_dir, name="out_dir", what="folder reconstruction"),
        prefect_api(Path(out_dir) / ".prefect") as api,
        temporary_settings(updates={PREFECT_API_URL: api}),
    ):
        try:
            return reconstruct_folder(str(folder), str(out_dir), config, size, baseline, phases)
        finally:
            drain_to_api()
