"""The study's metrics: regression scores, the random-screening baseline, and the curves'
summaries over seeds (functions of arrays and of ``runs.jsonl`` rows)."""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "METRICS",
    "expected_best_of_random",
    "model_label",
    "regression_metrics",
    "summarize",
    "transfer_vs_scratch",
]


def regression_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R² (1 - SS_res / SS_tot) and Spearman's rank correlation of ``pred`` vs ``y``."""
    from scipy.stats import spearmanr

    pred, y = np.asarray(pred, float), np.asarray(y, float)
    err = pred - y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "r2": float(1 - (err**2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
        # undefined for a constant prediction (a model that learnt nothing)
        "spearman": float(spearmanr(pred, y).statistic)
        if len(y) > 2 and np.ptp(pred) > 0 and np.ptp(y) > 0
        else float("nan"),
    }


def expected_best_of_random(values: np.ndarray, k: int, *, maximize: bool = True) -> float:
    """Expected best of ``k`` designs drawn at random without replacement from ``values``.

    With the ``N`` values sorted ascending, the maximum of a random ``k``-subset is the ``i``-th
    (1-based) with probability ``C(i-1, k-1) / C(N, k)``: the baseline a screen must beat.
    """
    v = np.sort(np.asarray(values, float))
    if not maximize:
        v = -v[::-1]
    n = len(v)
    k = min(int(k), n)
    i = np.arange(1, n + 1)
    logp = np.full(n, -np.inf)
    ok = i >= k
    lg = math.lgamma
    logp[ok] = [
        lg(j) - lg(k) - lg(j - k + 1) - (lg(n + 1) - lg(k + 1) - lg(n - k + 1)) for j in i[ok]
    ]
    best = float((np.exp(logp) * v).sum())
    return best if maximize else -best


METRICS = ("mae", "rmse", "r2", "spearman", "gan_mae", "gan_r2", "fit_seconds")


def model_label(row: dict) -> str:
    """The curve a row belongs to: its model, ``cross_frozen<-SOURCE`` for cross transfer."""
    return f"{row['model']}<-{row['source']}" if row.get("source") else row["model"]


def summarize(rows: list[dict]) -> dict:
    """Means and standard deviations over seeds: ``{task: {model: {metric: {K: [m, s, n]}}}}``.

    Cross-property models are named ``cross_frozen<-SOURCE``.
    """
    groups: dict = {}
    for r in rows:
        groups.setdefault(r["task"], {}).setdefault(model_label(r), {}).setdefault(
            int(r["size"]), []
        ).append(r)
    out: dict = {}
    for task, models in groups.items():
        out[task] = {}
        for model, by_size in models.items():
            out[task][model] = {}
            for metric in METRICS:
                entry = {}
                for size, rs in sorted(by_size.items()):
                    v = np.array([r[metric] for r in rs if r.get(metric) is not None], float)
                    if len(v):
                        entry[str(size)] = [float(v.mean()), float(v.std()), len(v)]
                if entry:
                    out[task][model][metric] = entry
    return out


def transfer_vs_scratch(rows: list[dict]) -> dict:
    """Paired by seed: test-MAE ratio to ``scratch`` and how many seeds each model wins.

    ``{task: {model: {K: {"mae_ratio": mean over seeds of MAE/MAE_scratch, "wins": n,
    "seeds": n}}}}`` for every model other than scratch.
    """
    scratch = {
        (r["task"], int(r["size"]), int(r["seed"])): r["mae"]
        for r in rows
        if r["model"] == "scratch" and not r.get("source")
    }
    out: dict = {}
    for r in rows:
        if r["model"] == "scratch" and not r.get("source"):
            continue
        ref = scratch.get((r["task"], int(r["size"]), int(r["seed"])))
        if ref is None:
            continue
        e = (
            out.setdefault(r["task"], {})
            .setdefault(model_label(r), {})
            .setdefault(str(r["size"]), {"ratios": [], "wins": 0, "seeds": 0})
        )
        e["ratios"].append(r["mae"] / ref)
        e["wins"] += int(r["mae"] < ref)
        e["seeds"] += 1
    for models in out.values():
        for sizes in models.values():
            for e in sizes.values():
                e["mae_ratio"] = float(np.mean(e.pop("ratios")))
    return out
