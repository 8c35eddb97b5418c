"""What a campaign found: per-method results and the summary, shared by the loop and the report.

These types sit apart from :mod:`~mdesign.optimization.campaign` (which computes them) and
:mod:`~mdesign.optimization.report` (which writes them), so that neither imports the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdesign.optimization.store import EvaluationRecord

__all__ = [
    "CampaignSummary",
    "MethodResult",
    "best_values",
    "confirmed_row",
    "improvement_percent",
    "top_designs",
]


@dataclass(frozen=True)
class MethodResult:
    """One method's evaluations, in order.

    Attributes
    ----------
    records : list of EvaluationRecord
        Completed evaluations (``ok`` and ``failed``) in id order.
    objectives : ndarray, ``n x k``
        Objective values in the maximisation orientation (NaN where failed).
    feasible : ndarray of bool, ``n``
        ``ok`` and meeting every constraint.
    """

    records: list[EvaluationRecord]
    objectives: np.ndarray
    feasible: np.ndarray

    def best_so_far(self) -> np.ndarray:
        """Best feasible first objective after each evaluation (maximisation orientation)."""
        vals = np.where(self.feasible, self.objectives[:, 0], -np.inf)
        best = np.maximum.accumulate(vals) if len(vals) else vals
        return np.where(np.isfinite(best), best, np.nan)


@dataclass(frozen=True)
class CampaignSummary:
    """What a finished campaign found.

    Attributes
    ----------
    out_dir : Path
    methods : dict of str to MethodResult
    goals : list of int
        +1 / -1 per objective.
    objective_names : list of str
    best : dict of str to float or None
        Best feasible first objective per method, in the objective's own units.
    improvement : dict of str to float or None
        BO's improvement over each baseline in percent (positive is better, for either goal).
    report : Path
    confirmed_best : dict of str to float or None, optional
        With a ``confirm`` evaluator: each method's best confirmed value among its best designs.
    confirmed_improvement : dict of str to float or None, optional
        BO's improvement over each baseline on those values, in percent.
    cost : dict, optional
        A multi-fidelity campaign's ``{method: {"low"|"target": (evaluations, seconds)},
        "confirm": (evaluations, seconds), "per_evaluation": {"low"|"target": (seconds,
        "given"|"measured")}}``.
    """

    out_dir: Path
    methods: dict[str, MethodResult]
    goals: list[int]
    objective_names: list[str]
    best: dict[str, float | None]
    improvement: dict[str, float | None]
    report: Path
    confirmed_best: dict[str, float | None] | None = None
    confirmed_improvement: dict[str, float | None] | None = None
    cost: dict[str, Any] | None = None


def improvement_percent(bo_best: float | None, base_best: float | None, goal: int) -> float | None:
    """BO's improvement over a baseline in percent of the baseline, positive when BO is better.

    ``bo_best`` and ``base_best`` are in the objective's own units; ``goal`` +1 (maximise) or
    -1 (minimise).
    """
    if bo_best is None or base_best is None or base_best == 0:
        return None
    return 100.0 * goal * (bo_best - base_best) / abs(base_best)


def best_values(results: dict[str, MethodResult], goals: Sequence[int]) -> dict[str, float | None]:
    """Best feasible first objective per method, in the objective's own units."""
    out = {}
    for m, r in results.items():
        b = r.best_so_far()
        out[m] = float(goals[0] * b[-1]) if len(b) and np.isfinite(b[-1]) else None
    return out


def top_designs(res: MethodResult, k: int, multi: bool) -> list[int]:
    """Indices of a method's best feasible designs, best first: the Pareto set of the
    objectives (``multi``), or the top ``k`` by the first objective."""
    idx = np.flatnonzero(res.feasible)
    if idx.size == 0:
        return []
    if multi:
        import torch

        from mdesign.optimization import bo

        front = bo.pareto_mask(torch.as_tensor(res.objectives[idx])).numpy()
        idx = idx[front]
        order = np.argsort(-res.objectives[idx, 0], kind="stable")
        return idx[order].tolist()
    order = np.argsort(-res.objectives[idx, 0], kind="stable")
    return idx[order][:k].tolist()


def confirmed_row(
    res: MethodResult, confirmed: dict[int, tuple], top: list[int], goal: int
) -> dict[str, Any]:
    """One method's confirmation: its best design by the confirmed value.

    Parameters
    ----------
    res : MethodResult
    confirmed : dict
        ``{id: (value, error, seconds)}`` (:meth:`EvaluationStore.confirmations`).
    top : list of int
        Indices of the method's confirmed designs (:func:`top_designs`).
    goal : int
        +1 (maximise) or -1.

    Returns
    -------
    dict
        ``n`` (designs), ``failed``, ``values`` (each design's confirmed value, NaN where
        failed or not confirmed), and of the best confirmed design ``best`` (its confirmed
        value), ``id``, ``design`` and ``screened`` (its first objective as the campaign
        recorded it); None where no design was confirmed.
    """
    vals = np.array([confirmed.get(res.records[i].id, (math.nan,))[0] for i in top])
    failed = sum(bool(confirmed.get(res.records[i].id, (0, ""))[1]) for i in top)
    row = {"n": len(top), "failed": failed, "values": vals.tolist(), "best": None, "id": None}
    row.update(design=None, screened=None)
    if np.isfinite(vals).any():
        j = int(np.nanargmax(goal * vals))
        rec = res.records[top[j]]
        row.update(best=float(vals[j]), id=rec.id, design=rec.design, screened=rec.outcomes[0])
    return row
