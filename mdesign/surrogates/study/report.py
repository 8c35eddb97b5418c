"""The study's figure (learning curves) and its markdown tables, from ``results.json``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mdesign.io import atomic_path

__all__ = ["COLORS", "plot_learning_curves", "write_report"]


COLORS = {
    "frozen": "tab:blue",
    "finetune": "tab:orange",
    "scratch": "tab:green",
    "s2_gp": "tab:red",
    "cross_frozen": "tab:purple",
    "cross_finetune": "tab:brown",
}


def plot_learning_curves(results: dict, path: str | os.PathLike | None = None, *, fig=None):
    """MAE and R² against K (mean and +-1 std over seeds), one row per task.

    Returns the matplotlib Figure; draws into ``fig`` (a Figure or SubFigure) when given, and
    also writes a PNG to ``path`` when given.
    """
    from matplotlib.figure import Figure

    from mdesign.plotting import finish

    curves = results["curves"]
    tasks = list(curves)
    if fig is None:
        fig = Figure(figsize=(10, 3.2 * len(tasks)))
    axes = fig.subplots(len(tasks), 2, squeeze=False)
    for row, task in enumerate(tasks):
        for col, metric in enumerate(("mae", "r2")):
            ax = axes[row, col]
            for model, metrics in curves[task].items():
                if metric not in metrics:
                    continue
                sizes = np.array([int(k) for k in metrics[metric]])
                mean = np.array([v[0] for v in metrics[metric].values()])
                std = np.array([v[1] for v in metrics[metric].values()])
                base = model.split("<-")[0]
                style = "--" if "<-" in model else "-"
                ax.plot(sizes, mean, style, marker="o", ms=3, color=COLORS.get(base), label=model)
                ax.fill_between(
                    sizes, mean - std, mean + std, color=COLORS.get(base), alpha=0.15, lw=0
                )
            ax.set_xscale("log")
            if metric == "mae":
                ax.set_yscale("log")
            ax.set_xlabel("labelled images K")
            ax.set_ylabel("test MAE" if metric == "mae" else "test R²")
            ax.set_title(f"{task}: {'MAE' if metric == 'mae' else 'R²'}", fontsize=10)
            ax.grid(alpha=0.3, which="both")
            if metric == "r2":
                lo = min(
                    (v[0] for m in curves[task].values() for v in m.get("r2", {}).values()),
                    default=0.0,
                )
                ax.set_ylim(max(lo - 0.05, -0.5), 1.0)
        axes[row, 0].legend(fontsize=7)
    seeds = results["config"]["study"]["seeds"]
    n_test = results["data"]["test"]
    fig.suptitle(
        f"Surrogates on K labelled images (mean ± 1 std over {seeds} seeds; {n_test} test images)",
        fontsize=11,
    )
    if isinstance(fig, Figure) and fig.get_layout_engine() is None:
        fig.tight_layout()
    return finish(fig, path)


def write_report(results: dict, path: str | os.PathLike) -> Path:
    """Markdown tables of the curves (test MAE and R², mean ± std over seeds)."""
    lines = ["# Surrogate study: results", ""]
    ck = results["checkpoint"]
    lines.append(
        f"GAN checkpoint `{ck['path']}` (epoch {ck['epoch']}, sha256 {ck['sha256'][:12]}); "
        f"{results['data']['pool']} pool, {results['data']['test']} test GRF images, "
        f"{results['data']['gan']} GAN samples."
    )
    lines.append("")
    for task, models in results["curves"].items():
        sizes = sorted({int(k) for m in models.values() for k in m.get("mae", {})})
        for metric, title in (("mae", "test MAE"), ("r2", "test R²"), ("gan_mae", "GAN MAE")):
            lines += [f"## {task}: {title}", ""]
            lines.append("| model | " + " | ".join(f"K={k}" for k in sizes) + " |")
            lines.append("| --- |" + " --- |" * len(sizes))
            for model, m in models.items():
                cells = []
                for k in sizes:
                    v = m.get(metric, {}).get(str(k))
                    cells.append("" if v is None else f"{v[0]:.4g} ± {v[1]:.2g}")
                lines.append(f"| {model} | " + " | ".join(cells) + " |")
            lines.append("")
        secs = models.get("scratch", {}).get("fit_seconds")
        if secs:
            lines.append(
                "Fit seconds (scratch): " + ", ".join(f"K={k}: {v[0]:.1f}" for k, v in secs.items())
            )
            lines.append("")
    tvs = results.get("transfer_vs_scratch") or {}
    if tvs:
        lines += ["## Test MAE relative to scratch (paired by seed; wins = seeds better)", ""]
        for task, models in tvs.items():
            sizes = sorted({int(k) for m in models.values() for k in m})
            lines.append(f"**{task}**")
            lines.append("")
            lines.append("| model | " + " | ".join(f"K={k}" for k in sizes) + " |")
            lines.append("| --- |" + " --- |" * len(sizes))
            for model, m in models.items():
                cells = []
                for k in sizes:
                    e = m.get(str(k))
                    cells.append(
                        "" if e is None else f"{e['mae_ratio']:.2f} ({e['wins']}/{e['seeds']})"
                    )
                lines.append(f"| {model} | " + " | ".join(cells) + " |")
            lines.append("")
    ship = results.get("ship")
    if ship:
        lines += ["## Shipped surrogate", ""]
        lines.append(
            f"`{ship['path']}`: {ship['model']} x {ship['ensemble_size']} on {ship['size']} "
            f"{ship['task']} labels, fitted in {ship['fit_seconds']:.0f} s."
            + (
                f" Its ensemble spread is scaled by {ship['std_scale']:.3g}, calibrated on "
                f"{ship['calibration_images']} held-out pool images."
                if ship.get("std_scale")
                else ""
            )
        )
        for name in ("test", "gan"):
            s = ship.get(name)
            if s:
                lines.append(
                    f"- {name}: MAE {s['mae']:.4g}, R² {s['r2']:.4f}, Spearman "
                    f"{s['spearman']:.4f}; errors within 1 std {s['within_1std']:.0%}, within "
                    f"2 std {s['within_2std']:.0%}; "
                    f"{s['predict_seconds_per_image'] * 1e3:.2f} ms per image"
                )
        sc = ship.get("screening")
        if sc:
            lines.append(
                f"- screening {sc['candidates']} GAN samples, confirming the top {sc['top_k']} "
                f"(kappa {sc['kappa']}): best confirmed {sc['best_found']:.4g} (rank "
                f"{sc['rank_of_best_found']} of {sc['candidates']}; best possible "
                f"{sc['best_possible']:.4g}; expected best of {sc['top_k']} random "
                f"{sc['expected_best_of_random_k']:.4g}); {sc['overlap_with_true_top_k']} of the "
                f"true top {sc['top_k']} confirmed"
            )
        lines.append("")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path
