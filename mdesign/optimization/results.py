"""What a campaign found: per-method results and the summary, shared by the loop and the report.

These types sit apart from :mod:`~mdesign.optimization.campaign` (which computes them) and
:mod:`~mdesign.optimization.report` (which writes them), so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdesign.optimization.store import EvaluationRecord

__all__ = [
    "CampaignSummary",
    "MethodResult",
    "best_values",
    "improvement_percent",
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
    """

    out_dir: Path
    methods: dict[str, MethodResult]
    goals: list[int]
    objective_names: list[str]
    best: dict[str, float | None]
    improvement: dict[str, float | None]
    report: Path


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
