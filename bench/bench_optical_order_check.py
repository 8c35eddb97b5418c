"""Spot check of RCWA convergence beyond the optical campaign's re-evaluation orders.

Evaluates chosen best designs of ``bench_campaign_optical.py``'s seeds (read from its
``results.json``) at one more RCWA order, with the campaign's evaluator parameters otherwise,
two at a time in separate processes, and prints each value beside the ones the campaign bench
recorded (orders 5, 7, 9). Order 11 costs ~3.5-7 min a design on the 2-core development machine.

Usage::

    python bench/bench_optical_order_check.py --order 11 --designs 1:bo 1:random 2:bo 2:grf
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "artifacts" / "campaigns" / "optical"


def _evaluate(job: tuple[int, str, dict, int, str]) -> tuple[int, str, int, float, float]:
    """One design of one seed at ``order``: ``(seed, method, order, value, seconds)``."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import numpy as np

    from mdesign.cli.optimize import load_campaign
    from mdesign.evaluators import get_evaluator
    from mdesign.optimization.campaign import campaign_context
    from mdesign.optimization.problem import load_space

    seed, method, design, order, config = job
    path = Path(config) if Path(config).is_absolute() else ROOT / config
    cfg = load_campaign(path, seed=seed, budget=None)
    ctx = campaign_context(cfg, config_dir=path.parent)
    space = load_space(ctx["space"])
    if "grf_seed" in design:
        image = space.grf(int(design["grf_seed"]))
    else:
        image = space.decode(np.asarray(design["latent"])[None])
    params = {**ctx["outcomes"][0].get("params", {}), "order": order}
    evaluator = get_evaluator(ctx["outcomes"][0]["evaluator"], **params)
    t = time.perf_counter()
    value = float(np.asarray(evaluator(image))[0])
    return seed, method, order, value, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=11)
    parser.add_argument("--designs", nargs="+", default=["1:bo", "1:random", "2:bo", "2:grf"])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    res = json.loads((args.results / "results.json").read_text())
    jobs = []
    for item in args.designs:
        seed, method = item.split(":")
        design = res["per_seed"][seed]["methods"][method]["best_design"]
        jobs.append((int(seed), method, design, args.order, res["config"]))
    out = []
    with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        for seed, method, order, value, seconds in pool.map(_evaluate, jobs):
            known = res["best_by_order"][str(seed)][method]
            line = ", ".join(
                f"order {k}: {v:.4f}" for k, v in sorted(known.items(), key=lambda kv: int(kv[0]))
            )
            print(f"seed {seed} {method:>6}: {line}, order {order}: {value:.4f} ({seconds:.0f} s)")
            out.append(
                {
                    "seed": seed,
                    "method": method,
                    "order": order,
                    "value": value,
                    "seconds": seconds,
                    "recorded": known,
                }
            )
    path = args.results / f"order{args.order}_check.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
