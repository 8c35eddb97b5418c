"""Open ends of a reconstructed boundary network: ``anneal.close_ends`` on against off.

Inputs: ``bench_reconstruction_kinds.py``'s ``network`` (the boundaries of 40 Voronoi cells) and
the Li et al. (2018) alloy crop (``li_alloy``: its boundary network), seeds 0 and 1. Each default
run is ``bench_reconstruction_kinds.py``'s cached full run (made here when missing, in the same
``--runs`` folder); the columns are replays of the annealing from its decoded image
(``bench_reconstruction_kinds.replay``): the ``VARIANTS`` (``close_ends`` off and on);
``decoded`` is the Gram fit's image, ``GRF`` the fitted level-cut GRF of the same seed,
``DeeSse`` geone's simulation at ``bench_reconstruction.py``'s setting (the network only;
cached; ``--no-deesse`` leaves it out).

Metrics, for the thin network phase (:func:`mdesign.reconstruction.annealing._sheet_phases`):
``open_ends``, the skeleton's dead ends (:func:`mdesign.reconstruction.ends.network_ends`; spurs
under 4 px not counted; a non-periodic image's ends within 4 px of its edge left out);
``cells``, the clusters of the other phase (4-connected, in-image) and ``network_clusters``;
then ``bench_reconstruction_kinds.metrics`` (``S2`` and lineal-path RMSE of phase 1, against the
GRF's; local thickness mean / 90th percentile per phase; the Li crops' goals, ``row_goals``).

Usage: ``python bench/bench_network_ends.py [--runs DIR] [--seeds 0 1]``. Results:
``bench/results/network_ends.md``, ``.json`` and ``network_ends_grid.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import RESULTS, machine
from bench_reconstruction_kinds import image, metrics, replay, row_goals, run_full

from mdesign.reconstruction import grf_baseline
from mdesign.reconstruction.annealing import _sheet_phases
from mdesign.reconstruction.ends import network_ends
from mdesign.reconstruction.metrics import cluster_components

IMAGES = ("network", "li_alloy")
VARIANTS: dict[str, dict] = {
    "without": {"anneal": {"close_ends": False}},
    "close ends": {"anneal": {"close_ends": True}},
}
"""Annealing variants replayed from the default run's decoded image (config overrides)."""


def ends_metrics(ex: np.ndarray, labels: np.ndarray, *, periodic: bool) -> dict:
    """Open ends, cells and clusters of the exemplar's thin network phase in ``labels``."""
    phases = int(ex.max()) + 1
    (j,) = _sheet_phases([ex], phases)
    ends = network_ends(labels, phase=j, periodic=periodic, border=0 if periodic else 4)
    return {
        "open_ends": len(ends),
        "cells": cluster_components(labels != j)[1],
        "network_clusters": cluster_components(labels == j)[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument(
        "--runs", type=Path, default=Path(tempfile.gettempdir()) / "mdesign_bench_network_ends"
    )
    parser.add_argument("--no-deesse", action="store_true")
    parser.add_argument(
        "--deesse-venv", type=Path, default=Path(__file__).parent / ".peer-venvs" / "geone"
    )
    parser.add_argument("--name", default="network_ends")
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    rows, grid, loads = [], {}, []
    for name in IMAGES:
        ex = image(name)
        for seed in args.seeds:
            run_full(name, seed, args.runs, force=False)
            data = np.load(args.runs / f"{name}__{seed}.npz")
            info = json.loads(str(data["info"]))
            loads += [info["load_before"], info["load_after"]]
            grf, _ = grf_baseline(ex, ex.shape, phases=int(ex.max()) + 1, seed=seed)
            columns = {"exemplar": (ex, False), "GRF": (grf, True)}
            if name == "network" and not args.no_deesse:
                from bench_reconstruction import deesse_images

                peer = deesse_images(
                    {name: ex}, seed, args.deesse_venv, args.runs / f"DeeSse__{seed}__{name}.npz"
                )
                if name in peer:
                    columns["DeeSse"] = (peer[name][0], False)
            columns["decoded"] = (data["decoded"], True)
            cpu = {}
            for variant, overrides in VARIANTS.items():
                t = time.process_time()
                columns[variant] = (replay(data["decoded"], ex, seed, overrides), True)
                cpu[variant] = time.process_time() - t
            grf_m = metrics(ex, grf)
            for column, (labels, periodic) in columns.items():
                r = {"image": name, "seed": seed, "column": column}
                r.update(ends_metrics(ex, labels, periodic=periodic))
                if column != "exemplar":
                    r.update(metrics(ex, labels, periodic=periodic))
                    r["s2_vs_grf"] = r["s2_rmse"] / grf_m["s2_rmse"]
                    r["lineal_path_vs_grf"] = r["lineal_path_rmse"] / grf_m["lineal_path_rmse"]
                    if column in VARIANTS:
                        r["anneal_cpu_seconds"] = round(cpu[column], 2)
                        r["goals"] = row_goals(r)
                rows.append(r)
                grid[(name, seed, column)] = labels
            print(name, seed, "done", flush=True)
    write(args, rows, grid, loads)


COLUMNS = (
    "image",
    "seed",
    "column",
    "open_ends",
    "cells",
    "network_clusters",
    "s2_rmse",
    "s2_vs_grf",
    "lineal_path_rmse",
    "lineal_path_vs_grf",
    "clusters",
    "thickness",
    "specific_surface_rel",
    "anneal_cpu_seconds",
    "goals",
)


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return " ".join(f"{k}:{'y' if ok else 'n'}" for k, ok in v.items())
    if isinstance(v, list):
        return "[" + ", ".join(_cell(x) for x in v) + "]"
    return "" if v is None else str(v)


def _json(v):
    return v.item() if isinstance(v, np.generic) else str(v)


def write(args, rows: list[dict], grid: dict, loads: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = machine()
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    text = "\n\n".join(
        [
            "# Open ends of a reconstructed boundary network: `anneal.close_ends`",
            f"128 x 128, seeds {' '.join(map(str, args.seeds))}, 1 torch thread; {m['cpus']} CPUs "
            f"shared with other jobs (load average {min(loads):.1f}-{max(loads):.1f} during the "
            f"full runs), torch {m['torch']}. `python bench/bench_network_ends.py` (module "
            "docstring). Replayed columns: "
            + "; ".join(f"`{k}` {json.dumps(v)}" for k, v in VARIANTS.items())
            + ". `open_ends`: dead ends of the network phase's skeleton; `cells`: clusters of "
            "the other phase; `thickness`: local thickness mean/p90 per phase (px, radius).",
            "\n".join(lines),
        ]
    )
    out = RESULTS / f"{args.name}.md"
    out.write_text(text + "\n")
    payload = {"rows": rows, "machine": m, "load": [min(loads), max(loads)]}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(payload, indent=1, default=_json) + "\n")
    keys = list(dict.fromkeys((n, s) for n, s, _ in grid))
    cols = list(dict.fromkeys(c for _, _, c in grid))
    fig, axes = plt.subplots(len(keys), len(cols), figsize=(2.6 * len(cols), 2.8 * len(keys)))
    for i, (n, s) in enumerate(keys):
        for k, c in enumerate(cols):
            ax = axes[i, k]
            ax.set_axis_off()
            if (n, s, c) in grid:
                ax.imshow(grid[(n, s, c)], cmap="gray", interpolation="nearest")
                r = next(r for r in rows if (r["image"], r["seed"], r["column"]) == (n, s, c))
                ax.set_title(f"{n} {s}: {c}\nends {r['open_ends']}, cells {r['cells']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}_grid.png", dpi=80)
    print(out.read_text())


if __name__ == "__main__":
    main()
