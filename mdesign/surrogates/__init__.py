"""Structure-property surrogates on small data, by transfer from the GAN discriminator.

Materials data are small: tens to hundreds of labelled microstructures. This stage fits
regressors image -> property that make the most of few labels by starting from the trained GAN
discriminator's convolutional trunk (the transferability claim of Yang et al. 2018), or from
the trunk of a regressor of another property (cross-property transfer, Gupta et al. 2021), and
compares them with the same network trained from scratch and with a classical PCA(S2) + GP
baseline (:mod:`~mdesign.surrogates.models`). A fitted surrogate is saved like the GAN
(:mod:`~mdesign.surrogates.persistence`), serves as the ``surrogate`` evaluator with an
uncertainty (:mod:`~mdesign.surrogates.evaluator`), screens candidates whose best are confirmed by
the true evaluator (:mod:`~mdesign.surrogates.screening`), and is studied against the number of
labels (:mod:`~mdesign.surrogates.study`, ``mdesign surrogate-study``).

Typical use::

    from mdesign.gan import load_checkpoint
    from mdesign.surrogates import load_surrogate, save_surrogate, transfer_surrogate

    gan = load_checkpoint("artifacts/gan_paper/checkpoint.pt")  # its discriminator transfers best
    model = transfer_surrogate(gan, mode="finetune").fit(images, values, seed=0)
    pred = model.predict(new_images)          # Prediction(mean N, std N)
    save_surrogate(model, "conductivity.pt")
    same = load_surrogate("conductivity.pt")  # identical predictions
"""

from mdesign.surrogates.evaluator import SurrogateEvaluator
from mdesign.surrogates.models import (
    MODES,
    FitInfo,
    NetworkSurrogate,
    Prediction,
    S2Surrogate,
    Surrogate,
    make_surrogate,
    s2_features,
    scratch_surrogate,
    transfer_surrogate,
)
from mdesign.surrogates.persistence import load_surrogate, save_surrogate
from mdesign.surrogates.screening import ScreeningResult, screen
from mdesign.surrogates.study import StudyResult, run_study

__all__ = [
    "MODES",
    "FitInfo",
    "NetworkSurrogate",
    "Prediction",
    "S2Surrogate",
    "ScreeningResult",
    "StudyResult",
    "Surrogate",
    "SurrogateEvaluator",
    "load_surrogate",
    "make_surrogate",
    "run_study",
    "s2_features",
    "save_surrogate",
    "scratch_surrogate",
    "screen",
    "transfer_surrogate",
]
