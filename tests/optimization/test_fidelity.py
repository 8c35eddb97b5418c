"""Multi-fidelity campaigns: conductivity's ``refinement`` as the fidelity, on the fake space."""

import csv
import json

import numpy as np
import pytest
import torch
from botorch.models import SingleTaskMultiFidelityGP

from mdesign.config import CampaignConfig, config_from_dict
from mdesign.errors import InputError
from mdesign.evaluators import evaluate_batch, get_evaluator
from mdesign.optimization import bo
from mdesign.optimization.campaign import _identity, evaluate_sequentially, run_campaign
from mdesign.optimization.problem import load_space

SPACE = {"factory": "tests.optimization.fakes:make_space"}
SIGMA = {"conductivities": [1.0, 10.0], "direction": "x"}


def _config(**over):
    base = {
        "name": "mf",
        "objectives": [{"evaluator": "effective_conductivity", "params": SIGMA}],
        "constraints": [{"evaluator": "volume_fraction", "min": 0.2, "max": 0.8}],
        "fidelity": {"parameter": "refinement", "low": 1, "target": 2, "initial_target": 2},
        "bo": {
            "budget": 12,
            "initial": 4,
            "batch_size": 3,
            "num_restarts": 2,
            "raw_samples": 32,
            "mc_samples": 32,
            "pool_size": 64,
        },
        "baselines": ["random"],
        "baseline_batch_size": 4,
        "top_k": 2,
        "seed": 5,
    }
    base.update(over)
    return config_from_dict(CampaignConfig, base)


def _rows(out):
    return list(csv.DictReader((out / "evaluations.csv").open()))


def test_the_gp_sees_the_fidelity_input_and_learns_the_offset():
    b = bo.box(3)
    X = bo.initial_design(12, b, seed=1)
    f = -((X - 0.2) ** 2).sum(-1, keepdim=True)
    # the same designs at both fidelities: the target is the low fidelity plus 1
    Xs, Ys = torch.cat([X, X]), torch.cat([f, f + 1.0])
    s = torch.cat([torch.zeros(12), torch.ones(12)])
    p = bo.propose(
        Xs, Ys, goals=[1], bounds=b, q=2, seed=0, num_restarts=2, raw_samples=32, fidelity=s
    )
    assert isinstance(p.model, SingleTaskMultiFidelityGP)
    inputs = p.model.train_inputs[0]
    assert inputs.shape[-1] == 4  # the three design variables and the fidelity
    assert p.low_std.shape == (2,) and (p.low_std >= 0).all()
    # new designs, seen at the low fidelity only: the model puts them 1 higher at the target
    Xn = bo.initial_design(6, b, seed=9)
    fn = -((Xn - 0.2) ** 2).sum(-1, keepdim=True)
    mean = bo.target_mean(
        torch.cat([Xs, Xn]), torch.cat([Ys, fn]), torch.cat([s, torch.zeros(6)]), b, seed=0
    )
    assert mean[-6:].numpy() == pytest.approx((fn[:, 0] + 1).numpy(), abs=0.05)


def test_a_multi_fidelity_campaign_spends_at_low_fidelity_and_its_costs_sum(tmp_path):
    out = tmp_path / "c"
    summary = run_campaign(_config(), out, space_spec=SPACE, progress=False)
    rows = _rows(out)
    bo_rows = [r for r in rows if r["method"] == "bo"]
    fid = [json.loads(r["design"])["fidelity"] for r in bo_rows]
    assert len(bo_rows) == 12 and fid.count(1) > fid.count(2) >= 2
    assert all(json.loads(r["design"])["fidelity"] == 2 for r in rows if r["method"] == "random")
    # each value is the evaluator's at the record's own refinement
    space = load_space(SPACE)
    for r in bo_rows[:3] + bo_rows[4:6]:
        d = json.loads(r["design"])
        ev = get_evaluator("effective_conductivity", **SIGMA, refinement=d["fidelity"])
        image = space.decode(np.array(d["latent"])[None])
        assert float(r["value"]) == pytest.approx(evaluate_batch(ev, image).values[0], rel=1e-9)
    # the cost table sums the store's seconds per method and fidelity
    cost = summary.cost
    records = [r for m in ("bo", "random") for r in summary.methods[m].records]
    for m in ("bo", "random"):
        for level, want in (("low", 1), ("target", 2)):
            mine = [r.seconds for r in summary.methods[m].records if r.design["fidelity"] == want]
            n, secs = cost[m][level]
            assert n == len(mine) and secs == pytest.approx(sum(mine))
    assert cost["bo"]["low"][0] + cost["bo"]["target"][0] == 12
    assert cost["confirm"][0] == 2 + 2  # top_k of BO and of the baseline, at the target
    low, target = cost["per_evaluation"]["low"], cost["per_evaluation"]["target"]
    assert low[1] == target[1] == "measured"
    at = lambda v: [r.seconds for r in records if r.design["fidelity"] == v]  # noqa: E731
    assert low[0] == pytest.approx(np.mean(at(1))) and target[0] == pytest.approx(np.mean(at(2)))
    # confirmed at the target: the confirmed value of a design evaluated at the target is its own
    report = (out / "report.md").read_text()
    assert "## Fidelity: `refinement` 1 (low) and 2 (target)" in report
    assert "refinement 2" in report[report.index("## Confirmed with") :]
    assert summary.confirmed_best["bo"] is not None


def test_a_resumed_multi_fidelity_campaign_continues_as_if_uninterrupted(tmp_path):
    cfg = _config(
        fidelity={
            "parameter": "refinement",
            "low": 1,
            "target": 2,
            "cost_low": 1.0,  # given costs: the proposals do not depend on measured time
            "cost_target": 4.0,
            "pool_only": True,  # and the cheaper proposals: no gradient ascent, a screened pool
            "screen": 16,
        }
    )
    reference = run_campaign(cfg, tmp_path / "ref", space_spec=SPACE, progress=False)
    seen = []

    class Crash(BaseException):
        pass

    def crash(context, designs, on_result):
        for i, d in enumerate(designs):
            if len(seen) == 8:  # in BO's second batch
                raise Crash
            evaluate_sequentially(context, [d], lambda _, res, i=i: on_result(i, res))
            seen.append(d)

    with pytest.raises(Crash):
        run_campaign(cfg, tmp_path / "c", space_spec=SPACE, evaluate_many=crash, progress=False)
    assert len(_rows(tmp_path / "c")) == 8
    resumed = run_campaign(cfg, tmp_path / "c", space_spec=SPACE, progress=False)
    key = lambda out: [(r["method"], r["design"], r["value"]) for r in _rows(out)]  # noqa: E731
    assert key(tmp_path / "c") == key(tmp_path / "ref")
    assert resumed.confirmed_best == pytest.approx(reference.confirmed_best)
    assert resumed.cost["per_evaluation"]["low"] == (1.0, "given")


def test_a_config_without_fidelity_keeps_its_identity():
    plain = _config(fidelity=None)
    assert "fidelity" not in _identity(plain)  # a store from before the key resumes
    assert _identity(_config())["fidelity"]["parameter"] == "refinement"
    # nor keys added since, at their defaults (a store from before them resumes); set, they count
    assert "warm_iterations" not in _identity(plain)["bo"]
    assert "pool_only" not in _identity(_config())["fidelity"]
    fid = {"parameter": "refinement", "low": 1, "target": 2, "pool_only": True, "screen": 8}
    assert _identity(_config(fidelity=fid))["fidelity"]["screen"] == 8
    bo_over = {**_config().bo.model_dump(), "warm_iterations": 5}
    assert _identity(_config(bo=bo_over))["bo"]["warm_iterations"] == 5


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"fidelity": {"parameter": "refinement", "low": 2, "target": 2}}, "give two fidelities"),
        (
            {
                "objectives": [
                    {"evaluator": "effective_conductivity", "params": SIGMA},
                    {"evaluator": "volume_fraction"},
                ]
            },
            "one objective",
        ),
        (
            {
                "fidelity": {"parameter": "refinement", "low": 1, "target": 2, "pool_only": True},
                "bo": {"pool_size": 0},
            },
            "pool_size > 0",
        ),
    ],
)
def test_bad_fidelity_sections_are_refused(over, needle):
    with pytest.raises(InputError, match=needle):
        _config(**over)


def test_a_parameter_the_evaluator_lacks_is_refused_before_the_campaign(tmp_path):
    cfg = _config(fidelity={"parameter": "no_such", "low": 1, "target": 2})
    with pytest.raises(InputError, match="no_such") as err:
        run_campaign(cfg, tmp_path / "c", space_spec=SPACE, progress=False)
    assert err.value.param == "fidelity.parameter"
    assert not (tmp_path / "c" / "evaluations.sqlite").exists()
