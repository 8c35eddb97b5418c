"""Property evaluators: a typed protocol, a registry, and the built-in physics.

Built-ins (registered below by explicit calls):

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

register_evaluator(EffectiveConductivity, _source="built-in")
register_evaluator(OpticalAbsorption, _source="built-in")
register_evaluator(ElasticStiffness, _source="built-in")
register_evaluator(Tortuosity, _source="built-in")
