"""The small-data study: learning curves of transfer, scratch and S2 + GP surrogates.

:func:`run_study` (``mdesign surrogate-study``) answers the question of Yang et al. (2018) and
Gupta et al. (2021) for this project's microstructures: with K labelled images, does a regressor
that starts from the trained GAN discriminator's trunk (or from a regressor of another property)
predict a property better than the same network trained from scratch, or than a classical
PCA(S2) + GP model?

1. Images: a pool and a test set of level-cut GRF images drawn from the GAN's training
   distribution (its checkpoint records the ``mdesign grf`` parameters; a different seed), and
   GAN samples (the designs a campaign evaluates).
2. Labels: every task's evaluator on every image, cached in ``OUT/labels/``.
3. Learning curves: for each task, seed and K, the first K images of a seeded permutation of
   the pool (nested in K) train each model; all are scored on the same held-out test images (and
   on the GAN samples). Each result is appended to ``OUT/runs.jsonl`` as it completes, so a
   killed study resumes where it stopped.
4. Cross-property transfer: the fine-tuned regressor of a source task at the largest K lends its
   trunk (frozen or fine-tuned) to a target task, at every K.
5. The shipped surrogate: an ensemble trained for the ``surrogate`` evaluator, scored with its
   uncertainty's calibration, and used to screen the GAN samples, confirming its top designs with
   the true evaluator.

Outputs: ``results.json`` (config, data, every run, the curves' means and standard deviations over
seeds, transfer-versus-scratch comparisons, the shipped model's scores and the screening),
``learning_curves.png``, ``report.md`` (tables) and the shipped model file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdesign.config import SURROGATE_DEFAULTS, SurrogateConfig, SurrogateTaskConfig
from mdesign.errors import InputError
from mdesign.io import atomic_path
from mdesign.runs import claim_run_folder
from mdesign.surrogates.persistence import load_surrogate, save_surrogate

__all__ = [
    "StudyResult",
    "expected_best_of_random",
    "json_safe",
    "regression_metrics",
    "run_study",
    "summarize",
]

FORMAT = "mdesign.surrogate-study/1"


@dataclass(frozen=True)
class StudyResult:
    """Where the study wrote its outputs, and its summary.

    Attributes
    ----------
    out_dir : Path
    results : dict
        The content of ``results.json``.
    figure, report, json_path : Path
        ``learning_curves.png``, ``report.md``, ``results.json``.
    model : Path or None
        The shipped surrogate.
    seconds : float
        Wall time of this call (runs resumed from ``runs.jsonl`` cost nothing).
    """

    out_dir: Path
    results: dict
    figure: Path
    report: Path
    json_path: Path
    model: Path | None
    seconds: float


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


# ---------------------------------------------------------------------------------------------
# data


def _sha(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def study_images(gan, config: SurrogateConfig, *, progress: bool = False):
    """Pool, test (GRF from the GAN's training distribution) and GAN-sample images."""
    from mdesign.gan import decode, latent_shape, sample_latents
    from mdesign.gan.validation import grf_reference

    st = config.study
    grf = grf_reference(gan.data_meta, st.n_pool + st.n_test, seed=st.image_seed, progress=progress)
    pool, test = grf.images[: st.n_pool], grf.images[st.n_pool :]
    gan_images = np.zeros((0, *pool.shape[1:]), np.uint8)
    if st.n_gan_test:
        z = sample_latents(st.n_gan_test, latent_shape(gan.config), seed=st.image_seed)
        gan_images = decode(gan.generator, z)
    return pool, test, gan_images


def _label(
    task: SurrogateTaskConfig,
    sets: dict[str, np.ndarray],
    cache: Path,
    *,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Values of ``task`` on every image set; a set is read from ``cache`` when its images'
    digest and the evaluator's parameters match (so another GAN checkpoint relabels only its
    samples, not the GRF images)."""
    from mdesign.evaluators import evaluate_batch, evaluator_params, get_evaluator

    evaluator = get_evaluator(task.evaluator, **task.params)
    spec = json.dumps(
        {"evaluator": task.evaluator, "params": evaluator_params(evaluator)}, sort_keys=True
    )
    old: dict[str, Any] = {}
    if cache.is_file():
        with np.load(cache) as f:
            if str(f["spec"]) == spec:
                old = {k: f[k] for k in f.files}
    values, seconds, failed, cached = {}, {}, 0, []
    for name, images in sets.items():
        digest = _sha(images)
        if str(old.get(f"{name}_sha256", "")) == digest:
            values[name], seconds[name] = old[name], float(old[f"{name}_seconds"])
            cached.append(name)
            continue
        if len(images):
            log(f"labels of {task.name}: evaluating {len(images)} {name} images")
        res = evaluate_batch(evaluator, images, progress=progress)
        values[name], seconds[name] = res.values, res.seconds
        failed += len(res.errors)
    if cached:
        log(f"labels of {task.name}: {', '.join(cached)} read from {cache}")
    if failed:
        log(f"labels of {task.name}: {failed} images failed and are left out")
    if len(cached) < len(sets):
        arrays = {}
        for name, images in sets.items():
            arrays[name] = values[name]
            arrays[f"{name}_sha256"] = np.array(_sha(images))
            arrays[f"{name}_seconds"] = np.array(seconds[name])
        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, spec=np.array(spec), **arrays)
    return {"values": values, "seconds": seconds, "cached": cached}


# ---------------------------------------------------------------------------------------------
# runs


def _key(row: dict) -> tuple:
    return (row["task"], row["model"], row.get("source"), int(row["size"]), int(row["seed"]))


def _read_runs(path: Path) -> dict[tuple, dict]:
    runs: dict[tuple, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: rerun it
                    continue
                runs[_key(row)] = row
    return runs


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python numbers and NaN or infinities as None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(json_safe(row)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _subset(valid: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The first ``size`` of a seeded permutation of the valid pool indices (nested in size)."""
    return valid[np.random.default_rng(seed).permutation(len(valid))[:size]]


def _score(model, images: np.ndarray, y: np.ndarray, prefix: str = "") -> dict[str, float]:
    ok = np.isfinite(y)
    if not ok.any():
        return {}
    t = time.perf_counter()
    pred = model.predict(images[ok])
    out = {f"{prefix}{k}": v for k, v in regression_metrics(pred.mean, y[ok]).items()}
    out[f"{prefix}predict_seconds"] = time.perf_counter() - t
    return out


def run_study(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    config: SurrogateConfig = SURROGATE_DEFAULTS,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> StudyResult:
    """Run (or resume) the study and write its outputs to ``out``.

    Parameters
    ----------
    checkpoint : path-like
        The trained GAN (``artifacts/gan/checkpoint.pt``): its discriminator is the pretrained
        trunk, its ``data_meta`` gives the image distribution, its generator the GAN samples.
    out : path-like
        Output directory; rerunning on it resumes (same config and checkpoint only).
    config : SurrogateConfig
        ``study`` (tasks, sizes, seeds, sets, cross pairs, shipped model), ``network``, ``s2``
        and ``screen``.
    progress : bool
        Progress bars.
    log : callable, optional
        Receives one-line notes (e.g. ``print`` to stderr); silent by default.

    Returns
    -------
    StudyResult
    """
    from mdesign.gan import load_checkpoint

    log = log or (lambda msg: None)
    start = time.perf_counter()
    out = Path(out)
    st = config.study
    ckpt_path = Path(checkpoint)
    gan = load_checkpoint(ckpt_path, device="cpu")
    ckpt_sha = hashlib.sha256(ckpt_path.read_bytes()).hexdigest()
    identity = {
        "format": FORMAT,
        "config": config.model_dump(mode="json"),
        "checkpoint_sha256": ckpt_sha,
    }
    claim_run_folder(
        out,
        identity,
        filename="study.json",
        what="a surrogate study",
        remedy="use another output folder, or remove its runs.jsonl and study.json to start over",
    )
    (out / "labels").mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    cache.mkdir(exist_ok=True)
    gitignore = out / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(
            "# regenerated by the study: trained source models for cross transfer\ncache/\n"
        )

    t = time.perf_counter()
    pool, test, gan_images = study_images(gan, config, progress=progress)
    images_seconds = time.perf_counter() - t
    sets = {"pool": pool, "test": test, "gan": gan_images}
    labels = {}
    for task in st.tasks:
        labels[task.name] = _label(
            task, sets, out / "labels" / f"{task.name}.npz", progress=progress, log=log
        )

    runs_path = out / "runs.jsonl"
    runs = _read_runs(runs_path)
    plan = _plan(config)
    todo = [p for p in plan if _key(p) not in runs]
    log(f"{len(plan)} runs, {len(plan) - len(todo)} already done in {runs_path}")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="surrogate study", unit="run")
    sources: dict[tuple[str, int], Any] = {}
    try:
        for p in todo:
            if bar is not None:
                src = f"<-{p['source']}" if p.get("source") else ""
                bar.set_postfix_str(f"{p['task']} {p['model']}{src} K={p['size']} s={p['seed']}")
            row = _run_one(
                p, gan, sets, labels, config, sources=sources, cache=cache, ckpt_sha=ckpt_sha
            )
            _append(runs_path, row)
            runs[_key(row)] = row
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    rows = [runs[_key(p)] for p in plan]
    ship = None
    model_path = None
    if st.ship is not None:
        study = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        model_path, ship = _ship(
            gan, sets, labels, config, out, study=study, progress=progress, log=log
        )

    results = {
        "format": FORMAT,
        "checkpoint": {
            "path": str(ckpt_path),
            "sha256": ckpt_sha,
            "epoch": gan.epoch,
            "data": {k: gan.data_meta.get(k) for k in ("source", "n_images", "shape", "sha256")},
        },
        "config": config.model_dump(mode="json"),
        "data": {
            "pool": len(pool),
            "test": len(test),
            "gan": len(gan_images),
            "image_seconds": images_seconds,
            "labels": {
                name: {
                    "seconds": lab["seconds"],
                    "cached": lab["cached"],
                    "failed": {k: int((~np.isfinite(v)).sum()) for k, v in lab["values"].items()},
                    "test_mean": _finite_stat(lab["values"]["test"], np.mean),
                    "test_std": _finite_stat(lab["values"]["test"], np.std),
                }
                for name, lab in labels.items()
            },
        },
        "curves": summarize(rows),
        "transfer_vs_scratch": transfer_vs_scratch(rows),
        "runs": rows,
        "ship": ship,
        "seconds": {
            "this_call": time.perf_counter() - start,
            "fits_total": float(sum(r["fit_seconds"] for r in rows)),
        },
    }
    json_path = out / "results.json"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(json_safe(results), indent=1, allow_nan=False) + "\n")
    figure = plot_learning_curves(results, out / "learning_curves.png")
    report = write_report(results, out / "report.md")
    return StudyResult(
        out, results, figure, report, json_path, model_path, time.perf_counter() - start
    )


def _finite_stat(v: np.ndarray, fn) -> float | None:
    v = v[np.isfinite(v)]
    return float(fn(v)) if len(v) else None


def _plan(config: SurrogateConfig) -> list[dict]:
    """Every (task, model, source, size, seed) the study runs, in order (sources first)."""
    st = config.study
    plan = []
    for task in st.tasks:
        for seed in range(st.seeds):
            for size in st.sizes:
                for model in st.models:
                    plan.append(
                        {
                            "task": task.name,
                            "model": model,
                            "source": None,
                            "size": size,
                            "seed": seed,
                        }
                    )
    for pair in st.cross:
        for seed in range(st.seeds):
            for size in st.sizes:
                for model in ("cross_frozen", "cross_finetune"):
                    plan.append(
                        {
                            "task": pair.target,
                            "model": model,
                            "source": pair.source,
                            "size": size,
                            "seed": seed,
                        }
                    )
    return plan


def _valid(values: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isfinite(values))


def _run_one(p, gan, sets, labels, config, *, sources, cache, ckpt_sha) -> dict:
    from mdesign.surrogates.models import make_surrogate, transfer_surrogate

    task = p["task"]
    vals = labels[task]["values"]
    idx = _subset(_valid(vals["pool"]), p["size"], p["seed"])
    target = {"task": task, **_task_spec(config, task)}
    if p["model"].startswith("cross_"):
        source = _source_model(
            p["source"], p["seed"], gan, sets, labels, config, sources, cache, ckpt_sha
        )
        model = transfer_surrogate(
            source,
            mode=p["model"].removeprefix("cross_"),
            config=config.network,
            pretrained=f"surrogate:{p['source']}",
        )
    else:
        model = make_surrogate(p["model"], gan=gan, config=config)
    kw = {} if p["model"] == "s2_gp" else {"ensemble_size": 1}
    model.fit(sets["pool"][idx], vals["pool"][idx], seed=p["seed"], target=target, **kw)
    row = dict(p)
    row["fit_seconds"] = model.fit_info.seconds
    row["fit"] = model.fit_info.members[0]
    row.update(_score(model, sets["test"], vals["test"]))
    if len(sets["gan"]):
        row.update(_score(model, sets["gan"], vals["gan"], prefix="gan_"))
    if p["model"] == "finetune" and p["size"] == max(config.study.sizes):
        # the source of cross-property transfer: keep it for the target tasks' runs
        save_surrogate(model, _source_path(cache, task, p["seed"], ckpt_sha))
        sources[(task, p["seed"])] = model
    return row


def _task_spec(config: SurrogateConfig, name: str) -> dict:
    task = next(t for t in config.study.tasks if t.name == name)
    return {"evaluator": task.evaluator, "params": dict(task.params)}


def _source_path(cache: Path, task: str, seed: int, ckpt_sha: str) -> Path:
    return cache / f"{task}_finetune_seed{seed}_{ckpt_sha[:12]}.pt"


def _source_model(task, seed, gan, sets, labels, config, sources, cache, ckpt_sha):
    """The fine-tuned regressor of ``task`` at the largest K (trained now if not cached)."""
    from mdesign.surrogates.models import make_surrogate

    if (task, seed) in sources:
        return sources[(task, seed)]
    path = _source_path(cache, task, seed, ckpt_sha)
    if path.is_file():
        model = load_surrogate(path)
    else:
        vals = labels[task]["values"]
        idx = _subset(_valid(vals["pool"]), max(config.study.sizes), seed)
        model = make_surrogate("finetune", gan=gan, config=config)
        model.fit(
            sets["pool"][idx],
            vals["pool"][idx],
            seed=seed,
            ensemble_size=1,
            target={"task": task, **_task_spec(config, task)},
        )
        save_surrogate(model, path)
    sources[(task, seed)] = model
    return model


def _ship(gan, sets, labels, config, out: Path, *, study: str, progress, log):
    """Train (or reuse), score and save the surrogate of the ``surrogate`` evaluator; screen
    the GAN samples with it."""
    from mdesign.evaluators import get_evaluator
    from mdesign.surrogates.models import make_surrogate
    from mdesign.surrogates.screening import screen

    sh = config.study.ship
    vals = labels[sh.task]["values"]
    idx = _subset(_valid(vals["pool"]), sh.size, 0)
    path = out / f"{sh.task}_{sh.model}.pt"
    # the study's digest in the target marks a model this very study trained: a rerun reuses it
    target = {"task": sh.task, **_task_spec(config, sh.task), "study": study}
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
        model = make_surrogate(sh.model, gan=gan, config=config)
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
    held = np.setdiff1d(_valid(vals["pool"]), idx)
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
    ok = _valid(y)
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


# ---------------------------------------------------------------------------------------------
# summaries


METRICS = ("mae", "rmse", "r2", "spearman", "gan_mae", "gan_r2", "fit_seconds")


def _label_of(row: dict) -> str:
    return f"{row['model']}<-{row['source']}" if row.get("source") else row["model"]


def summarize(rows: list[dict]) -> dict:
    """Means and standard deviations over seeds: ``{task: {model: {metric: {K: [m, s, n]}}}}``.

    Cross-property models are named ``cross_frozen<-SOURCE``.
    """
    groups: dict = {}
    for r in rows:
        groups.setdefault(r["task"], {}).setdefault(_label_of(r), {}).setdefault(
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
            .setdefault(_label_of(r), {})
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


COLORS = {
    "frozen": "tab:blue",
    "finetune": "tab:orange",
    "scratch": "tab:green",
    "s2_gp": "tab:red",
    "cross_frozen": "tab:purple",
    "cross_finetune": "tab:brown",
}


def plot_learning_curves(results: dict, path: str | os.PathLike) -> Path:
    """MAE and R² against K (mean and +-1 std over seeds), one row per task, as PNG."""
    from matplotlib.figure import Figure

    from mdesign.plotting import save_figure

    curves = results["curves"]
    tasks = list(curves)
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
    fig.tight_layout()
    return save_figure(fig, path)


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
