"""Reconstruction from 2D exemplars, end to end: an image or a volume, by the length of ``size``.

1. Encode the exemplar's labels as an RGB image (:mod:`~mdesign.reconstruction.encoding`) and take
   its Gram matrices at the chosen VGG19 layers and its ``S2`` window
   (:mod:`~mdesign.reconstruction.loss`; ``config.texture``).
2. Optimise the pixels or voxels (the one dimension-specific stage): an image ``H x W`` by L-BFGS
   (:mod:`~mdesign.reconstruction.optimize`, ``config.optimiser``) from the colours of a GRF
   fitted to the exemplar's ``S2`` or from noise (``init``), at half size first
   (``coarse_to_fine``), then briefly at full size; a volume ``H x W x D`` by Adam against the
   Gram loss of slices drawn along each axis (:class:`~.volume_loss.SliceLoss`,
   ``config.slices``), from the GRF (:func:`~.baseline.fit_grf`) or noise. The slices' Gram loss
   is a stochastic estimate, which rules out L-BFGS's line search.
3. Decode the pixels by k-means (:mod:`~mdesign.reconstruction.decoding`).
4. Anneal to the exact fractions (:mod:`~mdesign.reconstruction.annealing`, one chain;
   ``config.anneal``, a volume's ``volume_`` keys); with ``cleanup``, join a network's fragments,
   dissolve the surplus of small clusters and anneal again (guard, surface stage).
5. Measure the result, or its slices along each axis, against the exemplar
   (:mod:`~mdesign.reconstruction.metrics`).

References
----------
Li, X., Zhang, Y., Zhao, H., Burkhart, C., Brinson, L. C. & Chen, W. "A transfer learning
approach for microstructure reconstruction and structure-property predictions", Sci. Rep. 8,
13461 (2018).
Gatys, L. A., Ecker, A. S. & Bethge, M. "Texture synthesis using convolutional neural networks",
NeurIPS (2015).
Bostanabad, R. "Reconstruction of 3D microstructures from 2D images via transfer learning",
Computer-Aided Design 128, 102906 (2020).
Yeong, C. L. Y. & Torquato, S. "Reconstructing random media. II. Three-dimensional media from
two-dimensional cuts", Phys. Rev. E 58, 224 (1998).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mdesign.config import RECONSTRUCTION_DEFAULTS, ReconstructionConfig
from mdesign.descriptors import specific_surface
from mdesign.device import default_device
from mdesign.errors import InputError
from mdesign.io import MAX_PHASES
from mdesign.memory import check_memory
from mdesign.reconstruction.annealing import (
    AnnealingResult,
    _sheet_phases,
    anneal_fractions,
    is_matrix_material,
    is_network,
    join_network_fragments,
    remove_small_clusters,
    volume_fractions,
)
from mdesign.reconstruction.baseline import GRFFit, ShellFit, fit_grf, fit_shell
from mdesign.reconstruction.cells import network_sheets
from mdesign.reconstruction.decoding import decode_kmeans
from mdesign.reconstruction.encoding import encoding_colours, pixel_channels
from mdesign.reconstruction.ends import close_network_ends
from mdesign.reconstruction.lamellae import is_lamellar, lamellar_start
from mdesign.reconstruction.loss import TextureLoss
from mdesign.reconstruction.metrics import (
    ReconstructionErrors,
    reconstruction_errors,
    slice_errors,
)
from mdesign.reconstruction.optimize import OptimizationResult, optimize_pixels
from mdesign.reconstruction.particles import particle_phases, shape_particles
from mdesign.reconstruction.vgg import vgg19_features
from mdesign.reconstruction.volume_loss import SliceLoss
from mdesign.seeds import SeedLike, child_seeds

__all__ = [
    "MIN_SIZE",
    "ReconstructionResult",
    "check_exemplar",
    "check_exemplars",
    "check_size",
    "reconstruct",
    "reconstruction_memory",
]

MIN_SIZE = 32
"""Smallest side of an exemplar or output: VGG19's pool4 needs 16 px; 32 leaves it 2 x 2."""

# Peak memory per output pixel: VGG19 activations kept for the backward pass and their gradients
# in float32, from a measured peak (the docs' performance page, memory estimates), rounded up.
BYTES_PER_PIXEL = 6144


def reconstruction_memory(
    shape: Sequence[int], *, chunk: int = RECONSTRUCTION_DEFAULTS.slices.chunk
) -> int:
    """Bytes a reconstruction of output size ``shape`` needs at its peak, about.

    An image ``H x W``: the VGG19 activations of its pixels. A volume ``H x W x D``: those of
    ``chunk`` slices of the largest face, plus about 200 bytes per voxel (the voxels with their
    gradient and Adam's moments, the FFT of the soft indicators, k-means and the annealing's
    padded copies). The estimate :func:`mdesign.memory.check_memory` compares with the budget
    before any work.
    """
    dims = [int(s) for s in shape]
    if len(dims) == 2:
        return BYTES_PER_PIXEL * dims[0] * dims[1]
    h, w, d = dims
    face = max(h * w, h * d, w * d)
    return BYTES_PER_PIXEL * chunk * face + 200 * h * w * d


@dataclass(frozen=True)
class ReconstructionResult:
    """A reconstruction, an image or a volume, and how it was made.

    Attributes
    ----------
    labels : ndarray of uint8, ``H x W`` or ``H x W x D``
        The reconstruction: phase labels with the exemplars' fractions (to one pixel).
    decoded : ndarray of uint8, the shape of ``labels``
        The k-means decoding before annealing.
    pixels : ndarray of float32, ``C x H x W`` or ``C x H x W x D``
        The optimised pixels.
    optimization : OptimizationResult
        The last (full-size) optimisation: losses (an image: at every L-BFGS evaluation; a
        volume: every Adam step, its Gram part the estimate on that step's slices), iterations,
        stall and convergence flags.
    coarse : OptimizationResult or None
        The half-size stage of ``optimiser.coarse_to_fine`` (an image) or
        ``slices.coarse_to_fine`` (a volume).
    annealing : AnnealingResult
    axes : tuple of ReconstructionErrors
        An image: one, the errors against the exemplar. A volume: three, the slices normal to
        each axis against that axis's exemplar (:func:`~mdesign.reconstruction.metrics.
        slice_errors`).
    volume_fraction_exemplar : ndarray, ``k``
        The fractions the labels were made to (a volume: the mean over the distinct exemplars).
    weights : str
        The VGG19 weights used (``normalized``, ``imagenet``, ``random`` or the path).
    start : ndarray of uint8 or None
        The fitted GRF start (``slices.init="grf"``, an image's ``optimiser.init="grf"``), or
        the lamellar start (``slices.init="shell"`` or ``"lamellae"``).
    grf : GRFFit, ShellFit or None
        Its fit (:mod:`~mdesign.reconstruction.baseline`).
    annealing_stages : tuple of str
        The annealing's stages that ran, in order (a volume's by the ``volume_`` keys of
        ``config.anneal``, an image's by the others).
    specific_surface : ndarray, ``k``
        Interface per unit area (an image) or volume of each phase, pixel units
        (:func:`mdesign.descriptors.specific_surface`, the output's estimator).
    seconds : float
        Wall time of the whole reconstruction; ``seconds_optimization`` and
        ``seconds_annealing`` of those stages.
    """

    labels: np.ndarray
    decoded: np.ndarray
    pixels: np.ndarray
    optimization: OptimizationResult
    coarse: OptimizationResult | None
    annealing: AnnealingResult
    axes: tuple[ReconstructionErrors, ...]
    volume_fraction_exemplar: np.ndarray
    weights: str
    start: np.ndarray | None
    grf: GRFFit | ShellFit | None
    specific_surface: np.ndarray
    annealing_stages: tuple[str, ...]
    seconds: float
    seconds_optimization: float
    seconds_annealing: float

    @property
    def errors(self) -> ReconstructionErrors:
        """An image's errors against its exemplar (a volume's: :attr:`axes`)."""
        if len(self.axes) != 1:
            raise AttributeError("a volume's errors are per axis: use .axes")
        return self.axes[0]

    @property
    def iterations(self) -> int:
        """L-BFGS iterations over both stages, or Adam steps."""
        return self.optimization.iterations + (self.coarse.iterations if self.coarse else 0)

    @property
    def converged(self) -> bool:
        return self.optimization.converged

    @property
    def s2_rmse(self) -> float:
        """The ``S2`` RMSE (a volume: the mean over the axes)."""
        return float(np.mean([e.s2_rmse for e in self.axes]))

    @property
    def lineal_path_rmse(self) -> float:
        """The lineal-path RMSE (a volume: the mean over the axes)."""
        return float(np.mean([e.lineal_path_rmse for e in self.axes]))

    def report(self) -> dict:
        """The contract's ``--report`` keys, and more; a volume's statistics per axis."""
        opt, ann = self.optimization, self.annealing
        counts = np.bincount(self.labels.ravel(), minlength=self.volume_fraction_exemplar.size)
        out = {
            "volume_fraction_exemplar": self.volume_fraction_exemplar.tolist(),
            "volume_fraction_reconstruction": (counts / self.labels.size).tolist(),
            "s2_rmse": self.s2_rmse,
            "lineal_path_rmse": self.lineal_path_rmse,
            "iterations": self.iterations,
            "seconds": self.seconds,
            "weights": self.weights,
            "shape": list(self.labels.shape),
            "fraction_error_pixels": float(np.abs(counts - ann.target_counts).max()),
            "converged": self.converged,
            "stalled": opt.stalled or bool(self.coarse and self.coarse.stalled),
            "loss_initial": float(opt.losses[0]),
            "loss_final": float(opt.losses[-1]),
            "evaluations": opt.evaluations + (self.coarse.evaluations if self.coarse else 0),
            "seconds_optimization": self.seconds_optimization,
            "seconds_annealing": self.seconds_annealing,
            "annealing": {
                "flips": ann.flips,
                "proposals": ann.proposals,
                "accepted": ann.accepted,
                "surface_swaps": ann.surface_swaps,
                "stages": list(self.annealing_stages),
                "energy_initial": ann.energy_initial,
                "energy_fractions": ann.energy_fractions,
                "energy_final": ann.energy_final,
            },
            "curve_phases": list(self.axes[0].phases),
        }
        if self.labels.ndim == 2:
            e = self.axes[0]
            return out | {
                "s2_exemplar": e.s2_exemplar.tolist(),
                "s2_reconstruction": e.s2_reconstruction.tolist(),
                "lineal_path_exemplar": e.lineal_path_exemplar.tolist(),
                "lineal_path_reconstruction": e.lineal_path_reconstruction.tolist(),
                **e.morphology_report(),
            }
        return out | {
            "gram_initial": float(opt.gram_losses[0]),
            "gram_final": float(np.mean(opt.gram_losses[-10:])),
            "start": None
            if self.grf is None
            else {
                "grf_covariance": self.grf.covariance,
                "grf_correlation_length": self.grf.correlation_length,
                "grf_sheet_phase": self.grf.sheet_phase,
            },
            "specific_surface_volume": self.specific_surface.tolist(),
            "axes": [
                {
                    "axis": a,
                    "slices": int(self.labels.shape[a]),
                    "s2_rmse": e.s2_rmse,
                    "lineal_path_rmse": e.lineal_path_rmse,
                    "volume_fraction_exemplar": e.volume_fraction_exemplar.tolist(),
                    "volume_fraction_slices": e.volume_fraction_reconstruction.tolist(),
                    "s2_exemplar": e.s2_exemplar.tolist(),
                    "s2_slices": e.s2_reconstruction.tolist(),
                    "lineal_path_exemplar": e.lineal_path_exemplar.tolist(),
                    "lineal_path_slices": e.lineal_path_reconstruction.tolist(),
                    **e.morphology_report(),
                }
                for a, e in enumerate(self.axes)
            ],
        }


def check_exemplar(exemplar: np.ndarray, *, source: str = "exemplar") -> int:
    """Validate an exemplar and return its number of phases.

    Raises
    ------
    InputError
        Not a single 2D image, a side below :data:`MIN_SIZE`, one phase only, more than 8, or
        a phase label that does not occur (labels must be ``0..k-1``, all present).
    """
    arr = np.asarray(exemplar)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{source}: expected integer phase labels, got an array of {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{source}: contains NaN or infinite values")
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        raise InputError(
            f"{source}: expected integer phase labels 0..k-1, got fractional values (segment a "
            "grayscale image first: mdesign.io.read_images does)"
        )
    if arr.ndim != 2:
        raise InputError(
            f"{source}: expected one 2D image (H x W), got shape {arr.shape}"
            + (f" ({arr.shape[0]} images)" if arr.ndim == 3 else "")
        )
    if min(arr.shape) < MIN_SIZE:
        raise InputError(
            f"{source}: {arr.shape[0]}x{arr.shape[1]} is too small; sides must be at least "
            f"{MIN_SIZE} px"
        )
    present = np.unique(arr)
    if present.size < 2:
        raise InputError(f"{source}: only one phase; a reconstruction needs 2 to {MAX_PHASES}")
    k = int(present.max()) + 1
    if k > MAX_PHASES:
        raise InputError(f"{source}: {k} phases; at most {MAX_PHASES}")
    if present.size != k:
        missing = sorted(set(range(k)) - set(present.tolist()))
        raise InputError(
            f"{source}: labels must be 0..{k - 1} with every phase present; "
            f"missing {', '.join(map(str, missing))}"
        )
    return k


def check_exemplars(
    exemplars: Sequence[np.ndarray], *, sources: Sequence[str], volume: bool = True
) -> int:
    """Validate one exemplar, or three (one per axis of a volume); return the phase count.

    Raises
    ------
    InputError
        Several exemplars for an image; two, or more than three, for a volume; an exemplar
        :func:`check_exemplar` refuses; three exemplars with different numbers of phases.
    """
    if not volume and len(exemplars) != 1:
        raise InputError(
            f"{len(exemplars)} exemplars: several exemplars (one per axis) need a volume "
            "(size H W D)"
        )
    if len(exemplars) not in (1, 3):
        raise InputError(
            f"expected one exemplar (every axis) or three (one per axis: the slices normal to H, "
            f"W and D), got {len(exemplars)}"
        )
    counts = [check_exemplar(ex, source=src) for ex, src in zip(exemplars, sources, strict=True)]
    if len(set(counts)) > 1:
        raise InputError(
            "the three exemplars must have the same phases, got "
            + ", ".join(f"{src}: {k}" for src, k in zip(sources, counts, strict=True))
        )
    return counts[0]


def check_size(size: Sequence[int]) -> tuple[int, ...]:
    """An output size ``(H, W)`` or ``(H, W, D)`` of at least :data:`MIN_SIZE` each, else an
    InputError."""
    shape = tuple(int(s) for s in size)
    if len(shape) not in (2, 3) or min(shape) < MIN_SIZE:
        raise InputError(
            f"expected H W or H W D of at least {MIN_SIZE} px each, got "
            f"{' '.join(map(str, shape))}",
            param="size",
        )
    return shape


def _upsample(pixels: torch.Tensor, shape: tuple[int, ...], *, periodic: bool) -> torch.Tensor:
    """Bilinear (an image ``N x C x H x W``) or trilinear (a volume ``N x C x H x W x D``)
    upsampling to ``shape``; on the torus when ``periodic``."""
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    if not periodic:
        return F.interpolate(pixels, size=shape, mode=mode, align_corners=False)
    padded = F.pad(pixels, (1, 1) * len(shape), mode="circular")
    factors = tuple(n / m for n, m in zip(shape, pixels.shape[2:], strict=True))
    big = F.interpolate(padded, scale_factor=factors, mode=mode, align_corners=False)
    return big[(..., *(slice(round(f), round(f) + n) for f, n in zip(factors, shape, strict=True)))]


def _as_exemplars(exemplars) -> list[np.ndarray]:
    if isinstance(exemplars, np.ndarray) and exemplars.ndim == 2:
        exemplars = [exemplars]
    elif isinstance(exemplars, np.ndarray) and exemplars.ndim == 3 and exemplars.shape[0] == 1:
        exemplars = [exemplars[0]]
    out = [np.asarray(ex) for ex in exemplars]
    return [ex[0] if ex.ndim == 3 and ex.shape[0] == 1 else ex for ex in out]


def reconstruct(
    exemplars: np.ndarray | Sequence[np.ndarray],
    size: Sequence[int] | None = None,
    config: ReconstructionConfig = RECONSTRUCTION_DEFAULTS,
    *,
    seed: SeedLike | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> ReconstructionResult:
    """Reconstruct a microstructure statistically equivalent to 2D exemplars (Li et al. 2018).

    An image when ``size`` has two sides, a volume whose orthogonal slices match the exemplar(s)
    when it has three (module docstring).

    Parameters
    ----------
    exemplars : ndarray ``h x w``, or a sequence of 1 or 3 of them
        Phase labels ``0..k-1`` (2 <= k <= 8, all present), sides >= 32. A volume takes one
        exemplar for every axis (an isotropic material) or ``exemplars[a]`` for the slices
        normal to axis ``a`` (``np.take(volume, i, a)``, rows along the lower remaining axis).
    size : (int, int) or (int, int, int), optional
        Output ``H x W`` or ``H x W x D`` (each >= 32); the exemplar's by default. Gram matrices
        do not depend on the size, so it may differ.
    config : ReconstructionConfig
        The settings (:class:`mdesign.config.ReconstructionConfig`).
    seed : int, numpy.random.Generator or numpy.random.SeedSequence, optional
        Seeds the start, random weights, k-means and annealing (``config.seed`` by default):
        the same seed gives the same labels (on the same device and torch build). An int seeds
        the cleanup annealing (an image) or the GRF fit (a volume) with ``seed + 1`` (as it
        always has); a generator or sequence spawns two children
        (:func:`mdesign.seeds.child_seeds`).
    device : torch.device, optional
        CUDA when available by default.
    progress : bool
        Show progress bars.

    Returns
    -------
    ReconstructionResult
    """
    start = time.perf_counter()
    # an int keeps seed, seed + 1 (pinned results); a Generator or SeedSequence spawns two
    seed, second = child_seeds(config.seed if seed is None else seed, 2)
    config = config.model_copy(update={"seed": seed})
    exemplars = _as_exemplars(exemplars)
    volume = size is not None and len(size) == 3
    sources = [f"exemplar {i}" for i in range(len(exemplars))] if volume else ["exemplar"]
    phases = check_exemplars(exemplars, sources=sources, volume=volume)
    exemplars = [ex.astype(np.uint8) for ex in exemplars]
    shape = tuple(exemplars[0].shape) if size is None else check_size(size)
    check_memory(
        reconstruction_memory(shape, chunk=config.slices.chunk),
        what=f"reconstructing {' x '.join(map(str, shape))}",
        param="size",
    )
    if volume and len(exemplars) == 1:
        exemplars = exemplars * 3
    device = default_device(device)
    quarter = min(*shape, *(s for ex in exemplars for s in ex.shape)) // 4
    optimise = _optimise_volume if volume else _optimise_image
    opt, coarse, labels0, fit = optimise(
        exemplars,
        shape,
        config,
        phases=phases,
        quarter=quarter,
        second=second,
        device=device,
        progress=progress,
    )
    t_opt = time.perf_counter() - start
    pixels = opt.pixels[0].cpu().numpy()
    decoded = decode_kmeans(pixels, phases, seed=config.seed)
    t_anneal = time.perf_counter()
    annealing = _anneal(
        decoded,
        exemplars,
        config,
        phases=phases,
        quarter=quarter,
        cleanup_seed=second,
        progress=progress,
    )
    t_anneal = time.perf_counter() - t_anneal
    labels = annealing.labels
    if volume:
        errors = [
            slice_errors(
                exemplars[a],
                labels,
                axis=a,
                phases=phases,
                volume_periodic=config.periodic,
                exemplar_periodic=config.exemplar_periodic,
            )
            for a in range(3)
        ]
    else:
        errors = [
            reconstruction_errors(
                exemplars[0],
                labels,
                phases=phases,
                reconstruction_periodic=config.periodic,
                exemplar_periodic=config.exemplar_periodic,
            )
        ]
    surface = np.array(
        [
            specific_surface(labels[None], phase=j, periodic=config.periodic)[0]
            for j in range(phases)
        ]
    )
    return ReconstructionResult(
        labels=labels,
        decoded=decoded,
        pixels=pixels.astype(np.float32),
        optimization=opt,
        coarse=coarse,
        annealing=annealing,
        axes=tuple(errors),
        volume_fraction_exemplar=volume_fractions(exemplars, phases),
        weights=str(config.texture.weights),
        start=labels0,
        grf=fit,
        specific_surface=surface,
        annealing_stages=_anneal_stages(labels.ndim, config, exemplars, phases),
        seconds=time.perf_counter() - start,
        seconds_optimization=t_opt,
        seconds_annealing=t_anneal,
    )


def _extractor(config: ReconstructionConfig, device, progress, *, layers=None):
    tex = config.texture
    return vgg19_features(
        tex.layers if layers is None else layers,
        weights=tex.weights,
        pooling=tex.pooling,
        padding_mode="circular" if config.periodic else "zeros",
        seed=config.seed,
        device=device,
        progress=progress,
        precision=tex.precision,
    )


def _loss_settings(config: ReconstructionConfig, phases: int) -> dict:
    tex = config.texture
    return dict(
        phases=phases,
        s2_weight=tex.s2_weight,
        periodic=config.periodic,
        exemplar_periodic=config.exemplar_periodic,
        temperature=tex.temperature,
        tv_weight=tex.tv_weight,
        anisotropy_weight=tex.anisotropy_weight,
        s2_local_means=tex.s2_local_means,
        s2_minority=tex.s2_minority,
        uniformity_weight=tex.uniformity_weight,
    )


def _optimise_image(exemplars, shape, config, *, phases, quarter, second, device, progress):
    """L-BFGS on the pixels of an image (module docstring): the last and the coarse stage.

    ``second`` (the second seed) seeds the GRF fit of ``optimiser.init="grf"``."""
    exemplar, opt_cfg = exemplars[0], config.optimiser
    max_lag = max(1, min(config.texture.s2_max_lag, quarter))
    extractor = _extractor(config, device, progress)
    loss_kw = _loss_settings(config, phases)
    # the L-BFGS settings but the iteration counts
    opt_kw = opt_cfg.model_dump(
        exclude={"init", "iterations", "coarse_to_fine", "coarse_iterations"}
    )
    opt_kw["progress"] = progress
    gen = torch.Generator().manual_seed(int(config.seed))
    c = pixel_channels(phases)
    labels0, fit = _start(
        exemplars[:1],
        shape,
        phases=phases,
        init=opt_cfg.init,
        seed=config.seed,
        exemplar_periodic=config.exemplar_periodic,
        fit_seed=second,
    )
    coarse = None
    if (
        opt_cfg.coarse_to_fine
        and min(shape) >= 2 * MIN_SIZE
        and min(exemplar.shape) >= 2 * MIN_SIZE
    ):
        half = (shape[0] // 2, shape[1] // 2)
        coarse_loss = TextureLoss(
            extractor, exemplar, s2_max_lag=max(1, max_lag // 2), scale=2, **loss_kw
        )
        if labels0 is None:
            init = torch.rand((1, c, *half), generator=gen)
        else:  # the GRF's colours at half size, as the coarse targets are the exemplar's
            init = F.avg_pool2d(_grf_pixels(labels0, phases, gen)[None], 2)
        coarse = optimize_pixels(
            coarse_loss,
            init.to(device),
            iterations=opt_cfg.coarse_iterations,
            desc="L-BFGS 1/2",
            **opt_kw,
        )
        init = _upsample(coarse.pixels, shape, periodic=config.periodic)
    elif labels0 is None:
        init = torch.rand((1, c, *shape), generator=gen).to(device)
    else:
        init = _grf_pixels(labels0, phases, gen)[None].to(device)
    fine = config.texture.fine_layers
    if coarse is not None and fine is not None and tuple(fine) != tuple(config.texture.layers):
        # the half-size stage set the large scales: the full-size stage's own (cheaper) layers
        extractor = _extractor(config, device, progress, layers=fine)
    loss = TextureLoss(extractor, exemplar, s2_max_lag=max_lag, **loss_kw)
    opt = optimize_pixels(loss, init, iterations=opt_cfg.iterations, **opt_kw)
    return opt, coarse, labels0, fit


def _grf_pixels(labels: np.ndarray, phases: int, gen: torch.Generator) -> torch.Tensor:
    """Start pixels ``C x ...`` from start labels: their colours shrunk to ``0.1..0.9`` and 5%
    of the seeded noise (``optimiser.init="grf"``, images and volumes)."""
    colours = encoding_colours(phases)
    idx = torch.as_tensor(labels, dtype=torch.long)
    x0 = 0.1 + 0.8 * colours[idx].movedim(-1, 0)
    return x0 + 0.05 * torch.rand(x0.shape, generator=gen)


def _start(exemplars, shape, *, phases, init, seed, exemplar_periodic, fit_seed=None):
    """A volume's start labels, fitted to the (distinct) exemplars' ``S2``, or None for noise.

    A thin phase that is a network in the exemplar (grain boundaries,
    :func:`~mdesign.reconstruction.annealing.is_network`) starts as sheets, the two-sided cut
    ``{|Y| < t}`` (:func:`~mdesign.reconstruction.baseline.fit_grf` with ``sheets``), whose
    slices are webs of lines, instead of the blobs of a level cut.

    With three different exemplars, the GRF takes the mean of their fitted correlation lengths
    (an isotropic start; the optimisation makes the anisotropy), and sheets only when every
    exemplar's fit is sheets of the same phase.
    ``init="shell"`` or ``"lamellae"``: lamellae
    (:func:`~mdesign.reconstruction.baseline.fit_shell`), the mean shell of several exemplars.
    """
    if init == "noise":
        return None, None
    distinct = list({id(ex): ex for ex in exemplars}.values())
    if init in ("shell", "lamellae"):  # of the exemplars' (mean) period, at their mean fractions
        shells = [
            fit_shell(
                ex,
                shape=tuple(shape),
                phases=phases,
                seed=seed + 1 if fit_seed is None else fit_seed,
                exemplar_periodic=exemplar_periodic,
                lamellae=init == "lamellae",
            )
            for ex in distinct
        ]
        fit = shells[0]
        if len(shells) > 1:
            fit = dataclasses.replace(
                fit,
                wavenumber=float(np.mean([f.wavenumber for f in shells])),
                width=float(np.mean([f.width for f in shells])),
                fractions=np.mean([f.fractions for f in shells], axis=0),
                s2_rmse=float(np.mean([f.s2_rmse for f in shells])),
            )
        return fit.sample(1, shape, seed=seed)[0], fit
    fits = [
        fit_grf(
            ex,
            phases=phases,
            seed=seed + 1 if fit_seed is None else fit_seed,
            exemplar_periodic=exemplar_periodic,
            sheets=phases == 2 and is_network(ex, int(np.argmin(np.bincount(ex.ravel())))),
        )
        for ex in distinct
    ]
    fit = fits[0]
    if len(fits) > 1:
        fractions = np.mean([f.fractions for f in fits], axis=0)
        length = float(np.mean([f.correlation_length for f in fits]))
        # sheets only when every exemplar's thin phase is the same web
        same = all(f.sheet_phase == fit.sheet_phase for f in fits)
        sheet = fit.sheet_phase if same else None
        fit = GRFFit(fit.covariance, length, fit.order, fractions, fit.s2_rmse, sheet_phase=sheet)
    return fit.sample(1, shape, seed=seed)[0], fit


def _optimise_volume(exemplars, shape, config, *, phases, quarter, second, device, progress):
    """Adam on the voxels against the slices' loss (module docstring), from the GRF start; with
    ``slices.coarse_to_fine``, on a half-size volume first (the exemplars shrunk by 2), then
    upsampled."""
    sl, seed = config.slices, config.seed
    gen = torch.Generator().manual_seed(int(seed))
    labels0, fit = _start(
        exemplars,
        shape,
        phases=phases,
        init=sl.init,
        seed=seed,
        exemplar_periodic=config.exemplar_periodic,
        fit_seed=second,
    )
    c = pixel_channels(phases)
    if labels0 is None:
        x0 = torch.rand((c, *shape), generator=gen)
    else:
        x0 = _grf_pixels(labels0, phases, gen)
    extractor = _extractor(config, device, progress)
    max_lag = max(1, min(config.texture.s2_max_lag, quarter))
    coarse = None
    if (
        sl.coarse_to_fine
        and min(shape) >= 2 * MIN_SIZE
        and min(s for ex in exemplars for s in ex.shape) >= 2 * MIN_SIZE
    ):
        half = tuple(n // 2 for n in shape)
        coarse_loss = SliceLoss(
            extractor,
            exemplars,
            s2_max_lag=max(1, max_lag // 2),
            scale=2,
            **_loss_settings(config, phases),
        )
        # the start's colours at half size, as the coarse targets are the exemplars'
        start = F.avg_pool3d(x0[None], 2)[0] if labels0 is not None else x0[:, ::2, ::2, ::2]
        coarse = _adam_slices(
            coarse_loss, start, half, sl, sl.coarse_iterations, gen, config, device, progress
        )
        x0 = _upsample(coarse.pixels, shape, periodic=config.periodic)[0].cpu()
    loss = SliceLoss(extractor, exemplars, s2_max_lag=max_lag, **_loss_settings(config, phases))
    result = _adam_slices(loss, x0, shape, sl, sl.iterations, gen, config, device, progress)
    return result, coarse, labels0, fit


def _adam_slices(loss, x0, shape, sl, iterations, gen, config, device, progress):
    """Adam on the voxels ``x0`` (``C x H x W x D``) against ``loss`` (a :class:`SliceLoss`) for
    ``iterations`` steps, each on ``sl.slices`` freshly drawn slices per axis."""
    x = x0.to(device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=sl.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations, eta_min=0.05 * sl.lr)
    per_axis = [min(sl.slices, n) for n in shape]
    terms = []
    bar = tqdm(range(iterations), desc="Adam 3D", unit="step", disable=not progress, leave=False)
    for _ in bar:
        picks = [
            torch.randperm(n, generator=gen)[:k].to(device)
            for n, k in zip(shape, per_axis, strict=True)
        ]
        t = loss.backward_step(x, picks, chunk=sl.chunk)
        opt.step()
        sched.step()
        terms.append((t.total, t.gram, t.s2))
        bar.set_postfix(loss=f"{t.total:.3g}")
    bar.close()
    arr = np.array(terms, dtype=np.float64)
    return OptimizationResult(
        pixels=x.detach()[None],
        losses=arr[:, 0],
        gram_losses=arr[:, 1],
        s2_losses=arr[:, 2],
        iterations=iterations,
        evaluations=iterations,
        stalled=False,
        converged=bool(arr[-1, 0] <= config.optimiser.convergence_ratio * arr[0, 0]),
    )


def _settings(ndim: int, config: ReconstructionConfig, exemplars=None, phases: int = 2) -> dict:
    """The annealing settings of an image (``ndim`` 2) or a volume (3): the ``volume_`` keys; with
    ``anneal.volume_matrix``, a volume whose ``exemplars`` are all matrix materials
    (:func:`~.annealing.is_matrix_material`) takes the image's stages (guard, neighbourhood
    term, surface stage, cleanup)."""
    an = config.anneal
    keys = ("sweeps", "batch", "neighbour_weight", "keep_clusters", "surface", "cleanup", "walk")
    st = {k: getattr(an, f"volume_{k}" if ndim == 3 else k) for k in keys}
    if ndim == 3 and an.volume_matrix and exemplars is not None and _matrix(exemplars, phases):
        st |= {k: getattr(an, k) for k in ("neighbour_weight", "keep_clusters", "surface")}
        st["cleanup"] = an.cleanup
    return st


def _matrix(exemplars, phases: int) -> bool:
    """Every exemplar is a matrix material (:func:`~.annealing.is_matrix_material`)."""
    return all(is_matrix_material(ex, phases) for ex in exemplars)


def _closes_ends(ndim: int, config: ReconstructionConfig, exemplars, phases: int) -> bool:
    """Whether an image's cleanup closes network ends: ``anneal.close_ends`` and a thin network
    phase in the exemplar (None: assumed)."""
    if ndim != 2 or not config.anneal.close_ends:
        return False
    return exemplars is None or bool(_sheet_phases(list(exemplars)[:1], phases))


def _shapes_particles(ndim: int, config: ReconstructionConfig, exemplars, phases: int) -> bool:
    """Whether an image's cleanup shapes particles: ``anneal.shape_particles`` and a particle
    phase in the exemplar (None: assumed)."""
    if ndim != 2 or not config.anneal.shape_particles:
        return False
    return exemplars is None or bool(particle_phases(next(iter(exemplars)), phases))


def _sheets_on(ndim: int, config: ReconstructionConfig) -> bool:
    """Whether the annealing starts with the network sheets: ``anneal.volume_sheets`` for a
    volume, ``anneal.image_sheets`` for an image."""
    return config.anneal.volume_sheets if ndim == 3 else config.anneal.image_sheets


def _lamellae_on(ndim: int, config: ReconstructionConfig, exemplars, phases: int) -> bool:
    """Whether a volume's annealing starts from the fitted lamellae: ``anneal.volume_lamellae``
    and every exemplar lamellar (:func:`~.lamellae.is_lamellar`; None: assumed)."""
    if ndim != 3 or not config.anneal.volume_lamellae:
        return False
    return exemplars is None or all(
        is_lamellar(ex, phases, exemplar_periodic=config.exemplar_periodic)
        for ex in list(exemplars)[:3]
    )


def _anneal_stages(
    ndim: int, config: ReconstructionConfig, exemplars=None, phases: int = 2
) -> tuple[str, ...]:
    """The stages :func:`_anneal` runs, in order (:mod:`~.annealing`); the network sheets (and
    with them the guard) where the ``exemplars`` (an image's first, a volume's three) have a
    phase for them (None: assumed)."""
    st = _settings(ndim, config, exemplars, phases)
    sheets = ()
    if _sheets_on(ndim, config):
        if exemplars is None or _sheet_phases(list(exemplars)[: 1 if ndim == 2 else 3], phases):
            sheets = ("network sheets",)
    lamellae = ("lamellae",) if _lamellae_on(ndim, config, exemplars, phases) else ()
    swaps = "swaps" + ("+neighbourhood" if st["neighbour_weight"] > 0 else "")
    swaps += "+cluster guard" if st["keep_clusters"] or sheets or lamellae else ""
    surface = ("surface",) if st["surface"] else ()
    sheets = (*lamellae, *sheets)
    if not st["cleanup"]:
        return (*sheets, "fractions", swaps, *surface)
    closing = ("close network ends",) if _closes_ends(ndim, config, exemplars, phases) else ()
    return (
        *sheets,
        "fractions",
        swaps,
        "join network fragments",
        "remove small clusters",
        *closing,
        "fractions",
        swaps,
        *surface,
        *((*closing, "fractions", *surface) if closing else ()),
        *(
            (
                "shape particles",
                *(
                    (
                        "fractions",
                        swaps.removesuffix("+cluster guard") + "+cluster guard",
                        "round particles",
                    )
                    if config.anneal.particle_sweeps > 0
                    else ()
                ),
                "fractions",
                *surface,
            )
            if _shapes_particles(ndim, config, exemplars, phases)
            else ()
        ),
    )


def _anneal_kwargs(config, *, ndim, size, phases, quarter, exemplars=None) -> dict:
    """The keywords of :func:`anneal_fractions` for an output of ``ndim`` dimensions and
    ``size`` pixels or voxels (``quarter``: a quarter of the smallest side of the output and
    the exemplars), as :func:`_anneal` passes them (also to the benches' replays)."""
    an, st = config.anneal, _settings(ndim, config, exemplars, phases)
    return dict(
        phases=phases,
        max_lag=max(1, min(an.max_lag, quarter)),
        periodic=config.periodic,
        exemplar_periodic=config.exemplar_periodic,
        initial_acceptance=an.initial_acceptance,
        final_temperature_ratio=an.final_temperature,
        radial=an.radial,
        dense_lag=an.dense_lag,
        sectors=an.sectors,
        local_means=an.s2_local_means,
        uniformity_weight=an.uniformity_weight,
        uniformity_below=an.uniformity_below,
        directional_weight=an.directional_weight if ndim == 2 else 0.0,
        directional_tolerance=an.directional_tolerance,
        steps=round(st["sweeps"] * size),
        batch=st["batch"],
        neighbour_weight=st["neighbour_weight"],
        keep_clusters=st["keep_clusters"],
        walk=st["walk"],
    )


def _anneal(decoded, exemplars, config, *, phases, quarter, cleanup_seed, progress):
    """The annealing to exact fractions (module docstring), with the cleanup when configured:
    one chain for an image and a volume, each with its settings (:func:`_settings`)."""
    an, seed = config.anneal, config.seed
    target = exemplars if decoded.ndim == 3 else exemplars[0]
    st = _settings(decoded.ndim, config, exemplars, phases)
    anneal_kw = _anneal_kwargs(
        config,
        ndim=decoded.ndim,
        size=decoded.size,
        phases=phases,
        quarter=quarter,
        exemplars=exemplars,
    ) | {"progress": progress}
    # the surface stage ends the last annealing only: before the cleanup it would only change
    # what the cleanup starts from (and the lineal paths with it), not the output's surface
    first = anneal_kw
    if st["cleanup"] and decoded.ndim == 2 and an.first_sweeps is not None:
        first = anneal_kw | {"steps": round(an.first_sweeps * decoded.size)}
    if _lamellae_on(decoded.ndim, config, exemplars, phases):
        # a lamellar volume rebuilt as a fitted Swift-Hohenberg pattern, then annealed within the
        # guard, so the swaps cut no stripe of a phase at or above the exemplars' slice clusters
        decoded, _ = lamellar_start(
            decoded,
            target,
            phases=phases,
            exemplar_periodic=config.exemplar_periodic,
            seed=seed,
        )
        first = anneal_kw = anneal_kw | {"keep_clusters": True}
    if _sheets_on(decoded.ndim, config):
        # a thin network phase rebuilt as sheets, then annealed within the guard on every phase
        decoded, guard = network_sheets(
            decoded,
            target if decoded.ndim == 3 else [target],
            phases=phases,
            periodic=config.periodic,
            exemplar_periodic=config.exemplar_periodic,
            fit_steps=an.sheets_fit_steps,
            shape_weight=an.sheets_shape_weight,
            seed=seed,
        )
        if guard.any():
            first = anneal_kw = anneal_kw | {"keep_clusters": guard}
    annealing = anneal_fractions(
        decoded, target, seed=seed, surface=st["surface"] and not st["cleanup"], **first
    )
    if st["cleanup"]:
        # join a network phase's fragments, dissolve the surplus of small clusters, then anneal
        # again (fractions, then swaps, then the surface stage)
        joined = join_network_fragments(annealing.labels, target, phases=phases)
        cleaned = remove_small_clusters(joined, target, phases=phases, periodic=config.periodic)
        closes = _closes_ends(decoded.ndim, config, [target], phases)
        close = dict(
            exemplar=target,
            phases=phases,
            periodic=config.periodic,
            exemplar_periodic=config.exemplar_periodic,
        )
        if closes:
            cleaned = close_network_ends(cleaned, **close)
            if st["keep_clusters"]:
                # the closed network and its cells stay as they are: no phase splits
                anneal_kw = anneal_kw | {"keep_clusters": np.ones(phases, bool)}
        annealing = anneal_fractions(
            cleaned, target, seed=cleanup_seed, surface=st["surface"], **anneal_kw
        )
        if closes:
            # the swaps reopen a few ends: close them again, then the fractions (no swaps)
            annealing = _last_pass(
                annealing,
                close_network_ends(annealing.labels, **close),
                target,
                seed=(cleanup_seed + 1) % 2**32,
                surface=st["surface"],
                **anneal_kw,
            )
        if _shapes_particles(decoded.ndim, config, [target], phases):
            # split and round the particles at the exemplar's sizes; guarded swaps bring S2
            # back (the particles move and grow or shrink, their count kept), then the
            # particles are rounded again at their areas and the fractions made exact
            guarded = anneal_kw | {"keep_clusters": np.ones(phases, bool)}
            shaped = shape_particles(
                annealing.labels, target, phases=phases, periodic=config.periodic
            )
            if an.particle_sweeps > 0:
                annealing = _last_pass(
                    annealing,
                    shaped,
                    target,
                    seed=(cleanup_seed + 3) % 2**32,
                    surface=False,
                    swaps=round(an.particle_sweeps * decoded.size),
                    **guarded,
                )
                shaped = shape_particles(
                    annealing.labels, target, phases=phases, periodic=config.periodic, split=False
                )
            annealing = _last_pass(
                annealing,
                shaped,
                target,
                seed=(cleanup_seed + 2) % 2**32,
                surface=st["surface"],
                **guarded,
            )
    return annealing


def _last_pass(
    annealing: AnnealingResult, labels, target, *, swaps: int = 0, **kw
) -> AnnealingResult:
    """``annealing`` continued by a fraction (and surface) stage from ``labels`` (the cleanup's
    reshaped output), with ``swaps`` swap proposals between them (``kw``'s ``steps`` not
    taken): its labels and final energy, the flips, proposals and swaps added."""
    last = anneal_fractions(labels, target, **kw | {"steps": swaps})
    return dataclasses.replace(
        annealing,
        labels=last.labels,
        energy_final=last.energy_final,
        flips=annealing.flips + last.flips,
        proposals=annealing.proposals + last.proposals,
        accepted=annealing.accepted + last.accepted,
        surface_swaps=annealing.surface_swaps + last.surface_swaps,
    )
