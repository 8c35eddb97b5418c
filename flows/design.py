"""The design campaign as a Prefect flow: ``design_campaign(config, out_dir)``.

Wiring only: the loop, the durable store and the report are :func:`mdesign.optimization.
campaign.run_campaign`; this module turns each batch into a mapped Prefect task (with retries)
and picks the task runner: threads in this process by default, or a Dask cluster (a local one
with ``workers``, or a running scheduler's ``address``) through prefect-dask.

Call :func:`mdesign_flows._prefect_env.configure_prefect` before importing this module
(``mdesign optimize`` does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from mdesign.config import CampaignConfig, config_from_dict
from mdesign.optimization.campaign import run_campaign
from mdesign.optimization.problem import evaluate_design

__all__ = ["design_campaign", "run_design_campaign"]


@task(name="evaluate-design", cache_policy=NO_CACHE)
def evaluate_design_task(context: dict[str, Any], design: dict[str, Any]) -> dict[str, Any]:
    """Decode and evaluate one design (failures come back as a result, not an exception)."""
    return evaluate_design(context, design)


def _mapped_evaluator(retries: int):
    task_fn = evaluate_design_task.with_options(retries=retries, retry_delay_seconds=1)

    def evaluate_many(context, designs, on_result) -> None:
        futures = task_fn.map(unmapped(context), designs)
        index = {f.task_run_id: i for i, f in enumerate(futures)}
        for fut in as_completed(list(futures)):
            try:
                result = fut.result()
            except Exception as exc:  # the task itself failed after its retries
                result = {
                    "outcomes": None,
                    "seconds": 0.0,
                    "error": f"task failed after {retries} retries: {exc}"[:500],
                }
            on_result(index[fut.task_run_id], result)

    return evaluate_many


@flow(name="design-campaign")
def design_campaign(
    config: dict[str, Any], out_dir: str, config_dir: str | None = None
) -> dict[str, Any]:
    """Run or resume the campaign ``config`` (a CampaignConfig as a dict) in ``out_dir``."""
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
        evaluate_many=_mapped_evaluator(cfg.retries),
        progress=False,
        log=logger.info,
    )
    return {
        "report": str(summary.report),
        "best": summary.best,
        "improvement_percent": summary.improvement,
    }


def _task_runner(cfg: CampaignConfig):
    if cfg.dask.address or cfg.dask.workers:
        from prefect_dask import DaskTaskRunner

        if cfg.dask.address:
            return DaskTaskRunner(address=cfg.dask.address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": cfg.dask.workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    # one evaluation at a time in this process: deterministic, and evaluators need not be
    # thread-safe; use Dask workers for parallel evaluations
    return ThreadPoolTaskRunner(max_workers=1)


def run_design_campaign(
    cfg: CampaignConfig, out_dir: str | Path, *, config_dir: str | Path | None = None
) -> dict[str, Any]:
    """Run :func:`design_campaign` with the task runner ``cfg.dask`` asks for."""
    runner = _task_runner(cfg)
    return design_campaign.with_options(task_runner=runner)(
        config=cfg.model_dump(mode="json"),
        out_dir=str(out_dir),
        config_dir=str(config_dir) if config_dir else None,
    )
