"""The design problem: a point of the GAN's latent box, decoded and evaluated.

``X`` (``n x d``) lies in ``[-1, 1]^d``, the box BO searches: the GAN's latent prior
(``C h w`` latents, Yang et al. 2018) and, by default, one more coordinate for the phase-1
fraction, mapped to the training fractions' distribution (:class:`GANDesignSpace`). The
generator decodes it to a binarised microstructure; the
outcomes are property evaluators (:mod:`mdesign.evaluators`) or the built-in
``volume_fraction`` of phase 1 computed from the image.

:class:`LatentDesignProblem` follows BoTorch's test problems (``dim``, ``bounds`` buffer, a
public ``forward`` that checks shapes and bounds, a private ``_evaluate_true``); it returns NaN
for a design whose decoding or evaluation fails, so one bad design never stops a campaign.

The same problem also evaluates the baselines: random level-cut GRF images matched to the
GAN's training distribution (the parameters recorded with its training set), or random images
of the training set itself.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from botorch.test_functions.base import BaseTestProblem

from mdesign.config import DESIGN_SPACE_DEFAULTS, GAN_DEFAULTS
from mdesign.errors import InputError

__all__ = [
    "VOLUME_FRACTION",
    "DesignOutcome",
    "GANDesignSpace",
    "LatentDesignProblem",
    "at_fidelity",
    "check_space",
    "evaluate_design",
    "load_space",
]

VOLUME_FRACTION = "volume_fraction"


class GANDesignSpace:
    """A trained generator's latent box, and the phase-1 fraction, as a design space.

    Parameters
    ----------
    checkpoint : path-like
        A ``mdesign train`` checkpoint.
    latent_size : int, optional
        Side K of the latent map (image side 32 K); the checkpoint's training latent by default.
    periodic : bool
        Decode with circular padding (tileable designs).
    fraction : {"training", "free"}
        ``training``: a design is ``C h w`` latents and one fraction coordinate ``x`` in
        ``[-1, 1]``, the training fractions' quantile at ``(x + 1) / 2``
        (:func:`mdesign.gan.sampling.fractions_at`); the output is cut exactly at that fraction.
        ``free``: the latents only, cut by ``binarize``.
    binarize : {"midpoint", "otsu"}
        With ``fraction="free"``: how the generator's tanh output becomes labels.
    data : path-like, optional
        The GAN's training set, when it is no longer where the checkpoint records it (read
        only by :meth:`training`).
    device : optional
        Defaults to CUDA when available.

    Attributes
    ----------
    dim : int
        ``C h w`` (+ 1 with the fraction variable).
    fraction_variable : bool
        Whether the last design variable is the fraction.
    """

    def __init__(
        self,
        checkpoint: str | Path,
        *,
        latent_size: int | None = None,
        periodic: bool = GAN_DEFAULTS.sample.periodic,
        fraction: str = DESIGN_SPACE_DEFAULTS.fraction,
        binarize: str = GAN_DEFAULTS.sample.binarize,
        data: str | Path | None = None,
        device=None,
    ) -> None:
        from mdesign.gan import latent_shape, load_checkpoint
        from mdesign.gan.sampling import training_fractions

        if fraction not in ("training", "free"):
            raise InputError(f"expected training or free, got {fraction!r}", param="fraction")
        self.checkpoint_path = Path(checkpoint)
        self.ckpt = load_checkpoint(self.checkpoint_path, device=device)
        self.latent_shape = tuple(latent_shape(self.ckpt.config, size=latent_size))
        _check_decode_memory(self.ckpt.generator, self.latent_shape)
        self.global_channels = self.ckpt.config.generator.global_channels
        self.periodic = periodic
        self.binarize = binarize
        self.data = data
        self._training = None
        self.fraction_variable = fraction == "training"
        self.quantiles = training_fractions(self.ckpt.data_meta) if self.fraction_variable else None
        if self.fraction_variable and self.quantiles is None:
            raise InputError(
                f"{checkpoint}: the checkpoint records no training fractions; use fraction: free",
                param="fraction",
            )
        # the generator's upsampling factor (32 for the default five stride-2 layers)
        self.image_shape = tuple(self.decode(np.zeros((1, self.dim))).shape[1:])

    @property
    def dim(self) -> int:
        c, h, w = self.latent_shape
        g = self.global_channels
        return (c - g) * h * w + g + int(self.fraction_variable)

    def latent_maps(self, X: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The latent maps ``n x (C + G) x h x w`` of designs ``X`` (``n x d``)."""
        from mdesign.gan.sampling import latent_maps

        X = np.asarray(X, dtype=np.float64).reshape(-1, self.dim)
        x = X[:, : self.dim - int(self.fraction_variable)]
        return latent_maps(x, self.latent_shape, global_channels=self.global_channels)

    def fractions(self, X: np.ndarray | torch.Tensor) -> np.ndarray | None:
        """The target phase-1 fractions of designs ``X`` (``n x d``), or None (``free``)."""
        if not self.fraction_variable:
            return None
        x = np.asarray(X, dtype=np.float64).reshape(-1, self.dim)[:, -1]
        from mdesign.gan.sampling import fractions_at

        return fractions_at((x + 1) / 2, self.quantiles)

    def decode(self, X: np.ndarray | torch.Tensor) -> np.ndarray:
        """Labels ``n x 32h x 32w`` of the designs ``X`` (``n x d`` in ``[-1, 1]``)."""
        from mdesign.gan import decode

        gen = self.ckpt.generator
        param = next(gen.parameters())
        X = np.asarray(X, dtype=np.float64).reshape(-1, self.dim)
        z = self.latent_maps(X).to(param.device)
        return decode(
            gen, z, fractions=self.fractions(X), periodic=self.periodic, binarize=self.binarize
        )

    @property
    def trained_on_grf(self) -> bool:
        """Whether the GAN's training images came from ``mdesign grf`` (a ``grf`` baseline
        exists)."""
        return isinstance(self.ckpt.data_meta.get("grf"), dict)

    def training_images(self) -> np.ndarray:
        """The GAN's training images, ``N x H x W`` (read once; :func:`mdesign.dataset.
        find_training_data`)."""
        if self._training is None:
            from mdesign.dataset import find_training_data

            try:
                found = find_training_data(
                    self.ckpt.data_meta, data=self.data, near=self.checkpoint_path.parent
                )
            except InputError as exc:
                raise InputError(
                    str(exc).removeprefix("data: ") + " (generator.data in the campaign config)",
                    param="generator.data",
                ) from None
            if tuple(found.images.shape[1:]) != tuple(self.image_shape):
                raise InputError(
                    f"the training images are {found.images.shape[1]} x "
                    f"{found.images.shape[2]}, the designs {self.image_shape[0]} x "
                    f"{self.image_shape[1]}: the training baseline needs the training latent "
                    "size (leave generator.latent_size out)",
                    param="baselines",
                )
            self._training = found.images
        return self._training

    def training(self, index: int) -> np.ndarray:
        """Training image ``index`` (modulo their number), ``1 x H x W``: the training-set
        baseline's design."""
        images = self.training_images()
        return images[int(index) % len(images)][None].copy()

    def grf(self, seed: int) -> np.ndarray:
        """One GRF image drawn like the GAN's training set, at this space's image size,
        ``1 x H x W`` (the matched baseline)."""
        from mdesign.gan import grf_training_parameters
        from mdesign.grf import grf_microstructures

        params = grf_training_parameters(self.ckpt.data_meta)
        return grf_microstructures(1, self.image_shape, seed=int(seed), **params).images


@functools.lru_cache(maxsize=4)
def _cached_space(spec_json: str):
    spec = json.loads(spec_json)
    factory = spec.pop("factory", None)
    if factory:
        module, _, name = factory.partition(":")
        try:
            fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise InputError(f"generator.factory: cannot load {factory!r} ({exc})") from None
        try:
            space = fn(**spec)
        except Exception as exc:  # the user's code, called with the user's parameters
            raise InputError(
                f"generator.factory: {factory}({', '.join(spec)}) raised "
                f"{type(exc).__name__}: {exc}"
            ) from None
        check_space(space, name=f"generator.factory: {factory}")
        return space
    return GANDesignSpace(**spec)


def check_space(space, *, name: str = "space") -> None:
    """Raise :class:`InputError` unless ``space`` is a design space (what a factory returns).

    A design space has ``dim`` (int), ``latent_shape`` (ints whose product is ``dim``, or
    ``dim - 1`` when its ``fraction_variable`` attribute is true),
    ``image_shape`` (two or three ints) and ``decode(X)``, which maps ``n x dim`` latents to
    ``n x *image_shape`` integer labels; checked here on one latent. ``grf(seed)`` is needed
    only for the ``grf`` baseline and checked by the campaign. A space whose designs are not
    the flattened latent map (a GAN with global channels) has ``latent_maps(X)``, which gives
    the ``n x *latent_shape`` maps of ``n x dim`` designs; then ``latent_shape`` need not hold
    ``dim``.
    """
    what = f"{name} returned {type(space).__name__!r}, not a design space"
    missing = [a for a in ("dim", "latent_shape", "image_shape", "decode") if not hasattr(space, a)]
    if missing:
        raise InputError(f"{what} (it has no {', '.join(missing)})")
    try:
        dim = int(space.dim)
        extra = int(bool(getattr(space, "fraction_variable", False)))
        if hasattr(space, "latent_maps"):
            maps = tuple(np.shape(space.latent_maps(np.zeros((1, dim)))))
            latent_ok = maps == (1, *tuple(space.latent_shape)) and dim > 0
        else:
            latent_ok = math.prod(space.latent_shape) + extra == dim > 0
        images = np.asarray(space.decode(np.zeros((1, dim))))
    except Exception as exc:
        raise InputError(f"{what} ({type(exc).__name__}: {exc})") from None
    if not latent_ok:
        raise InputError(f"{what} (latent_shape {space.latent_shape} does not hold dim {dim})")
    want = (1, *tuple(space.image_shape))
    if images.shape != want or not np.issubdtype(images.dtype, np.integer):
        raise InputError(
            f"{what} (decode of one latent gave {images.dtype} {images.shape}, expected integer "
            f"labels {want})"
        )


def _check_decode_memory(generator, shape: tuple[int, ...]) -> None:
    """Refuse a latent map whose designs cannot be decoded within the memory budget (one
    decoded design and the design vectors), before anything is allocated."""
    import torch

    from mdesign.gan.sampling import _fused, decode_memory
    from mdesign.memory import check_memory

    c, h, w = shape
    scale = _fused(generator, torch.float32).scale
    check_memory(
        decode_memory(generator, 1, (h, w)) + 16 * c * h * w,
        what=f"designs of {h * scale} x {w * scale} pixels ({h} x {w} latent cells)",
        param="latent_size",
    )


def load_space(spec: dict[str, Any]):
    """The design space described by ``spec`` (cached per process).

    ``spec`` holds :class:`GANDesignSpace`'s keywords (``checkpoint``, ``latent_size``,
    ``periodic``, ``fraction``, ``binarize``), or ``factory: "module:function"`` and that
    function's keywords for a user-supplied space with the same methods (``dim``,
    ``latent_shape``, ``image_shape``,
    ``decode``, ``grf``).
    """
    return _cached_space(json.dumps(spec, sort_keys=True))


@functools.lru_cache(maxsize=16)
def _cached_evaluator(name: str, params_json: str):
    from mdesign.evaluators import get_evaluator

    return get_evaluator(name, **json.loads(params_json))


def evaluator_for(spec: dict[str, Any]):
    """The evaluator of an outcome spec ``{"evaluator", "params"}`` (cached per process)."""
    return _cached_evaluator(spec["evaluator"], json.dumps(spec.get("params", {}), sort_keys=True))


def _outcome_values(images: np.ndarray, outcomes: Sequence[dict[str, Any]]) -> np.ndarray:
    """``n x m`` outcome values of label images (NaN where an evaluator failed)."""
    cols = []
    for spec in outcomes:
        if spec["evaluator"] == VOLUME_FRACTION:
            cols.append((images == 1).reshape(images.shape[0], -1).mean(1))
            continue
        from mdesign.evaluators import evaluate_batch

        ev = evaluator_for(spec)
        res = evaluate_batch(ev, images)
        if res.errors:
            raise RuntimeError("; ".join(f"{spec['evaluator']}: {e.message}" for e in res.errors))
        cols.append(np.asarray(res.values, dtype=np.float64))
    return np.stack(cols, axis=1)


class LatentDesignProblem(BaseTestProblem):
    """Designs in the latent box, evaluated on their decoded microstructures.

    Parameters
    ----------
    space : GANDesignSpace
        The decoder.
    outcomes : sequence of dict
        ``{"evaluator": name, "params": {...}}`` per outcome (objectives, then constraints).

    Notes
    -----
    ``forward(X)`` returns ``n x m`` outcomes; a failed design's row is NaN. BoTorch's noise and
    negation options are not used: goals are handled by the campaign.
    """

    _is_minimization_by_default = False

    def __init__(self, space, outcomes: Sequence[dict[str, Any]]) -> None:
        self.dim = space.dim
        self._bounds = [(-1.0, 1.0)] * self.dim
        self.continuous_inds = list(range(self.dim))
        super().__init__()
        self.space = space
        self.outcomes = [dict(o) for o in outcomes]
        self.num_outcomes = len(self.outcomes)

    def _evaluate_true(self, X: torch.Tensor) -> torch.Tensor:
        out = torch.full((X.shape[0], self.num_outcomes), math.nan, dtype=X.dtype)
        for i, x in enumerate(X):
            try:
                images = self.space.decode(x[None].cpu().numpy())
                out[i] = torch.as_tensor(_outcome_values(images, self.outcomes)[0])
            except Exception:  # a failing design is NaN, never fatal
                continue
        return out


@dataclass(frozen=True)
class DesignOutcome:
    """What one evaluation produced (what the store records)."""

    outcomes: list[float] | None
    error: str | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"outcomes": self.outcomes, "error": self.error, "seconds": self.seconds}


def at_fidelity(context: dict[str, Any], value: Any) -> list[dict[str, Any]]:
    """The context's outcome specs with the fidelity parameter set to ``value``.

    ``context["fidelity"]`` is ``{"evaluator": name, "parameter": name}``: every outcome of that
    evaluator gets ``params[parameter] = value``. Without a value (or a ``fidelity`` entry) the
    specs are returned as they are.
    """
    fid = context.get("fidelity")
    if value is None or not fid:
        return list(context["outcomes"])
    return [
        {**o, "params": {**o.get("params", {}), fid["parameter"]: value}}
        if o["evaluator"] == fid["evaluator"]
        else o
        for o in context["outcomes"]
    ]


def evaluate_design(context: dict[str, Any], design: dict[str, Any]) -> dict[str, Any]:
    """Decode and evaluate one design; failures are returned, never raised.

    Parameters
    ----------
    context : dict
        ``{"space": load_space spec, "outcomes": [{"evaluator", "params"}, ...]}`` (small and
        JSON-able, so a Prefect task or a Dask worker can take it).
    design : dict
        ``{"latent": [d floats]}``, ``{"grf_seed": int}`` (the GRF baseline) or
        ``{"training_index": int}`` (the training-set baseline); with a ``"fidelity"`` value
        too, the context's ``fidelity`` parameter is set to it (:func:`at_fidelity`).

    Returns
    -------
    dict
        :class:`DesignOutcome` as a dict: ``outcomes`` (one float per outcome) or ``None``,
        ``error`` and ``seconds``.
    """
    t0 = time.perf_counter()
    try:
        space = load_space(context["space"])
        if "grf_seed" in design:
            images = space.grf(int(design["grf_seed"]))
        elif "training_index" in design:
            images = space.training(int(design["training_index"]))
        else:
            latent = np.asarray(design["latent"], dtype=np.float64)
            if latent.shape != (space.dim,) or np.abs(latent).max() > 1 + 1e-9:
                raise ValueError(f"latent must be {space.dim} values in [-1, 1]")
            images = space.decode(latent[None])
        outcomes = at_fidelity(context, design.get("fidelity"))
        values = _outcome_values(images, outcomes)[0]
        bad = [outcomes[j]["evaluator"] for j in np.flatnonzero(~np.isfinite(values))]
        if bad:
            raise ValueError(f"non-finite value from {', '.join(bad)}")
        result = DesignOutcome([float(v) for v in values], None, time.perf_counter() - t0)
    except Exception as exc:  # recorded as a failed evaluation
        msg = f"{type(exc).__name__}: {exc}".strip()
        result = DesignOutcome(None, msg[:500], time.perf_counter() - t0)
    return result.as_dict()
