"""Design campaigns: BO over the GAN latent against random baselines, durable and resumable.

:func:`run_campaign` is the whole loop, free of any orchestrator: it proposes a batch, records
it in the :class:`~mdesign.optimization.store.EvaluationStore` as pending, hands it to an
``evaluate_many`` callable (sequential by default; the Prefect flow in ``flows/design.py`` maps
it over tasks, optionally on a Dask cluster), records each result as it completes, and repeats
until each method has its budget. With a ``confirm`` evaluator, each method's ``top_k`` designs
are then evaluated again by it, through the same ``evaluate_many`` and into the same store, so
the comparison of the methods can rest on the confirmed values (a cheap screening objective, or
a coarse setting of an expensive one, lets an optimiser exploit its errors: the confirmed values
show whether its lead survives). It ends with ``best.npz``, ``report.md`` and ``report.png``.

Methods, each with the same budget and seed (Yang et al. 2018 compare the same three):

* ``bo``: a Sobol initial design, then batches of ``q`` from qLogNEI (one objective) or
  qLogNEHVI (several), with outcome constraints (:mod:`mdesign.optimization.bo`);
* ``random``: latents drawn uniformly from the box (the paper's "GAN-sampled" designs);
* ``grf``: level-cut GRF images drawn like the GAN's training set (a GAN trained on GRF
  images);
* ``training``: random images of the GAN's training set (any GAN; ``auto`` in ``baselines``
  picks ``grf`` or ``training`` by what the GAN was trained on, :func:`resolve_baselines`).

Every random choice derives from ``(seed, method, batch)``, so a campaign's proposals do not
depend on whether or where it was interrupted. With ``fidelity`` (multi-fidelity BO), each design
carries the value of the evaluator parameter it is evaluated at: BO's mostly the cheap ``low``
(:func:`_choose_fidelities`, MF-GP-UCB's threshold rule), the baselines' and the confirmations'
the ``target``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mdesign.config import BOConfig, CampaignConfig, FidelityConfig, OutcomeConfig
from mdesign.errors import InputError
from mdesign.io import check_free_space
from mdesign.optimization import bo
from mdesign.optimization.cluster import check_dask_address
from mdesign.optimization.lock import campaign_lock
from mdesign.optimization.problem import VOLUME_FRACTION, evaluate_design, evaluator_for, load_space
from mdesign.optimization.report import write_report
from mdesign.optimization.results import CampaignSummary, MethodResult, top_designs
from mdesign.optimization.store import EvaluationRecord, EvaluationStore
from mdesign.runs import refuse_other_run

__all__ = [
    "CampaignSummary",
    "EvaluateMany",
    "campaign_context",
    "confirm_key",
    "evaluate_sequentially",
    "fidelity_costs",
    "prepare_campaign",
    "resolve_baselines",
    "run_campaign",
    "target_confirm",
]

METHODS = ("bo", "random", "grf", "training")
STORE_NAME = "evaluations.sqlite"
FIT_KEY = "bo_fit_"  # + batch: the hyperparameters of that batch's proposal (store meta)
CAMPAIGN_MIN_FREE = 64 << 20
"""Bytes a campaign folder's filesystem must have free at the start: the embedded Prefect
server's database (a few MB once migrated) and the store, with room to grow."""

# evaluate_many(context, designs, on_result): evaluates the designs (in any order, possibly in
# parallel) and calls on_result(index, result_dict) as each completes.
EvaluateMany = Callable[[dict[str, Any], list[dict[str, Any]], Callable[[int, dict], None]], None]


def evaluate_sequentially(
    context: dict[str, Any], designs: list[dict[str, Any]], on_result: Callable[[int, dict], None]
) -> None:
    """The default ``evaluate_many``: one design after another, in this process."""
    for i, design in enumerate(designs):
        on_result(i, evaluate_design(context, design))


def resolve_checkpoint(path: str, config_dir: Path | None) -> Path:
    """A relative checkpoint path is looked up beside the config file, then in the cwd."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [*([config_dir / p] if config_dir else []), p]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise InputError(f"generator.checkpoint: no such file {path}")


def _resolve_data(path: str, config_dir: Path | None) -> Path:
    """``generator.data``, beside the config file first, then from the working directory."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [*([config_dir / p] if config_dir else []), p]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise InputError(f"generator.data: no such file {path}")


def resolve_baselines(config: CampaignConfig, space) -> CampaignConfig:
    """``auto`` in ``baselines`` made concrete: ``grf`` for a GAN trained on ``mdesign grf``
    images (or a factory's space with ``grf(seed)``), ``training`` otherwise."""
    if "auto" not in config.baselines:
        return config
    grf = getattr(space, "trained_on_grf", callable(getattr(space, "grf", None)))
    pick = "grf" if grf else "training"
    out: list[str] = []
    for b in config.baselines:
        b = pick if b == "auto" else b
        if b not in out:
            out.append(b)
    return config.model_copy(update={"baselines": out})


def campaign_context(
    config: CampaignConfig,
    *,
    config_dir: Path | None = None,
    space_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The small JSON-able context every evaluation needs: how to build the design space and
    which outcomes to compute (objectives first, then constrained quantities)."""
    g = config.generator
    if space_spec is None and g.factory:
        space_spec = {"factory": g.factory, **g.factory_params}
    spec = space_spec or {
        "checkpoint": str(resolve_checkpoint(g.checkpoint, config_dir)),
        "latent_size": g.latent_size,
        "periodic": g.periodic,
        "fraction": g.fraction,
        "binarize": g.binarize,
        **({"data": str(_resolve_data(g.data, config_dir))} if g.data else {}),
    }
    outcomes = [
        {"evaluator": o.evaluator, "params": dict(o.params)}
        for o in [*config.objectives, *config.constraints]
    ]
    out = {"space": spec, "outcomes": outcomes}
    if config.fidelity is not None:
        out["fidelity"] = {
            "evaluator": config.fidelity_evaluator,
            "parameter": config.fidelity.parameter,
        }
    return out


def _seed(seed: int, method: str, batch: int) -> int:
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(METHODS.index(method), batch))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _method_result(records: list[EvaluationRecord], config: CampaignConfig) -> MethodResult:
    n_obj = len(config.objectives)
    goals = np.array([1.0 if o.goal == "maximize" else -1.0 for o in config.objectives])
    done = [r for r in records if r.status != "pending"]
    obj = np.full((len(done), n_obj), np.nan)
    feas = np.zeros(len(done), dtype=bool)
    for i, r in enumerate(done):
        # multi-fidelity: a method's values are its target-fidelity ones
        if r.status == "ok" and _is_target(r, config):
            obj[i] = np.asarray(r.outcomes[:n_obj]) * goals
            feas[i] = _feasible(r, config)
    return MethodResult(done, obj, feas)


def _feasible(record: EvaluationRecord, config: CampaignConfig) -> bool:
    if record.status != "ok":
        return False
    n_obj = len(config.objectives)
    for c, v in zip(config.constraints, record.outcomes[n_obj:], strict=True):
        if (c.min is not None and v < c.min) or (c.max is not None and v > c.max):
            return False
    return True


def _identity(config: CampaignConfig) -> dict[str, Any]:
    """What must not change between a campaign and its resumption (the budget may grow)."""
    d = config.model_dump(mode="json")
    d["bo"] = {k: v for k, v in d["bo"].items() if k != "budget"}
    d["generator"].pop("data", None)  # where the training set is now: not what the campaign is
    for key in ("dask", "retries", "top_k", "name", "confirm"):
        d.pop(key, None)
    if d.get("fidelity", 0) is None:  # stores from before the key existed have no entry
        d.pop("fidelity")
    # nor keys added since, at their defaults: a store from before them resumes
    later = (
        ("bo", BOConfig, ("warm_iterations",)),
        ("fidelity", FidelityConfig, ("pool_only", "screen")),
    )
    for section, model, keys in later:
        for k in keys:
            if d.get(section) and d[section].get(k) == model.model_fields[k].default:
                d[section].pop(k)
    return d


def prepare_campaign(
    config: CampaignConfig,
    out_dir: str | Path,
    *,
    config_dir: Path | None = None,
    space_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check everything a campaign needs before it starts; returns its evaluation context.

    Raises :class:`InputError` for a missing or unreadable checkpoint, a ``generator.factory``
    that fails or returns something other than a design space, an evaluator or parameter that
    does not exist, a ``dask.address`` that is malformed or not answering, or an ``out_dir``
    that is not a folder, holds a damaged store or a campaign with another configuration, so a
    flow never starts on bad input. Creates ``out_dir`` only when every check has passed.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory", param="out_dir")
    check_free_space(out, CAMPAIGN_MIN_FREE, what="a campaign", param="out_dir")
    if config.dask.address:
        check_dask_address(config.dask.address)
    context = campaign_context(config, config_dir=config_dir, space_spec=space_spec)
    try:
        space = load_space(context["space"])  # a bad checkpoint or factory fails here
    except InputError as exc:
        if exc.param is None or exc.param not in context["space"]:
            raise
        # a keyword of the design space is a key of the config's generator section
        raise InputError(exc.message, param=f"generator.{exc.param}") from None
    for spec in context["outcomes"]:
        if spec["evaluator"] != VOLUME_FRACTION:
            evaluator_for(spec)  # unknown names and bad parameters fail here
    if config.confirm is not None and config.confirm.evaluator != VOLUME_FRACTION:
        evaluator_for(config.confirm.model_dump())  # checked now, used at the end
    if config.fidelity is not None:
        _check_fidelity(config, context)
    config = resolve_baselines(config, space)
    if "grf" in config.baselines:
        if not callable(getattr(space, "grf", None)):
            raise InputError(
                "baselines: the design space has no grf(seed) method for the 'grf' baseline; "
                "remove 'grf' from baselines"
            )
        if getattr(space, "trained_on_grf", True) is False:
            raise InputError(
                "baselines: the GAN was not trained on `mdesign grf` images, so there is no "
                "matched GRF baseline; use 'training' (random training images) or 'auto'"
            )
        space.grf(0)  # the matched GRF parameters must be known
    if "training" in config.baselines:
        if not callable(getattr(space, "training", None)):
            raise InputError(
                "baselines: the design space has no training(index) method for the "
                "'training' baseline; remove it from baselines"
            )
        space.training(0)  # the training set must be found (generator.data if it moved)
    db = out / STORE_NAME
    if db.exists():
        with EvaluationStore(db) as store:  # a damaged store fails here
            previous = store.get_meta("identity")
        refuse_other_run(
            out,
            previous=previous,
            current=_identity(config),
            what="a campaign",
            remedy="use another folder (only bo.budget may change when resuming)",
        )
    out.mkdir(parents=True, exist_ok=True)
    return context


def _check_fidelity(config: CampaignConfig, context: dict[str, Any]) -> None:
    """The fidelity's evaluator is an outcome, and takes the parameter at both values."""
    from mdesign.optimization.problem import at_fidelity

    f, name = config.fidelity, config.fidelity_evaluator
    if name == VOLUME_FRACTION or name not in [o["evaluator"] for o in context["outcomes"]]:
        raise InputError(
            f"fidelity.evaluator: {name!r} is not an evaluator of the campaign's outcomes",
            param="fidelity.evaluator",
        )
    for value in (f.low, f.target):
        for spec in at_fidelity(context, value):
            if spec["evaluator"] == name:
                try:
                    evaluator_for(spec)
                except InputError as exc:
                    raise InputError(
                        f"{name} with {f.parameter}={value!r}: {exc.message}",
                        param="fidelity.parameter",
                    ) from None


def _is_target(record: EvaluationRecord, config: CampaignConfig) -> bool:
    """Whether a record was evaluated at the campaign's target (every record without
    ``fidelity``)."""
    f = config.fidelity
    return f is None or record.design.get("fidelity", f.target) == f.target


def fidelity_costs(
    records: list[EvaluationRecord], config: CampaignConfig
) -> dict[str, tuple[float, str]]:
    """Seconds per evaluation at each fidelity, ``{"low"|"target": (seconds, "given"|
    "measured")}``: the config's ``cost_low`` / ``cost_target``, else the mean over the
    store's successful evaluations at that fidelity (1.0 before there are any)."""
    f = config.fidelity
    out = {}
    for name, given in (("low", f.cost_low), ("target", f.cost_target)):
        if given is not None:
            out[name] = (float(given), "given")
            continue
        secs = [
            r.seconds
            for r in records
            if r.status == "ok"
            and r.seconds is not None
            and _is_target(r, config) == (name == "target")
        ]
        out[name] = (float(np.mean(secs)) if secs else 1.0, "measured")
    return out


def _fidelities(records: list[EvaluationRecord], config: CampaignConfig) -> torch.Tensor:
    """Each record's fidelity as the model sees it: 0 low, 1 target."""
    return torch.tensor([1.0 if _is_target(r, config) else 0.0 for r in records], dtype=bo.DTYPE)


def _choose_fidelities(
    config: CampaignConfig, store: EvaluationStore, ok: list[EvaluationRecord], low_std
) -> list[Any]:
    """The fidelity of each proposed design by MF-GP-UCB's threshold rule (Kandasamy et al.
    2016): low while the model is unsure of the design there, ``sigma_low >= gamma``; the
    first at the target after ``cost_target / cost_low`` low evaluations in a row."""
    f = config.fidelity
    costs = fidelity_costs(store.records(), config)
    c_low, c_target = costs["low"][0], costs["target"][0]
    y = {}
    for r in ok:
        y.setdefault(json.dumps(r.latent), {})[_is_target(r, config)] = r.outcomes[0]
    gaps = [abs(v[True] - v[False]) for v in y.values() if len(v) == 2]
    xi = max(gaps) if gaps else float(np.std([r.outcomes[0] for r in ok]))
    gamma = f.threshold_scale * math.sqrt(c_low / c_target) * xi
    out = [f.low if float(s) >= gamma else f.target for s in low_std]
    streak = 0
    for r in store.records("bo"):
        streak = 0 if _is_target(r, config) else streak + 1
    if streak >= c_target / c_low and out:
        out[0] = f.target
    return out


def _design_features(space, *, surface: bool = False):
    """Descriptors of each latent's decoded design, ``k x d -> k x c``: the phase-1 volume
    fraction (column 0) and, with ``surface``, the interface crossing rate in [0, 1] (the specific
    surface over its largest value: ``pi / 2`` for images, 2 for volumes).

    Known for ~1 ms a design before any evaluator runs (the fraction for nothing when it is a
    design variable of the space): BO drops candidates that break a volume-fraction
    constraint, and gives the GP the fraction (``bo.fraction_input``) or both
    (``bo.inputs: descriptors``) as inputs. NaN for a design that cannot be decoded.
    """
    from mdesign.descriptors import specific_surface

    def vf(Z: np.ndarray) -> np.ndarray:
        if getattr(space, "fraction_variable", False) and not surface:
            # the fraction is a design variable, cut exactly: known without decoding
            pixels = math.prod(space.image_shape)
            return (np.rint(space.fractions(Z) * pixels) / pixels)[:, None]
        images = space.decode(Z)
        f = (images == 1).reshape(len(images), -1).mean(1)
        if not surface:
            return f[:, None]
        top = np.pi / 2 if images.ndim == 3 else 2.0
        periodic = getattr(space, "periodic", True)
        return np.stack([f, specific_surface(images, phase=1, periodic=periodic) / top], 1)

    def features(X: torch.Tensor) -> torch.Tensor:
        Z = X.detach().cpu().numpy()
        out = np.full((len(Z), 2 if surface else 1), np.nan)
        for lo in range(0, len(Z), 256):
            try:
                out[lo : lo + 256] = vf(Z[lo : lo + 256])
            except Exception:  # a design the space cannot decode gets NaN, not the chunk
                for i in range(lo, min(lo + 256, len(Z))):
                    try:
                        out[i] = vf(Z[i : i + 1])[0]
                    except Exception:
                        pass
        return torch.as_tensor(out, dtype=X.dtype)

    return features


def _fraction_constraints(config: CampaignConfig) -> list[bo.Constraint]:
    """The volume-fraction constraints, on column 0 of :func:`_design_features`."""
    return [
        bo.Constraint(0, c.min, c.max) for c in config.constraints if c.evaluator == VOLUME_FRACTION
    ]


def _propose(
    method: str, batch: int, store: EvaluationStore, config: CampaignConfig, space, n_new: int
) -> list[dict[str, Any]]:
    seed = _seed(config.seed, method, batch)
    dim = space.dim
    if method == "random":
        rng = np.random.default_rng(seed)
        return [{"latent": x.tolist()} for x in rng.uniform(-1, 1, size=(n_new, dim))]
    if method == "grf":
        return [{"grf_seed": _seed(seed, "grf", i)} for i in range(n_new)]
    if method == "training":
        n = len(space.training_images()) if hasattr(space, "training_images") else 2**31 - 1
        rng = np.random.default_rng(seed)
        return [{"training_index": int(i)} for i in rng.integers(0, n, n_new)]
    # bo
    bounds = bo.box(dim)
    ok = store.records("bo", status="ok")
    descriptors = config.bo.inputs == "descriptors"
    features = _design_features(space, surface=descriptors)
    known = _fraction_constraints(config)
    fid = config.fidelity
    if batch == 0 or len(ok) < 2:
        # multi-fidelity: the Sobol points at the low fidelity, the first few also at the target
        n_sobol = n_new if fid is None else max(1, n_new - fid.initial_target)
        X = bo.initial_design(4 * n_sobol if known else n_sobol, bounds, seed=seed)
        if known:  # the first n Sobol points that meet the known constraints (then the rest)
            keep = bo.feasible_mask(features(X), known)
            X = torch.cat([X[keep], X[~keep]])[:n_sobol]
        if fid is None:
            return [{"latent": x.tolist()} for x in X]
        paired = X[: n_new - n_sobol]
        return [{"latent": x.tolist(), "fidelity": fid.low} for x in X] + [
            {"latent": x.tolist(), "fidelity": fid.target} for x in paired
        ]
    X = torch.tensor([r.latent for r in ok], dtype=bo.DTYPE)
    Y = torch.tensor([r.outcomes for r in ok], dtype=bo.DTYPE)
    # a fraction design variable is already an input of the GP: no need to add it again
    inputs = descriptors or (
        config.bo.fraction_input and not getattr(space, "fraction_variable", False)
    )
    n_obj = len(config.objectives)
    constraints = [bo.Constraint(n_obj + j, c.min, c.max) for j, c in enumerate(config.constraints)]
    goals = [1 if o.goal == "maximize" else -1 for o in config.objectives]
    # warm start: the previous batch's fit (kept in the store, so a resumed campaign proposes
    # what an uninterrupted one would)
    start = store.get_meta(f"{FIT_KEY}{batch - 1}")
    prop = bo.propose(
        X,
        Y,
        goals=goals,
        constraints=constraints,
        bounds=bounds,
        q=n_new,
        seed=seed,
        num_restarts=config.bo.num_restarts,
        raw_samples=config.bo.raw_samples,
        mc_samples=config.bo.mc_samples,
        ref_point=config.bo.ref_point,
        features=features if (known or inputs) else None,
        feature_constraints=known,
        feature_inputs=inputs,
        design_inputs=not descriptors,
        pool_size=config.bo.pool_size,
        fidelity=None if fid is None else _fidelities(ok, config),
        gradient=fid is None or not fid.pool_only,
        screen=0 if fid is None or not fid.pool_only else fid.screen,
        start=start,
        warm_iterations=config.bo.warm_iterations,
    )
    store.set_meta(f"{FIT_KEY}{batch}", bo.hyperparameters(prop.model))
    if fid is None:
        return [{"latent": x.clamp(-1, 1).tolist()} for x in prop.X]
    levels = _choose_fidelities(config, store, ok, prop.low_std)
    return [
        {"latent": x.clamp(-1, 1).tolist(), "fidelity": v}
        for x, v in zip(prop.X, levels, strict=True)
    ]


def run_campaign(
    config: CampaignConfig,
    out_dir: str | Path,
    *,
    config_dir: Path | None = None,
    evaluate_many: EvaluateMany | None = None,
    space_spec: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> CampaignSummary:
    """Run (or resume) a design campaign in ``out_dir``.

    Parameters
    ----------
    config : CampaignConfig
        The campaign; ``bo.budget`` evaluations for BO and for each baseline.
    out_dir : path-like
        Holds ``evaluations.sqlite`` (the durable store), ``evaluations.csv``, and at the end
        ``best.npz``, ``report.md``, ``report.png``. Rerunning on the same folder resumes: the
        completed evaluations are kept, an interrupted batch is finished, nothing is proposed
        again. A folder holding a campaign with another configuration, or in use by another
        running campaign (:func:`~mdesign.optimization.lock.campaign_lock`), is refused.
    config_dir : Path, optional
        Where the config file lives (relative checkpoint paths are resolved from there).
    evaluate_many : callable, optional
        How a batch is evaluated (see :data:`EvaluateMany`); sequential by default.
    space_spec : dict, optional
        Overrides the design space (see :func:`mdesign.optimization.problem.load_space`).
    progress : bool
        Show a progress bar per method.
    log : callable, optional
        Receives one line per batch.

    Returns
    -------
    CampaignSummary
    """
    log = log or (lambda msg: None)
    out = Path(out_dir)
    context = prepare_campaign(config, out, config_dir=config_dir, space_spec=space_spec)
    space = load_space(context["space"])
    config = target_confirm(resolve_baselines(config, space))
    evaluate_many = evaluate_many or evaluate_sequentially
    with (
        campaign_lock(out),
        EvaluationStore(out / STORE_NAME, feasible=lambda r: _feasible(r, config)) as store,
    ):
        store.set_meta("identity", _identity(config))
        store.set_meta("config", config.model_dump(mode="json"))
        methods = ["bo", *config.baselines]
        for method in methods:
            budget = config.bo.budget
            bar = tqdm(total=budget, desc=method, unit="eval", disable=not progress, leave=False)
            bar.update(min(store.count(method, done=True), budget))
            while store.count(method, done=True) < budget:
                pending = store.records(method, status="pending")
                if not pending:
                    done = store.count(method, done=True)
                    batch = store.next_batch(method)
                    if method == "bo":
                        size = config.bo.initial if batch == 0 else config.bo.batch_size
                        if batch == 0 and config.fidelity is not None:
                            size += config.fidelity.initial_target
                    else:
                        size = config.baseline_batch_size
                    size = min(size, budget - done)
                    designs = _propose(method, batch, store, config, space, size)
                    if method != "bo" and config.fidelity is not None:
                        designs = [{**d, "fidelity": config.fidelity.target} for d in designs]
                    store.add_pending(method, batch, designs)
                    pending = store.records(method, status="pending")
                else:
                    log(f"{method}: resuming {len(pending)} pending evaluation(s)")

                def on_result(i: int, result: dict, pending=pending, bar=bar) -> None:
                    store.complete(
                        pending[i].id,
                        outcomes=result["outcomes"],
                        error=result["error"],
                        seconds=result["seconds"],
                    )
                    bar.update(1)

                evaluate_many(context, [p.design for p in pending], on_result)
                left = store.records(method, status="pending")
                if left:
                    # an orchestrator that lost results must not loop forever on them
                    for p in left:
                        store.complete(
                            p.id,
                            outcomes=None,
                            seconds=0.0,
                            error="no result returned by the executor",
                        )
                res = _method_result(store.records(method), config)
                best = res.best_so_far()
                log(
                    f"{method}: {len(res.records)}/{budget} evaluated, best "
                    f"{_fmt_best(best[-1] if len(best) else math.nan, config)}"
                )
            bar.close()
        results = {m: _method_result(store.records(m), config) for m in methods}
        store.write_csv()
        confirmed, tops, cost = None, None, None
        if config.fidelity is not None:
            start = store.get_meta(f"{FIT_KEY}{store.next_batch('bo') - 1}")
            tops = _confirm_tops(config, results, space, start=start)
        if config.confirm is not None:
            confirmed = _confirm(
                config,
                store,
                context,
                results,
                evaluate_many,
                progress=progress,
                log=log,
                tops=tops,
            )
        if config.fidelity is not None:
            cost = _cost_table(config, store, results, confirmed)
    return write_report(
        config, out, results, space=space, confirmed=confirmed, log=log, tops=tops, cost=cost
    )


def target_confirm(config: CampaignConfig) -> CampaignConfig:
    """With ``fidelity`` and no ``confirm``: confirmed by the first objective at the target."""
    f = config.fidelity
    if f is None or config.confirm is not None:
        return config
    o = config.objectives[0]
    confirm = OutcomeConfig(
        evaluator=o.evaluator,
        params={**o.params, f.parameter: f.target}
        if o.evaluator == config.fidelity_evaluator
        else o.params,
        label=f"{o.name} ({f.parameter} {f.target})",
    )
    return config.model_copy(update={"confirm": confirm})


def _confirm_tops(
    config: CampaignConfig, results: dict[str, MethodResult], space, *, start=None
) -> dict[str, list[int]]:
    """Each method's designs to confirm; BO's by the multi-fidelity model's mean at the target
    (most were evaluated at the low fidelity only), one record per distinct design."""
    tops = {m: top_designs(res, config.top_k, False) for m, res in results.items()}
    res = results["bo"]
    idx = [
        i
        for i, r in enumerate(res.records)
        if r.status == "ok" and r.latent and _feasible(r, config)
    ]
    if len(idx) < 2:
        return tops
    recs = [res.records[i] for i in idx]
    mean = bo.target_mean(
        torch.tensor([r.latent for r in recs], dtype=bo.DTYPE),
        torch.tensor([r.outcomes for r in recs], dtype=bo.DTYPE),
        _fidelities(recs, config),
        bo.box(space.dim),
        seed=_seed(config.seed, "bo", 10**6),
        start=start,  # the last proposal's fit
        warm_iterations=config.bo.warm_iterations,
    )
    goal = 1.0 if config.objectives[0].goal == "maximize" else -1.0
    chosen: dict[str, int] = {}
    for j in np.argsort(-goal * mean.numpy(), kind="stable"):
        key = json.dumps(recs[j].latent)
        if key not in chosen and len(chosen) < config.top_k:
            chosen[key] = idx[j]
    tops["bo"] = list(chosen.values())
    return tops


def _cost_table(
    config: CampaignConfig,
    store: EvaluationStore,
    results: dict[str, MethodResult],
    confirmed: dict[int, tuple] | None,
) -> dict[str, Any]:
    """Evaluations and seconds per method and fidelity, the confirmations', and the costs
    per evaluation the threshold rule used."""
    table: dict[str, Any] = {}
    for m, res in results.items():
        row = {"low": [0, 0.0], "target": [0, 0.0]}
        for r in res.records:
            cell = row["target" if _is_target(r, config) else "low"]
            cell[0] += 1
            cell[1] += r.seconds or 0.0
        table[m] = {k: tuple(v) for k, v in row.items()}
    conf = list((confirmed or {}).values())
    table["confirm"] = (len(conf), float(sum(c[2] or 0.0 for c in conf)))
    table["per_evaluation"] = fidelity_costs(store.records(), config)
    return table


def confirm_key(config: CampaignConfig) -> str:
    """What identifies a campaign's confirming evaluator in the store (evaluator and
    parameters, not its label)."""
    spec = {"evaluator": config.confirm.evaluator, "params": dict(config.confirm.params)}
    return json.dumps(spec, sort_keys=True)


def _confirm(
    config: CampaignConfig,
    store: EvaluationStore,
    context: dict[str, Any],
    results: dict[str, MethodResult],
    evaluate_many: EvaluateMany,
    *,
    progress: bool,
    log: Callable[[str], None],
    tops: dict[str, list[int]] | None = None,
) -> dict[int, tuple[float, str, float]]:
    """Evaluate every method's best designs (``top_k``, or the Pareto set) with ``confirm``.

    Each value is stored as it completes, so an interrupted confirmation resumes where it
    stopped, and a finished one is not repeated; a design that fails costs only itself.
    Returns the store's confirmations, ``{id: (value, error, seconds)}``.
    """
    key = confirm_key(config)
    multi = len(config.objectives) > 1
    tops = [
        res.records[i]
        for m, res in results.items()
        for i in (tops[m] if tops else top_designs(res, config.top_k, multi))
    ]
    done = store.confirmations(key)
    todo = [r for r in tops if r.id not in done]
    if todo:
        log(f"confirm: {len(todo)} design(s) with {config.confirm.evaluator}")
        ctx = {"space": context["space"], "outcomes": [json.loads(key)]}
        bar = tqdm(total=len(todo), desc="confirm", unit="eval", disable=not progress, leave=False)

        def on_result(i: int, result: dict) -> None:
            value = result["outcomes"][0] if result["outcomes"] else None
            store.add_confirmation(
                todo[i].id, key, value=value, error=result["error"], seconds=result["seconds"]
            )
            if result["error"]:
                log(f"confirm: design {todo[i].id} failed: {result['error']}")
            bar.update(1)

        evaluate_many(ctx, [r.design for r in todo], on_result)
        bar.close()
        done = store.confirmations(key)
    return done


def _fmt_best(v: float, config: CampaignConfig) -> str:
    if not np.isfinite(v):
        return "(no feasible design yet)"
    sign = 1 if config.objectives[0].goal == "maximize" else -1
    return f"{config.objectives[0].name} = {sign * v:.6g}"
