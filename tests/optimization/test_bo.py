import numpy as np
import pytest
import torch

from mdesign.optimization import bo


def _f(X):
    """Objective (max at x = 0.3) and a constrained quantity x0."""
    return torch.cat([-((X - 0.3) ** 2).sum(-1, keepdim=True), X[:, :1]], 1)


def test_initial_design_is_seeded_and_in_the_box():
    b = bo.box(5)
    X = bo.initial_design(16, b, seed=3)
    assert X.shape == (16, 5) and X.dtype == torch.float64
    assert (X >= -1).all() and (X <= 1).all()
    assert torch.equal(X, bo.initial_design(16, b, seed=3))
    assert not torch.equal(X, bo.initial_design(16, b, seed=4))


def test_same_seed_same_proposals():
    b = bo.box(4)
    X = bo.initial_design(8, b, seed=0)
    Y = _f(X)[:, :1]
    p1 = bo.propose(X, Y, goals=[1], bounds=b, q=3, seed=11, num_restarts=2, raw_samples=32)
    p2 = bo.propose(X, Y, goals=[1], bounds=b, q=3, seed=11, num_restarts=2, raw_samples=32)
    assert p1.X.shape == (3, 4) and torch.equal(p1.X, p2.X)
    assert (p1.X.abs() <= 1).all()
    # global RNG state is left as it was
    state = torch.random.get_rng_state()
    bo.propose(X, Y, goals=[1], bounds=b, q=1, seed=12, num_restarts=2, raw_samples=32)
    assert torch.equal(state, torch.random.get_rng_state())


def test_bo_beats_random_with_the_same_budget():
    b = bo.box(4)
    X = bo.initial_design(8, b, seed=1)
    Y = _f(X)[:, :1]
    for it in range(4):
        p = bo.propose(X, Y, goals=[1], bounds=b, q=3, seed=it, num_restarts=4, raw_samples=64)
        X, Y = torch.cat([X, p.X]), torch.cat([Y, _f(p.X)[:, :1]])
    rand = torch.rand(len(X), 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    best_random = _f(rand * 2 - 1)[:, 0].max()
    assert Y.max() > best_random
    assert Y.max() > _f(bo.initial_design(8, b, seed=1))[:, 0].max()


def test_a_warm_start_loads_the_hyperparameters_and_the_fit_improves_on_them(monkeypatch):
    from gpytorch.mlls import ExactMarginalLogLikelihood

    b = bo.box(3)
    X = bo.initial_design(20, b, seed=2)
    Y = _f(X)

    def mll(model):  # per observation, summed over the outcomes
        model.train()
        fit = ExactMarginalLogLikelihood(model.likelihood, model)
        with torch.no_grad():
            return float(fit(model(*model.train_inputs), model.train_targets).sum())

    start = bo.hyperparameters(bo.fit_model(X[:14], Y[:14], b))
    cold, warm = bo.fit_model(X, Y, b), bo.fit_model(X, Y, b, start=start)
    with monkeypatch.context() as m:  # unfitted: the model holds exactly the start
        m.setattr(bo, "fit_gpytorch_mll", lambda mll, **kw: None)
        unfitted = bo.fit_model(X, Y, b, start=start)
        assert bo.hyperparameters(unfitted) == start
        # values of another kind of model (other shapes) are ignored, not an error
        other = bo.hyperparameters(bo.fit_model(X[:, :2], Y[:, :1], bo.box(2)))
        assert bo.hyperparameters(bo.fit_model(X, Y, b, start=other)) != start
    assert mll(warm) > mll(unfitted)
    assert mll(warm) == pytest.approx(mll(cold), abs=0.05)
    # capped iterations: better than the start, no better than the uncapped fit (L-BFGS descends)
    capped = bo.fit_model(X, Y, b, start=start, max_iterations=3)
    assert mll(unfitted) < mll(capped) <= mll(warm) + 1e-9


def test_pool_only_proposals_come_from_the_pool_and_screening_keeps_the_first_choice():
    b = bo.box(3)
    X = bo.initial_design(10, b, seed=3)
    Y = _f(X)
    cons = [bo.Constraint(1, upper=0.5)]
    start = bo.hyperparameters(bo.fit_model(X, Y, b))
    kw = dict(goals=[1], constraints=cons, bounds=b, q=3, seed=4, pool_size=64, start=start)
    full = bo.propose(X, Y, gradient=False, **kw)
    pool = bo._local_pool(X, Y, [1], cons, b, 64, 4)
    assert all((pool == x).all(1).any() for x in full.X)  # no gradient-optimised design
    screened = bo.propose(X, Y, gradient=False, screen=8, **kw)
    assert all((pool == x).all(1).any() for x in screened.X)
    assert torch.equal(screened.X[0], full.X[0])  # the best of the whole pool either way
    assert len({tuple(x.tolist()) for x in screened.X}) == 3
    # a screen narrower than q still gives q distinct designs
    assert len({tuple(x.tolist()) for x in bo.propose(X, Y, gradient=False, screen=1, **kw).X}) == 3


def test_minimisation_and_constraints():
    b = bo.box(3)
    X = bo.initial_design(10, b, seed=2)

    # minimise x0 + x1 subject to x0 >= -0.2: the optimum sits on the constraint
    def g(X):
        return torch.stack([X[:, 0] + X[:, 1], X[:, 0]], 1)

    Y = g(X)
    for it in range(3):
        p = bo.propose(
            X,
            Y,
            goals=[-1],
            constraints=[bo.Constraint(1, lower=-0.2)],
            bounds=b,
            q=3,
            seed=it,
            num_restarts=4,
            raw_samples=64,
        )
        X, Y = torch.cat([X, p.X]), torch.cat([Y, g(p.X)])
    feas = bo.feasible_mask(Y, [bo.Constraint(1, lower=-0.2)])
    new = slice(10, None)
    assert feas[new].float().mean() >= 0.6  # proposals mostly respect the constraint
    assert Y[new][feas[new], 0].min() < Y[:10][feas[:10], 0].min()


def test_hypervolume_closed_form_and_pareto():
    pts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [-0.5, -0.5]], dtype=torch.float64)
    assert bo.pareto_mask(pts).tolist() == [True, True, True, False]
    # the staircase above (-1, -1): x in [-1, 0] up to y = 1 (area 2), x in (0, 0.5] up to
    # y = 0.5 (0.75), x in (0.5, 1] up to y = 0 (0.5): 3.25
    assert bo.hypervolume(pts, torch.tensor([-1.0, -1.0], dtype=torch.float64)) == (
        pytest.approx(3.25)
    )
    assert bo.hypervolume(pts, torch.tensor([2.0, 2.0], dtype=torch.float64)) == 0.0
    ref = bo.infer_ref_point(pts)
    assert (ref < pts.min(0).values).all()


def test_two_objectives_propose_a_batch_without_building_botorchs_kernel(tmp_path, monkeypatch):
    # BoTorch builds a fused qLogNEHVI kernel into TORCH_EXTENSIONS_DIR on first use, under a
    # lock file that a killed build leaves behind for every later one to wait on forever:
    # propose must not start that build, and must leave BoTorch's module state as it was
    from botorch.acquisition.multi_objective import logei

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(logei, "_load_attempted", False)
    monkeypatch.setattr(logei, "_C", None)
    b = bo.box(3)
    X = bo.initial_design(10, b, seed=0)
    Y = torch.stack([-(X - 0.5).pow(2).sum(1), -(X + 0.5).pow(2).sum(1)], 1)
    p = bo.propose(
        X, Y, goals=[1, 1], bounds=b, q=2, seed=0, num_restarts=2, raw_samples=32, mc_samples=32
    )
    assert p.X.shape == (2, 3) and np.isfinite(p.acq_value)
    assert list(tmp_path.iterdir()) == []
    assert logei._load_attempted is False and logei._C is None


def _feature(X):
    """A known feature in [0, 1] of each design (a 'volume fraction'); NaN where x1 > 0.9
    (a design that cannot be decoded)."""
    f = torch.sigmoid(3 * X.sum(-1, keepdim=True))
    return torch.where(X[:, 1:2] > 0.9, torch.nan, f)


def test_feature_inputs_respect_known_constraints_and_skip_undecodable_designs():
    b = bo.box(6)
    X = bo.initial_design(12, b, seed=5)
    X = X[torch.isfinite(_feature(X)).all(1)]

    # the objective rises with the feature (as conductivity with the volume fraction)
    def h(X):
        return 4 * _feature(X) + 0.1 * X[:, 2:3]

    cons = [bo.Constraint(0, upper=0.6)]
    kwargs = dict(goals=[1], bounds=b, q=4, feature_constraints=cons, pool_size=256)
    p = bo.propose(X, h(X), seed=0, features=_feature, **kwargs)
    f = _feature(p.X)
    assert p.X.shape == (4, 6) and (p.X.abs() <= 1).all()
    assert torch.isfinite(f).all() and (f <= 0.6).all()
    # the GP sees the feature, and the proposals sit near the constraint's edge
    assert p.model.train_inputs[0].shape[-1] == 7
    assert f.min() > 0.5
    again = bo.propose(X, h(X), seed=0, features=_feature, **kwargs)
    assert torch.equal(p.X, again.X)
    # without feature inputs the GP sees the latents only, and the filter still applies
    q = bo.propose(X, h(X), seed=0, features=_feature, feature_inputs=False, **kwargs)
    assert q.model.train_inputs[0].shape[-1] == 6 and (_feature(q.X) <= 0.6).all()


def test_feature_only_inputs_find_the_best_feature_value():
    # the objective is a peak in the feature alone (at 0.7): a GP on the feature finds it from
    # a dozen designs; the design variables only generate the candidates
    b = bo.box(6)
    X = bo.initial_design(12, b, seed=7)
    X = X[torch.isfinite(_feature(X)).all(1)]

    def h(X):
        return -((_feature(X) - 0.7) ** 2)

    kwargs = dict(goals=[1], bounds=b, q=4, seed=0, features=_feature, pool_size=256)
    p = bo.propose(X, h(X), design_inputs=False, **kwargs)
    assert p.model.train_inputs[0].shape[-1] == 1
    assert p.X.shape == (4, 6) and (p.X.abs() <= 1).all()
    f = _feature(p.X)
    assert torch.isfinite(f).all()
    assert (f - 0.7).abs().max() < 0.05 < (_feature(X) - 0.7).abs().min()
    # four different designs, even where the pool repeats a feature value
    assert len(torch.unique(p.X, dim=0)) == 4
    assert torch.equal(p.X, bo.propose(X, h(X), design_inputs=False, **kwargs).X)


def test_unique_rows_keeps_the_first_of_each():
    A = torch.tensor([[1.0, 2.0], [0.0, 1.0], [1.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
    rows, first = bo._unique_rows(A)
    assert first.tolist() == [0, 1, 3] and torch.equal(rows, A[[0, 1, 3]])
