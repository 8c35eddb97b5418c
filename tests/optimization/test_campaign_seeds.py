"""The multi-seed campaign driver (bench/bench_campaign_optical.py): its per-seed summary of an
evaluation store and its convergence verdicts, on stores and values built by hand."""

from pathlib import Path

import numpy as np
import pytest

from mdesign.config import CampaignConfig, config_from_dict
from mdesign.optimization.campaign import STORE_NAME
from mdesign.optimization.store import EvaluationStore
from tests.conftest import bench_module


@pytest.fixture(scope="module")
def bench():
    with bench_module("bench_campaign_optical") as module:
        yield module


def _config(budget, **over):
    return config_from_dict(
        CampaignConfig,
        {
            "objectives": [{"evaluator": "optical_absorption", "goal": "maximize"}],
            "bo": {"budget": budget, "initial": 2, "batch_size": 2},
            "baselines": ["random", "grf"],
            **over,
        },
    )


def _store(path, values):
    """A store whose method ``m`` has one completed evaluation per entry of ``values[m]``
    (None: a failed one), in that order."""
    with EvaluationStore(path / STORE_NAME) as store:
        for m, vals in values.items():
            for i, v in enumerate(vals):
                design = {"grf_seed": i} if m == "grf" else {"latent": [v or 0.0, float(i)]}
                (rid,) = store.add_pending(m, i, [design])
                store.complete(
                    rid,
                    outcomes=None if v is None else [v],
                    error="boom" if v is None else None,
                    seconds=1.0,
                )


def test_seed_summary_counts_only_the_budget_and_only_successes(bench, tmp_path):
    rng = np.random.default_rng(0)
    budget = 5
    values = {m: list(rng.uniform(0.2, 0.6, budget)) for m in ("bo", "random", "grf")}
    values["bo"][1] = None  # a failure: in no mean, no best
    values["bo"].append(0.99)  # beyond the budget: ignored
    _store(tmp_path, values)
    s = bench.seed_summary(tmp_path, _config(budget))
    assert s["complete"]
    for m, vals in values.items():
        inside = [v for v in vals[:budget] if v is not None]
        got = s["methods"][m]
        assert got["n"] == budget and got["n_ok"] == len(inside)
        assert got["best"] == max(inside) and np.isclose(got["mean"], np.mean(inside))
        # the best-so-far curve ends at the best, never decreases, and its design is the best's
        curve = np.array(got["best_so_far"], dtype=float)
        assert curve[-1] == got["best"] and np.all(np.diff(curve[~np.isnan(curve)]) >= 0)
        i = vals.index(got["best"])
        assert got["best_design"] == ({"grf_seed": i} if m == "grf" else {"latent": [vals[i], i]})

    c = bench.comparison(s, goal=1)
    best = {m: s["methods"][m]["best"] for m in values}
    assert c["beats_all"] == (best["bo"] > best["random"] and best["bo"] > best["grf"])
    grf_mean = s["methods"]["grf"]["mean"]
    assert np.isclose(c["bo_best_over_grf_mean_pct"] / 100 + 1, best["bo"] / grf_mean)
    assert np.isclose(
        c["gan_mean_over_grf_mean_pct"] / 100 + 1, s["methods"]["random"]["mean"] / grf_mean
    )


def test_seed_summary_of_a_missing_store_is_empty_and_incomplete(bench, tmp_path):
    s = bench.seed_summary(tmp_path / "nothing", _config(4))
    assert not s["complete"] and not (tmp_path / "nothing").exists()
    assert all(v["best"] is None and v["best_so_far"] == [None] * 4 for v in s["methods"].values())
    assert bench.comparison(s, goal=1)["beats_all"] is None


def test_convergence_sees_a_ranking_flip_and_compares_changes_with_gaps(bench):
    # seed 0: bo > random > grf at both orders; seed 1: random overtakes bo at order 9
    values = {
        0: {"bo": {5: 0.50, 7: 0.52, 9: 0.53}, "random": {5: 0.40, 7: 0.41, 9: 0.41},
            "grf": {5: 0.30, 7: 0.30, 9: 0.31}},
        1: {"bo": {5: 0.50, 7: 0.50, 9: 0.50}, "random": {5: 0.45, 7: 0.49, 9: 0.52},
            "grf": {5: 0.30, 7: 0.31, 9: 0.30}},
    }  # fmt: skip
    conv = bench.convergence(values, [5, 7, 9], 5, goal=1)
    assert conv["same_ranking"] == {0: True, 1: False}
    assert conv["bo_beats_all_at_highest_order"] == {0: True, 1: False}
    deltas = [abs(v[9] - v[7]) for by_m in values.values() for v in by_m.values()]
    assert np.isclose(conv["max_abs_delta"], max(deltas))
    gaps = [0.53 - 0.41, 0.52 - 0.50]  # each seed's smallest gap between two methods at order 9
    assert np.isclose(conv["min_gap_between_bests"], min(gaps))
    assert conv["delta_below_every_gap"] == (max(deltas) < min(gaps))
    # minimising reverses every ranking, so the same flip is seen
    assert bench.convergence(values, [5, 7, 9], 5, goal=-1)["same_ranking"] == {0: True, 1: False}


def test_seed_summary_takes_each_methods_best_confirmed_design(bench, tmp_path):
    from mdesign.optimization.campaign import confirm_key

    values = {
        "bo": [0.50, 0.40, 0.60, 0.30],
        "random": [0.45, 0.55, 0.20, 0.35],
        "grf": [0.52, 0.10, 0.51, 0.30],
    }
    # the confirming evaluator re-ranks: each method's top 2, confirmed at these values
    confirmed = {"bo": {2: 0.48, 0: 0.53}, "random": {1: 0.50, 0: 0.44}, "grf": {0: 0.56, 2: None}}
    _store(tmp_path, values)
    cfg = _config(4, top_k=2, confirm={"evaluator": "optical_absorption", "params": {"order": 9}})
    with EvaluationStore(tmp_path / STORE_NAME) as store:
        for m, by_index in confirmed.items():
            recs = store.records(m)
            for i, v in by_index.items():
                store.add_confirmation(
                    recs[i].id, confirm_key(cfg), value=v, error=None if v else "x", seconds=1.0
                )
    s = bench.seed_summary(tmp_path, cfg)
    for m, by_index in confirmed.items():
        i = max((i for i in by_index if by_index[i] is not None), key=by_index.get)
        row = s["methods"][m]["confirmed"]
        assert row["best"] == by_index[i] and row["screened"] == values[m][i]
        assert row["n"] == 2 and row["failed"] == sum(v is None for v in by_index.values())
    # on recorded values BO wins (0.60); on confirmed values GRF does (0.56 > 0.53 > 0.50)
    assert bench.comparison(s, goal=1)["beats_all"] is True
    c = bench.comparison(s, goal=1, confirmed=True)
    assert c["beats"] == {"random": True, "grf": False} and c["beats_all"] is False
    assert np.isclose(c["improvement_pct"]["grf"], 100 * (0.53 / 0.56 - 1))


def test_the_cache_key_follows_the_checkpoint_content_not_its_path(bench, tmp_path):
    a, b, c = tmp_path / "a.pt", tmp_path / "copy" / "b.pt", tmp_path / "c.pt"
    b.parent.mkdir()
    a.write_bytes(b"weights")
    b.write_bytes(b"weights")
    c.write_bytes(b"other weights")
    design = {"latent": [0.1, -0.2]}

    def key(path, order=5):
        ctx = {"space": {"checkpoint": str(path), "fraction": "training"}, "outcomes": []}
        return bench.job_key(
            bench.order_context(
                {**ctx, "outcomes": [{"evaluator": "optical_absorption", "params": {}}]}, order
            ),
            design,
        )

    assert key(a) == key(b)  # a copy of the checkpoint elsewhere: the cache still applies
    assert key(a) != key(c) and key(a) != key(a, order=9)


def test_baselines_from_another_root_need_their_budget_and_bo_runs_alone(bench, tmp_path):
    budget = 3
    root = tmp_path / "root"
    (root / "seed0").mkdir(parents=True)
    _store(root / "seed0", {"random": [0.1, 0.3, 0.2], "grf": [0.4, None]})  # grf: 2 of 3
    with pytest.raises(SystemExit, match="grf has 2 of 3 evaluations"):
        bench.baseline_summary(root, 0, _config(budget))
    got = bench.baseline_summary(root, 0, _config(budget, baselines=["random"]))
    assert list(got) == ["random"] and got["random"]["best"] == 0.3

    # the BO-only copy of a shipped config: no baselines, the same checkpoint, absolute
    config = Path(__file__).resolve().parents[2] / "configs" / "campaign_optical_descriptors.yaml"
    path = bench.bo_only_config(config, tmp_path)
    cfg, full = (
        bench.load_config(path, seed=0, budget=None),
        bench.load_config(config, seed=0, budget=None),
    )
    assert cfg.baselines == [] and full.baselines == ["random", "grf"]
    assert Path(cfg.generator.checkpoint).is_absolute()
    assert (
        Path(cfg.generator.checkpoint).resolve()
        == (config.parent / full.generator.checkpoint).resolve()
    )
    assert cfg.bo == full.bo and cfg.confirm == full.confirm


def test_seeds_not_evaluated_at_every_order_are_counted_apart_not_as_no(bench):
    # seed 1's random best has no order-11 value: its ranking and BO's lead there are unknown,
    # which the summary must say rather than count as "ranking changed" / "BO not above"
    values = {
        0: {"bo": {9: 0.14, 11: 0.141}, "random": {9: 0.12, 11: 0.121}},
        1: {"bo": {9: 0.13, 11: 0.131}, "random": {9: 0.12, 11: None}},
    }
    conv = bench.convergence(values, [9, 11], 9, 1)
    assert conv["same_ranking"] == {0: True, 1: None}
    text = "\n".join(bench._convergence_lines(conv, [9, 11], 9))
    assert "at order 9 in 1 of 1 seeds (1 not evaluated at order 11 for every method)" in text
    assert "at order 11 in 1 of 1 seeds (1 not evaluated at order 11 for every method)" in text
    values[1]["random"][11] = 0.135  # now known, and BO is not above it
    text = "\n".join(bench._convergence_lines(bench.convergence(values, [9, 11], 9, 1), [9, 11], 9))
    assert "in 1 of 2 seeds (" in text and "not evaluated" not in text
