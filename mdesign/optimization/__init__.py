"""Design campaigns: Bayesian optimisation over the GAN latent box (Yang et al. 2018).

A campaign maximises or minimises property objectives of the microstructures a trained generator
decodes from latents in ``[-1, 1]^d``, under outcome constraints, and compares BO with random
baselines on the same budget and seed. Every evaluation is stored durably as it completes, so a
campaign stopped at any point (Ctrl-C, SIGKILL) resumes without loss or duplicates, and one folder
serves one running campaign at a time. Modules, one concern each: :mod:`~.problem` (the design space
:class:`GANDesignSpace` or a user ``factory``, :func:`evaluate_design`,
:class:`LatentDesignProblem`), :mod:`~.bo` (Sobol start, GP fit, qLogNEI / qLogNEHVI with
constraints, hypervolume), :mod:`~.store` (:class:`EvaluationStore`, SQLite, and its CSV mirror),
:mod:`~.lock` (:func:`campaign_lock`), :mod:`~.cluster` (:func:`check_dask_address`),
:mod:`~.campaign` (:func:`run_campaign`, checks first in :func:`prepare_campaign`;
``flows/design.py`` runs it as a Prefect flow), :mod:`~.results` (:class:`MethodResult`,
:class:`CampaignSummary`) and :mod:`~.report` (:func:`write_report`: ``best.npz``, ``report.md``,
``report.png``).

Typical use::

    from mdesign.config import CampaignConfig, load_config
    from mdesign.optimization import run_campaign

    cfg = load_config(CampaignConfig, "configs/campaign_quickstart.yaml")
    summary = run_campaign(cfg, "runs/campaign")   # sequential, in this process
    summary.best["bo"], summary.improvement["random"]

A campaign config's ``generator.factory`` and ``module:function`` evaluators are imported and run:
treat a config like a script. The names below load their module on first use (PEP 562), so ``import
mdesign.optimization`` and the light modules do not import torch or BoTorch.
"""

from __future__ import annotations

import importlib

__all__ = [
    "CampaignSummary",
    "EvaluationRecord",
    "EvaluationStore",
    "GANDesignSpace",
    "LatentDesignProblem",
    "MethodResult",
    "campaign_context",
    "campaign_lock",
    "check_dask_address",
    "check_space",
    "evaluate_design",
    "evaluate_sequentially",
    "load_space",
    "prepare_campaign",
    "run_campaign",
    "write_report",
]

_WHERE = {
    "CampaignSummary": "results",
    "MethodResult": "results",
    "EvaluationRecord": "store",
    "EvaluationStore": "store",
    "GANDesignSpace": "problem",
    "LatentDesignProblem": "problem",
    "check_space": "problem",
    "evaluate_design": "problem",
    "load_space": "problem",
    "campaign_context": "campaign",
    "evaluate_sequentially": "campaign",
    "prepare_campaign": "campaign",
    "run_campaign": "campaign",
    "campaign_lock": "lock",
    "check_dask_address": "cluster",
    "write_report": "report",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
