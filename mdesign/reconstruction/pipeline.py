"""Single-exemplar reconstruction, end to end: VGG19 Gram loss, L-BFGS, k-means, annealing.

1. Encode the exemplar's labels as an RGB image (:mod:`~mdesign.reconstruction.encoding`) and
   take its Gram matrices at the chosen VGG19 layers (:mod:`~mdesign.reconstruction.loss`), plus
   its ``S2`` window when the ``S2`` term is on.
2. From seeded uniform noise, minimise the loss over the output's pixels with L-BFGS
   (:mod:`~mdesign.reconstruction.optimize`); with ``coarse_to_fine``, first at half size
   against the exemplar at half size, then upsample and refine.
3. Decode the pixels by k-means (:mod:`~mdesign.reconstruction.decoding`).
4. Anneal to the exemplar's exact fractions (:mod:`~mdesign.reconstruction.annealing`); with
   ``anneal_cleanup``, then join the fragments of a network phase, dissolve the surplus of small
   clusters and anneal again; with ``anneal_keep_clusters``, the swaps add no cluster to a
   phase that has the exemplar's count; with ``anneal_surface``, the last annealing ends with
   swaps that shorten the interface to the exemplar's length per unit area.

References
----------
Li, X., Zhang, Y., Zhao, H., Burkhart, C., Brinson, L. C. & Chen, W. "A transfer learning
approach for microstructure reconstruction and structure-property predictions", Sci. Rep. 8,
13461 (2018).
Gatys, L. A., Ecker, A. S. & Bethge, M. "Texture synthesis using convolutional neural networks",
NeurIPS (2015).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mdesign.config import RECONSTRUCTION_DEFAULTS as D
from mdesign.device import default_device
from mdesign.errors import InputError
from mdesign.io import MAX_PHASES
from mdesign.reconstruction.annealing import (
    AnnealingResult,
    anneal_fractions,
    join_network_fragments,
    remove_small_clusters,
)
from mdesign.reconstruction.decoding import decode_kmeans
from mdesign.reconstruction.encoding import pixel_channels
from mdesign.reconstruction.loss import TextureLoss
from mdesign.reconstruction.metrics import ReconstructionErrors, reconstruction_errors
from mdesign.reconstruction.optimize import OptimizationResult, optimize_pixels
from mdesign.reconstruction.vgg import vgg19_features
from mdesign.seeds import SeedLike, child_seeds

__all__ = [
    "MIN_SIZE",
    "ReconstructionResult",
    "check_exemplar",
    "check_size",
    "reconstruct",
    "reconstruction_memory",
]

MIN_SIZE = 32
"""Smallest side of an exemplar or output: VGG19's pool4 needs 16 px; 32 leaves it 2 x 2."""

# Peak memory per output pixel: VGG19 activations kept for the backward pass and their gradients
# in float32 (measured 5.3 KB per pixel at 384 x 384 with the weights), rounded up.
BYTES_PER_PIXEL = 6144


def reconstruction_memory(shape: Sequence[int]) -> int:
    """Bytes a reconstruction of output size ``shape`` (``H x W``) needs at its peak, about.

    The estimate :func:`mdesign.memory.check_memory` compares with the budget before any work.
    """
    h, w = (int(s) for s in shape)
    return BYTES_PER_PIXEL * h * w


@dataclass(frozen=True)
class ReconstructionResult:
    """A reconstruction and how it was made.

    Attributes
    ----------
    labels : ndarray of uint8, ``H x W``
        The reconstruction: phase labels with the exemplar's fractions (to one pixel).
    decoded : ndarray of uint8, ``H x W``
        The k-means decoding before annealing.
    pixels : ndarray of float32, ``C x H x W``
        The optimised pixels.
    optimization : OptimizationResult
        The last (full-size) optimisation: losses, iterations, stall and convergence flags.
    coarse : OptimizationResult or None
        The half-size stage of ``coarse_to_fine``.
    annealing : AnnealingResult
    errors : ReconstructionErrors
        ``S2``, lineal-path and fraction errors of ``labels`` against the exemplar.
    weights : str
        The VGG19 weights used (``normalized``, ``imagenet``, ``random`` or the path).
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
    errors: ReconstructionErrors
    weights: str
    seconds: float
    seconds_optimization: float
    seconds_annealing: float

    @property
    def iterations(self) -> int:
        """L-BFGS iterations over both stages."""
        return self.optimization.iterations + (self.coarse.iterations if self.coarse else 0)

    @property
    def converged(self) -> bool:
        return self.optimization.converged

    def report(self) -> dict:
        """The contract's ``--report`` keys, and more."""
        e = self.errors
        opt = self.optimization
        return {
            "volume_fraction_exemplar": e.volume_fraction_exemplar.tolist(),
            "volume_fraction_reconstruction": e.volume_fraction_reconstruction.tolist(),
            "s2_rmse": e.s2_rmse,
            "lineal_path_rmse": e.lineal_path_rmse,
            "iterations": self.iterations,
            "seconds": self.seconds,
            "weights": self.weights,
            "shape": list(self.labels.shape),
            "fraction_error_pixels": e.fraction_error_pixels,
            "converged": self.converged,
            "stalled": opt.stalled or bool(self.coarse and self.coarse.stalled),
            "loss_initial": float(opt.losses[0]),
            "loss_final": float(opt.losses[-1]),
            "evaluations": opt.evaluations + (self.coarse.evaluations if self.coarse else 0),
            "seconds_optimization": self.seconds_optimization,
            "seconds_annealing": self.seconds_annealing,
            "annealing": {
                "flips": self.annealing.flips,
                "proposals": self.annealing.proposals,
                "accepted": self.annealing.accepted,
                "energy_initial": self.annealing.energy_initial,
                "energy_fractions": self.annealing.energy_fractions,
                "energy_final": self.annealing.energy_final,
            },
            "curve_phases": list(e.phases),
            "s2_exemplar": e.s2_exemplar.tolist(),
            "s2_reconstruction": e.s2_reconstruction.tolist(),
            "lineal_path_exemplar": e.lineal_path_exemplar.tolist(),
            "lineal_path_reconstruction": e.lineal_path_reconstruction.tolist(),
            **e.morphology_report(),
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


def check_size(size: Sequence[int]) -> tuple[int, int]:
    """An output size ``(H, W)`` of at least :data:`MIN_SIZE` each, else an InputError."""
    shape = tuple(int(s) for s in size)
    if len(shape) != 2 or min(shape) < MIN_SIZE:
        raise InputError(
            f"expected H W of at least {MIN_SIZE} px each, got {' '.join(map(str, shape))}",
            param="size",
        )
    return shape


def _upsample(pixels: torch.Tensor, shape: tuple[int, int], *, periodic: bool) -> torch.Tensor:
    """Bilinear upsampling to ``shape``; on the torus when ``periodic``."""
    if not periodic:
        return F.interpolate(pixels, size=shape, mode="bilinear", align_corners=False)
    h, w = pixels.shape[-2:]
    padded = F.pad(pixels, (1, 1, 1, 1), mode="circular")
    sy, sx = shape[0] / h, shape[1] / w
    big = F.interpolate(padded, scale_factor=(sy, sx), mode="bilinear", align_corners=False)
    oy, ox = round(sy), round(sx)
    return big[..., oy : oy + shape[0], ox : ox + shape[1]]


def reconstruct(
    exemplar: np.ndarray,
    *,
    size: Sequence[int] | None = None,
    iterations: int = D.iterations,
    weights: str | os.PathLike = D.weights,
    seed: SeedLike = D.seed,
    layers: Sequence[str] = D.layers,
    pooling: str = D.pooling,
    periodic: bool = D.periodic,
    exemplar_periodic: bool = D.exemplar_periodic,
    s2_weight: float = D.s2_weight,
    s2_max_lag: int = D.s2_max_lag,
    temperature: float = D.temperature,
    tv_weight: float = D.tv_weight,
    coarse_to_fine: bool = D.coarse_to_fine,
    coarse_iterations: int = D.coarse_iterations,
    history_size: int = D.history_size,
    stall_iterations: int = D.stall_iterations,
    stall_decrease: float = D.stall_decrease,
    adam_warmup: int = D.adam_warmup,
    adam_lr: float = D.adam_lr,
    convergence_ratio: float = D.convergence_ratio,
    anneal_sweeps: float = D.anneal_sweeps,
    anneal_max_lag: int = D.anneal_max_lag,
    anneal_initial_acceptance: float = D.anneal_initial_acceptance,
    anneal_batch: int = D.anneal_batch,
    anneal_final_temperature: float = D.anneal_final_temperature,
    anneal_neighbour_weight: float = D.anneal_neighbour_weight,
    anneal_radial: bool = D.anneal_radial,
    anneal_cleanup: bool = D.anneal_cleanup,
    anneal_keep_clusters: bool = D.anneal_keep_clusters,
    anneal_dense_lag: int = D.anneal_dense_lag,
    anneal_surface: bool = D.anneal_surface,
    device: torch.device | str | None = None,
    progress: bool = False,
    **_volume_only,
) -> ReconstructionResult:
    """Reconstruct a microstructure statistically equivalent to one exemplar (Li et al. 2018).

    Parameters
    ----------
    exemplar : ndarray, ``H x W``
        Phase labels ``0..k-1`` (2 <= k <= 8, all present), sides >= 32.
    size : (int, int), optional
        Output ``H' x W'`` (>= 32); the exemplar's by default. Gram matrices do not depend on
        the size, so it may differ.
    iterations : int
        L-BFGS iterations at the output size.
    weights : {"normalized", "imagenet", "random"} or path
        VGG19 weights (:mod:`mdesign.reconstruction.vgg`); each is fed its own input convention.
    seed : int, numpy.random.Generator or numpy.random.SeedSequence
        Seeds the start, random weights, k-means and annealing: the same seed gives the same
        labels (on the same device and torch build). An int seeds the cleanup annealing with
        ``seed + 1`` (as it always has); a generator or sequence spawns two children
        (:func:`mdesign.seeds.child_seeds`).
    layers, pooling, periodic, exemplar_periodic, s2_weight, s2_max_lag, temperature, tv_weight,
    coarse_to_fine, coarse_iterations, history_size, stall_iterations, stall_decrease,
    adam_warmup, adam_lr, convergence_ratio, anneal_sweeps, anneal_max_lag,
    anneal_initial_acceptance, anneal_batch, anneal_final_temperature, anneal_neighbour_weight,
    anneal_radial, anneal_cleanup, anneal_keep_clusters, anneal_dense_lag, anneal_surface
        As in :class:`mdesign.config.ReconstructionConfig`.
    device : torch.device, optional
        CUDA when available by default.
    progress : bool
        Show progress bars.
    **_volume_only
        The 2D-to-3D settings of :class:`~mdesign.config.ReconstructionConfig` (``volume_*``),
        accepted and ignored so that a whole config can be passed; any other name is a
        TypeError.

    Returns
    -------
    ReconstructionResult
    """
    unknown = set(_volume_only) - {f for f in type(D).model_fields if f.startswith("volume_")}
    if unknown:
        raise TypeError(f"reconstruct() got unexpected keyword arguments: {sorted(unknown)}")
    start = time.perf_counter()
    # an int keeps seed, seed + 1 (pinned results); a Generator or SeedSequence spawns two
    seed, cleanup_seed = child_seeds(seed, 2)
    exemplar = np.asarray(exemplar)
    if exemplar.ndim == 3 and exemplar.shape[0] == 1:
        exemplar = exemplar[0]
    phases = check_exemplar(exemplar)
    shape = tuple(exemplar.shape) if size is None else check_size(size)
    exemplar = exemplar.astype(np.uint8)
    device = default_device(device)
    quarter = min(*exemplar.shape, *shape) // 4
    max_lag = max(1, min(s2_max_lag, quarter))
    extractor = vgg19_features(
        layers,
        weights=weights,
        pooling=pooling,
        padding_mode="circular" if periodic else "zeros",
        seed=seed,
        device=device,
        progress=progress,
    )
    loss_kw = dict(
        phases=phases,
        s2_weight=s2_weight,
        periodic=periodic,
        exemplar_periodic=exemplar_periodic,
        temperature=temperature,
        tv_weight=tv_weight,
    )
    opt_kw = dict(
        history_size=history_size,
        stall_iterations=stall_iterations,
        stall_decrease=stall_decrease,
        adam_warmup=adam_warmup,
        adam_lr=adam_lr,
        convergence_ratio=convergence_ratio,
        progress=progress,
    )
    gen = torch.Generator().manual_seed(int(seed))
    c = pixel_channels(phases)
    coarse = None
    if coarse_to_fine and min(shape) >= 2 * MIN_SIZE and min(exemplar.shape) >= 2 * MIN_SIZE:
        half = (shape[0] // 2, shape[1] // 2)
        coarse_loss = TextureLoss(
            extractor, exemplar, s2_max_lag=max(1, max_lag // 2), scale=2, **loss_kw
        )
        init = torch.rand((1, c, *half), generator=gen).to(device)
        coarse = optimize_pixels(
            coarse_loss, init, iterations=coarse_iterations, desc="L-BFGS 1/2", **opt_kw
        )
        init = _upsample(coarse.pixels, shape, periodic=periodic)
    else:
        init = torch.rand((1, c, *shape), generator=gen).to(device)
    loss = TextureLoss(extractor, exemplar, s2_max_lag=max_lag, **loss_kw)
    opt = optimize_pixels(loss, init, iterations=iterations, **opt_kw)
    t_opt = time.perf_counter() - start

    pixels = opt.pixels[0].cpu().numpy()
    decoded = decode_kmeans(pixels, phases, seed=seed)
    t_anneal = time.perf_counter()
    anneal_kw = dict(
        phases=phases,
        max_lag=max(1, min(anneal_max_lag, quarter)),
        steps=round(anneal_sweeps * decoded.size),
        periodic=periodic,
        exemplar_periodic=exemplar_periodic,
        batch=anneal_batch,
        initial_acceptance=anneal_initial_acceptance,
        final_temperature_ratio=anneal_final_temperature,
        neighbour_weight=anneal_neighbour_weight,
        radial=anneal_radial,
        keep_clusters=anneal_keep_clusters,
        dense_lag=anneal_dense_lag,
        progress=progress,
    )
    # the surface stage ends the last annealing only: before the cleanup it would only change
    # what the cleanup starts from (and the lineal paths with it), not the output's surface
    annealing = anneal_fractions(
        decoded, exemplar, seed=seed, surface=anneal_surface and not anneal_cleanup, **anneal_kw
    )
    if anneal_cleanup:
        # join a network phase's fragments, dissolve the surplus of small clusters, then anneal
        # again (fractions, then swaps, then the surface stage)
        joined = join_network_fragments(annealing.labels, exemplar, phases=phases)
        cleaned = remove_small_clusters(joined, exemplar, phases=phases, periodic=periodic)
        annealing = anneal_fractions(
            cleaned, exemplar, seed=cleanup_seed, surface=anneal_surface, **anneal_kw
        )
    t_anneal = time.perf_counter() - t_anneal
    errors = reconstruction_errors(
        exemplar,
        annealing.labels,
        phases=phases,
        reconstruction_periodic=periodic,
        exemplar_periodic=exemplar_periodic,
    )
    return ReconstructionResult(
        labels=annealing.labels,
        decoded=decoded,
        pixels=pixels.astype(np.float32),
        optimization=opt,
        coarse=coarse,
        annealing=annealing,
        errors=errors,
        weights=str(weights),
        seconds=time.perf_counter() - start,
        seconds_optimization=t_opt,
        seconds_annealing=t_anneal,
    )
