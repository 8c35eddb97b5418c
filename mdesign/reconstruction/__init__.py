"""Single-exemplar microstructure reconstruction (Li et al. 2018; Gatys et al. 2015).

One exemplar in, a statistically equivalent microstructure out: the Gram matrices of VGG19
features of the reconstruction are matched to the exemplar's by L-BFGS on the pixels, the pixels
are decoded into phases by k-means, and simulated annealing makes the phase fractions exact while
keeping the two-point correlation close. A level-cut Gaussian random field fitted to the
exemplar's ``S2`` is the baseline.

Modules: :mod:`~.vgg` (feature extractor and weights), :mod:`~.encoding` (labels as RGB),
:mod:`~.loss` (Gram and ``S2`` terms), :mod:`~.optimize` (L-BFGS with stall detection),
:mod:`~.decoding` (k-means), :mod:`~.annealing` (exact fractions, one chain for images and
volumes; its lag and neighbour tables in :mod:`~.lags`), :mod:`~.metrics` (errors against the
exemplar), :mod:`~.baseline` (fitted GRF), :mod:`~.pipeline` (all of it:
:func:`reconstruct`, an image or a volume by the length of its ``size``).

2D to 3D: :mod:`~.volume_loss` (the Gram loss of orthogonal slices, streamed, and the ``S2`` of
the volume's planes).
"""

from mdesign.reconstruction.annealing import AnnealingResult, anneal_fractions
from mdesign.reconstruction.baseline import GRFFit, fit_grf, grf_baseline
from mdesign.reconstruction.decoding import decode_kmeans
from mdesign.reconstruction.loss import LossTerms, TextureLoss, gram_matrix, s2_window
from mdesign.reconstruction.metrics import (
    ReconstructionErrors,
    reconstruction_errors,
    slice_errors,
)
from mdesign.reconstruction.optimize import OptimizationResult, optimize_pixels
from mdesign.reconstruction.pipeline import (
    MIN_SIZE,
    ReconstructionResult,
    check_exemplar,
    check_exemplars,
    check_size,
    reconstruct,
)
from mdesign.reconstruction.vgg import (
    IMAGENET_URL,
    LAYER_INDEX,
    VGG19Features,
    load_vgg19_state_dict,
    vgg19_features,
)

__all__ = [
    "IMAGENET_URL",
    "LAYER_INDEX",
    "MIN_SIZE",
    "AnnealingResult",
    "GRFFit",
    "LossTerms",
    "OptimizationResult",
    "ReconstructionErrors",
    "ReconstructionResult",
    "TextureLoss",
    "VGG19Features",
    "anneal_fractions",
    "check_exemplar",
    "check_exemplars",
    "check_size",
    "decode_kmeans",
    "fit_grf",
    "gram_matrix",
    "grf_baseline",
    "load_vgg19_state_dict",
    "optimize_pixels",
    "reconstruct",
    "reconstruction_errors",
    "s2_window",
    "slice_errors",
    "vgg19_features",
]
