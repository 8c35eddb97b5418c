"""The small-data study: learning curves of transfer, scratch and S2 + GP surrogates.

:func:`run_study` (``mdesign surrogate-study``) answers the question of Yang et al. (2018) and
Gupta et al. (2021) for this project's microstructures: with K labelled images, does a regressor
that starts from the trained GAN discriminator's trunk (or from a regressor of another property)
predict a property better than the same network trained from scratch, or than a classical
PCA(S2) + GP model?

1. Images: a pool and a test set of level-cut GRF images drawn from the GAN's training
   distribution (its checkpoint records the ``mdesign grf`` parameters; a different seed), and
   GAN samples (the designs a campaign evaluates).
2. Labels: every task's evaluator on every image, cached in ``OUT/labels/``.
3. Learning curves: for each task, seed and K, the first K images of a seeded permutation of
   the pool (nested in K) train each model; all are scored on the same held-out test images (and
   on the GAN samples). Each result is appended to ``OUT/runs.jsonl`` as it completes, so a
   killed study resumes where it stopped.
4. Cross-property transfer: the fine-tuned regressor of a source task at the largest K lends its
   trunk (frozen or fine-tuned) to a target task, at every K.
5. The shipped surrogate: an ensemble trained for the ``surrogate`` evaluator, scored with its
   uncertainty's calibration, and used to screen the GAN samples, confirming its top designs with
   the true evaluator.

Outputs: ``results.json`` (config, data, every run, the curves' means and standard deviations over
seeds, transfer-versus-scratch comparisons, the shipped model's scores and the screening),
``learning_curves.png``, ``report.md`` (tables) and the shipped model file.

One concern per module: :mod:`~.labels` (images, cached labels), :mod:`~.plan` (the runs and
their journal ``runs.jsonl``), :mod:`~.runner` (one run, in a :class:`~.runner.StudyContext`),
:mod:`~.ship` (the shipped surrogate and its screening), :mod:`~.metrics`, :mod:`~.report`
(figure and tables) and :mod:`~.run` (:func:`run_study`, which ties them together).
"""

from mdesign.surrogates.study.metrics import (
    expected_best_of_random,
    regression_metrics,
    summarize,
    transfer_vs_scratch,
)
from mdesign.surrogates.study.plan import json_safe
from mdesign.surrogates.study.run import FORMAT, StudyResult, run_study

__all__ = [
    "FORMAT",
    "StudyResult",
    "expected_best_of_random",
    "json_safe",
    "regression_metrics",
    "run_study",
    "summarize",
    "transfer_vs_scratch",
]
