"""The shipped surrogate: trained for the ``surrogate`` evaluator, scored with its uncertainty's
calibration, and used to screen the GAN samples, whose top designs the true evaluator confirms."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mdesign.errors import InputError
from mdesign.evaluators import get_evaluator
from mdesign.surrogates.models import make_surrogate
from mdesign.surrogates.persistence import load_surrogate, save_surrogate
from mdesign.surrogates.screening import screen
from mdesign.surrogates.study.metrics import expected_best_of_random, regression_metrics
from mdesign.surrogates.study.plan import subset, valid_indices
from mdesign.surrogates.study.runner import StudyContext, task_target

__all__ = ["ship_surrogate"]


def ship_surrogate(
    ctx: StudyContext,
    out: Path,
    *,
    study: str,
    progress: bool,
    log: Callable[[str], None],
) -> tuple[Path, dict[str, Any]]:
    """Train (or reuse), calibrate, score and save the surrogate of the ``surrogate``
    evaluator (``config.study.ship``), and screen the GAN samples with it.

    Parameters
    ----------
    ctx : StudyContext
    out : Path
        The study folder; the model is ``OUT/{task}_{model}.pt``.
    study : str
        The study's digest, saved in the model's target: a rerun of this very study reuses it.
    progress : bool
    log : callable

    Returns
    -------
    path : Path
        The model file.
    report : dict
        Its fit, scores on the test and GAN sets, calibration and screening.
    """
    config, sets = ctx.config, ctx.sets
    sh = config.study.ship
    vals = ctx.labels[sh.task].values
    idx = subset(valid_indices(vals["pool"]), sh.size, 0)
    path = out / f"{sh.task}_{sh.model}.pt"
    # the study's digest in the target marks a model this very study trained: a rerun reuses it
    target = {**task_target(config, sh.task), "study": study}
    model = None
    if path.is_file():
        try:
            model = load_surrogate(path)
        except InputError:
            model = None
        if model is not None and model.target.get("study") != study:
            model = None
    reused = model is not None
    if model is None:
        log(f"shipped surrogate: {sh.model} x {sh.ensemble_size} on {sh.size} {sh.task} labels")
        model = make_surrogate(sh.model, gan=ctx.gan, config=config)
        model.fit(
            sets["pool"][idx],
            vals["pool"][idx],
            seed=0,
            ensemble_size=sh.ensemble_size,
            target=target,
            progress=progress,
        )
    else:
        log(f"shipped surrogate: {path} of this study reused")
    # the ensemble spread, calibrated on the labelled pool images it was not trained on
    held = np.setdiff1d(valid_indices(vals["pool"]), idx)
    before = getattr(model, "std_scale", None) if reused else None
    std_scale = None
    if hasattr(model, "calibrate") and len(held) >= 2:
        std_scale = model.calibrate(sets["pool"][held], vals["pool"][held])
        log(f"shipped surrogate: spread x {std_scale:.3g} (calibrated on {len(held)} images)")
    if not reused or std_scale != before:  # a reused, unchanged model keeps its file
        save_surrogate(model, path)
    report: dict[str, Any] = {
        "path": path.name,
        "task": sh.task,
        "model": sh.model,
        "size": sh.size,
        "ensemble_size": sh.ensemble_size,
        "fit_seconds": model.fit_info.seconds,
        "bytes": path.stat().st_size,
        "std_scale": std_scale,
        "calibration_images": len(held) if std_scale is not None else 0,
    }
    for name in ("test", "gan"):
        y = vals[name]
        ok = np.isfinite(y)
        if not ok.any():
            continue
        t = time.perf_counter()
        pred = model.predict(sets[name][ok])
        seconds = time.perf_counter() - t
        err = np.abs(pred.mean - y[ok])
        report[name] = {
            **regression_metrics(pred.mean, y[ok]),
            "predict_seconds_per_image": seconds / ok.sum(),
            "mean_std": float(pred.std.mean()),
            # calibration of the ensemble spread: share of errors within 1 and 2 std
            "within_1std": float((err <= pred.std).mean()),
            "within_2std": float((err <= 2 * pred.std).mean()),
        }
    y = vals["gan"]
    ok = valid_indices(y)
    if len(ok):
        task = next(t for t in config.study.tasks if t.name == sh.task)
        evaluator = get_evaluator(task.evaluator, **task.params)
        k = min(config.screen.top_k, len(ok))
        res = screen(sets["gan"][ok], model, evaluator, top_k=k, kappa=config.screen.kappa)
        truth = y[ok]
        true_top = set(np.argsort(-truth, kind="stable")[:k].tolist())
        report["screening"] = {
            "candidates": len(ok),
            "top_k": k,
            "kappa": config.screen.kappa,
            "best_found": res.best_value,
            "best_possible": float(truth.max()),
            "rank_of_best_found": int((truth > res.best_value).sum()) + 1,
            "expected_best_of_random_k": expected_best_of_random(truth, k),
            "overlap_with_true_top_k": len(true_top & set(res.confirmed.tolist())),
            "confirmed_match_labels": bool(
                np.allclose(res.values, truth[res.confirmed], rtol=1e-9, equal_nan=True)
            ),
            "seconds_screen": res.seconds_screen,
            "seconds_confirm": res.seconds_confirm,
        }
    return path, report
