"""Screen many candidates with a surrogate, confirm the best few with the true evaluator.

A surrogate is much cheaper per design than the evaluator it stands for (the docs' performance
page). :func:`screen` ranks all candidates by the surrogate's upper (or lower) confidence bound,
``mean +- kappa * std``, and spends true evaluations only on the ``top_k``: the usual two-stage
use of a surrogate in a design campaign. The confirmed values, never the surrogate's, decide
which design is best.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mdesign.config import SURROGATE_DEFAULTS
from mdesign.errors import InputError

__all__ = ["ScreeningResult", "screen"]

_S = SURROGATE_DEFAULTS.screen


@dataclass(frozen=True)
class ScreeningResult:
    """Surrogate predictions for every candidate and true values for the confirmed ones.

    Attributes
    ----------
    mean, std : ndarray of float64, ``N``
        The surrogate's prediction and uncertainty for each candidate.
    score : ndarray of float64, ``N``
        ``mean + kappa * std`` (maximising) or ``mean - kappa * std`` (minimising).
    order : ndarray of int, ``N``
        Candidates ranked by ``score``, most promising first.
    confirmed : ndarray of int, ``k``
        The candidates evaluated by the true evaluator: ``order[:top_k]``.
    values : ndarray of float64, ``k``
        Their true values (NaN where the evaluation failed).
    errors : list of EvaluationError
        Failures of the true evaluator, indexed by candidate (not by position in
        ``confirmed``).
    best : int or None
        The candidate with the best confirmed value (None if all failed).
    maximize : bool
    seconds_screen, seconds_confirm : float
        Wall time of the surrogate over all candidates, and of the true evaluations.
    """

    mean: np.ndarray
    std: np.ndarray
    score: np.ndarray
    order: np.ndarray
    confirmed: np.ndarray
    values: np.ndarray
    errors: list = field(default_factory=list)
    best: int | None = None
    maximize: bool = True
    seconds_screen: float = 0.0
    seconds_confirm: float = 0.0

    @property
    def best_value(self) -> float:
        """The best confirmed true value (NaN if none)."""
        if self.best is None:
            return float("nan")
        return float(self.values[list(self.confirmed).index(self.best)])

    def as_dict(self) -> dict:
        """JSON-ready report (predictions rounded to float, NaN as None)."""

        def fl(a):
            return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, float)]

        return {
            "maximize": self.maximize,
            "mean": fl(self.mean),
            "std": fl(self.std),
            "confirmed": [int(i) for i in self.confirmed],
            "values": fl(self.values),
            "errors": [{"index": int(e.index), "message": e.message} for e in self.errors],
            "best": None if self.best is None else int(self.best),
            "best_value": None if self.best is None else self.best_value,
            "seconds_screen": self.seconds_screen,
            "seconds_confirm": self.seconds_confirm,
        }


def screen(
    images: np.ndarray,
    surrogate,
    evaluator,
    *,
    top_k: int = _S.top_k,
    kappa: float = _S.kappa,
    maximize: bool = True,
    progress: bool = False,
) -> ScreeningResult:
    """Rank candidates by a surrogate and confirm the ``top_k`` with the true evaluator.

    Parameters
    ----------
    images : ndarray, ``N x H x W`` labels 0/1
        The candidate designs (e.g. decoded GAN latents).
    surrogate
        Anything with ``predict(images) -> Prediction(mean, std)``: a fitted
        :class:`~mdesign.surrogates.NetworkSurrogate` or
        :class:`~mdesign.surrogates.S2Surrogate`, or the ``surrogate`` evaluator.
    evaluator : Evaluator
        The true evaluator (e.g. ``get_evaluator("effective_conductivity",
        conductivities=(1, 10))``), called through
        :func:`~mdesign.evaluators.evaluate_batch`, so a failing design costs only itself.
    top_k : int
        Candidates to confirm (at most ``N``).
    kappa : float
        Weight of the uncertainty in the ranking score (0: the mean alone).
    maximize : bool
        Whether larger property values are better.
    progress : bool
        Progress bar over the true evaluations.

    Returns
    -------
    ScreeningResult
    """
    from mdesign.evaluators.base import EvaluationError, evaluate_batch

    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    n = len(images)
    if n == 0:
        raise InputError("screen: no candidates")
    if top_k < 1:
        raise InputError(f"top_k: must be at least 1, got {top_k}")
    if kappa < 0 or not np.isfinite(kappa):
        raise InputError(f"kappa: must be finite and >= 0, got {kappa}")
    start = time.perf_counter()
    pred = surrogate.predict(images)
    mean = np.asarray(pred.mean, dtype=np.float64)
    std = np.asarray(pred.std, dtype=np.float64)
    sign = 1.0 if maximize else -1.0
    score = mean + sign * kappa * std
    # stable sort: ties keep the candidates' order, so the result is reproducible
    order = np.argsort(-sign * score, kind="stable")
    seconds_screen = time.perf_counter() - start
    confirmed = order[: min(int(top_k), n)]
    res = evaluate_batch(evaluator, images[confirmed], progress=progress)
    errors = [EvaluationError(int(confirmed[e.index]), e.message) for e in res.errors]
    ok = np.isfinite(res.values)
    best = None
    if ok.any():
        vals = np.where(ok, res.values, -np.inf if maximize else np.inf)
        best = int(confirmed[int(np.argmax(vals) if maximize else np.argmin(vals))])
    return ScreeningResult(
        mean=mean,
        std=std,
        score=score,
        order=order,
        confirmed=confirmed,
        values=res.values,
        errors=errors,
        best=best,
        maximize=maximize,
        seconds_screen=seconds_screen,
        seconds_confirm=res.seconds,
    )
