"""The paper's optical campaign, done properly: several seeds, strict comparisons, converged RCWA.

Measures, for the optical-absorption campaign of Yang et al. (J. Mech. Des. 2018) over the
shipped GAN's latent (``configs/campaign_optical.yaml``):

1. Per seed (default 0..4), each method's best of the same budget (BO over the latent box,
   ``random`` latents, i.e. the paper's GAN-sampled designs, and ``grf``, random GRF images
   matched to the GAN's training set) and the mean of its successful evaluations; whether BO's
   best is strictly above both baselines' bests (the goal: in at least 4 of 5 seeds).
2. The paper's figures, per seed and as medians over seeds: BO best / mean of the random GRF
   samples - 1 (the paper reports +17.2%), and mean of the random GAN samples / mean of the GRF
   samples - 1 (the paper: +4.8%).
3. The comparison on confirmed values: the campaign's ``confirm`` stage (in the config:
   each method's ``top_k`` designs evaluated again at RCWA order 9) makes each method's best
   its best confirmed value; BO against the baselines on those, and each confirmed best
   evaluated again at still higher orders (``--check-orders``, default 11): its change from
   the confirming order, against the gaps between the methods, and whether each seed's ranking
   holds.
4. Without confirmation, for comparison: each method's best by the campaign's own value,
   evaluated again at higher RCWA orders (``--orders``, default 7 and 9; the campaign ran at
   the evaluator's ``order``, 5 by default). Shown: each design's change between the two
   highest orders, its maximum against the gaps between the methods' bests, and whether each
   seed's ranking of the three methods at the highest order equals its ranking at the
   campaign's order. The bests are also evaluated again at the campaign's order, a check that
   this path reproduces the values the campaigns stored.

Each seed's campaign is ``mdesign optimize`` (a subprocess) in ``--out-root/seed{S}``; a
finished one is skipped and an interrupted one resumes. The re-evaluations run in
``--workers`` processes and are cached in ``--out-root/reevaluation.json``, so an interrupted
run recomputes nothing. Writes ``results.json``, ``results.md``, ``campaign.png`` and
``command.txt`` to ``--results`` and prints the tables.

With ``--baselines-from ROOT``, only BO runs here (``bo`` of the config, its confirm stage
included); the baselines' evaluations, confirmations and re-evaluations are read from another
root's campaigns of the same seeds, budget and evaluators (``random`` and ``grf`` designs depend
on the seed only, not on BO's settings, so they are the same designs with the same values).
That compares a BO variant (``configs/campaign_optical_descriptors.yaml``) with the baselines
without evaluating them again.

Usage (the full run takes about 3 hours on 2 free cores: 5 campaigns of 3 x 60 evaluations at
~2.5 s each, 60 confirmations at order 9 at ~60 s each, 15 checks at order 11 at ~4-7 min each,
and the 45 re-evaluations at orders 5, 7 and 9 of the bests without confirmation)::

    python bench/bench_campaign_optical.py                 # run or resume, then summarise
    python bench/bench_campaign_optical.py --summary-only  # rebuild the outputs from the caches
    python bench/bench_campaign_optical.py --config configs/campaign_optical_descriptors.yaml \
        --baselines-from runs/campaign_optical --out-root runs/campaign_optical_descriptors \
        --results artifacts/campaigns/optical_descriptors     # a BO variant against them
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import functools
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import machine

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "campaign_optical.yaml"
OUT_ROOT = ROOT / "runs" / "campaign_optical"
RESULTS = ROOT / "artifacts" / "campaigns" / "optical"
CACHE_NAME = "reevaluation.json"
EVALUATOR = "optical_absorption"
# Yang et al. (2018), optical absorption: BO's best over the mean of random (GRF) samples, and
# the mean of random GAN samples over the mean of the GRF samples
PAPER = {"bo_best_over_grf_mean_pct": 17.2, "gan_mean_over_grf_mean_pct": 4.8}


# -- the campaigns ------------------------------------------------------------------------------


def load_config(path: Path, *, seed: int, budget: int | None):
    """The campaign config of one seed, with ``mdesign optimize``'s overrides applied."""
    from mdesign.cli.optimize import load_campaign

    cfg = load_campaign(path, budget=budget, seed=seed)
    if cfg.objectives[0].evaluator != EVALUATOR:
        raise SystemExit(f"error: {path}: the first objective must be {EVALUATOR}")
    return cfg


def bo_only_config(config_path: Path, out_root: Path) -> Path:
    """A copy of the campaign config in ``out_root`` without baselines (BO and its confirm
    stage only), its generator checkpoint made absolute."""
    import yaml

    raw = yaml.safe_load(config_path.read_text())
    gen = dict(raw.get("generator") or {})
    if gen.get("checkpoint"):
        gen["checkpoint"] = str((config_path.parent / gen["checkpoint"]).resolve())
    raw.update(generator=gen, baselines=[])
    path = out_root / "campaign_bo_only.yaml"
    write_text(
        path, f"# {config_path.name} without baselines (--baselines-from)\n" + yaml.safe_dump(raw)
    )
    return path


def baseline_summary(root: Path, seed: int, config) -> dict[str, Any]:
    """The baselines of ``config`` as another root's campaign of ``seed`` found them
    (:func:`seed_summary`); an error unless each has the budget and, with a confirm stage, its
    confirmations."""
    out = seed_summary(root / f"seed{seed}", config)["methods"]
    for m in config.baselines:
        r = out[m]
        if r["n"] < config.bo.budget or (
            config.confirm is not None and r["confirmed"]["best"] is None
        ):
            raise SystemExit(
                f"error: {root}/seed{seed}: {m} has {r['n']} of {config.bo.budget} evaluations"
                + (" or no confirmations" if config.confirm is not None else "")
                + ": run its campaign first"
            )
    return {m: out[m] for m in config.baselines}


def campaign_complete(out_dir: Path, config) -> bool:
    """True when ``out_dir`` holds this campaign (same identity) with every method's budget
    evaluated, so running ``mdesign optimize`` again would only rewrite its report."""
    from mdesign.optimization.campaign import STORE_NAME, _identity, confirm_key
    from mdesign.optimization.store import EvaluationStore

    db = out_dir / STORE_NAME
    if not (db.is_file() and (out_dir / "report.md").is_file()):
        return False
    with EvaluationStore(db) as store:
        if store.get_meta("identity") != json.loads(json.dumps(_identity(config))):
            return False  # let `mdesign optimize` say what differs
        methods = ["bo", *config.baselines]
        if not all(store.count(m, done=True) >= config.bo.budget for m in methods):
            return False
        if config.confirm is None:
            return True
        # the confirm stage too: every method's top_k designs confirmed
        confirmed = store.confirmations(confirm_key(config))
        return len(confirmed) >= config.top_k * len(methods)


def run_seed(
    config_path: Path, *, seed: int, out_dir: Path, workers: int, budget: int | None, quiet: bool
) -> None:
    """Run (or resume) one seed's campaign with ``mdesign optimize`` in a subprocess."""
    import mdesign

    cmd = [sys.executable, "-m", "mdesign", "optimize", "--config", str(config_path)]
    cmd += ["--seed", str(seed), "--out", str(out_dir), "--workers", str(workers)]
    cmd += ["--budget", str(budget)] if budget is not None else []
    cmd += ["-q"] if quiet else []
    # the subprocess imports the same mdesign as this script
    src = str(Path(mdesign.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }
    print(f"seed {seed}: {shlex.join(cmd)}", flush=True)
    rc = subprocess.run(cmd, env=env, check=False).returncode
    if rc == 130:  # Ctrl-C reached the campaign too; its evaluations so far are stored
        raise KeyboardInterrupt
    if rc != 0:
        raise SystemExit(f"error: seed {seed}: mdesign optimize exited with {rc}")


# -- what each seed found -----------------------------------------------------------------------


def seed_summary(out_dir: Path, config) -> dict[str, Any]:
    """Each method's first ``budget`` completed evaluations of one seed's store, summarised.

    Returns
    -------
    dict
        Per method: ``n`` (completed), ``n_ok``, ``best`` (best feasible value of the budget, in
        the objective's units, None if none), ``best_design`` and ``best_id``, ``mean`` (mean
        of the successful evaluations), ``best_so_far`` (``budget`` values, NaN as None), and
        ``confirmed`` (:func:`mdesign.optimization.results.confirmed_row` of the campaign's
        confirm stage, None without one). Plus ``complete`` (every method has its budget).
    """
    from mdesign.optimization.campaign import STORE_NAME, _method_result, confirm_key
    from mdesign.optimization.results import confirmed_row, top_designs
    from mdesign.optimization.store import EvaluationStore

    budget = config.bo.budget
    goal = 1 if config.objectives[0].goal == "maximize" else -1
    db = out_dir / STORE_NAME
    records, confirmed = {}, {}
    if db.is_file():
        with EvaluationStore(db) as store:
            records = {m: store.records(m) for m in ("bo", *config.baselines)}
            if config.confirm is not None:
                confirmed = store.confirmations(confirm_key(config))
    out: dict[str, Any] = {"methods": {}}
    for m in ("bo", *config.baselines):
        done = [r for r in records.get(m, []) if r.status != "pending"][:budget]
        res = _method_result(done, config)
        curve = goal * res.best_so_far() if done else np.zeros(0)
        ok = [r.outcomes[0] for r in done if r.status == "ok"]
        best, design, best_id = None, None, None
        if res.feasible.any():
            i = int(np.nanargmax(np.where(res.feasible, res.objectives[:, 0], -np.inf)))
            best, design, best_id = float(done[i].outcomes[0]), done[i].design, done[i].id
        out["methods"][m] = {
            "n": len(done),
            "n_ok": len(ok),
            "best": best,
            "best_id": best_id,
            "best_design": design,
            "mean": float(np.mean(ok)) if ok else None,
            "best_so_far": [_num(v) for v in curve] + [None] * (budget - len(done)),
            # the campaign's confirm stage: the best of the method's top_k by confirmed value
            "confirmed": confirmed_row(res, confirmed, top_designs(res, config.top_k, False), goal)
            if config.confirm is not None
            else None,
        }
    out["complete"] = all(v["n"] >= budget for v in out["methods"].values())
    return out


def comparison(summary: dict[str, Any], goal: int, *, confirmed: bool = False) -> dict[str, Any]:
    """BO against the baselines for one seed, and the paper's two figures; on the bests as the
    campaign recorded them, or (``confirmed``) on the confirmed bests."""
    ms = summary["methods"]
    if confirmed:
        ms = {m: {**v, "best": (v["confirmed"] or {}).get("best")} for m, v in ms.items()}
    bo = ms["bo"]["best"]
    base = {m: v["best"] for m, v in ms.items() if m != "bo"}
    beats = {
        m: None if bo is None or b is None else bool(goal * (bo - b) > 0) for m, b in base.items()
    }
    grf_mean = ms.get("grf", {}).get("mean")
    rnd_mean = ms.get("random", {}).get("mean")
    return {
        "beats": beats,
        "beats_all": None if None in beats.values() else all(beats.values()),
        "improvement_pct": {m: _pct(bo, b) for m, b in base.items()},
        "bo_best_over_grf_mean_pct": _pct(bo, grf_mean),
        "gan_mean_over_grf_mean_pct": _pct(rnd_mean, grf_mean),
    }


def _pct(a: float | None, b: float | None) -> float | None:
    """``100 (a / b - 1)``, None when either is missing or ``b`` is 0."""
    if a is None or b is None or b == 0:
        return None
    return 100.0 * (a / b - 1.0)


def _num(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


# -- re-evaluation at higher RCWA orders ---------------------------------------------------------


def campaign_order(context: dict[str, Any]) -> int:
    """The RCWA order the campaign's objective used (its parameter, or the evaluator's
    default)."""
    from mdesign.config import OPTICAL_ABSORPTION_DEFAULTS

    return int(context["outcomes"][0]["params"].get("order", OPTICAL_ABSORPTION_DEFAULTS.order))


def order_context(context: dict[str, Any], order: int) -> dict[str, Any]:
    """The campaign's context reduced to its objective, evaluated at RCWA order ``order``."""
    spec = context["outcomes"][0]
    return {
        "space": context["space"],
        "outcomes": [
            {"evaluator": spec["evaluator"], "params": {**spec["params"], "order": order}}
        ],
    }


def job_key(context: dict[str, Any], design: dict[str, Any]) -> str:
    """Cache key: what determines the value (design space, evaluator, parameters, design).

    The generator checkpoint enters by its content (sha256), not its path, so a cache
    survives running the campaigns from another checkout of the project.
    """
    space = dict(context["space"])
    if "checkpoint" in space:
        space["checkpoint"] = _file_sha256(space["checkpoint"])
    blob = json.dumps({"context": {**context, "space": space}, "design": design}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@functools.cache
def _file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def reevaluation_jobs(
    per_seed: dict[int, dict], methods: list[str], context: dict[str, Any], orders: list[int]
) -> list[dict[str, Any]]:
    """One job per seed, method (its best design) and order: ``key``, ``context``, ``design``,
    ``seed``, ``method``, ``order``. The campaign's own order is among them, as a check that
    the re-evaluation reproduces the recorded value."""
    jobs = []
    for s, summary in per_seed.items():
        for m in methods:
            design = summary["methods"][m]["best_design"]
            if design is None:
                continue
            for o in orders:
                ctx = order_context(context, o)
                key = job_key(ctx, design)
                jobs.append(
                    {
                        "key": key,
                        "context": ctx,
                        "design": design,
                        "seed": s,
                        "method": m,
                        "order": o,
                    }
                )
    return jobs


def _worker_init() -> None:
    import threading
    import time

    import torch

    torch.set_num_threads(1)
    # a worker whose parent is gone (killed, even by SIGKILL) ends instead of finishing its
    # solve, which at order 11 takes minutes: no process is left behind
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _evaluate(context: dict[str, Any], design: dict[str, Any]) -> dict[str, Any]:
    from mdesign.optimization.problem import evaluate_design

    return evaluate_design(context, design)


def reevaluate(jobs: list[dict[str, Any]], *, cache_path: Path, workers: int) -> dict[str, dict]:
    """Evaluate ``jobs`` (``key``, ``context``, ``design``, ``seed``, ``method``, ``order``)
    not yet in the cache at ``cache_path``, in ``workers`` spawned processes; returns the cache.

    Every result is written to the cache (atomically) as it arrives.
    """
    cache = read_cache(cache_path)
    todo = [j for j in jobs if j["key"] not in cache]
    if not todo:
        return cache
    # the costliest first, so the pool does not end on one long solve
    todo.sort(key=lambda j: -j["order"])
    print(f"re-evaluating {len(todo)} design(s) on {workers} process(es)", flush=True)
    # spawned workers read the environment when they start: one OpenMP/BLAS thread each
    with _env(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", MKL_NUM_THREADS="1"):
        ctx = multiprocessing.get_context("spawn")
        pool = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init)
        try:
            futures = {pool.submit(_evaluate, j["context"], j["design"]): j for j in todo}
            for fut in cf.as_completed(futures):
                j = futures[fut]
                record_result(cache, j, fut.result())
                write_text(cache_path, json.dumps(cache, indent=1) + "\n")
        finally:
            # on Ctrl-C, drop the queued designs instead of evaluating them all first
            pool.shutdown(wait=True, cancel_futures=True)
    return cache


def record_result(cache: dict[str, dict], job: dict[str, Any], result: dict[str, Any]) -> None:
    """Put one evaluation into the cache and print it."""
    value = result["outcomes"][0] if result["outcomes"] else None
    cache[job["key"]] = {
        **{k: job[k] for k in ("seed", "method", "order", "design")},
        "value": value,
        "error": result["error"],
        "seconds": result["seconds"],
    }
    shown = f"failed: {result['error']}" if value is None else f"{value:.6f}"
    print(
        f"  seed {job['seed']} {job['method']:>6} order {job['order']}: {shown} "
        f"({result['seconds']:.1f} s)",
        flush=True,
    )


def read_cache(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text()) if path.is_file() else {}


@contextlib.contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def convergence(
    values: dict[int, dict[str, dict[int, float | None]]],
    orders: list[int],
    base_order: int,
    goal: int,
) -> dict[str, Any]:
    """How much each best design's value moves between the two highest orders, against the gaps
    between the methods' bests, and whether each seed's ranking of the methods changes.

    ``values[seed][method][order]`` is a best design's value (the campaign's order as recorded).
    """
    hi, prev = orders[-1], orders[-2] if len(orders) > 1 else orders[-1]
    rows, deltas, rel, gaps, same = [], [], [], [], {}
    for seed, by_method in values.items():
        for m, v in by_method.items():
            a, b = v.get(prev), v.get(hi)
            d = None if a is None or b is None else b - a
            r = None if d is None or a == 0 else d / abs(a)
            rows.append({"seed": seed, "method": m, "values": v, "delta": d, "relative": r})
            if d is not None:
                deltas.append(abs(d))
                rel.append(abs(r))
        top = {m: v.get(hi) for m, v in by_method.items()}
        if all(x is not None for x in top.values()) and len(top) > 1:
            s = sorted(top.values())
            gaps.append(min(b - a for a, b in itertools.pairwise(s)))
        same[seed] = _same_ranking(by_method, base_order, hi, goal)
    max_delta = max(deltas) if deltas else None
    min_gap = min(gaps) if gaps else None
    return {
        "orders": [prev, hi],
        "rows": rows,
        "max_abs_delta": max_delta,
        "max_rel_delta": max(rel) if rel else None,
        "min_gap_between_bests": min_gap,
        "median_gap_between_bests": statistics.median(gaps) if gaps else None,
        "delta_below_every_gap": None
        if max_delta is None or min_gap is None
        else bool(max_delta < min_gap),
        "same_ranking": same,
        "bo_beats_all_at_highest_order": {s: _beats_all(v, hi, goal) for s, v in values.items()},
    }


def confirmed_check(
    per_seed: dict[int, dict],
    methods: list[str],
    config,
    context: dict[str, Any],
    *,
    base_order: int,
    check_orders: list[int],
    cache_path: Path,
    workers: int | None,
    goal: int,
) -> dict[str, Any]:
    """The methods compared on their confirmed bests, and those bests at ``check_orders``.

    The campaign's ``confirm`` must be its objective's evaluator with another RCWA ``order``.
    ``workers`` None: read the cache only. Returns the per-seed comparison (:func:`comparison`
    on confirmed values), its summary, each confirmed best's values by order (the campaign's
    order as recorded, the confirming order, the checks) and :func:`convergence` of those from
    the confirming order to the highest check.
    """
    c, objective = config.confirm, config.objectives[0]
    other = {k: v for k, v in c.params.items() if k != "order"}
    if (
        c.evaluator != objective.evaluator
        or other != dict(objective.params)
        or "order" not in c.params
    ):
        raise SystemExit(
            "error: the confirm stage must be the objective's evaluator at another order"
        )
    confirm_order = int(c.params["order"])
    comp = {s: comparison(per_seed[s], goal, confirmed=True) for s in per_seed}
    checks = sorted(set(check_orders) - {confirm_order, base_order})
    rows = {
        s: {m: v["methods"][m]["confirmed"] or {} for m in methods} for s, v in per_seed.items()
    }
    bests = {
        s: {"methods": {m: {"best_design": r.get("design")} for m, r in by_m.items()}}
        for s, by_m in rows.items()
    }
    jobs = reevaluation_jobs(bests, methods, context, checks)
    if workers is None:
        cache = read_cache(cache_path)
    else:
        cache = reevaluate(jobs, cache_path=cache_path, workers=workers)
    values = {
        s: {
            m: {base_order: r.get("screened"), confirm_order: r.get("best")}
            for m, r in by_m.items()
        }
        for s, by_m in rows.items()
    }
    for j in jobs:
        values[j["seed"]][j["method"]][j["order"]] = cache.get(j["key"], {}).get("value")
    # only the check orders some value was computed at (none yet: no convergence section)
    checks = [o for o in checks if any(j["order"] == o and j["key"] in cache for j in jobs)]
    orders = sorted({base_order, confirm_order, *checks})
    conv = convergence(values, orders, confirm_order, goal) if checks else None
    return {
        "order": confirm_order,
        "top_k": config.top_k,
        "orders": orders,
        "comparison": {str(s): v for s, v in comp.items()},
        "bo_beats_all": sum(bool(v["beats_all"]) for v in comp.values()),
        "median_best": {m: _median(rows[s][m].get("best") for s in rows) for m in methods},
        "median_improvement_pct": {
            m: _median(comp[s]["improvement_pct"][m] for s in per_seed) for m in methods[1:]
        },
        "best_by_order": {
            str(s): {m: {str(o): x for o, x in vm.items()} for m, vm in vs.items()}
            for s, vs in values.items()
        },
        "ids": {str(s): {m: r.get("id") for m, r in by_m.items()} for s, by_m in rows.items()},
        "convergence": conv,
        "seconds": {
            str(o): _median(
                cache[j["key"]]["seconds"] for j in jobs if j["order"] == o and j["key"] in cache
            )
            for o in checks
        },
    }


def _ranking(by_method: dict[str, dict[int, float | None]], order: int, goal: int):
    vals = {m: v.get(order) for m, v in by_method.items()}
    if any(x is None for x in vals.values()):
        return None
    return sorted(vals, key=lambda m: -goal * vals[m])


def _same_ranking(by_method, base_order: int, hi: int, goal: int) -> bool | None:
    a, b = _ranking(by_method, base_order, goal), _ranking(by_method, hi, goal)
    return None if a is None or b is None else a == b


def _beats_all(by_method, order: int, goal: int) -> bool | None:
    bo = by_method.get("bo", {}).get(order)
    others = [v.get(order) for m, v in by_method.items() if m != "bo"]
    if bo is None or any(x is None for x in others):
        return None
    return all(goal * (bo - x) > 0 for x in others)


# -- outputs -------------------------------------------------------------------------------------


def _f(v, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def _pc(v) -> str:
    return "-" if v is None else f"{v:+.1f}%"


def _yes(v) -> str:
    return "-" if v is None else ("yes" if v else "no")


def _scaled(v, k: float) -> float | None:
    return None if v is None else k * v


def _median(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def markdown(res: dict[str, Any]) -> str:
    """The three tables (strict per-seed, paper-style, convergence) as markdown."""
    seeds = res["seeds"]
    methods = res["methods"]
    base = [m for m in methods if m != "bo"]
    name = res["objective"]
    lines = [
        f"# Optical campaign: BO vs random latents vs random GRF, {len(seeds)} seeds",
        "",
        f"Config `{res['config']}`, budget {res['budget']} evaluations per method, RCWA order "
        f"{res['campaign_order']} in the campaign. Values: {name} (maximised).",
        "",
        *(_confirmed_lines(res) if res.get("confirmed") else []),
        f"## At the campaign's order {res['campaign_order']}: best of the budget (strict "
        "comparison) and mean of all evaluations",
        "",
        "| seed | evaluated | "
        + " | ".join(f"{m} best" for m in methods)
        + " | BO > all | "
        + " | ".join(f"BO vs {m}" for m in base)
        + " | "
        + " | ".join(f"{m} mean" for m in methods)
        + " |",
        "|" + "---|" * (3 + 2 * len(methods) + len(base)),
    ]
    for s in seeds:
        ps, cmp_ = res["per_seed"][str(s)], res["comparison"][str(s)]
        ms = ps["methods"]
        n = "/".join(str(ms[m]["n"]) for m in methods) + ("" if ps["complete"] else " (incomplete)")
        lines.append(
            f"| {s} | {n} | "
            + " | ".join(_f(ms[m]["best"]) for m in methods)
            + f" | {_yes(cmp_['beats_all'])} | "
            + " | ".join(_pc(cmp_["improvement_pct"][m]) for m in base)
            + " | "
            + " | ".join(_f(ms[m]["mean"]) for m in methods)
            + " |"
        )
    sm = res["summary"]
    lines += [
        "| median | | "
        + " | ".join(_f(sm["median_best"][m]) for m in methods)
        + f" | {sm['bo_beats_all']}/{len(seeds)} | "
        + " | ".join(_pc(sm["median_improvement_pct"][m]) for m in base)
        + " | "
        + " | ".join(_f(sm["median_mean"][m]) for m in methods)
        + " |",
        "",
        f"BO's best is strictly above both baselines' bests in {sm['bo_beats_all']} of "
        f"{len(seeds)} seeds (goal: at least 4 of 5).",
        "",
        "## The paper's figures (Yang et al. 2018), per seed and median over seeds",
        "",
        "| figure | " + " | ".join(f"seed {s}" for s in seeds) + " | median | paper |",
        "|" + "---|" * (len(seeds) + 3),
    ]
    for key, label in (
        ("bo_best_over_grf_mean_pct", "BO best / mean of random GRF samples - 1"),
        ("gan_mean_over_grf_mean_pct", "mean of random GAN samples / mean of GRF samples - 1"),
    ):
        lines.append(
            f"| {label} | "
            + " | ".join(_pc(res["comparison"][str(s)][key]) for s in seeds)
            + f" | {_pc(sm['median_' + key])} | {_pc(PAPER[key])} |"
        )
    conv = res["convergence"]
    if conv is not None and conv["max_abs_delta"] is None:
        lines += [
            "",
            "## Without confirmation",
            "",
            "Each method's best design by the campaign's value was not re-evaluated at higher "
            "orders (outputs written with `--summary-only` before those re-evaluations ran).",
        ]
    elif conv is not None:
        lines += [
            "",
            "## Without confirmation: each method's best design at RCWA orders "
            + ", ".join(map(str, res["orders"])),
            "",
            f"Order {res['campaign_order']} is the value the campaign recorded; the others are "
            "re-evaluations with the campaign's parameters otherwise.",
            "",
            *_convergence_lines(conv, res["orders"], res["campaign_order"]),
            f"- re-evaluated at order {res['campaign_order']}, the best designs reproduce the "
            f"values the campaigns recorded to {_f(res['recorded_vs_recomputed_max_abs'], '.2g')} "
            "(largest absolute difference).",
        ]
    return "\n".join(lines) + "\n"


def _convergence_lines(conv: dict[str, Any], orders: list[int], base_order: int) -> list[str]:
    """A :func:`convergence` as a table of values by order and its conclusions."""
    prev, hi = conv["orders"]
    lines = [
        "| seed | method | "
        + " | ".join(f"order {o}" for o in orders)
        + f" | change {prev}->{hi} | relative |",
        "|" + "---|" * (len(orders) + 4),
    ]
    for r in conv["rows"]:
        lines.append(
            f"| {r['seed']} | {r['method']} | "
            + " | ".join(_f(r["values"].get(o)) for o in orders)
            + f" | {_f(r['delta'], '+.5f')} | {_pc(_scaled(r['relative'], 100))} |"
        )
    # seeds whose methods were not all evaluated at both orders are counted apart, not as "no"
    same = conv["same_ranking"]
    beats_hi = conv["bo_beats_all_at_highest_order"]
    n_same = sum(bool(v) for v in same.values())
    n_beats = sum(bool(v) for v in beats_hi.values())
    of_same, of_beats = _of_known(same, hi), _of_known(beats_hi, hi)
    lines += [
        "",
        f"- largest change {prev}->{hi}: {_f(conv['max_abs_delta'], '.5f')} absolute, "
        f"{_f(_scaled(conv['max_rel_delta'], 100), '.1f')}% relative (either sign); "
        f"smallest gap between two methods' bests at order {hi}: "
        f"{_f(conv['min_gap_between_bests'], '.5f')} (median over seeds of each seed's "
        f"smallest gap: {_f(conv['median_gap_between_bests'], '.5f')}); the change is below "
        f"every gap: {_yes(conv['delta_below_every_gap'])}.",
        f"- ranking of the methods at order {hi} equals the ranking at order {base_order} in "
        f"{n_same} of {of_same} ("
        + ", ".join(f"seed {s}: {_yes(v)}" for s, v in same.items())
        + ").",
        f"- BO's best is strictly above both baselines' bests at order {hi} in {n_beats} of "
        f"{of_beats}.",
    ]
    return lines


def _of_known(by_seed: dict[Any, bool | None], order: int) -> str:
    """``"5 seeds"``, or ``"3 seeds (2 not evaluated at order 11 for every method)"``."""
    known = sum(v is not None for v in by_seed.values())
    missing = len(by_seed) - known
    return f"{known} seeds" + (
        f" ({missing} not evaluated at order {order} for every method)" if missing else ""
    )


def _confirmed_lines(res: dict[str, Any]) -> list[str]:
    """The comparison on the confirmed bests, and their check at higher orders."""
    c = res["confirmed"]
    seeds, methods = res["seeds"], res["methods"]
    base = [m for m in methods if m != "bo"]
    lines = [
        f"## Confirmed: each method's best of its top {c['top_k']} at RCWA order {c['order']}",
        "",
        f"The campaign's confirm stage evaluates each method's {c['top_k']} best designs (by the "
        f"order-{res['campaign_order']} value) again at order {c['order']}; each method's best "
        "is then its best confirmed value. The same number of confirmations for every method.",
        "",
        "| seed | "
        + " | ".join(f"{m} best" for m in methods)
        + " | BO > all | "
        + " | ".join(f"BO vs {m}" for m in base)
        + " |",
        "|" + "---|" * (2 + len(methods) + len(base)),
    ]
    for s in seeds:
        cmp_ = c["comparison"][str(s)]
        vals = c["best_by_order"][str(s)]
        lines.append(
            f"| {s} | "
            + " | ".join(_f(vals[m].get(str(c["order"]))) for m in methods)
            + f" | {_yes(cmp_['beats_all'])} | "
            + " | ".join(_pc(cmp_["improvement_pct"][m]) for m in base)
            + " |"
        )
    lines += [
        "| median | "
        + " | ".join(_f(c["median_best"][m]) for m in methods)
        + f" | {c['bo_beats_all']}/{len(seeds)} | "
        + " | ".join(_pc(c["median_improvement_pct"][m]) for m in base)
        + " |",
        "",
        f"On the confirmed values, BO's best is strictly above both baselines' bests in "
        f"{c['bo_beats_all']} of {len(seeds)} seeds (goal: at least 4 of 5).",
    ]
    conv = c["convergence"]
    if conv is not None:
        secs = ", ".join(f"order {o}: {_f(v, '.0f')} s" for o, v in c["seconds"].items())
        lines += [
            "",
            f"### The confirmed bests at RCWA orders {', '.join(map(str, c['orders']))}",
            "",
            f"Order {res['campaign_order']}: the campaign's value of the design; order "
            f"{c['order']}: its confirmation; higher: re-evaluations (median {secs} a design).",
            "",
            *_convergence_lines(conv, c["orders"], c["order"]),
        ]
    lines.append("")
    return lines


def plot(res: dict[str, Any], path: Path) -> None:
    """Best-so-far per method (median over seeds, min-max band) and the bests per order."""
    from matplotlib.figure import Figure

    from mdesign.optimization.report import COLORS, LABELS
    from mdesign.plotting import save_figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    grid = fig.add_gridspec(1, 3)
    ax = fig.add_subplot(grid[0, :2])
    for m in res["methods"]:
        curves = np.array(
            [
                [
                    np.nan if v is None else v
                    for v in res["per_seed"][str(s)]["methods"][m]["best_so_far"]
                ]
                for s in res["seeds"]
            ],
            dtype=float,
        )
        n = np.arange(1, curves.shape[1] + 1)
        with np.errstate(all="ignore"), _quiet_nan_warnings():
            med = np.nanmedian(curves, 0)
            lo, hi = np.nanmin(curves, 0), np.nanmax(curves, 0)
        ax.plot(n, med, color=COLORS[m], label=f"{LABELS[m]} (median)")
        ax.fill_between(n, lo, hi, color=COLORS[m], alpha=0.2, lw=0)
    ax.set(
        xlabel="evaluations",
        ylabel=f"best {res['objective']} so far",
        title=f"{len(res['seeds'])} seeds: median, min-max band "
        f"(RCWA order {res['campaign_order']})",
    )
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[0, 2])
    orders, vals, title = res["orders"], res["best_by_order"], "each best, re-evaluated"
    if res.get("confirmed"):
        c = res["confirmed"]
        orders, vals = c["orders"], c["best_by_order"]
        title = f"confirmed bests (order {c['order']}), re-evaluated"
    for m in res["methods"]:
        per = np.array(
            [[_nan(vals[str(s)][m].get(str(o))) for o in orders] for s in res["seeds"]], dtype=float
        )
        for row in per:
            ax.plot(orders, row, color=COLORS[m], alpha=0.3, lw=0.8, marker=".", ms=3)
        with _quiet_nan_warnings():
            ax.plot(orders, np.nanmedian(per, 0), color=COLORS[m], marker="o", lw=2, label=m)
    ax.set(
        xlabel="RCWA order",
        ylabel=f"{res['objective']} of the best design",
        xticks=orders,
        title=title,
    )
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _nan(v) -> float:
    return np.nan if v is None else v


@contextlib.contextmanager
def _quiet_nan_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    from mdesign.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text)


# -- the driver ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", type=Path, default=CONFIG, help="the campaign config")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="campaign seeds")
    p.add_argument(
        "--out-root",
        type=Path,
        default=OUT_ROOT,
        help="campaign folders (OUT_ROOT/seed{S}) and the re-evaluation cache",
    )
    p.add_argument("--workers", type=int, default=2, help="evaluation processes")
    p.add_argument(
        "--baselines-from",
        type=Path,
        help="run BO only, and read the baselines' campaigns and re-evaluations from this "
        "root (its seed{S} folders and cache)",
    )
    p.add_argument(
        "--budget", type=int, help="evaluations per method (None: the config's bo.budget)"
    )
    p.add_argument(
        "--orders",
        type=int,
        nargs="+",
        default=[7, 9],
        help="RCWA orders to re-evaluate each method's best design at",
    )
    p.add_argument(
        "--check-orders",
        type=int,
        nargs="+",
        default=[11],
        help="RCWA orders to re-evaluate each method's confirmed best at (the campaign's "
        "confirm stage gives the confirming order)",
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="where the outputs go")
    p.add_argument(
        "--summary-only",
        action="store_true",
        help="run no campaign and no re-evaluation: rebuild the outputs from the stores and the "
        "cache",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars from the campaigns")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers: must be at least 1")
    if args.budget is not None and args.budget < 2:
        p.error("--budget: must be at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config_path = args.config.resolve()
    command = shlex.join([sys.executable, *sys.argv])
    configs = {s: load_config(config_path, seed=s, budget=args.budget) for s in args.seeds}
    first = configs[args.seeds[0]]
    goal = 1 if first.objectives[0].goal == "maximize" else -1

    # 1. the campaigns (BO only, with --baselines-from)
    run_path, run_configs = config_path, configs
    base_root, baselines = args.baselines_from, {}
    if base_root is not None:
        baselines = {s: baseline_summary(base_root, s, configs[s]) for s in args.seeds}
        args.out_root.mkdir(parents=True, exist_ok=True)
        run_path = bo_only_config(config_path, args.out_root)
        run_configs = {s: load_config(run_path, seed=s, budget=args.budget) for s in args.seeds}
    if not args.summary_only:
        args.out_root.mkdir(parents=True, exist_ok=True)
        write_text(args.out_root / "command.txt", command + "\n")
        for s in args.seeds:
            out = args.out_root / f"seed{s}"
            if campaign_complete(out, run_configs[s]):
                print(f"seed {s}: complete in {out}, skipped", flush=True)
                continue
            run_seed(
                run_path,
                seed=s,
                out_dir=out,
                workers=args.workers,
                budget=args.budget,
                quiet=args.quiet,
            )

    # 2. what each seed found
    per_seed = {s: seed_summary(args.out_root / f"seed{s}", run_configs[s]) for s in args.seeds}
    for s, other in baselines.items():  # --baselines-from
        per_seed[s]["methods"].update(other)
    comp = {s: comparison(per_seed[s], goal) for s in args.seeds}
    methods = ["bo", *first.baselines]

    # 3. each method's best, re-evaluated at higher orders
    from mdesign.optimization.campaign import campaign_context

    context = campaign_context(first, config_dir=config_path.parent)
    base_order = campaign_order(context)
    orders = sorted({base_order, *args.orders})
    jobs = reevaluation_jobs(per_seed, methods, context, orders)
    cache_path = args.out_root / CACHE_NAME
    if base_root is not None and (base_root / CACHE_NAME).is_file():
        # content-keyed: the baselines' re-evaluations are reused, nothing else matches
        merged = {**read_cache(base_root / CACHE_NAME), **read_cache(cache_path)}
        write_text(cache_path, json.dumps(merged, indent=1) + "\n")
    if args.summary_only:
        cache = read_cache(cache_path)
    else:
        cache = reevaluate(jobs, cache_path=cache_path, workers=args.workers)
    values = {
        s: {m: {base_order: per_seed[s]["methods"][m]["best"]} for m in methods} for s in args.seeds
    }
    recomputed = {}  # the campaign's order again: the re-evaluation path reproduces the store
    for j in jobs:
        v = cache.get(j["key"], {}).get("value")
        if j["order"] == base_order:
            recorded = values[j["seed"]][j["method"]][base_order]
            recomputed[f"{j['seed']}/{j['method']}"] = None if v is None else abs(v - recorded)
        else:
            values[j["seed"]][j["method"]][j["order"]] = v
    conv = convergence(values, orders, base_order, goal) if len(orders) > 1 else None

    # 4. the confirmed bests (the campaign's confirm stage), checked at still higher orders
    confirmed = None
    if first.confirm is not None:
        confirmed = confirmed_check(
            per_seed,
            methods,
            first,
            context,
            base_order=base_order,
            check_orders=args.check_orders,
            cache_path=cache_path,
            workers=None if args.summary_only else args.workers,
            goal=goal,
        )

    # 5. outputs
    summary = {
        "bo_beats_all": sum(bool(c["beats_all"]) for c in comp.values()),
        "median_best": {
            m: _median(per_seed[s]["methods"][m]["best"] for s in args.seeds) for m in methods
        },
        "median_mean": {
            m: _median(per_seed[s]["methods"][m]["mean"] for s in args.seeds) for m in methods
        },
        "median_improvement_pct": {
            m: _median(comp[s]["improvement_pct"][m] for s in args.seeds) for m in methods[1:]
        },
        **{f"median_{k}": _median(comp[s][k] for s in args.seeds) for k in PAPER},
    }
    res = {
        "config": str(
            config_path.relative_to(ROOT) if config_path.is_relative_to(ROOT) else config_path
        ),
        "campaign": first.model_dump(mode="json", exclude={"seed"}),
        "seeds": args.seeds,
        "budget": first.bo.budget,
        "methods": methods,
        "objective": first.objectives[0].name,
        "goal": goal,
        "campaign_order": base_order,
        "orders": orders,
        "per_seed": {str(s): v for s, v in per_seed.items()},
        "comparison": {str(s): v for s, v in comp.items()},
        "summary": summary,
        "paper": PAPER,
        "best_by_order": {
            str(s): {m: {str(o): v for o, v in vm.items()} for m, vm in vs.items()}
            for s, vs in values.items()
        },
        "convergence": conv,
        "confirmed": confirmed,
        "reevaluation_seconds": {
            str(o): _median(
                cache[j["key"]]["seconds"] for j in jobs if j["order"] == o and j["key"] in cache
            )
            for o in orders
        },
        "recorded_vs_recomputed_max_abs": max(
            (d for d in recomputed.values() if d is not None), default=None
        ),
        "machine": machine(),
    }
    text = markdown(res)
    args.results.mkdir(parents=True, exist_ok=True)
    write_text(args.results / "results.json", json.dumps(res, indent=1, default=str) + "\n")
    write_text(args.results / "results.md", text)
    plot(res, args.results / "campaign.png")
    ran = args.out_root / "command.txt"
    lines = [command]
    if args.summary_only and ran.is_file():
        lines = [ran.read_text().strip(), f"# outputs rebuilt with: {command}"]
    write_text(args.results / "command.txt", "\n".join(lines) + "\n")
    print()
    print(text)
    print(f"wrote results.json, results.md, campaign.png and command.txt to {args.results}")
    return 0


if __name__ == "__main__":
    from mdesign.errors import InputError

    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted (run the same command again to resume)\n")
        sys.exit(130)
    except InputError as exc:  # a bad config or checkpoint: one line, as the CLI shows it
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
