"""How much the lineal path of the other kinds of image moves by chance (issue 28, item 3).

For ``photograph`` and ``disks`` (``bench_reconstruction_kinds.py``'s inputs): the fitted
level-cut GRF's ``S2`` / lineal-path RMSE at seeds 0-7, and the default annealing replayed from
the cached default run's decoded image of ``--decoded-seed`` with annealing seeds 0-7 (the Gram
fit fixed, only the annealing's chain drawn again). Needs that bench's cached full runs
(``--runs``). Results: ``bench/results/NAME.md``, ``NAME.json`` (``--name``, default
``reconstruction_kinds_noise``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_reconstruction_kinds as kinds
from _util import RESULTS, machine, report

from mdesign.reconstruction import grf_baseline, reconstruction_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["photograph", "disks"])
    parser.add_argument("--seeds", type=int, default=8, help="seeds 0 .. N-1")
    parser.add_argument("--decoded-seed", type=int, default=1)
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path(tempfile.gettempdir()) / "mdesign_bench_reconstruction_kinds",
    )
    parser.add_argument("--name", default="reconstruction_kinds_noise")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows, loads = [], []
    for name in args.images:
        ex = kinds.image(name)
        decoded = np.load(args.runs / f"{name}__{args.decoded_seed}.npz")["decoded"]
        for seed in range(args.seeds):
            loads.append(os.getloadavg()[0])
            grf, _ = grf_baseline(ex, ex.shape, phases=2, seed=seed)
            t = time.process_time()
            labels = kinds.replay(decoded, ex, seed, {})
            cpu = time.process_time() - t
            for column, lab in (("GRF", grf), ("annealing", labels)):
                e = reconstruction_errors(ex, lab, phases=2)
                rows.append(
                    {
                        "image": name,
                        "seed": seed,
                        "column": column,
                        "s2_rmse": e.s2_rmse,
                        "lineal_path_rmse": e.lineal_path_rmse,
                        "anneal_cpu_seconds": cpu if column == "annealing" else None,
                    }
                )
            print(
                name, seed, rows[-2]["lineal_path_rmse"], rows[-1]["lineal_path_rmse"], flush=True
            )
    report(args.name, rows, title="lineal path by chance: GRF seeds and annealing seeds")
    m = machine()
    lines = [
        "# The lineal path by chance: GRF seeds and annealing seeds",
        "",
        f"128 x 128; the annealing replayed from the default run's decoded image of seed "
        f"{args.decoded_seed} with annealing seeds 0-{args.seeds - 1}; the GRF at seeds "
        f"0-{args.seeds - 1}. {m['cpus']} CPUs shared with other jobs (load average "
        f"{min(loads):.1f}-{max(loads):.1f}). "
        "`python bench/bench_reconstruction_kinds_noise.py`.",
        "",
        "| image | column | S2 RMSE median (min-max) | lineal-path RMSE median (min-max) | "
        "lineal path per seed |",
        "|---|---|---|---|---|",
    ]
    for name in args.images:
        for column in ("GRF", "annealing"):
            sel = [r for r in rows if r["image"] == name and r["column"] == column]
            s2 = np.array([r["s2_rmse"] for r in sel])
            lp = np.array([r["lineal_path_rmse"] for r in sel])
            lines.append(
                f"| {name} | {column} | {np.median(s2):.4f} ({s2.min():.4f}-{s2.max():.4f}) | "
                f"{np.median(lp):.4f} ({lp.min():.4f}-{lp.max():.4f}) | "
                + ", ".join(f"{v:.4f}" for v in lp)
                + " |"
            )
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
