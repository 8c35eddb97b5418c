"""The registry, parameter parsing and failure-isolating batch evaluation."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import numpy as np
import pytest

from mdesign.errors import InputError
from mdesign.evaluators import (
    EffectiveConductivity,
    base,
    evaluate_batch,
    evaluator_params,
    get_evaluator,
    list_evaluators,
    register_evaluator,
)
from tests.evaluators.plugin import Flaky, phase_fraction


@pytest.fixture
def clean_registry(monkeypatch):
    """A registry copy that the test may change; restored afterwards."""
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    monkeypatch.setattr(base, "_ENTRY_POINTS_LOADED", True)
    return base._REGISTRY


def test_builtins_are_registered_with_typed_parameters():
    names = [e.name for e in list_evaluators()]
    assert {"effective_conductivity", "optical_absorption"} <= set(names)
    info = {e.name: e for e in list_evaluators()}
    p = info["optical_absorption"].parameters
    assert p["thickness"].unit == "nm" and p["thickness"].default > 0
    assert info["effective_conductivity"].parameters["conductivities"].required


def test_registering_a_name_twice_raises(clean_registry):
    with pytest.raises(ValueError, match="already registered"):
        register_evaluator(EffectiveConductivity)
    register_evaluator(phase_fraction, name="fraction_a")
    with pytest.raises(ValueError, match="fraction_a"):
        register_evaluator(phase_fraction, name="fraction_a")


def test_unknown_name_lists_the_known_names():
    with pytest.raises(InputError) as info:
        get_evaluator("no_such_property")
    msg = str(info.value)
    assert "no_such_property" in msg
    assert "effective_conductivity" in msg and "optical_absorption" in msg


def test_function_registered_as_decorator(clean_registry):
    @register_evaluator(name="mean_label")
    def mean_label(images, *, offset: float = 0.0):
        return images.mean(axis=(1, 2)) + offset

    ev = get_evaluator("mean_label", offset="0.5")
    images = np.array([[[0, 1], [1, 1]]], dtype=np.uint8)
    assert ev(images) == pytest.approx([1.25])
    assert evaluator_params(ev) == {"offset": 0.5}


def test_module_function_path_with_string_params():
    ev = get_evaluator("tests.evaluators.plugin:phase_fraction", phase="0", scale="2")
    images = np.zeros((2, 4, 4), np.uint8)
    images[1, :2] = 1
    np.testing.assert_allclose(ev(images), [2.0, 1.0])
    assert ev.name == "tests.evaluators.plugin:phase_fraction"


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("tests.evaluators.nope:f", "cannot import"),
        ("tests.evaluators.plugin:nope", "no attribute"),
        ("tests.evaluators.plugin:", "module:function"),
    ],
)
def test_bad_paths_are_input_errors(path, needle):
    with pytest.raises(InputError, match=needle):
        get_evaluator(path)


def test_entry_points_register_and_broken_ones_are_reported(monkeypatch, clean_registry):
    good = EntryPoint(
        "fraction_ep", "tests.evaluators.plugin:phase_fraction", base.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(base, "_ENTRY_POINTS_LOADED", False)
    monkeypatch.setattr(base, "entry_points", lambda group: [good])
    assert "fraction_ep" in [e.name for e in list_evaluators()]
    assert get_evaluator("fraction_ep", phase=0)(np.zeros((1, 2, 2), np.uint8)) == 1.0

    broken = EntryPoint("broken", "tests.evaluators.missing_module:f", base.ENTRY_POINT_GROUP)
    monkeypatch.setattr(base, "_ENTRY_POINTS_LOADED", False)
    monkeypatch.setattr(base, "entry_points", lambda group: [broken])
    with pytest.raises(InputError, match=r"broken.*failed to import"):
        list_evaluators()


def test_entry_point_clashing_with_a_builtin_raises(monkeypatch, clean_registry):
    ep = EntryPoint(
        "effective_conductivity", "tests.evaluators.plugin:phase_fraction", base.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(base, "_ENTRY_POINTS_LOADED", False)
    monkeypatch.setattr(base, "entry_points", lambda group: [ep])
    with pytest.raises(ValueError, match="already registered"):
        list_evaluators()


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"conductivities": "1,x"}, "conductivities"),
        ({"conductivities": "1,10", "direction": "w"}, "direction"),
        ({"conductivities": "1,10", "refinement": "0"}, "refinement"),
        ({"conductivities": "1,10", "tolerance": "abc"}, "tolerance"),
        ({"conductivities": "1,10", "colour": "red"}, "unknown parameter 'colour'"),
        ({"conductivities": "5"}, "conductivities"),
        ({"conductivities": "1,-2"}, "conductivities"),
        ({}, "conductivities is required"),
    ],
)
def test_bad_params_name_the_parameter(params, needle):
    with pytest.raises(InputError, match=needle):
        get_evaluator("effective_conductivity", **params)


def test_required_function_parameter():
    with pytest.raises(InputError, match="threshold is required"):
        get_evaluator("tests.evaluators.plugin:needs_threshold")
    ev = get_evaluator("tests.evaluators.plugin:needs_threshold", threshold="0.5")
    assert ev(np.ones((1, 2, 2), np.uint8)) == 1.0


def test_typed_and_string_params_agree():
    a = get_evaluator("effective_conductivity", conductivities=(1, 10), refinement=3)
    b = get_evaluator("effective_conductivity", conductivities="1,10", refinement="3")
    assert a.config == b.config


def test_failures_are_isolated_per_image():
    images = np.zeros((6, 3, 3), np.uint8)
    images[:, 1, 1] = 1
    images[1, 0, 0] = 7  # raises for the whole batch: retried image by image
    images[3, 0, 0] = 6  # NaN
    images[4, 0, 0] = 5  # inf
    res = evaluate_batch(Flaky(), images)
    assert [e.index for e in res.errors] == [1, 3, 4]
    assert "pixel 7" in res.errors[0].message and "ValueError" in res.errors[0].message
    assert "nan" in res.errors[1].message and "inf" in res.errors[2].message
    ok = [0, 2, 5]
    np.testing.assert_allclose(res.values[ok], images[ok].mean(axis=(1, 2)))
    assert np.isnan(res.values[[1, 3, 4]]).all()
    assert res.ok.tolist() == [True, False, True, False, False, True]
    # chunking does not change the outcome
    res2 = evaluate_batch(Flaky(), images, batch_size=4)
    np.testing.assert_array_equal(res2.values, res.values)
    assert res2.errors == res.errors


def test_wrong_output_shape_is_a_per_image_failure():
    class Broken:
        name = "broken"
        parameters: dict = {}  # noqa: RUF012

        def __call__(self, images):
            return np.zeros(len(images) + 1)

    res = evaluate_batch(Broken(), np.zeros((2, 2, 2), np.uint8))
    assert np.isnan(res.values).all() and len(res.errors) == 2
    assert "shape" in res.errors[0].message


def test_shipped_evaluator_config_is_the_default():
    # configs/evaluators.yaml documents the defaults; it must not drift from the typed configs
    from pathlib import Path

    import yaml

    from mdesign.config import (
        CONDUCTIVITY_DEFAULTS,
        ELASTICITY_DEFAULTS,
        OPTICAL_ABSORPTION_DEFAULTS,
        SURROGATE_EVALUATOR_DEFAULTS,
        TORTUOSITY_DEFAULTS,
        ConductivityConfig,
        ElasticityConfig,
        OpticalAbsorptionConfig,
        SurrogateEvaluatorConfig,
        TortuosityConfig,
        config_from_dict,
    )

    path = Path(__file__).resolve().parents[2] / "configs" / "evaluators.yaml"
    data = yaml.safe_load(path.read_text())
    assert set(data) == {
        "effective_conductivity",
        "elastic_stiffness",
        "optical_absorption",
        "surrogate",
        "tortuosity",
    }
    assert config_from_dict(ElasticityConfig, data["elastic_stiffness"]) == ELASTICITY_DEFAULTS
    assert config_from_dict(TortuosityConfig, data["tortuosity"]) == TORTUOSITY_DEFAULTS
    assert config_from_dict(ConductivityConfig, data["effective_conductivity"]) == (
        CONDUCTIVITY_DEFAULTS
    )
    assert config_from_dict(OpticalAbsorptionConfig, data["optical_absorption"]) == (
        OPTICAL_ABSORPTION_DEFAULTS
    )
    assert config_from_dict(SurrogateEvaluatorConfig, data["surrogate"]) == (
        SURROGATE_EVALUATOR_DEFAULTS
    )
    # and the evaluators' parameter defaults are these same values
    info = {e.name: e for e in list_evaluators()}
    for name, cfg in (
        ("effective_conductivity", CONDUCTIVITY_DEFAULTS),
        ("elastic_stiffness", ELASTICITY_DEFAULTS),
        ("tortuosity", TORTUOSITY_DEFAULTS),
        ("optical_absorption", OPTICAL_ABSORPTION_DEFAULTS),
        ("surrogate", SURROGATE_EVALUATOR_DEFAULTS),
    ):
        assert {k: p.default for k, p in info[name].parameters.items()} == cfg.model_dump()


def test_a_module_function_evaluator_does_not_import_torch(tmp_path):
    # The physics built-ins are imported on first lookup: a user's own evaluator, named by
    # path, runs without importing torch (about 2 s of every `mdesign evaluate` call).
    import subprocess
    import sys

    (tmp_path / "userprops.py").write_text(
        "def porosity(images):\n    return (images == 0).mean(axis=(1, 2))\n"
    )
    code = (
        "import sys, numpy as np\n"
        "from mdesign.evaluators import evaluate_batch, get_evaluator\n"
        "ev = get_evaluator('userprops:porosity')\n"
        "img = np.zeros((2, 8, 8), np.uint8); img[1, :4] = 1\n"
        "print(*np.asarray(evaluate_batch(ev, img).values).tolist(), 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["1.0", "0.5", "False"]


def test_the_lazy_built_ins_keep_their_names():
    import importlib

    import mdesign.evaluators as ev

    module = importlib.import_module("mdesign.evaluators.tortuosity")  # binds it on the package
    assert ev.tortuosity is module.tortuosity  # still the function, as before the lazy imports
    assert ev.effective_conductivity.__module__ == "mdesign.evaluators.conductivity"
    assert {"effective_conductivity", "tortuosity"} <= set(dir(ev))
    assert {e.name for e in ev.list_evaluators()} >= {
        "effective_conductivity",
        "elastic_stiffness",
        "optical_absorption",
        "tortuosity",
    }
