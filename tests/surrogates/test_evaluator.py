"""The ``surrogate`` evaluator: registry, the evaluator contract, uncertainty, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mdesign.errors import InputError
from mdesign.evaluators import evaluate_batch, get_evaluator, list_evaluators
from mdesign.surrogates import save_surrogate, transfer_surrogate
from tests.surrogates.conftest import NET


@pytest.fixture(scope="module")
def model_path(images, c10, tiny_gan, tmp_path_factory):
    model = transfer_surrogate(tiny_gan, mode="frozen", config=NET)
    model.fit(images[:40], c10[:40], seed=0, target={"task": "c10"})
    return save_surrogate(model, tmp_path_factory.mktemp("sur") / "c10.pt"), model


def test_registered_with_a_required_model_parameter():
    info = {e.name: e for e in list_evaluators()}["surrogate"]
    assert info.source == "built-in" and info.parameters["model"].required
    with pytest.raises(InputError, match="model is required"):
        get_evaluator("surrogate")


def test_values_are_the_mean_and_predict_gives_the_uncertainty(model_path, images):
    path, model = model_path
    ev = get_evaluator("surrogate", model=str(path))
    assert ev.target == {"task": "c10"}
    np.testing.assert_array_equal(ev(images[200:210]), model.predict(images[200:210]).mean)
    pred = ev.predict(images[200:210])
    assert (pred.std > 0).all()


def test_evaluator_contract(model_path, images):
    # the checks tests/evaluators/test_contract.py makes of every evaluator, here with a model
    ev = get_evaluator("surrogate", model=str(model_path[0]))
    batch = images[200:203]
    values = ev(batch)
    assert values.shape == (3,) and values.dtype == np.float64 and np.isfinite(values).all()
    np.testing.assert_array_equal(values, ev(batch))
    one_by_one = np.array([ev(batch[i : i + 1])[0] for i in range(3)])
    np.testing.assert_allclose(one_by_one, values, rtol=1e-5)
    bad = batch.copy()
    bad[1, 0, 0] = ev.phases  # a third phase: the two-phase model cannot take it
    res = evaluate_batch(ev, bad)
    assert [e.index for e in res.errors] == [1] and "two-phase" in res.errors[0].message
    np.testing.assert_allclose(res.values[[0, 2]], values[[0, 2]], rtol=1e-5)


def test_bad_model_parameter(tmp_path):
    with pytest.raises(InputError, match=r"parameter model: .*no such"):
        get_evaluator("surrogate", model=str(tmp_path / "none.pt"))


def test_a_campaign_screens_with_the_surrogate_and_confirms_with_the_evaluator(
    model_path, tmp_path
):
    from mdesign.config import CampaignConfig, config_from_dict
    from mdesign.evaluators import effective_conductivity
    from mdesign.optimization.campaign import run_campaign

    path, model = model_path
    truth = {"conductivities": [1.0, 10.0], "refinement": 1}
    cfg = config_from_dict(
        CampaignConfig,
        {
            "objectives": [{"evaluator": "surrogate", "params": {"model": str(path)}}],
            "confirm": {"evaluator": "effective_conductivity", "params": truth},
            "bo": {
                "budget": 8,
                "initial": 4,
                "batch_size": 2,
                "num_restarts": 2,
                "raw_samples": 32,
                "mc_samples": 32,
            },
            "baselines": [],
            "top_k": 3,
        },
    )
    out = tmp_path / "c"
    run_campaign(
        cfg, out, space_spec={"factory": "tests.optimization.fakes:make_space"}, progress=False
    )
    with np.load(out / "best.npz") as data:
        images, values, confirmed = data["images"], data["values"], data["confirmed"]
    assert len(images) == 3
    # BO ranked by the surrogate; the confirmed values are the true evaluator's
    np.testing.assert_allclose(values[:, 0], model.predict(images).mean, rtol=1e-4)
    np.testing.assert_allclose(confirmed, effective_conductivity(images, **truth), rtol=1e-9)
    assert "Confirmed with `effective_conductivity`" in (out / "report.md").read_text()
