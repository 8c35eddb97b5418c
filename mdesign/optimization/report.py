"""The end of a campaign: ``best.npz``, ``report.md`` and ``report.png``."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from mdesign import __version__
from mdesign.config import CampaignConfig
from mdesign.io import atomic_path, write_images
from mdesign.optimization import bo
from mdesign.optimization.results import (
    CampaignSummary,
    MethodResult,
    best_values,
    confirmed_row,
    improvement_percent,
    top_designs,
)
from mdesign.plotting import save_figure, show_labels

__all__ = ["write_report"]

COLORS = {"bo": "C0", "random": "C1", "grf": "C2", "training": "C4"}
LABELS = {
    "bo": "BO (qLogNEI/qLogNEHVI)",
    "random": "random latents",
    "grf": "random GRF",
    "training": "random training images",
}
PAPER = (
    "For scale: on optical absorption, Yang et al. (J. Mech. Des. 2018) report their optimised "
    "design +17.2% above the mean of randomly sampled (GRF) microstructures, and the mean GAN "
    "sample +4.8% above that mean. The table compares best against best, a stricter test."
)


def _hypervolume_curve(res: MethodResult, ref: torch.Tensor) -> np.ndarray:
    out = []
    for n in range(1, len(res.records) + 1):
        pts = res.objectives[:n][res.feasible[:n]]
        out.append(bo.hypervolume(torch.as_tensor(pts), ref) if len(pts) else 0.0)
    return np.array(out)


def write_report(
    config: CampaignConfig,
    out: Path,
    results: dict[str, MethodResult],
    *,
    space,
    confirmed: dict[int, tuple[float, str, float]] | None = None,
    log: Callable[[str], None] | None = None,
    tops: dict[str, list[int]] | None = None,
    cost: dict | None = None,
) -> CampaignSummary:
    """Write the campaign's results and return its summary.

    Parameters
    ----------
    config : CampaignConfig
    out : Path
        The campaign folder.
    results : dict of str to MethodResult
        Completed evaluations per method.
    space : design space
        Decodes the best latents again for the files and the figure.
    confirmed : dict, optional
        The ``confirm`` stage's values, ``{id: (value, error, seconds)}``
        (:meth:`~mdesign.optimization.store.EvaluationStore.confirmations`): each method's best
        is then also taken by its confirmed value, and BO is compared on those.
    log : callable, optional
    tops : dict of str to list of int, optional
        Each method's designs that were confirmed (indices into its records), when not its
        :func:`top_designs` (a multi-fidelity campaign's BO: by the model's target mean); BO's
        are then also the designs of ``best.npz``.
    cost : dict, optional
        A multi-fidelity campaign's evaluations and seconds per method and fidelity
        (:func:`mdesign.optimization.campaign._cost_table`), shown in report.md.
    """
    goals = [1 if o.goal == "maximize" else -1 for o in config.objectives]
    names = [o.name for o in config.objectives]
    outcome_names = names + [c.name for c in config.constraints]
    multi = len(goals) > 1
    best = best_values(results, goals)
    improvement = {
        m: improvement_percent(best.get("bo"), best[m], goals[0]) for m in results if m != "bo"
    }

    # best BO designs, decoded again (decoding is deterministic)
    bo_res = results["bo"]
    top = tops["bo"] if tops else top_designs(bo_res, config.top_k, multi)
    latents = np.array([bo_res.records[i].latent for i in top], dtype=np.float64)
    images = space.decode(latents) if len(top) else np.zeros((0, *space.image_shape), np.uint8)
    values = np.array([bo_res.records[i].outcomes for i in top], dtype=np.float64)
    confirmed_top, confirmed_rows, confirmed_best, confirmed_imp = None, None, None, None
    if confirmed is not None:
        # each method's best designs again, by the confirming evaluator (same goal as the first
        # objective): the methods are compared on these values
        confirmed_rows = {
            m: confirmed_row(
                res,
                confirmed,
                tops[m] if tops else top_designs(res, config.top_k, multi),
                goals[0],
            )
            for m, res in results.items()
        }
        confirmed_top = np.array(confirmed_rows["bo"]["values"], dtype=np.float64)
        confirmed_best = {m: row["best"] for m, row in confirmed_rows.items()}
        confirmed_imp = {
            m: improvement_percent(confirmed_best.get("bo"), confirmed_best[m], goals[0])
            for m in results
            if m != "bo"
        }
    meta = {
        "command": "optimize",
        "version": __version__,
        "campaign": config.name,
        "seed": config.seed,
        "objectives": names,
        "goals": goals,
        "outcomes": outcome_names,
        "best": best,
        "improvement_percent": improvement,
        "ids": [bo_res.records[i].id for i in top],
    }
    extra = {}
    n_latent = math.prod(space.latent_shape)
    if getattr(space, "fraction_variable", False):
        # the design's last coordinate is its phase-1 fraction: stored as the fraction
        extra["volume_fraction"] = (space.fractions(latents) if len(top) else np.zeros(0)).astype(
            np.float64
        )
    if confirmed_top is not None:
        meta["confirmed_by"] = config.confirm.name
        meta["confirmed_best"] = confirmed_best
        extra["confirmed"] = confirmed_top
    write_images(
        out / "best.npz",
        images,
        meta=meta,
        latents=_latent_maps(space, latents, n_latent)
        if len(top)
        else np.zeros((0, *space.latent_shape), np.float32),
        values=values.reshape(len(top), len(outcome_names)),
        **extra,
    )

    # a common reference point for the hypervolume curves
    ref = None
    if multi:
        allpts = np.concatenate([r.objectives[r.feasible] for r in results.values()])
        if config.bo.ref_point is not None:
            ref = torch.tensor(config.bo.ref_point, dtype=torch.float64) * torch.tensor(goals)
        elif len(allpts):
            ref = bo.infer_ref_point(torch.as_tensor(allpts))

    _figure(
        config, out / "report.png", results, goals, names, top, images, values, multi, ref, space
    )
    _markdown(
        config,
        out / "report.md",
        results=results,
        goals=goals,
        names=names,
        outcome_names=outcome_names,
        best=best,
        improvement=improvement,
        top=top,
        values=values,
        multi=multi,
        ref=ref,
        confirmed=confirmed_top,
        confirmed_rows=confirmed_rows,
        confirmed_improvement=confirmed_imp,
        cost=cost,
    )
    if log:
        log(f"report: {out / 'report.md'}")
    return CampaignSummary(
        out,
        results,
        goals,
        names,
        best,
        improvement,
        out / "report.md",
        confirmed_best=confirmed_best,
        confirmed_improvement=confirmed_imp,
        cost=cost,
    )


def _confirmed_markdown(config, rows: dict[str, dict], improvement: dict, name: str) -> list[str]:
    """The confirm stage's section of report.md: the methods compared on confirmed values."""
    c = config.confirm
    params = ", ".join(f"{k} {v}" for k, v in c.params.items())
    multi = len(config.objectives) > 1
    which = "the Pareto set" if multi else f"the top {config.top_k} by {name}"
    if config.fidelity is not None:
        which += "; BO's by the multi-fidelity model's mean at the target"
    lines = [
        "",
        f"## Confirmed with `{c.evaluator}`{f' ({params})' if params else ''}",
        "",
        f"Each method's best designs ({which}) were evaluated again; each method's best is then "
        "its best confirmed value. These values, not the screening objective's, decide.",
        "",
        f"| method | confirmed | failed | best confirmed {c.name} | design | its {name} | "
        "BO improvement |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m, row in rows.items():
        imp = improvement.get(m)
        cells = [
            LABELS[m],
            str(row["n"]),
            str(row["failed"]),
            _g(row["best"]),
            _g(row["id"]),
            _g(row["screened"]),
            "" if m == "bo" else ("-" if imp is None else f"{imp:+.1f}%"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cost_markdown(config, cost: dict) -> list[str]:
    """A multi-fidelity campaign's section of report.md: evaluations and seconds per fidelity."""
    f = config.fidelity
    per = cost["per_evaluation"]
    lines = [
        "",
        f"## Fidelity: `{f.parameter}` {f.low} (low) and {f.target} (target)",
        "",
        f"Seconds per evaluation: low {per['low'][0]:.4g} ({per['low'][1]}), target "
        f"{per['target'][0]:.4g} ({per['target'][1]}). The methods' values above are their "
        "target-fidelity evaluations; BO's confirmed designs are its best by the "
        "multi-fidelity model's mean at the target.",
        "",
        "| method | low: evaluations | low: seconds | target: evaluations | target: seconds |",
        "| --- | --- | --- | --- | --- |",
    ]
    total = 0.0
    for m, row in cost.items():
        if m in ("confirm", "per_evaluation"):
            continue
        (nl, sl), (nt, st) = row["low"], row["target"]
        total += sl + st
        lines.append(f"| {LABELS[m]} | {nl} | {sl:.4g} | {nt} | {st:.4g} |")
    nc, sc = cost["confirm"]
    lines.append(f"| confirmation | 0 | 0 | {nc} | {sc:.4g} |")
    lines += ["", f"All evaluations: {total + sc:.4g} s."]
    return lines


def _latent_maps(space, latents: np.ndarray, n_latent: int) -> np.ndarray:
    """The latent maps ``n x *space.latent_shape`` of designs (what ``mdesign sample --latent``
    decodes): the space's own ``latent_maps`` when it has one, else the reshaped coordinates."""
    if hasattr(space, "latent_maps"):
        return np.asarray(space.latent_maps(latents), dtype=np.float32)
    return latents[:, :n_latent].reshape(len(latents), *space.latent_shape).astype(np.float32)


def _g(v) -> str:
    return "-" if v is None else (str(v) if isinstance(v, int) else f"{v:.6g}")


def _best_other(res: MethodResult, space, method: str) -> tuple[np.ndarray | None, float | None]:
    idx = np.flatnonzero(res.feasible)
    if idx.size == 0:
        return None, None
    i = idx[np.argmax(res.objectives[idx, 0])]
    rec = res.records[i]
    if method == "grf":
        img = space.grf(rec.design["grf_seed"])[0]
    elif method == "training":
        img = space.training(rec.design["training_index"])[0]
    else:
        img = space.decode(np.array([rec.latent], dtype=np.float32))[0]
    return img, rec.outcomes[0]


def _figure(config, path, results, goals, names, top, images, values, multi, ref, space):
    n_img = min(len(top), 4)
    extra = [m for m in results if m != "bo"]
    fig = Figure(figsize=(12, 7.5), layout="constrained")
    grid = fig.add_gridspec(2, max(2 * 2, n_img + len(extra)))
    half = grid.ncols // 2
    ax = fig.add_subplot(grid[0, :half])
    for m, res in results.items():
        n = np.arange(1, len(res.records) + 1)
        if multi and ref is not None:
            ax.plot(n, _hypervolume_curve(res, ref), color=COLORS[m], label=LABELS[m])
        else:
            ax.plot(n, goals[0] * res.best_so_far(), color=COLORS[m], label=LABELS[m])
        failed = ~np.isfinite(res.objectives[:, 0])
        if failed.any():
            ax.plot(n[failed], np.full(failed.sum(), ax.get_ylim()[0]), "x", color=COLORS[m], ms=4)
    ax.set(
        xlabel="evaluations",
        title="convergence",
        ylabel="hypervolume" if multi else f"best feasible {names[0]}",
    )
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[0, half:])
    if multi:
        for m, res in results.items():
            ok = res.feasible
            ax.scatter(
                goals[0] * res.objectives[ok, 0],
                goals[1] * res.objectives[ok, 1],
                s=12,
                color=COLORS[m],
                alpha=0.5,
                label=LABELS[m],
            )
        if len(top):
            front = values[:, :2]
            order = np.argsort(front[:, 0])
            ax.plot(front[order, 0], front[order, 1], "k-o", ms=4, lw=1, label="BO Pareto front")
        ax.set(xlabel=names[0], ylabel=names[1], title="Pareto front (feasible designs)")
    else:
        for m, res in results.items():
            ok = np.isfinite(res.objectives[:, 0])
            x = np.arange(1, len(res.records) + 1)[ok]
            ax.scatter(
                x,
                goals[0] * res.objectives[ok, 0],
                s=12,
                color=COLORS[m],
                alpha=0.6,
                label=LABELS[m],
                marker="o",
            )
            bad = ok & ~res.feasible
            if bad.any():
                xb = np.arange(1, len(res.records) + 1)[bad]
                ax.scatter(
                    xb,
                    goals[0] * res.objectives[bad, 0],
                    s=30,
                    facecolors="none",
                    edgecolors="r",
                    lw=0.8,
                )
        ax.set(
            xlabel="evaluation",
            ylabel=names[0],
            title="every evaluation (red ring: violates a constraint)",
        )
    ax.legend(fontsize=8)
    for j in range(n_img):
        a = fig.add_subplot(grid[1, j])
        show_labels(a, images[j], title=f"BO #{j + 1}: {values[j, 0]:.4g}")
    for j, m in enumerate(extra):
        img, val = _best_other(results[m], space, m)
        a = fig.add_subplot(grid[1, n_img + j])
        if img is not None:
            show_labels(a, img, title=f"best {m}: {val:.4g}")
        else:
            a.set_axis_off()
            a.set_title(f"{m}: no feasible design", fontsize=9)
    fig.suptitle(f"{config.name}: {', '.join(names)}", fontsize=11)
    save_figure(fig, path)


def _markdown(
    config,
    path,
    *,
    results,
    goals,
    names,
    outcome_names,
    best,
    improvement,
    top,
    values,
    multi,
    ref,
    confirmed=None,
    confirmed_rows=None,
    confirmed_improvement=None,
    cost=None,
):
    lines = [f"# Design campaign: {config.name}", ""]
    goal_txt = ", ".join(
        f"{'maximise' if g > 0 else 'minimise'} {n}" for g, n in zip(goals, names, strict=True)
    )
    lines += [f"Objective: {goal_txt}."]
    if config.constraints:
        cons = ", ".join(
            f"{c.min if c.min is not None else '-inf'} <= {c.name} <= "
            f"{c.max if c.max is not None else 'inf'}"
            for c in config.constraints
        )
        lines += [f"Constraints: {cons}."]
    lines += [
        f"Budget: {config.bo.budget} evaluations per method (BO: {min(config.bo.initial, config.bo.budget)}"  # noqa: E501
        f" Sobol, then batches of {config.bo.batch_size}); seed {config.seed}.",
        "",
        "| method | evaluated | failed | feasible | best " + names[0] + " | BO improvement |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m, res in results.items():
        failed = sum(r.status == "failed" for r in res.records)
        b = best[m]
        imp = improvement.get(m)
        lines.append(
            f"| {LABELS[m]} | {len(res.records)} | {failed} | {int(res.feasible.sum())} | "
            f"{'-' if b is None else f'{b:.6g}'} | "
            f"{'' if m == 'bo' else ('-' if imp is None else f'{imp:+.1f}%')} |"
        )
    if multi and ref is not None:
        lines += [
            "",
            "Hypervolume (feasible designs, common reference point "
            f"{[round(float(g * r), 6) for g, r in zip(goals, ref, strict=True)]}):",
            "",
        ]
        for m, res in results.items():
            hv = _hypervolume_curve(res, ref)
            lines.append(f"- {LABELS[m]}: {hv[-1] if len(hv) else 0:.6g}")
    lines += ["", PAPER, ""]
    title = "BO Pareto-optimal designs" if multi else f"Best {len(top)} BO designs"
    columns = list(outcome_names)
    if confirmed is not None:
        columns.append(f"confirmed {config.confirm.name}")
    lines += [
        f"## {title} (`best.npz`)",
        "",
        "| rank | id | " + " | ".join(columns) + " |",
        "| --- | --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for j, i in enumerate(top):
        rec = results["bo"].records[i]
        cells = [f"{v:.6g}" for v in values[j]]
        if confirmed is not None:
            cells.append("failed" if np.isnan(confirmed[j]) else f"{confirmed[j]:.6g}")
        lines.append(f"| {j + 1} | {rec.id} | " + " | ".join(cells) + " |")
    if confirmed_rows is not None:
        lines += _confirmed_markdown(config, confirmed_rows, confirmed_improvement, names[0])
    if cost is not None:
        lines += _cost_markdown(config, cost)
    lines += [
        "",
        "![report](report.png)",
        "",
        "Every evaluation is in `evaluations.csv` (and the durable `evaluations.sqlite`).",
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
