"""Property evaluators: a typed protocol, a registry, and the built-in physics.

Built-ins (named by path in :data:`~mdesign.evaluators.base.BUILT_IN_PHYSICS`, imported on
first lookup, so that this package imports torch only when they are used):

* ``effective_conductivity``: periodic homogenisation of k-phase images or volumes by finite
  volumes and FFT-preconditioned conjugate gradients (:mod:`mdesign.evaluators.conductivity`);
* ``elastic_stiffness``: effective stiffness of k-phase isotropic images (plane strain or
  stress) or volumes by Q1 voxel finite elements and FFT-preconditioned conjugate gradients, one
  modulus chosen by ``output`` (:mod:`mdesign.evaluators.elasticity`);
* ``tortuosity``: TauFactor's tortuosity factor of one conducting phase, with non-percolating
  samples found by cluster labelling before any solve and reported as ``inf``
  (:mod:`mdesign.evaluators.tortuosity`);
* ``optical_absorption``: normal-incidence absorption of a thin film patterned by the image,
  averaged over wavelength, by rigorous coupled-wave analysis with meent
  (:mod:`mdesign.evaluators.optics`), the property of Yang et al. (2018);
* ``surrogate``: a trained structure-property model (:mod:`mdesign.surrogates`) standing in for
  an expensive evaluator, with an uncertainty (:mod:`mdesign.surrogates.evaluator`). The
  surrogates use the evaluators, so this one is registered by path
  (:data:`~mdesign.evaluators.base.BUILT_IN_ENTRY_POINTS`) and imported on first lookup.

Third-party evaluators register through the entry-point group ``mdesign.evaluators`` or are
named by a ``module:function`` path; see :mod:`mdesign.evaluators.base`.
"""

import sys
import types
from typing import TYPE_CHECKING

from mdesign.evaluators.base import (
    ENTRY_POINT_GROUP,
    EvaluationError,
    EvaluationResult,
    Evaluator,
    EvaluatorInfo,
    FunctionEvaluator,
    Parameter,
    evaluate_batch,
    evaluator_info,
    evaluator_params,
    get_evaluator,
    list_evaluators,
    parameters_from_config,
    parse_params,
    register_evaluator,
)

if TYPE_CHECKING:  # for type checkers and the API docs; imported lazily below
    from mdesign.evaluators.conductivity import (
        EffectiveConductivity,
        conductivity_tensor,
        effective_conductivity,
    )
    from mdesign.evaluators.elasticity import (
        ElasticModuli,
        ElasticStiffness,
        elastic_moduli,
        elastic_stiffness,
        lame_constants,
        stiffness_tensor,
    )
    from mdesign.evaluators.optics import (
        OpticalAbsorption,
        optical_absorption,
        refractive_index,
        thin_film_absorption,
    )
    from mdesign.evaluators.tortuosity import Tortuosity, percolates, tortuosity

_LAZY = {
    # The physics modules import torch: loaded on first attribute access (PEP 562), so that
    # ``import mdesign.evaluators`` and a module:function evaluator stay light.
    "EffectiveConductivity": "conductivity",
    "conductivity_tensor": "conductivity",
    "effective_conductivity": "conductivity",
    "ElasticModuli": "elasticity",
    "ElasticStiffness": "elasticity",
    "elastic_moduli": "elasticity",
    "elastic_stiffness": "elasticity",
    "lame_constants": "elasticity",
    "stiffness_tensor": "elasticity",
    "OpticalAbsorption": "optics",
    "optical_absorption": "optics",
    "refractive_index": "optics",
    "thin_film_absorption": "optics",
    "Tortuosity": "tortuosity",
    "percolates": "tortuosity",
    "tortuosity": "tortuosity",
}

__all__ = [
    "ENTRY_POINT_GROUP",
    "EffectiveConductivity",
    "ElasticModuli",
    "ElasticStiffness",
    "EvaluationError",
    "EvaluationResult",
    "Evaluator",
    "EvaluatorInfo",
    "FunctionEvaluator",
    "OpticalAbsorption",
    "Parameter",
    "Tortuosity",
    "conductivity_tensor",
    "effective_conductivity",
    "elastic_moduli",
    "elastic_stiffness",
    "evaluate_batch",
    "evaluator_info",
    "evaluator_params",
    "get_evaluator",
    "lame_constants",
    "list_evaluators",
    "optical_absorption",
    "parameters_from_config",
    "parse_params",
    "percolates",
    "refractive_index",
    "register_evaluator",
    "stiffness_tensor",
    "thin_film_absorption",
    "tortuosity",
]


class _Package(types.ModuleType):
    """Keeps ``mdesign.evaluators.tortuosity`` the function, as it was before the lazy
    imports: importing the submodule of the same name binds the module on the package."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
