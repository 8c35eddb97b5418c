"""Batch Bayesian optimisation with BoTorch: the proposal step of a design campaign.

Outcomes ``Y`` (``n x m``) hold the objectives first, then the constrained quantities. One
:class:`~botorch.models.SingleTaskGP` models all of them (independent outputs, inputs normalised
to the unit cube, outcomes standardised, float64). A single objective is proposed by
:class:`~botorch.acquisition.logei.qLogNoisyExpectedImprovement`, two or more by
:class:`~botorch.acquisition.multi_objective.logei.qLogNoisyExpectedHypervolumeImprovement`;
outcome constraints ``lo <= y_j <= hi`` enter both through BoTorch's constrained acquisition
(a sigmoid feasibility weight on the posterior samples). With observations at two fidelities
the model is a :class:`~botorch.models.SingleTaskMultiFidelityGP` and the acquisition is taken at
the target fidelity.

Determinism: every random choice (Sobol scrambling, QMC base samples, restart selection, the
fit's retries) is seeded from the ``seed`` argument; global torch RNG state is forked and
restored, so the same seed gives the same proposals on the CPU and nothing leaks out. The
hypervolume acquisition runs in BoTorch's pure-PyTorch implementation, never its JIT-compiled
kernel (:func:`_reference_hypervolume_kernel` says why).

References
----------
Balandat et al., "BoTorch: A framework for efficient Monte-Carlo Bayesian optimization",
NeurIPS 2020. Ament et al., "Unexpected improvements to expected improvement for Bayesian
optimization", NeurIPS 2023 (the LogEI family). Daulton et al., "Parallel Bayesian optimization
of multiple noisy objectives with expected hypervolume improvement", NeurIPS 2021. Kandasamy et
al., "Gaussian process bandit optimisation with multi-fidelity evaluations", NeurIPS 2016.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from botorch.acquisition.fixed_feature import FixedFeatureAcquisitionFunction
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.multi_objective import logei as _mo_logei
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import WeightedMCMultiOutputObjective
from botorch.acquisition.objective import GenericMCObjective
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP, SingleTaskMultiFidelityGP
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.optim import optimize_acqf, optimize_acqf_discrete
from botorch.sampling import SobolQMCNormalSampler
from botorch.utils.multi_objective.hypervolume import Hypervolume
from botorch.utils.multi_objective.pareto import is_non_dominated
from botorch.utils.sampling import draw_sobol_samples
from gpytorch.mlls import ExactMarginalLogLikelihood

from mdesign.config import BO_DEFAULTS
from mdesign.device import single_thread

__all__ = [
    "Constraint",
    "Proposal",
    "box",
    "feasible_mask",
    "fit_model",
    "hyperparameters",
    "hypervolume",
    "infer_ref_point",
    "initial_design",
    "pareto_mask",
    "propose",
    "target_mean",
]

DTYPE = torch.float64


@dataclass(frozen=True)
class Constraint:
    """``lower <= Y[:, column] <= upper``; either bound may be None."""

    column: int
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True)
class Proposal:
    """A proposed batch.

    Attributes
    ----------
    X : Tensor, ``q x d`` (float64)
        The designs, inside the bounds.
    acq_value : float
        The acquisition value of the batch (log scale).
    model : SingleTaskGP
        The fitted model (for diagnostics).
    low_std : Tensor, ``q``, optional
        With ``fidelity``: the model's posterior standard deviation of the first outcome at the
        low fidelity at each design (the outcome's units), which the threshold rule reads.
    """

    X: torch.Tensor
    acq_value: float
    model: SingleTaskGP
    low_std: torch.Tensor | None = None


def box(dim: int, *, dtype: torch.dtype = DTYPE) -> torch.Tensor:
    """The latent box ``[-1, 1]^d`` as BoTorch bounds, ``2 x d``."""
    return torch.stack([-torch.ones(dim, dtype=dtype), torch.ones(dim, dtype=dtype)])


def initial_design(n: int, bounds: torch.Tensor, *, seed: int) -> torch.Tensor:
    """A scrambled Sobol design of ``n`` points in ``bounds`` (``2 x d``), ``n x d``."""
    return draw_sobol_samples(bounds=bounds.to(DTYPE), n=n, q=1, seed=seed).squeeze(1)


def fit_model(
    X: torch.Tensor,
    Y: torch.Tensor,
    bounds: torch.Tensor,
    *,
    fidelity_column: int | None = None,
    start: dict[str, list] | None = None,
    max_iterations: int | None = None,
) -> SingleTaskGP:
    """A SingleTaskGP on ``X`` (``n x d``) and ``Y`` (``n x m``) fitted by maximum likelihood.

    Inputs are normalised with the known ``bounds`` (not the data's range), outcomes
    standardised; everything in float64. With ``fidelity_column``, that column of ``X`` is a
    fidelity in [0, 1] (1 the target) and the model is BoTorch's
    :class:`~botorch.models.SingleTaskMultiFidelityGP` (a kernel over the design inputs times a
    linear-truncated kernel over the fidelity, Wu et al. 2019). With ``start``
    (:func:`hyperparameters` of an earlier fit of the same kind of model), the fit starts from
    those values instead of the defaults (a warm start); values whose name or shape the model
    lacks are ignored; ``max_iterations`` then caps the fit's L-BFGS iterations (None: run to
    BoTorch's convergence criteria).
    """
    X, Y = X.to(DTYPE), Y.to(DTYPE)
    transforms = {
        "input_transform": Normalize(d=X.shape[-1], bounds=bounds.to(DTYPE)),
        "outcome_transform": Standardize(m=Y.shape[-1]),
    }
    if fidelity_column is None:
        model = SingleTaskGP(X, Y, **transforms)
    else:
        model = SingleTaskMultiFidelityGP(X, Y, data_fidelities=[fidelity_column], **transforms)
    if start:  # warm start: the hyperparameters of an earlier fit of the same model
        own = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in start.items():
                v = torch.as_tensor(value, dtype=DTYPE)
                if name in own and own[name].shape == v.shape:
                    own[name].copy_(v)
    cap = {"options": {"maxiter": max_iterations}} if start and max_iterations else {}
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model), optimizer_kwargs=cap)
    return model


def hyperparameters(model: SingleTaskGP) -> dict[str, list]:
    """A fitted model's hyperparameters (raw, as lists): ``start`` of a later :func:`fit_model`."""
    return {name: p.detach().cpu().tolist() for name, p in model.named_parameters()}


def feasible_mask(Y: torch.Tensor, constraints: Sequence[Constraint]) -> torch.Tensor:
    """Which rows of ``Y`` meet every constraint, ``n`` bool."""
    ok = torch.ones(Y.shape[0], dtype=torch.bool, device=Y.device)
    for c in constraints:
        if c.lower is not None:
            ok &= Y[:, c.column] >= c.lower
        if c.upper is not None:
            ok &= Y[:, c.column] <= c.upper
    return ok


def _constraint_callables(constraints: Sequence[Constraint]):
    """BoTorch's convention: a callable of samples ``... x q x m`` that is <= 0 when feasible."""
    out = []
    for c in constraints:
        if c.lower is not None:
            out.append(lambda Z, j=c.column, lo=c.lower: lo - Z[..., j])
        if c.upper is not None:
            out.append(lambda Z, j=c.column, hi=c.upper: Z[..., j] - hi)
    return out


def pareto_mask(objectives: torch.Tensor) -> torch.Tensor:
    """Non-dominated rows of ``objectives`` (``n x k``, larger is better)."""
    return is_non_dominated(objectives.to(DTYPE), maximize=True, deduplicate=False)


def infer_ref_point(objectives: torch.Tensor) -> torch.Tensor:
    """A reference point slightly worse than the worst observed value of each objective.

    ``objectives`` is ``n x k`` in the maximisation orientation; the point is the per-objective
    minimum less 10% of the observed range (or of the magnitude when the range is zero).
    """
    lo, hi = objectives.min(0).values, objectives.max(0).values
    span = torch.where(hi > lo, hi - lo, objectives.abs().max(0).values.clamp_min(1e-6))
    return lo - 0.1 * span


def hypervolume(objectives: torch.Tensor, ref_point: torch.Tensor) -> float:
    """Hypervolume dominated by ``objectives`` (``n x k``, maximised) above ``ref_point``."""
    above = objectives[(objectives > ref_point).all(-1)]
    if above.shape[0] == 0:
        return 0.0
    front = above[pareto_mask(above)]
    return float(Hypervolume(ref_point.to(DTYPE)).compute(front.to(DTYPE)))


@contextmanager
def _reference_hypervolume_kernel() -> Iterator[None]:
    """Inside the block, BoTorch's qLogNEHVI neither compiles nor uses its fused C++ kernel.

    BoTorch 0.18 JIT-compiles that kernel (``torch.utils.cpp_extension.load``, ``-march=native``,
    into ``~/.cache/torch_extensions``) the first time the acquisition is built. The build holds a
    lock file there; a process killed while it holds it (Ctrl-C, SIGKILL, a CI timeout) leaves the
    file, and every later build in any process then waits for it forever, silently. That hung
    this project's CI. The compile also needs a C++ toolchain and slows the first proposal, and a
    ``-march=native`` library in a shared home directory can crash another machine. So proposals
    always use BoTorch's pure-PyTorch implementation, which proposes the same batch (to 1e-14) as
    the kernel at a modest multiple of its time (figures on the docs' performance page).
    BoTorch's module state is restored on exit, so the caller's own use of BoTorch is
    untouched.
    """
    names = ("_load_attempted", "_C")
    if not all(hasattr(_mo_logei, n) for n in names):  # a BoTorch without the kernel
        yield
        return
    saved = {n: getattr(_mo_logei, n) for n in names}
    _mo_logei._load_attempted, _mo_logei._C = True, None
    try:
        yield
    finally:
        for n, v in saved.items():
            setattr(_mo_logei, n, v)


def propose(
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    goals: Sequence[int],
    constraints: Sequence[Constraint] = (),
    bounds: torch.Tensor,
    q: int,
    seed: int,
    num_restarts: int = BO_DEFAULTS.num_restarts,
    raw_samples: int = BO_DEFAULTS.raw_samples,
    mc_samples: int = BO_DEFAULTS.mc_samples,
    ref_point: Sequence[float] | torch.Tensor | None = None,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    feature_constraints: Sequence[Constraint] = (),
    feature_inputs: bool = BO_DEFAULTS.fraction_input,
    design_inputs: bool = True,
    pool_size: int = BO_DEFAULTS.pool_size,
    fidelity: torch.Tensor | None = None,
    gradient: bool = True,
    start: dict[str, list] | None = None,
    warm_iterations: int = BO_DEFAULTS.warm_iterations,
    screen: int = 0,
) -> Proposal:
    """Propose the next ``q`` designs from the observations.

    Parameters
    ----------
    X : Tensor, ``n x d``
        Evaluated designs (successful ones only).
    Y : Tensor, ``n x m``
        Their outcomes: ``len(goals)`` objectives first, then any constrained quantities.
    goals : sequence of +1 / -1
        +1 to maximise, -1 to minimise each objective column.
    constraints : sequence of Constraint
        Outcome constraints on columns of ``Y``.
    bounds : Tensor, ``2 x d``
        The search box.
    q : int
        Batch size.
    seed : int
        Seeds everything random in the fit and the acquisition optimisation.
    num_restarts, raw_samples, mc_samples
        Acquisition optimisation settings (:class:`mdesign.config.BOConfig`).
    ref_point : sequence of float, optional
        Multi-objective reference point in the objectives' own units (it is flipped for
        minimised objectives); inferred from the observations when omitted.
    features : callable, optional
        Known, cheap properties of a design: maps latents ``k x d`` to ``k x c`` values in
        [0, 1], for example the volume fraction of the decoded image (~1 ms a design); NaN for
        a design that has none (it cannot be decoded), which is then never chosen.
    feature_constraints : sequence of Constraint
        Constraints on columns of ``features(X)``: candidates that break them are dropped
        before the acquisition chooses, so no evaluation is spent on a design they reject.
    feature_inputs : bool
        Give the GP the features as extra inputs (``d + c`` of them). A property that depends
        mostly on, say, the volume fraction is then learnt from a few dozen designs where a GP
        on the 16 latents alone cannot (on the quickstart's conductivity, the test correlation
        of 30-70 designs' GP rose from 0.27-0.29 to 0.89-0.90). The acquisition is then
        maximised over the candidate pool only (the features are not differentiable).
    design_inputs : bool
        With feature inputs, give the GP the design variables too (``d + c`` inputs); False
        gives it the ``c`` features only. A property that follows a few descriptors of the
        decoded design is learnt far better from those alone than from them beside 17 latents
        whose effect on it is spread thin (the latents then only generate candidates).
    pool_size : int
        The batch is chosen by the acquisition (greedily, :func:`optimize_acqf_discrete`) from
        a pool of the gradient-optimised candidates (without feature inputs), ``pool_size``
        Sobol points and as many Gaussian perturbations (several scales) of the best feasible
        observations. The local part refines good designs, which gradient ascent from random
        restarts rarely does in 16 dimensions within a few dozen evaluations
        (``bench/bench_optimization.py``). 0 keeps the gradient-optimised candidates only (and
        turns the feature inputs off).
    fidelity : Tensor, ``n``, optional
        Each observation's fidelity in [0, 1] (0 the low, 1 the target): the model is then a
        :class:`~botorch.models.SingleTaskMultiFidelityGP` with the fidelity as its last
        input, the acquisition is taken at the target fidelity (the fidelity input fixed at 1,
        :class:`~botorch.acquisition.FixedFeatureAcquisitionFunction`), and the proposal
        carries each design's posterior standard deviation at the low fidelity
        (``low_std``), from which the campaign picks the fidelity it is evaluated at.
    gradient : bool
        Add the acquisition's gradient-optimised candidates (:func:`optimize_acqf`, from
        ``num_restarts`` starts among ``raw_samples``) to the pool; False chooses from the pool
        alone (``pool_size > 0``), which costs a fraction of the CPU.
    start : dict, optional
        Hyperparameters to start the model's fit from (:func:`hyperparameters` of an earlier
        proposal's model on fewer observations): the fit then converges in a fraction of the
        iterations, to the same likelihood where the optimum has not moved.
    warm_iterations : int
        With ``start``, at most this many L-BFGS iterations of the fit.
    screen : int
        With ``screen > 0``, the batch's designs after the first are chosen among the
        ``screen`` designs of the pool with the best acquisition value of their own (the first
        is the best of the whole pool either way): the greedy batch then evaluates the
        acquisition over the pool about once instead of ``q`` times.

    Returns
    -------
    Proposal
    """
    X, Y = X.to(DTYPE), Y.to(DTYPE)
    n_obj = len(goals)
    signs = torch.tensor([float(g) for g in goals], dtype=DTYPE)
    # feature inputs need the candidate pool: the features are not differentiable
    augment = features is not None and feature_inputs and pool_size > 0

    only = augment and not design_inputs

    def inputs(Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        F = None if features is None else features(Z).to(DTYPE).reshape(len(Z), -1)
        if not augment:
            return Z, F
        return (F if only else torch.cat([Z, F], dim=1)), F

    X_in, F_X = inputs(X)
    model_bounds = bounds.to(DTYPE)
    if augment:
        c = F_X.shape[1]
        unit = torch.tensor([[0.0] * c, [1.0] * c], dtype=DTYPE)
        model_bounds = unit if only else torch.cat([model_bounds, unit], dim=1)
    with (
        torch.random.fork_rng(),
        single_thread(),
        _reference_hypervolume_kernel(),
        warnings.catch_warnings(),
    ):
        # linear_operator trips torch's notice about sparse invariant checks on every fit:
        # noise for a user, nothing to act on
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly")
        # nor is the jitter a near-singular kernel matrix gets (designs that are near
        # duplicates in the GP's inputs, as many are in two descriptors)
        warnings.filterwarnings("ignore", message=r"A not p\.d\., added jitter")
        torch.manual_seed(seed)
        fid_col = None
        X_fit, X_base = X_in, X_in
        if fidelity is not None:
            fid_col = X_in.shape[1]
            s = fidelity.to(DTYPE).reshape(-1, 1)
            X_fit, X_base = torch.cat([X_in, s], 1), torch.cat([X_in, torch.ones_like(s)], 1)
            unit = torch.tensor([[0.0], [1.0]], dtype=DTYPE)
            model_bounds = torch.cat([model_bounds, unit], dim=1)
        model = fit_model(
            X_fit,
            Y,
            model_bounds,
            fidelity_column=fid_col,
            start=start,
            max_iterations=warm_iterations,
        )
        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed)
        cons = _constraint_callables(constraints) or None
        if n_obj == 1:
            objective = GenericMCObjective(lambda Z, X=None, s=float(signs[0]): s * Z[..., 0])
            acq = qLogNoisyExpectedImprovement(
                model=model,
                X_baseline=X_base,
                sampler=sampler,
                objective=objective,
                constraints=cons,
                prune_baseline=True,
            )
        else:
            objective = WeightedMCMultiOutputObjective(weights=signs, outcomes=list(range(n_obj)))
            obj_vals = Y[:, :n_obj] * signs
            if ref_point is None:
                feas = feasible_mask(Y, constraints)
                ref = infer_ref_point(obj_vals[feas] if feas.any() else obj_vals)
            else:
                ref = torch.as_tensor(ref_point, dtype=DTYPE) * signs
            acq = qLogNoisyExpectedHypervolumeImprovement(
                model=model,
                ref_point=ref,
                X_baseline=X_base,
                sampler=sampler,
                objective=objective,
                constraints=cons,
                prune_baseline=True,
            )
        if fid_col is not None:  # the acquisition at the target fidelity
            acq = FixedFeatureAcquisitionFunction(
                acq, d=fid_col + 1, columns=[fid_col], values=[1.0]
            )
        candidates = torch.empty(0, X.shape[1], dtype=DTYPE)
        value = torch.tensor(-torch.inf, dtype=DTYPE)
        if (gradient or pool_size == 0) and not augment:
            candidates, value = optimize_acqf(
                acq_function=acq,
                bounds=bounds.to(DTYPE),
                q=q,
                num_restarts=num_restarts,
                raw_samples=raw_samples,
                options={"seed": seed, "batch_limit": 8, "maxiter": 200},
                sequential=n_obj > 1,
            )
            candidates = candidates.detach()
        if pool_size > 0:
            pool = torch.cat(
                [candidates, _local_pool(X, Y, goals, constraints, bounds, pool_size, seed)]
            )
            pool_in, F = inputs(pool)
            if F is not None:  # a design without features (it failed to decode) is never chosen
                known = torch.isfinite(F).all(1)
                if int(known.sum()) >= q:
                    pool, pool_in, F = pool[known], pool_in[known], F[known]
            if F is not None and feature_constraints:
                keep = feasible_mask(F, feature_constraints)
                if int(keep.sum()) >= q:  # else the GP's constraint model has to do
                    pool, pool_in = pool[keep], pool_in[keep]
            if only:  # designs with the same features are one choice for the GP
                pool_in, first = _unique_rows(pool_in)
                pool = pool[first]
            choices = pool_in
            if 0 < screen < len(pool_in) and q > 1:
                with torch.no_grad():
                    own = torch.cat([acq(c.unsqueeze(1)) for c in pool_in.split(512)])
                keep = torch.topk(own, min(max(screen, q), len(own))).indices
                choices = pool_in[keep.sort().values]
            chosen, value = optimize_acqf_discrete(acq, q=min(q, len(pool)), choices=choices)
            # the chosen rows of the pool, back in latent coordinates
            rows = [int(torch.nonzero((pool_in == c).all(1))[0, 0]) for c in chosen]
            candidates = pool[rows]
        low_std = None
        if fid_col is not None:
            low_std = _std_at(model, inputs(candidates)[0], 0.0)
    value = value.max() if value.ndim else value
    return Proposal(X=candidates.detach(), acq_value=float(value), model=model, low_std=low_std)


def _std_at(model, X_in: torch.Tensor, fidelity: float) -> torch.Tensor:
    """Posterior standard deviation of the first outcome at ``fidelity``, ``n``."""
    s = torch.full((len(X_in), 1), fidelity, dtype=DTYPE)
    with torch.no_grad():
        post = model.posterior(torch.cat([X_in.to(DTYPE), s], 1))
    return post.variance.reshape(len(X_in), -1)[:, 0].clamp_min(0).sqrt()


def target_mean(
    X: torch.Tensor,
    Y: torch.Tensor,
    fidelity: torch.Tensor,
    bounds: torch.Tensor,
    *,
    seed: int,
    start: dict[str, list] | None = None,
    warm_iterations: int = BO_DEFAULTS.warm_iterations,
) -> torch.Tensor:
    """The multi-fidelity model's posterior mean of the first outcome at the target fidelity.

    Parameters
    ----------
    X : Tensor, ``n x d``
        Designs (the model's inputs besides the fidelity).
    Y : Tensor, ``n x m``
        Their outcomes, each at its own fidelity.
    fidelity : Tensor, ``n``
        Each observation's fidelity in [0, 1] (1 the target).
    bounds : Tensor, ``2 x d``
    start : dict, optional
    warm_iterations : int
        A warm start of the fit and its iterations then (see :func:`propose`).

    Returns
    -------
    Tensor, ``n``
        The mean at ``(X, 1)``: how a design ranks at the target when it was evaluated at
        the low fidelity only.
    """
    X, Y = X.to(DTYPE), Y.to(DTYPE)
    unit = torch.tensor([[0.0], [1.0]], dtype=DTYPE)
    with torch.random.fork_rng(), single_thread(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly")
        warnings.filterwarnings("ignore", message=r"A not p\.d\., added jitter")
        torch.manual_seed(seed)
        X_fit = torch.cat([X, fidelity.to(DTYPE).reshape(-1, 1)], 1)
        model = fit_model(
            X_fit,
            Y,
            torch.cat([bounds.to(DTYPE), unit], 1),
            fidelity_column=X.shape[1],
            start=start,
            max_iterations=warm_iterations,
        )
        with torch.no_grad():
            post = model.posterior(torch.cat([X, torch.ones(len(X), 1, dtype=DTYPE)], 1))
    return post.mean.reshape(len(X), -1)[:, 0]


def _unique_rows(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of ``A`` in order of first appearance, and their indices."""
    _, first = np.unique(A.detach().cpu().numpy(), axis=0, return_index=True)
    first = torch.from_numpy(np.sort(first))
    return A[first], first


def _local_pool(X, Y, goals, constraints, bounds, size: int, seed: int) -> torch.Tensor:
    """Sobol points in the box and perturbations of the best feasible designs (``2 size x d``)."""
    gen = torch.Generator().manual_seed(seed)
    sobol = draw_sobol_samples(bounds=bounds, n=size, q=1, seed=seed).squeeze(1)
    ok = feasible_mask(Y, constraints)
    score = Y[:, 0] * float(goals[0])
    order = torch.argsort(torch.where(ok, score, -torch.inf), descending=True)
    top = X[order[: min(5, len(X))]]
    centers = top[torch.randint(len(top), (size,), generator=gen)]
    # a range of step sizes: fine steps refine the incumbent, coarse ones explore around it
    scale = torch.tensor([0.05, 0.1, 0.2, 0.4], dtype=DTYPE)[
        torch.randint(4, (size, 1), generator=gen)
    ]
    span = (bounds[1] - bounds[0]) / 2
    local = centers + scale * span * torch.randn(centers.shape, generator=gen, dtype=DTYPE)
    return torch.cat([sobol, torch.maximum(torch.minimum(local, bounds[1]), bounds[0])])
