"""One contract every registered evaluator keeps (like BoTorch's test-problem mixin).

For each evaluator in the registry (built-ins and installed entry points): values come back one
per image as finite floats; the same input gives the same bytes; an image's value does not depend
on the batch it is evaluated in; and an image that fails (a label the parameters do not cover, or
an injected exception, NaN or inf) costs only itself in :func:`evaluate_batch`.
"""

from __future__ import annotations

import numpy as np
import pytest

from mdesign.evaluators import evaluate_batch, get_evaluator, list_evaluators
from mdesign.grf import grf_microstructures

# Cheap settings for the built-ins; an installed third-party evaluator is run with its defaults.
CHEAP = {
    "effective_conductivity": {"conductivities": (1.0, 7.0)},
    "elastic_stiffness": {"youngs_moduli": (1.0, 7.0)},
    "tortuosity": {"phase": 0},
    "optical_absorption": {"order": 1, "grid": 8, "wavelengths": 2},
}

NAMES = [e.name for e in list_evaluators()]


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return grf_microstructures(
        3, (16, 16), volume_fraction=0.4, correlation_length=2, seed=3
    ).images


@pytest.fixture(params=NAMES)
def evaluator(request):
    info = {e.name: e for e in list_evaluators()}[request.param]
    if request.param not in CHEAP and any(p.required for p in info.parameters.values()):
        pytest.skip(f"{request.param} has required parameters this test cannot choose")
    return get_evaluator(request.param, **CHEAP.get(request.param, {}))


def test_one_finite_float_per_image(evaluator, images):
    values = np.asarray(evaluator(images))
    assert values.shape == (len(images),)
    assert values.dtype.kind == "f" and np.isfinite(values).all()
    single = np.asarray(evaluator(images[:1]))
    assert single.shape == (1,)


def test_deterministic_and_independent_of_the_batch(evaluator, images):
    a = np.asarray(evaluator(images))
    b = np.asarray(evaluator(images))
    np.testing.assert_array_equal(a, b)
    one_by_one = np.array([evaluator(images[i : i + 1])[0] for i in range(len(images))])
    np.testing.assert_allclose(one_by_one, a, rtol=1e-9, atol=1e-12)


def test_uncovered_label_fails_only_that_image(evaluator, images):
    phases = getattr(evaluator, "phases", None)
    if phases is None:
        pytest.skip("evaluator does not declare its number of phases")
    bad = images.copy()
    bad[1, 0, 0] = phases  # a label the parameters give no property for
    res = evaluate_batch(evaluator, bad)
    assert [e.index for e in res.errors] == [1]
    assert np.isnan(res.values[1])
    clean = np.asarray(evaluator(images[[0, 2]]))
    np.testing.assert_allclose(res.values[[0, 2]], clean, rtol=1e-9)


@pytest.mark.parametrize("failure", ["raise", "nan", "inf"])
def test_injected_failure_is_isolated(evaluator, images, failure):
    class Failing:
        """The evaluator, failing on the image whose first pixel marks it."""

        name = evaluator.name
        parameters = evaluator.parameters

        def __call__(self, batch):
            values = np.array(evaluator(batch), dtype=float)
            marked = np.array([np.array_equal(b, images[2]) for b in batch])
            if failure == "raise" and marked.any():
                raise RuntimeError("injected")
            values[marked] = np.nan if failure == "nan" else np.inf
            return values

    res = evaluate_batch(Failing(), images)
    assert [e.index for e in res.errors] == [2]
    assert np.isnan(res.values[2]) and np.isfinite(res.values[:2]).all()
    np.testing.assert_allclose(res.values[:2], evaluator(images[:2]), rtol=1e-9)
