"""The design campaign as a Prefect flow: ``design_campaign(config, out_dir)``.

Wiring only: the loop, the durable store and the report are :func:`mdesign.optimization.
campaign.run_campaign`; this module turns each batch into a mapped Prefect task (with retries)
and picks the task runner: threads in this process by default, or a Dask cluster (a local one
with ``workers``, or a running scheduler's ``address``) through prefect-dask.

Call :func:`mdesign_flows._prefect_env.configure_prefect` before importing this module (the CLI
does). :func:`run_design_campaign` holds the campaign folder's lock and, unless
``PREFECT_API_URL`` is set, runs the flow against a temporary Prefect server tied to this process
(:func:`mdesign_flows._prefect_env.prefect_api`), which the Dask workers it starts report to too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mdesign_flows._prefect_env import drain_to_api, prefect_api
from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

from mdesign.config import CampaignConfig, config_from_dict
from mdesign.errors import InputError
from mdesign.optimization.campaign import run_campaign
from mdesign.optimization.lock import campaign_lock
from mdesign.optimization.problem import evaluate_design

__all__ = ["design_campaign", "run_design_campaign"]


@task(name="evaluate-design", cache_policy=NO_CACHE)
def evaluate_design_task(context: dict[str, Any], design: dict[str, Any]) -> dict[str, Any]:
    """Decode and evaluate one design (failures come back as a result, not an exception)."""
    return evaluate_design(context, design)


def _task_evaluator(retries: int, *, parallel: bool):
    """``evaluate_many`` by Prefect tasks: mapped over the task runner (``parallel``, a Dask
    cluster), or called one after another in the flow's thread, where a Ctrl-C interrupts the
    running evaluation at once instead of waiting for a worker thread to finish it."""
    task_fn = evaluate_design_task.with_options(retries=retries, retry_delay_seconds=1)

    def failed(exc: Exception) -> dict[str, Any]:  # the task itself failed after its retries
        return {
            "outcomes": None,
            "seconds": 0.0,
            "error": f"task failed after {retries} retries: {exc}"[:500],
        }

    def evaluate_many(context, designs, on_result) -> None:
        if not parallel:
            for i, design in enumerate(designs):
                try:
                    result = task_fn(context, design)
                except Exception as exc:
                    result = failed(exc)
                on_result(i, result)
            return
        futures = task_fn.map(unmapped(context), designs)
        index = {f.task_run_id: i for i, f in enumerate(futures)}
        for fut in as_completed(list(futures)):
            try:
                result = fut.result()
            except Exception as exc:
                result = failed(exc)
            on_result(index[fut.task_run_id], result)

    return evaluate_many


@flow(name="design-campaign")
def design_campaign(
    config: dict[str, Any], out_dir: str, config_dir: str | None = None
) -> dict[str, Any]:
    """Run or resume the campaign ``config`` (a CampaignConfig as a dict) in ``out_dir``.

    Bad input or a failing disk (:class:`InputError`, :class:`OSError`: a full disk under the
    store) comes back as ``{"error": exc}``, which :func:`run_design_campaign` raises outside
    the flow: Prefect would log a failing flow's traceback, and the user gets one line.
    """
    try:
        return _design_campaign(config, out_dir, config_dir)
    except (InputError, OSError) as exc:
        return {"error": exc}


def _design_campaign(config: dict[str, Any], out_dir: str, config_dir: str | None):
    cfg = config_from_dict(CampaignConfig, config)
    logger = get_run_logger()
    logger.info(
        "campaign %r, seed %d, budget %d per method, out %s",
        cfg.name,
        cfg.seed,
        cfg.bo.budget,
        out_dir,
    )
    summary = run_campaign(
        cfg,
        out_dir,
        config_dir=Path(config_dir) if config_dir else None,
        evaluate_many=_task_evaluator(cfg.retries, parallel=_parallel(cfg)),
        progress=False,
        log=logger.info,
    )
    return {
        "report": str(summary.report),
        "best": summary.best,
        "improvement_percent": summary.improvement,
        "confirmed_best": summary.confirmed_best,
        "confirmed_improvement_percent": summary.confirmed_improvement,
    }


# Run by each local Dask worker as it starts (Dask takes a preload with spaces as script text;
# not by the nannies, which live in the campaign's own process): a terminal's Ctrl-C reaches
# the whole process group, and a worker that dies of it prints a traceback; the campaign stops
# its cluster itself. (A worker also exits on its own
# when the campaign's process dies: Dask watches the parent.) Its stderr goes to the log file
# named by WORKER_LOG_ENV (OUT/.prefect/dask-workers.log): the tracebacks of workers that die
# with a killed campaign, and Dask's warnings, are kept there, off the campaign's terminal.
WORKER_LOG_ENV = "MDESIGN_DASK_WORKER_LOG"
_WORKER_SETUP = (
    "import os, signal\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    f"log = os.environ.get({WORKER_LOG_ENV!r})\n"
    "if log:\n"
    "    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)\n"
    "    os.dup2(fd, 2)\n"
    "    os.close(fd)\n"
)


def _parallel(cfg: CampaignConfig) -> bool:
    return bool(cfg.dask.address or cfg.dask.workers)


def _task_runner(cfg: CampaignConfig):
    if not _parallel(cfg):
        # evaluations run one at a time in the flow's own thread (see _task_evaluator):
        # deterministic, and evaluators need not be thread-safe; use Dask for parallel ones
        return ThreadPoolTaskRunner(max_workers=1)
    from prefect_dask import DaskTaskRunner

    if cfg.dask.address:
        return DaskTaskRunner(address=cfg.dask.address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": cfg.dask.workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
            "preload": [_WORKER_SETUP],
        }
    )


def run_design_campaign(
    cfg: CampaignConfig, out_dir: str | Path, *, config_dir: str | Path | None = None
) -> dict[str, Any]:
    """Run :func:`design_campaign` with the task runner ``cfg.dask`` asks for.

    Holds ``out_dir``'s lock (:func:`mdesign.optimization.lock.campaign_lock`) throughout, and
    reports to ``PREFECT_API_URL`` or to a temporary server whose database is in
    ``out_dir/.prefect``.
    """
    with (
        campaign_lock(out_dir),
        prefect_api(Path(out_dir) / ".prefect") as api,
        temporary_settings(updates={PREFECT_API_URL: api}),
    ):
        # the local Dask workers inherit it (see _WORKER_SETUP)
        log = Path(out_dir).resolve() / ".prefect" / "dask-workers.log"
        os.environ.setdefault(WORKER_LOG_ENV, str(log))
        # multiprocessing's resource tracker (a child sharing our stderr) warns about the
        # workers' semaphores when the campaign is killed: two lines with no use to the user
        quiet = "ignore:resource_tracker:UserWarning"
        given = os.environ.get("PYTHONWARNINGS", "")
        if quiet not in given:
            os.environ["PYTHONWARNINGS"] = f"{given},{quiet}" if given else quiet
        try:
            result = design_campaign.with_options(task_runner=_task_runner(cfg))(
                config=cfg.model_dump(mode="json"),
                out_dir=str(out_dir),
                config_dir=str(config_dir) if config_dir else None,
            )
        finally:
            drain_to_api()
    if "error" in result:
        raise result["error"]
    return result
