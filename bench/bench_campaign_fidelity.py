"""Multi-fidelity BO against a target-only campaign: confirmed best and CPU, over seeds.

The problem is the quickstart's (``configs/campaign_quickstart.yaml``: the shipped GAN's
latents and fraction, maximise the conductivity along x of a 1:10 two-phase design with 30-50%
of the conductive phase) and the fidelity the conductivity solver's ``refinement``:

* ``mf``: ``configs/campaign_conductivity_fidelity.yaml`` (BO only): 40 evaluations, most at
  refinement 1, the paired initial designs at refinement 8 (extrapolated), then its top 4 by
  the multi-fidelity model's target mean confirmed at refinement 8;
* ``sf``: the same problem at refinement 8 only (``fidelity`` removed, the quickstart's budget
  of 30, BO only); its best is its best evaluation (the evaluator is deterministic, so a
  confirmation would give the same value).

Each campaign runs in its own subprocess (``--one``), which reports the CPU seconds of its
``run_campaign`` (``time.process_time``: the evaluations, the GP fits and the acquisition) and
the evaluation seconds per fidelity from the store. Per seed: each campaign's confirmed best at
refinement 8 and whether ``mf`` equals or beats ``sf``, and ``mf``'s CPU over ``sf``'s. A seed
already measured (in ``--results``/campaign_fidelity.json) is skipped, so an interrupted run
resumes. Writes ``campaign_fidelity.json`` and ``.md`` to ``bench/results``.

Usage (about 1 CPU-minute a seed)::

    nice -n 10 python bench/bench_campaign_fidelity.py --seeds 0 1 2 3 4
    # or seeds in parallel processes, then merged:
    python bench/bench_campaign_fidelity.py --seeds 0 1 --results /tmp/a.json &
    python bench/bench_campaign_fidelity.py --seeds 2 3 4 --results /tmp/b.json
    python bench/bench_campaign_fidelity.py --merge /tmp/a.json /tmp/b.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CONFIG = ROOT / "configs" / "campaign_conductivity_fidelity.yaml"


def _config(kind: str, seed: int, config_path: Path, sf_budget: int):
    from mdesign.config import CampaignConfig, load_config

    cfg = load_config(CampaignConfig, config_path)
    update = {"seed": seed, "baselines": []}
    if kind == "sf":
        f = cfg.fidelity
        obj = cfg.objectives[0]
        target = obj.model_copy(update={"params": {**obj.params, f.parameter: f.target}})
        update.update(
            fidelity=None,
            objectives=[target],
            bo=cfg.bo.model_copy(update={"budget": sf_budget}),
        )
    return cfg.model_copy(update=update)


def one(kind: str, seed: int, out: Path, config_path: Path, sf_budget: int) -> dict:
    """One campaign in this process; its figures as a dict."""
    from mdesign.optimization import run_campaign
    from mdesign.optimization.problem import evaluate_design

    cfg = _config(kind, seed, config_path, sf_budget)
    eval_cpu = {"low": 0.0, "target": 0.0, "confirm": 0.0}

    def timed(context, designs, on_result):  # the CPU of the evaluations alone, by kind
        confirm = "fidelity" not in context and kind == "mf"
        for i, d in enumerate(designs):
            t0 = time.process_time()
            res = evaluate_design(context, d)
            level = "low" if cfg.fidelity and d.get("fidelity") == cfg.fidelity.low else "target"
            eval_cpu["confirm" if confirm else level] += time.process_time() - t0
            on_result(i, res)

    t = time.process_time()
    s = run_campaign(cfg, out, config_dir=config_path.parent, progress=False, evaluate_many=timed)
    cpu = time.process_time() - t
    recs = s.methods["bo"].records
    row = {"kind": kind, "seed": seed, "cpu_s": cpu, "evaluations": len(recs)}
    row.update({f"eval_cpu_{k}": v for k, v in eval_cpu.items()})
    row["eval_cpu"] = sum(eval_cpu.values())
    if kind == "sf":
        row.update(best=s.best["bo"], eval_s=sum(r.seconds or 0 for r in recs))
        row.update(n_low=0, low_s=0.0, n_target=len(recs), target_s=row["eval_s"])
        row.update(n_confirm=0, confirm_s=0.0)
    else:
        c = s.cost["bo"]
        row.update(best=s.confirmed_best["bo"], best_target_evaluated=s.best["bo"])
        row.update(n_low=c["low"][0], low_s=c["low"][1], n_target=c["target"][0])
        row.update(target_s=c["target"][1], n_confirm=s.cost["confirm"][0])
        row.update(confirm_s=s.cost["confirm"][1])
        row["eval_s"] = row["low_s"] + row["target_s"] + row["confirm_s"]
    return row


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"rows": []}


def _cpu_low(config_path: Path, n: int = 20) -> float:
    """CPU seconds per evaluation at the low fidelity, on ``n`` random designs of the space
    (for rows from before the bench measured it: the low evaluations are a few milliseconds)."""
    import numpy as np

    from mdesign.optimization.campaign import campaign_context
    from mdesign.optimization.problem import evaluate_design, load_space

    cfg = _config("mf", 0, config_path, 30)
    context = campaign_context(cfg, config_dir=config_path.parent)
    space = load_space(context["space"])
    X = np.random.default_rng(0).uniform(-1, 1, (n + 1, space.dim))
    designs = [{"latent": x.tolist(), "fidelity": cfg.fidelity.low} for x in X]
    evaluate_design(context, designs[0])  # warm-up: the evaluator's first call
    t = time.process_time()
    for d in designs[1:]:
        evaluate_design(context, d)
    return (time.process_time() - t) / n


def _eval_cpu(row: dict, c_low: float, c_target: float) -> tuple[float, bool]:
    """The evaluations' CPU seconds of a row: measured, or (rows from before the bench
    measured it) its counts times the CPU per evaluation measured in the other rows."""
    if "eval_cpu" in row:
        return row["eval_cpu"], True
    n_t = row["n_target"] + row["n_confirm"]
    return row["n_low"] * c_low + n_t * c_target, False


def _markdown(data: dict) -> str:
    import statistics

    rows = {(r["kind"], r["seed"]): r for r in data["rows"]}
    seeds = sorted({s for _, s in rows})
    measured = [r for r in data["rows"] if "eval_cpu" in r]
    per_t = [
        (r["eval_cpu_target"] + r["eval_cpu_confirm"]) / (r["n_target"] + r["n_confirm"])
        for r in measured
        if r["n_target"] + r["n_confirm"]
    ]
    per_l = [r["eval_cpu_low"] / r["n_low"] for r in measured if r["n_low"]]
    c_t = statistics.median(per_t) if per_t else float("nan")
    c_l = statistics.median(per_l) if per_l else data.get("cpu_low_fallback", float("nan"))
    lines = [
        f"# Multi-fidelity BO against a target-only campaign ({data.get('config', '')})",
        "",
        f"CPU per evaluation (median over the measured rows): low {c_l:.4g} s, target "
        f"{c_t:.4g} s. CPU is process CPU time (`time.process_time`), robust to the load; the "
        "store's `seconds` are wall times and are not used here.",
        "",
        "| seed | sf best | mf confirmed best | mf >= sf | sf CPU s (all) | mf CPU s (all) | "
        "ratio | sf evaluations' CPU s | mf evaluations' CPU s | ratio | "
        "mf evaluations low / target + confirmed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    wins, ratios, eratios = 0, [], []
    for s in seeds:
        sf, mf = rows.get(("sf", s)), rows.get(("mf", s))
        if not (sf and mf):
            continue
        ok = mf["best"] >= sf["best"]
        wins += ok
        ratios.append(mf["cpu_s"] / sf["cpu_s"])
        (es, ms), (em, mm) = _eval_cpu(sf, c_l, c_t), _eval_cpu(mf, c_l, c_t)
        eratios.append(em / es)
        mark = "" if (ms and mm) else " (est.)"
        lines.append(
            f"| {s} | {sf['best']:.5f} | {mf['best']:.5f} | {'yes' if ok else 'no'} | "
            f"{sf['cpu_s']:.1f} | {mf['cpu_s']:.1f} | {ratios[-1]:.2f} | {es:.1f} | "
            f"{em:.1f}{'' if mm else ' (est.)'} | {eratios[-1]:.2f}{mark} | "
            f"{mf['n_low']} / {mf['n_target']} + {mf['n_confirm']} |"
        )
    if ratios:
        lines += [
            "",
            f"mf equals or beats sf on {wins} of {len(ratios)} seeds; all-CPU ratio median "
            f"{statistics.median(ratios):.2f} (max {max(ratios):.2f}); evaluations' CPU ratio "
            f"median {statistics.median(eratios):.2f} (max {max(eratios):.2f}). (est.): a row "
            "from before the bench measured its evaluations' CPU, estimated as its counts "
            "times the CPU per evaluation above.",
            "",
            f"Load while measuring (uptime, 2 shared cores): {', '.join(data.get('load', []))}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--sf-budget", type=int, default=30, help="the target-only campaign's budget")
    ap.add_argument("--out-root", type=Path, default=ROOT / "runs" / "campaign_fidelity")
    ap.add_argument("--results", type=Path, default=RESULTS / "campaign_fidelity.json")
    ap.add_argument(
        "--merge", type=Path, nargs="+", help="combine these results files into --results"
    )
    ap.add_argument("--one", choices=["mf", "sf"], help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        out = args.out_root / f"{args.one}{args.seed}"
        row = one(args.one, args.seed, out, args.config, args.sf_budget)
        print("ROW " + json.dumps(row))
        return
    if args.merge:  # several runs in parallel, each on its own seeds
        parts = [_load(p) for p in args.merge]
        data = {"rows": [r for p in parts for r in p["rows"]], "config": args.config.name}
        if not any(r.get("n_low") and "eval_cpu" in r for r in data["rows"]):
            data["cpu_low_fallback"] = _cpu_low(args.config)
        data["load"] = [x for p in parts for x in p.get("load", [])]
        args.results.write_text(json.dumps(data, indent=1) + "\n")
        args.results.with_suffix(".md").write_text(_markdown(data))
        print(_markdown(data))
        return
    data = _load(args.results)
    data.setdefault("load", [])
    data["config"] = args.config.name
    done = {(r["kind"], r["seed"]) for r in data["rows"]}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    for seed in args.seeds:
        for kind in ("mf", "sf"):
            if (kind, seed) in done:
                continue
            out = args.out_root / f"{kind}{seed}"
            if out.exists():  # a half-run campaign: its CPU would be counted short
                import shutil

                shutil.rmtree(out)
            cmd = [sys.executable, __file__, "--one", kind, "--seed", str(seed)]
            cmd += ["--config", str(args.config), "--out-root", str(args.out_root)]
            cmd += ["--sf-budget", str(args.sf_budget)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            row = json.loads(proc.stdout.split("ROW ", 1)[1])
            print(json.dumps(row), flush=True)
            data["rows"].append(row)
            data["load"].append(os.popen("uptime").read().strip().split("load average:")[-1])
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(data, indent=1) + "\n")
            args.results.with_suffix(".md").write_text(_markdown(data))
    print(_markdown(data))


if __name__ == "__main__":
    main()
