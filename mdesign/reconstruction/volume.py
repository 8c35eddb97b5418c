"""2D-to-3D reconstruction: a volume whose orthogonal slices match one (or three) 2D exemplars.

1. Start from a level-cut Gaussian random field fitted to the exemplar's ``S2``
   (:func:`~mdesign.reconstruction.baseline.fit_grf`; the slices of an isotropic 3D field have
   its 2D covariance, so they start with about the exemplar's ``S2``), or from noise.
2. Adam on the voxels against :class:`~mdesign.reconstruction.volume_loss.SliceLoss`: each step
   draws ``slices`` slices along each axis and takes the Gram loss of their VGG19 features
   against that axis's exemplar, streamed a chunk of slices at a time, plus the ``S2`` of the
   volume's three planes of displacements by one 3D FFT and the variation term. The step size
   decays by a cosine schedule.
3. Decode the voxels by k-means (:func:`~mdesign.reconstruction.decoding.decode_kmeans`).
4. Anneal to the exact fractions with the slices' ``S2`` kept close to the exemplars'
   (:func:`~mdesign.reconstruction.annealing3d.anneal_volume`).
5. Measure the slices along each axis against that axis's exemplar
   (:func:`~mdesign.reconstruction.metrics.slice_errors`).

Why a GRF start and Adam: the slices' Gram loss is a stochastic estimate (a few slices per step
of the ``3 N`` there are), which rules out L-BFGS's line search, and a full evaluation of every
slice costs ``3 N`` VGG19 passes (at 64^3, about 50 times a 128^2 image). From noise, 100 steps
at 64^3 left the Gram loss of the Li et al. carbonate at 0.55; the fitted GRF's slices start at
0.24, below the 0.31 of 64^2 crops of the exemplar itself against its whole Gram matrices.

References
----------
Bostanabad, R. "Reconstruction of 3D microstructures from 2D images via transfer learning",
Computer-Aided Design 128, 102906 (2020).
Li, X. et al. "A transfer learning approach for microstructure reconstruction and
structure-property predictions", Sci. Rep. 8, 13461 (2018).
Yeong, C. L. Y. & Torquato, S. "Reconstructing random media. II. Three-dimensional media from
two-dimensional cuts", Phys. Rev. E 58, 224 (1998).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from mdesign.config import RECONSTRUCTION_DEFAULTS as D
from mdesign.descriptors import specific_surface
from mdesign.device import default_device
from mdesign.errors import InputError
from mdesign.reconstruction.annealing import AnnealingResult, is_network
from mdesign.reconstruction.annealing3d import anneal_volume, volume_fractions
from mdesign.reconstruction.baseline import GRFFit, fit_grf
from mdesign.reconstruction.decoding import decode_kmeans
from mdesign.reconstruction.encoding import encoding_colours, pixel_channels
from mdesign.reconstruction.metrics import ReconstructionErrors, slice_errors
from mdesign.reconstruction.pipeline import BYTES_PER_PIXEL, MIN_SIZE, check_exemplar
from mdesign.reconstruction.vgg import vgg19_features
from mdesign.reconstruction.volume_loss import SliceLoss
from mdesign.seeds import SeedLike, child_seeds

__all__ = [
    "VolumeReconstructionResult",
    "check_exemplars",
    "check_volume_size",
    "reconstruct_volume",
    "volume_memory",
]

AXES = ("0 (H)", "1 (W)", "2 (D)")


def check_volume_size(size: Sequence[int]) -> tuple[int, int, int]:
    """An output size ``(H, W, D)`` of at least :data:`MIN_SIZE` each, else an InputError."""
    shape = tuple(int(s) for s in size)
    if len(shape) != 3 or min(shape) < MIN_SIZE:
        raise InputError(
            f"expected H W D of at least {MIN_SIZE} voxels each, got {' '.join(map(str, shape))}",
            param="size",
        )
    return shape


def check_exemplars(exemplars: Sequence[np.ndarray], *, sources: Sequence[str]) -> int:
    """Validate one exemplar (all three axes) or three (one per axis); return the phase count.

    Raises
    ------
    InputError
        Two exemplars, or more than three; an exemplar :func:`check_exemplar` refuses; three
        exemplars with different numbers of phases.
    """
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


def volume_memory(shape: Sequence[int], *, chunk: int = D.volume_chunk) -> int:
    """Bytes a 2D-to-3D reconstruction of ``H x W x D`` needs at its peak, about.

    The VGG19 activations of ``chunk`` slices of the largest face (as in 2D, per pixel), plus
    about 200 bytes per voxel: the voxels with their gradient and Adam's moments, the FFT of the
    soft indicators, k-means and the annealing's padded copies.
    """
    h, w, d = (int(s) for s in shape)
    face = max(h * w, h * d, w * d)
    return BYTES_PER_PIXEL * chunk * face + 200 * h * w * d


@dataclass(frozen=True)
class VolumeReconstructionResult:
    """A 2D-to-3D reconstruction and how it was made.

    Attributes
    ----------
    labels : ndarray of uint8, ``H x W x D``
        Phase labels with the exemplars' mean fractions (to one voxel).
    volume_fraction_exemplar : ndarray, ``k``
        Those fractions: the mean over the distinct exemplars
        (:func:`~mdesign.reconstruction.annealing3d.volume_fractions`).
    decoded : ndarray of uint8, ``H x W x D``
        The k-means decoding before annealing.
    start : ndarray of uint8, ``H x W x D`` or None
        The fitted GRF the optimisation started from (``volume_init="grf"``).
    losses, gram_losses, s2_losses : ndarray, ``steps``
        The loss of each Adam step (its Gram part is the estimate on that step's slices).
    annealing : AnnealingResult
    axes : tuple of 3 ReconstructionErrors
        The slices normal to each axis against that axis's exemplar
        (:func:`~mdesign.reconstruction.metrics.slice_errors`).
    grf : GRFFit or None
        The start's fit.
    specific_surface : ndarray, ``k``
        Interface area per unit volume of each phase (3D, :func:`mdesign.descriptors.
        specific_surface`), voxel units.
    weights : str
    seconds, seconds_optimization, seconds_annealing : float
    """

    labels: np.ndarray
    volume_fraction_exemplar: np.ndarray
    decoded: np.ndarray
    start: np.ndarray | None
    losses: np.ndarray
    gram_losses: np.ndarray
    s2_losses: np.ndarray
    annealing: AnnealingResult
    axes: tuple[ReconstructionErrors, ...]
    grf: GRFFit | None
    specific_surface: np.ndarray
    weights: str
    seconds: float
    seconds_optimization: float
    seconds_annealing: float

    @property
    def iterations(self) -> int:
        return int(self.losses.size)

    @property
    def s2_rmse(self) -> float:
        """Mean over the axes of the slices' ``S2`` RMSE."""
        return float(np.mean([e.s2_rmse for e in self.axes]))

    @property
    def lineal_path_rmse(self) -> float:
        """Mean over the axes of the slices' lineal-path RMSE."""
        return float(np.mean([e.lineal_path_rmse for e in self.axes]))

    def report(self) -> dict:
        """The contract's ``--report`` keys and the statistics per axis.

        ``volume_fraction_exemplar`` is the fractions the labels were made to; the curves' RMSEs
        are means over the axes.
        """
        first = self.axes[0]
        vf_ex = self.volume_fraction_exemplar
        counts = np.bincount(self.labels.ravel(), minlength=vf_ex.size)
        vf = counts / self.labels.size
        per_axis = []
        for a, e in enumerate(self.axes):
            per_axis.append(
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
            )
        return {
            "volume_fraction_exemplar": vf_ex.tolist(),
            "volume_fraction_reconstruction": vf.tolist(),
            "s2_rmse": self.s2_rmse,
            "lineal_path_rmse": self.lineal_path_rmse,
            "iterations": self.iterations,
            "seconds": self.seconds,
            "weights": self.weights,
            "shape": list(self.labels.shape),
            "fraction_error_voxels": float(np.abs(counts - self.annealing.target_counts).max()),
            "seconds_optimization": self.seconds_optimization,
            "seconds_annealing": self.seconds_annealing,
            "loss_initial": float(self.losses[0]),
            "loss_final": float(self.losses[-1]),
            "gram_initial": float(self.gram_losses[0]),
            "gram_final": float(np.mean(self.gram_losses[-10:])),
            "start": None
            if self.grf is None
            else {
                "grf_covariance": self.grf.covariance,
                "grf_correlation_length": self.grf.correlation_length,
                "grf_sheet_phase": self.grf.sheet_phase,
            },
            "annealing": {
                "flips": self.annealing.flips,
                "proposals": self.annealing.proposals,
                "accepted": self.annealing.accepted,
                "energy_initial": self.annealing.energy_initial,
                "energy_fractions": self.annealing.energy_fractions,
                "energy_final": self.annealing.energy_final,
            },
            "specific_surface_volume": self.specific_surface.tolist(),
            "curve_phases": list(first.phases),
            "axes": per_axis,
        }


def _start(
    exemplars: Sequence[np.ndarray],
    shape: tuple[int, int, int],
    *,
    phases: int,
    init: str,
    seed: int,
    exemplar_periodic: bool,
    fit_seed: int | None = None,
) -> tuple[np.ndarray | None, GRFFit | None]:
    """The start's labels, fitted to the (first distinct) exemplars' ``S2``, or None for noise.

    A thin phase that is a network in the exemplar (grain boundaries,
    :func:`~mdesign.reconstruction.annealing.is_network`) starts as sheets, the two-sided cut
    ``{|Y| < t}`` (:func:`~mdesign.reconstruction.baseline.fit_grf` with ``sheets``), whose
    slices are webs of lines, instead of the blobs of a level cut.

    With three different exemplars, the GRF takes the mean of their fitted correlation lengths
    (an isotropic start; the optimisation makes the anisotropy), and sheets only when every
    exemplar's fit is sheets of the same phase.
    """
    if init == "noise":
        return None, None
    distinct = list({id(ex): ex for ex in exemplars}.values())
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


def reconstruct_volume(
    exemplars: np.ndarray | Sequence[np.ndarray],
    *,
    size: Sequence[int],
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
    anneal_initial_acceptance: float = D.anneal_initial_acceptance,
    anneal_final_temperature: float = D.anneal_final_temperature,
    anneal_radial: bool = D.anneal_radial,
    anneal_dense_lag: int = D.anneal_dense_lag,
    volume_init: str = D.volume_init,
    volume_iterations: int = D.volume_iterations,
    volume_slices: int = D.volume_slices,
    volume_chunk: int = D.volume_chunk,
    volume_lr: float = D.volume_lr,
    volume_anneal_sweeps: float = D.volume_anneal_sweeps,
    volume_anneal_max_lag: int = D.volume_anneal_max_lag,
    volume_anneal_batch: int = D.volume_anneal_batch,
    device: torch.device | str | None = None,
    progress: bool = False,
    **_2d_only,
) -> VolumeReconstructionResult:
    """Reconstruct a volume whose orthogonal slices match 2D exemplars (module docstring).

    Parameters
    ----------
    exemplars : ndarray ``h x w``, or a sequence of 1 or 3 of them
        One exemplar for every axis (an isotropic material), or ``exemplars[a]`` for the slices
        normal to axis ``a`` (``np.take(volume, i, a)``, rows along the lower remaining axis).
    size : (int, int, int)
        ``H x W x D``, each >= 32.
    weights, seed, layers, pooling, periodic, exemplar_periodic, s2_weight, s2_max_lag,
    temperature, tv_weight, anneal_initial_acceptance, anneal_final_temperature, anneal_radial,
    anneal_dense_lag
        As in 2D (:func:`~mdesign.reconstruction.reconstruct`); ``s2_max_lag`` is capped at a
        quarter of the smallest side of the volume and the exemplars.
    volume_init, volume_iterations, volume_slices, volume_chunk, volume_lr,
    volume_anneal_sweeps, volume_anneal_max_lag, volume_anneal_batch
        As in :class:`mdesign.config.ReconstructionConfig`.
    device : torch.device, optional
        CUDA when available by default.
    progress : bool
        Show progress bars.
    **_2d_only
        The 2D-only settings of :class:`~mdesign.config.ReconstructionConfig` (L-BFGS,
        coarse-to-fine, the 2D annealing's cleanup), accepted and ignored so that a whole
        config can be passed; a name that is not a config field is a TypeError.

    Returns
    -------
    VolumeReconstructionResult
    """
    unknown = set(_2d_only) - set(type(D).model_fields)
    if unknown:
        raise TypeError(f"reconstruct_volume() got unexpected keyword arguments: {sorted(unknown)}")
    start = time.perf_counter()
    # an int keeps seed, seed + 1 (pinned results); a Generator or SeedSequence spawns two
    seed, fit_seed = child_seeds(seed, 2)
    if isinstance(exemplars, np.ndarray) and exemplars.ndim == 2:
        exemplars = [exemplars]
    exemplars = [np.asarray(ex) for ex in exemplars]
    exemplars = [ex[0] if ex.ndim == 3 and ex.shape[0] == 1 else ex for ex in exemplars]
    phases = check_exemplars(exemplars, sources=[f"exemplar {i}" for i in range(len(exemplars))])
    exemplars = [ex.astype(np.uint8) for ex in exemplars]
    if len(exemplars) == 1:
        exemplars = exemplars * 3
    shape = check_volume_size(size)
    device = default_device(device)
    quarter = min(*shape, *(s for ex in exemplars for s in ex.shape)) // 4
    gen = torch.Generator().manual_seed(int(seed))

    labels0, fit = _start(
        exemplars,
        shape,
        phases=phases,
        init=volume_init,
        seed=seed,
        fit_seed=fit_seed,
        exemplar_periodic=exemplar_periodic,
    )
    c = pixel_channels(phases)
    noise = torch.rand((c, *shape), generator=gen)
    if labels0 is None:
        x0 = noise
    else:
        colours = encoding_colours(phases)
        x0 = 0.1 + 0.8 * colours[torch.as_tensor(labels0, dtype=torch.long)].permute(3, 0, 1, 2)
        x0 = x0 + 0.05 * noise
    x = x0.to(device).requires_grad_(True)

    extractor = vgg19_features(
        layers,
        weights=weights,
        pooling=pooling,
        padding_mode="circular" if periodic else "zeros",
        seed=seed,
        device=device,
        progress=progress,
    )
    loss = SliceLoss(
        extractor,
        exemplars,
        phases=phases,
        s2_weight=s2_weight,
        s2_max_lag=max(1, min(s2_max_lag, quarter)),
        periodic=periodic,
        exemplar_periodic=exemplar_periodic,
        temperature=temperature,
        tv_weight=tv_weight,
    )
    opt = torch.optim.Adam([x], lr=volume_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, volume_iterations, eta_min=0.05 * volume_lr
    )
    per_axis = [min(volume_slices, n) for n in shape]
    terms = []
    bar = tqdm(
        range(volume_iterations), desc="Adam 3D", unit="step", disable=not progress, leave=False
    )
    for _ in bar:
        picks = [
            torch.randperm(n, generator=gen)[:k].to(device)
            for n, k in zip(shape, per_axis, strict=True)
        ]
        t = loss.backward_step(x, picks, chunk=volume_chunk)
        opt.step()
        sched.step()
        terms.append((t.total, t.gram, t.s2))
        bar.set_postfix(loss=f"{t.total:.3g}")
    bar.close()
    t_opt = time.perf_counter() - start

    pixels = x.detach().cpu().numpy()
    decoded = decode_kmeans(pixels, phases, seed=seed)
    t_anneal = time.perf_counter()
    annealing = anneal_volume(
        decoded,
        exemplars,
        phases=phases,
        max_lag=max(1, min(volume_anneal_max_lag, quarter)),
        steps=round(volume_anneal_sweeps * decoded.size),
        seed=seed,
        periodic=periodic,
        exemplar_periodic=exemplar_periodic,
        batch=volume_anneal_batch,
        initial_acceptance=anneal_initial_acceptance,
        final_temperature_ratio=anneal_final_temperature,
        radial=anneal_radial,
        dense_lag=anneal_dense_lag,
        progress=progress,
    )
    t_anneal = time.perf_counter() - t_anneal
    labels = annealing.labels
    axes = tuple(
        slice_errors(
            exemplars[a],
            labels,
            axis=a,
            phases=phases,
            volume_periodic=periodic,
            exemplar_periodic=exemplar_periodic,
        )
        for a in range(3)
    )
    arr = np.array(terms, dtype=np.float64)
    surface = np.array(
        [specific_surface(labels[None], phase=j, periodic=periodic)[0] for j in range(phases)]
    )
    return VolumeReconstructionResult(
        labels=labels,
        volume_fraction_exemplar=volume_fractions(exemplars, phases),
        decoded=decoded,
        start=labels0,
        losses=arr[:, 0],
        gram_losses=arr[:, 1],
        s2_losses=arr[:, 2],
        annealing=annealing,
        axes=axes,
        grf=fit,
        specific_surface=surface,
        weights=str(weights),
        seconds=time.perf_counter() - start,
        seconds_optimization=t_opt,
        seconds_annealing=t_anneal,
    )
