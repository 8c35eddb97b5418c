import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mdesign.config import CampaignConfig, config_from_dict
from mdesign.errors import InputError
from mdesign.optimization.campaign import evaluate_sequentially, run_campaign

SPACE = {"factory": "tests.optimization.fakes:make_space"}


def _config(**over):
    base = {
        "name": "t",
        "objectives": [{"evaluator": "volume_fraction", "goal": "maximize"}],
        "bo": {
            "budget": 9,
            "initial": 4,
            "batch_size": 3,
            "num_restarts": 2,
            "raw_samples": 32,
            "mc_samples": 32,
        },
        "baselines": ["random", "grf"],
        "baseline_batch_size": 4,
        "seed": 3,
    }
    base.update(over)
    return config_from_dict(CampaignConfig, base)


def _rows(out):
    return list(csv.DictReader((out / "evaluations.csv").open()))


def test_campaign_writes_every_evaluation_and_the_report(tmp_path):
    out = tmp_path / "c"
    summary = run_campaign(_config(), out, space_spec=SPACE, progress=False)
    rows = _rows(out)
    assert len(rows) == 27 and len({r["id"] for r in rows}) == 27
    for m in ("bo", "random", "grf"):
        assert sum(r["method"] == m for r in rows) == 9
    assert all(r["status"] == "ok" for r in rows)
    # the CSV value is the objective, here the phase-1 fraction of the decoded design
    best = max(float(r["value"]) for r in rows if r["method"] == "bo")
    assert summary.best["bo"] == pytest.approx(best)
    for name in ("best.npz", "report.md", "report.png"):
        assert (out / name).stat().st_size > 0
    with np.load(out / "best.npz") as data:
        assert data["images"].shape[1:] == (64, 64) and data["latents"].shape[1:] == (1, 2, 2)
        assert float(data["images"][0].mean()) == pytest.approx(best)
        meta = json.loads(str(data["meta"]))
    assert meta["best"]["bo"] == pytest.approx(best)
    assert "BO improvement" in (out / "report.md").read_text()


class Crash(BaseException):
    """Stands in for SIGKILL: nothing after it runs."""


def test_interrupted_campaign_resumes_without_loss_or_duplicates(tmp_path):
    cfg = _config()
    reference = tmp_path / "ref"
    run_campaign(cfg, reference, space_spec=SPACE, progress=False)

    out = tmp_path / "c"
    seen = []

    def crash_mid_batch(context, designs, on_result):
        for i, d in enumerate(designs):
            if len(seen) == 6:  # in the middle of BO's second batch
                raise Crash
            evaluate_sequentially(context, [d], lambda _, res, i=i: on_result(i, res))
            seen.append(d)

    with pytest.raises(Crash):
        run_campaign(cfg, out, space_spec=SPACE, evaluate_many=crash_mid_batch, progress=False)
    first = _rows(out)
    assert len(first) == 6
    run_campaign(cfg, out, space_spec=SPACE, progress=False)
    rows = _rows(out)
    assert rows[:6] == first  # nothing completed was lost or redone
    assert len(rows) == 27
    latents = [r["latent"] for r in rows if r["method"] != "grf"]
    assert len(set(latents)) == len(latents)  # nothing evaluated twice
    # and the campaign made exactly the proposals of an uninterrupted run
    ref = _rows(reference)
    assert [(r["method"], r["latent"], r["value"]) for r in rows] == [
        (r["method"], r["latent"], r["value"]) for r in ref
    ]


def test_same_seed_same_proposals_and_another_seed_differs(tmp_path):
    a = run_campaign(_config(baselines=[]), tmp_path / "a", space_spec=SPACE, progress=False)
    b = run_campaign(_config(baselines=[]), tmp_path / "b", space_spec=SPACE, progress=False)
    c = run_campaign(
        _config(baselines=[], seed=4), tmp_path / "c", space_spec=SPACE, progress=False
    )
    lat = lambda s: [r.latent for r in s.methods["bo"].records]  # noqa: E731
    assert lat(a) == lat(b) and lat(a) != lat(c)


def test_failing_designs_are_recorded_and_never_fatal(tmp_path):
    space = {**SPACE, "fail_above": 0.2}  # the decoder raises for x0 > 0.2
    out = tmp_path / "c"
    summary = run_campaign(_config(baselines=["random"]), out, space_spec=space, progress=False)
    rows = _rows(out)
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed and all("decoder failure" in r["error"] and r["value"] == "" for r in failed)
    assert len(rows) == 18
    assert summary.best["bo"] is not None
    ok_bo = [json.loads(r["latent"]) for r in rows if r["method"] == "bo" and r["status"] == "ok"]
    assert all(x[0] <= 0.2 for x in ok_bo)


def test_constraints_bound_the_best_design(tmp_path):
    cfg = _config(
        baselines=["random"],
        constraints=[{"evaluator": "volume_fraction", "label": "vf", "max": 0.6}],
    )
    summary = run_campaign(cfg, tmp_path / "c", space_spec=SPACE, progress=False)
    assert summary.best["bo"] <= 0.6
    assert summary.best["random"] is None or summary.best["random"] <= 0.6
    rows = _rows(tmp_path / "c")
    assert {r["feasible"] for r in rows} <= {"true", "false"}
    assert all((float(r["value"]) <= 0.6) == (r["feasible"] == "true") for r in rows)


def test_resume_refuses_another_config_but_accepts_a_larger_budget(tmp_path):
    out = tmp_path / "c"
    run_campaign(_config(baselines=[]), out, space_spec=SPACE, progress=False)
    with pytest.raises(InputError, match="another configuration"):
        run_campaign(_config(baselines=[], seed=9), out, space_spec=SPACE, progress=False)
    bigger = _config(
        baselines=[],
        bo={
            "budget": 12,
            "initial": 4,
            "batch_size": 3,
            "num_restarts": 2,
            "raw_samples": 32,
            "mc_samples": 32,
        },
    )
    run_campaign(bigger, out, space_spec=SPACE, progress=False)
    assert len(_rows(out)) == 12


def test_two_objectives_report_a_pareto_front(tmp_path):
    cfg = _config(
        baselines=["random"],
        objectives=[
            {"evaluator": "volume_fraction", "label": "vf", "goal": "maximize"},
            {"evaluator": "volume_fraction", "label": "vf_min", "goal": "minimize"},
        ],
    )
    summary = run_campaign(cfg, tmp_path / "c", space_spec=SPACE, progress=False)
    assert "Pareto" in summary.report.read_text()
    with np.load(tmp_path / "c" / "best.npz") as data:
        vals = data["values"]
    # two opposite objectives: every design is Pareto-optimal, so all feasible BO designs are
    assert len(vals) == int(summary.methods["bo"].feasible.sum())


def test_a_real_evaluator_objective_with_a_volume_fraction_constraint(tmp_path):
    cfg = _config(
        baselines=["random"],
        objectives=[
            {
                "evaluator": "effective_conductivity",
                "label": "sigma_x",
                "params": {"conductivities": [1.0, 10.0], "direction": "x"},
            }
        ],
        constraints=[{"evaluator": "volume_fraction", "min": 0.3, "max": 0.5}],
    )
    summary = run_campaign(cfg, tmp_path / "c", space_spec=SPACE, progress=False)
    rows = _rows(tmp_path / "c")
    assert all(r["status"] == "ok" for r in rows)
    for r in rows:
        sigma, vf = json.loads(r["outcomes"])
        # the Wiener bounds hold for every design
        assert 1 / (vf / 10 + (1 - vf)) - 1e-6 <= sigma <= 10 * vf + (1 - vf) + 1e-6
        assert (r["feasible"] == "true") == (0.3 <= vf <= 0.5)
    assert summary.best["bo"] is not None


def test_an_evaluator_returning_nan_fails_only_its_design(tmp_path):
    cfg = _config(
        baselines=["random"],
        objectives=[
            {"evaluator": "tests.optimization.fakes:flaky_fraction", "params": {"nan_above": 0.6}}
        ],
    )
    run_campaign(cfg, tmp_path / "c", space_spec=SPACE, progress=False)
    rows = _rows(tmp_path / "c")
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed and all("value is nan" in r["error"] for r in failed)
    assert len(rows) == 18
    assert all(float(r["value"]) <= 0.6 for r in rows if r["status"] == "ok")


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("campaign_*.yaml")))
def test_shipped_campaign_configs_are_valid(name, monkeypatch):
    from mdesign.cli.optimize import load_campaign
    from mdesign.optimization.problem import VOLUME_FRACTION, evaluator_for

    root = CONFIGS.parent
    monkeypatch.chdir(root)  # evaluator parameters that are paths are read from the repo root
    path = root / "configs" / name
    cfg = load_campaign(path)
    for spec in [*cfg.objectives, *cfg.constraints, *([cfg.confirm] if cfg.confirm else [])]:
        if spec.evaluator != VOLUME_FRACTION:
            evaluator_for({"evaluator": spec.evaluator, "params": spec.params})
    assert (path.parent / cfg.generator.checkpoint).resolve().name == "checkpoint.pt"


def test_confirm_reevaluates_the_best_designs_and_failures_cost_only_themselves(tmp_path):
    confirm = {
        "evaluator": "tests.optimization.fakes:flaky_fraction",
        "params": {"nan_above": 0.9},
        "label": "checked",
    }
    out = tmp_path / "c"
    cfg = _config(baselines=["random"], top_k=6, confirm=confirm)
    run_campaign(cfg, out, space_spec=SPACE, progress=False)
    with np.load(out / "best.npz") as data:
        images, values, confirmed = data["images"], data["values"], data["confirmed"]
        meta = json.loads(str(data["meta"]))
    assert meta["confirmed_by"] == "checked" and len(confirmed) == len(images) == 6
    # an independent computation of the confirming evaluator on the stored designs
    vf = (images == 1).reshape(len(images), -1).mean(1)
    assert (vf > 0.9).any() and (vf <= 0.9).any()  # both branches are exercised
    np.testing.assert_array_equal(np.isnan(confirmed), vf > 0.9)
    np.testing.assert_allclose(confirmed[vf <= 0.9], vf[vf <= 0.9])
    np.testing.assert_allclose(values[:, 0], vf)  # the screening objective, for comparison
    report = (out / "report.md").read_text()
    assert "confirmed checked" in report
    assert "| failed |" in report and "Confirmed with" in report
    # confirming is not part of a campaign's identity: resuming without it is accepted
    run_campaign(_config(baselines=["random"], top_k=6), out, space_spec=SPACE, progress=False)
    with np.load(out / "best.npz") as data:
        assert "confirmed" not in data.files


def _top_images(rows, method, k):
    """The images of a method's k best designs by the CSV's value (ties: the earlier id)."""
    from tests.optimization.fakes import make_space

    space = make_space()
    ok = [r for r in rows if r["method"] == method and r["status"] == "ok"]
    ok = sorted(ok, key=lambda r: -float(r["value"]))[:k]
    designs = [json.loads(r["design"]) for r in ok]
    return np.concatenate(
        [
            space.grf(d["grf_seed"]) if "grf_seed" in d else space.decode(np.array(d["latent"]))
            for d in designs
        ]
    )


def _counting(calls):
    """evaluate_many that records how many designs each confirm call is given."""

    def evaluate_many(context, designs, on_result):
        if context["outcomes"][0]["evaluator"].endswith("capped_fraction"):
            calls.append(len(designs))
        evaluate_sequentially(context, designs, on_result)

    return evaluate_many


def test_confirm_compares_every_method_on_its_best_designs(tmp_path):
    from tests.optimization.fakes import capped_fraction

    confirm = {"evaluator": "tests.optimization.fakes:capped_fraction", "params": {"cap": 0.45}}
    out, calls = tmp_path / "c", []
    cfg = _config(top_k=3, confirm=confirm)
    summary = run_campaign(
        cfg, out, space_spec=SPACE, progress=False, evaluate_many=_counting(calls)
    )
    assert calls == [9]  # the top 3 of each of the three methods, in one parallel call
    rows = _rows(out)
    for m in ("bo", "random", "grf"):
        # independent: the method's top 3 by the CSV, decoded again, the evaluator applied
        expect = capped_fraction(_top_images(rows, m, 3), cap=0.45)
        assert summary.confirmed_best[m] == pytest.approx(expect.max(), abs=1e-12)
    # the screening's best designs overshoot the cap: the confirmed ranking differs from it
    assert summary.confirmed_best["bo"] < summary.best["bo"]
    bo = summary.confirmed_best["bo"]
    for m in ("random", "grf"):
        base = summary.confirmed_best[m]
        assert summary.confirmed_improvement[m] == pytest.approx(100 * (bo - base) / abs(base))
    report = (out / "report.md").read_text()
    section = report[report.index("## Confirmed with") :]
    assert "(cap 0.45)" in section and "random GRF" in section and "random latents" in section
    with np.load(out / "best.npz") as data:
        meta = json.loads(str(data["meta"]))
    assert meta["confirmed_best"] == pytest.approx(summary.confirmed_best)


def test_confirm_resumes_without_repeating_a_confirmation(tmp_path):
    from mdesign.optimization.problem import evaluate_design

    confirm = {"evaluator": "tests.optimization.fakes:capped_fraction", "params": {"cap": 0.45}}
    out, calls = tmp_path / "c", []
    cfg = _config(top_k=3, confirm=confirm)

    def killed_after_four(context, designs, on_result):
        if not context["outcomes"][0]["evaluator"].endswith("capped_fraction"):
            return evaluate_sequentially(context, designs, on_result)
        for i, d in enumerate(designs[:4]):
            on_result(i, evaluate_design(context, d))
        raise Crash

    with pytest.raises(Crash):
        run_campaign(cfg, out, space_spec=SPACE, progress=False, evaluate_many=killed_after_four)
    first = run_campaign(cfg, out, space_spec=SPACE, progress=False, evaluate_many=_counting(calls))
    assert calls == [5]  # only what the killed run had not confirmed
    run_campaign(cfg, out, space_spec=SPACE, progress=False, evaluate_many=_counting(calls))
    assert calls == [5]  # a finished confirmation is not repeated
    # the result equals a run that was never interrupted
    fresh = run_campaign(cfg, tmp_path / "d", space_spec=SPACE, progress=False)
    assert first.confirmed_best == pytest.approx(fresh.confirmed_best)
    # another setting of the confirming evaluator is confirmed anew
    other = _config(top_k=3, confirm={**confirm, "params": {"cap": 0.4}})
    run_campaign(other, out, space_spec=SPACE, progress=False, evaluate_many=_counting(calls))
    assert calls == [5, 9]


def test_an_unknown_confirming_evaluator_is_refused_before_the_campaign(tmp_path):
    cfg = _config(confirm={"evaluator": "no_such_evaluator"})
    with pytest.raises(InputError, match="no_such_evaluator"):
        run_campaign(cfg, tmp_path / "c", space_spec=SPACE, progress=False)
    assert not (tmp_path / "c" / "evaluations.sqlite").exists()


@pytest.mark.parametrize(
    ("factory", "params", "needle"),
    [
        ("not_a_space", {}, "returned 'dict', not a design space (it has no dim, latent_shape"),
        ("FloatSpace", {}, "gave float64 (1, 64, 64), expected integer labels (1, 64, 64)"),
        ("make_space", {"colour": "red"}, "make_space(colour) raised TypeError"),
        ("nothing_here", {}, "cannot load"),
    ],
)
def test_a_factory_that_is_not_a_design_space_is_refused_before_the_campaign(
    tmp_path, factory, params, needle
):
    from mdesign.optimization.campaign import prepare_campaign

    spec = {"factory": f"tests.optimization.fakes:{factory}", **params}
    with pytest.raises(InputError, match=r"generator\.factory") as err:
        prepare_campaign(_config(), tmp_path / "c", space_spec=spec)
    assert needle in str(err.value)
    assert not (tmp_path / "c").exists()


def test_descriptor_inputs_are_the_fraction_and_the_interface_crossing_rate(tmp_path):
    import torch

    from mdesign.optimization.campaign import _design_features
    from tests.optimization.fakes import make_space

    space = make_space()
    X = torch.linspace(-1, 1, 5 * 4, dtype=torch.float64).reshape(5, 4)
    F = _design_features(space, surface=True)(X).numpy()
    images = space.decode(X.numpy()).astype(bool)
    # brute force: the fraction of pixels, and of neighbour pairs (periodic) that differ
    crossings = [(images != np.roll(images, 1, axis=a)).mean((1, 2)) for a in (1, 2)]
    assert F.shape == (5, 2)
    assert np.allclose(F[:, 0], images.mean((1, 2)))
    assert np.allclose(F[:, 1], (crossings[0] + crossings[1]) / 2)
    assert np.array_equal(_design_features(space)(X).numpy(), F[:, :1])

    cfg = _config(bo={**_config().bo.model_dump(), "inputs": "descriptors"}, baselines=[])
    run_campaign(cfg, tmp_path / "c", space_spec=SPACE, progress=False)
    rows = _rows(tmp_path / "c")
    assert len(rows) == 9 and all(r["status"] == "ok" for r in rows)
    # the GP on the two descriptors drives the fraction (the objective) above the Sobol start's
    values = [float(r["value"]) for r in rows]
    assert max(values[4:]) > max(values[:4])
