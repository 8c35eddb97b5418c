"""The ``surrogate`` evaluator: a trained structure-property regressor as a property.

Built by ``get_evaluator("surrogate", model="conductivity.pt")`` (``mdesign evaluate INPUT
--evaluator surrogate --param model=conductivity.pt``); the model is a file written by
``mdesign surrogate-train`` or ``mdesign surrogate-study`` (:mod:`mdesign.surrogates`). Its
values are the model's mean prediction, in the units of the property it was trained on; its
:meth:`SurrogateEvaluator.predict` also gives the uncertainty (ensemble spread or GP posterior
standard deviation), which :func:`mdesign.surrogates.screen` uses to pick the designs a
campaign confirms with the true evaluator.

A prediction is much cheaper than the evaluators it stands in for (measured costs in the docs'
performance page); it is only as good as the model's test error, which the study reports
(``artifacts/surrogates/``).

It lives here, beside the models, rather than in :mod:`mdesign.evaluators`: the surrogates use
the evaluators (to label and to confirm), so the registry names this class by its path and
imports it on first lookup, like an installed entry point, and the dependency points one way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mdesign.config import SurrogateEvaluatorConfig
from mdesign.errors import InputError
from mdesign.evaluators.base import Parameter, parameters_from_config, parse_params
from mdesign.surrogates.models import Prediction, Surrogate
from mdesign.surrogates.persistence import load_surrogate

__all__ = ["SurrogateEvaluator"]


class SurrogateEvaluator:
    """A trained surrogate's mean prediction (network ensemble or PCA(S2) + GP).

    Built by ``get_evaluator("surrogate", model=PATH)``; ``predict(images)`` gives the mean and
    the uncertainty (:class:`mdesign.surrogates.Prediction`).
    """

    name = "surrogate"
    parameters: Mapping[str, Parameter] = parameters_from_config(SurrogateEvaluatorConfig)
    phases = 2
    phases_parameter = "model"
    batch_size = 256
    """Images per call (progress is reported per call)."""

    def __init__(self, **params: Any):
        self.params = parse_params(self.parameters, params, evaluator=self.name)
        try:
            self.model: Surrogate = load_surrogate(self.params["model"])
        except InputError as exc:
            raise InputError(f"evaluator {self.name}: parameter model: {exc}") from None

    @property
    def target(self) -> dict[str, Any]:
        """What the model predicts (task, evaluator and parameters it was trained on)."""
        return dict(self.model.target)

    def predict(self, images: np.ndarray) -> Prediction:
        """Mean and uncertainty, :class:`mdesign.surrogates.Prediction`, of ``N x H x W``."""
        return self.model.predict(images)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.model.predict(images).mean

    def __repr__(self) -> str:
        return f"SurrogateEvaluator({self.params})"
