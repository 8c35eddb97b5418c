"""Structure-property surrogates: ``fit(images, values)``, ``predict(images) -> Prediction``.

Two families, each saved as state dicts plus config (:mod:`mdesign.surrogates.persistence`):

* :class:`NetworkSurrogate`: an ensemble of :class:`~mdesign.surrogates.networks.ImageRegressor`
  s, in one of three modes: ``frozen`` (the pretrained trunk is fixed; only the head is trained,
  on the trunk's features of the training images and their mirror images, computed once);
  ``finetune`` (the head first trained on the frozen trunk, then trunk and head together, by
  default exactly as the scratch model is trained: linear probing then fine-tuning, Kumar et
  al. 2022); ``scratch`` (the same architecture from the DCGAN initialisation). The pretrained
  trunk is the GAN discriminator's (:func:`transfer_surrogate`; Yang et al. 2018) or another
  surrogate's (cross-property transfer; Gupta et al. 2021). Each member holds out its own
  validation split for early stopping and has its own seed; the spread of the members'
  predictions is the uncertainty (Lakshminarayanan et al. 2017).
* :class:`S2Surrogate`: the classical baseline. The periodic two-point correlation map of
  phase 1 in a window of displacements, reduced by PCA, regressed by an exact GP (BoTorch
  ``SingleTaskGP``, float64), whose posterior standard deviation is the uncertainty.

Targets are standardised with the training values' mean and standard deviation; predictions
come back in the values' units.

References
----------
Yang, Z. et al. J. Mech. Des. 140(11), 111416 (2018): the discriminator as a pretrained model.
Gupta, V. et al. "Cross-property deep transfer learning ...", Nat. Commun. 12, 6595 (2021).
Kumar, A. et al. "Fine-tuning can distort pretrained features ...", ICLR (2022).
Lakshminarayanan, B. et al. "Simple and scalable predictive uncertainty estimation using deep
ensembles", NeurIPS (2017).
Torquato, S. Random Heterogeneous Materials, ch. 2 (two-point correlation). Springer (2002).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from mdesign.config import (
    GAN_DEFAULTS,
    SURROGATE_DEFAULTS,
    DiscriminatorConfig,
    SurrogateNetworkConfig,
    SurrogateS2Config,
)
from mdesign.device import default_device
from mdesign.errors import InputError
from mdesign.gan.networks import (
    Discriminator,
    DiscriminatorTrunk,
    discriminator_trunk,
    labels_to_signed,
)
from mdesign.seeds import SeedLike, as_seed_sequence, seed_int
from mdesign.surrogates.networks import (
    ImageRegressor,
    augment,
    feature_count,
    flip_views,
    new_head,
    scratch_trunk,
    trunk_architecture,
)

__all__ = [
    "MODES",
    "FitInfo",
    "NetworkSurrogate",
    "Prediction",
    "S2Surrogate",
    "Surrogate",
    "check_labels",
    "check_values",
    "make_surrogate",
    "s2_features",
    "scratch_surrogate",
    "transfer_surrogate",
]

MODES = ("frozen", "finetune", "scratch")
Mode = Literal["frozen", "finetune", "scratch"]


@dataclass(frozen=True)
class Prediction:
    """Predicted property values with their uncertainty.

    Attributes
    ----------
    mean : ndarray of float64, ``N``
        The prediction (ensemble mean, or GP posterior mean), in the units of the fitted values.
    std : ndarray of float64, ``N``
        Its epistemic uncertainty: the standard deviation over the ensemble's members, or the
        GP's posterior standard deviation of the latent function (no noise). 0 for a network
        with a single member.
    """

    mean: np.ndarray
    std: np.ndarray


@dataclass(frozen=True)
class FitInfo:
    """How a fit went: per ensemble member, and the total.

    Attributes
    ----------
    n_images : int
        Labelled images given to ``fit`` (validation splits included).
    seconds : float
        Wall time of the fit.
    members : list of dict
        Per member: ``n_train``, ``n_val``, ``head_steps``, ``steps`` (trunk-training steps),
        ``best_step``, ``val_rmse`` (standardised units); for the GP ``n_components``.
    """

    n_images: int
    seconds: float
    members: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"n_images": self.n_images, "seconds": self.seconds, "members": self.members}


@runtime_checkable
class Surrogate(Protocol):
    """What both families offer: fit, predict with an uncertainty, and what is saved with it.

    :class:`NetworkSurrogate` and :class:`S2Surrogate` satisfy it; the study, the screening,
    the ``surrogate`` evaluator and :func:`~mdesign.surrogates.save_surrogate` use only this.

    Attributes
    ----------
    kind : str
        The saved file's family: ``"network"`` or ``"s2_gp"``.
    mode : str
        The training mode (``frozen``, ``finetune``, ``scratch``; ``s2_gp`` for the GP).
    config : pydantic model
        The family's typed config, saved with the weights.
    target : dict
        What the values are (task, evaluator, parameters), given to ``fit`` and saved.
    fit_info : FitInfo or None
        How the last fit went; ``None`` before ``fit``.
    """

    kind: str
    mode: str
    config: Any
    target: dict[str, Any]
    fit_info: FitInfo | None

    @property
    def is_fitted(self) -> bool: ...

    def fit(
        self,
        images: np.ndarray,
        values: np.ndarray,
        *,
        seed: SeedLike = ...,
        target: Mapping[str, Any] | None = ...,
        progress: bool = ...,
    ) -> Surrogate: ...

    def predict(self, images: np.ndarray) -> Prediction: ...


def check_labels(images: np.ndarray, *, stride: int = 1, source: str = "images") -> np.ndarray:
    """Two-phase labels as ``N x H x W`` uint8, with sides divisible by ``stride``.

    Raises
    ------
    InputError
        Not a stack of images, labels other than 0 and 1 (the surrogates are two-phase, like
        the GAN), or sides the networks cannot take.
    """
    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise InputError(f"{source}: expected labels N x H x W, got shape {arr.shape}")
    if arr.dtype.kind not in "biu":
        raise InputError(f"{source}: expected integer labels 0 and 1, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise InputError(
            f"{source}: surrogates take two-phase labels 0 and 1, got labels "
            f"{int(arr.min())}..{int(arr.max())}"
        )
    h, w = arr.shape[1:]
    if h % stride or w % stride:
        raise InputError(f"{source}: image sides must be multiples of {stride}, got {h}x{w}")
    return arr.astype(np.uint8, copy=False)


def check_values(values: np.ndarray, n: int) -> np.ndarray:
    """Training targets as ``n`` finite float64 with some spread."""
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    if y.shape != (n,):
        raise InputError(f"values: expected {n} values, one per image, got {y.size}")
    if not np.isfinite(y).all():
        raise InputError("values: must be finite (drop the images whose evaluation failed)")
    if n >= 2 and np.ptp(y) == 0:
        raise InputError("values: all equal, nothing to regress")
    return y


def _split(n: int, *, config: SurrogateNetworkConfig, rng: np.random.Generator):
    """Indices of a training and a validation split of ``n`` images."""
    n_val = max(config.min_val, round(config.val_fraction * n))
    if n - n_val < 2:
        raise InputError(
            f"{n} labelled images are too few: {n_val} are held out for early stopping and at "
            "least 2 must remain to train on"
        )
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _seed_of(rng: np.random.Generator) -> int:
    return int(rng.integers(2**62))


# ---------------------------------------------------------------------------------------------
# networks


class NetworkSurrogate:
    """An ensemble of image regressors on a (pretrained or fresh) discriminator trunk.

    Parameters
    ----------
    mode : {"frozen", "finetune", "scratch"}
        See the module docstring.
    trunk : DiscriminatorTrunk, optional
        The pretrained trunk (required for ``frozen`` and ``finetune``; copied, never changed).
        For ``scratch`` only its architecture is used.
    architecture : DiscriminatorConfig, optional
        The trunk's architecture for ``scratch`` without a ``trunk``; the default
        discriminator's otherwise.
    config : SurrogateNetworkConfig
        Head, optimiser, early stopping, augmentation and ensemble size.
    pretrained : str
        Where the trunk came from (saved as provenance), e.g.
        ``"gan:artifacts/gan_paper/checkpoint.pt"``.

    Notes
    -----
    ``fit`` and ``predict`` run in float32 (like the GAN) on ``device``, CUDA when present by
    default. Use :func:`transfer_surrogate` and :func:`scratch_surrogate` to build one.
    """

    kind = "network"

    def __init__(
        self,
        mode: Mode,
        *,
        trunk: DiscriminatorTrunk | None = None,
        architecture: DiscriminatorConfig | None = None,
        config: SurrogateNetworkConfig = SURROGATE_DEFAULTS.network,
        pretrained: str = "",
        device: torch.device | str | None = None,
    ):
        if mode not in MODES:
            raise InputError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if mode != "scratch" and trunk is None:
            raise InputError(f"mode {mode}: needs a pretrained trunk")
        self.mode = mode
        self.config = config
        self.architecture = (
            trunk_architecture(trunk)
            if trunk is not None
            else (architecture or GAN_DEFAULTS.discriminator)
        )
        self._pretrained = None if trunk is None or mode == "scratch" else copy.deepcopy(trunk)
        self.pretrained = pretrained if mode != "scratch" else ""
        self.device = default_device(device)
        self.members: list[ImageRegressor] = []
        self.y_mean = 0.0
        self.y_std = 1.0
        self.std_scale = 1.0
        self.target: dict[str, Any] = {}
        self.fit_info: FitInfo | None = None

    # -- public API ---------------------------------------------------------------------------

    @property
    def stride(self) -> int:
        """Image sides must be multiples of this (the trunk's downsampling)."""
        return 2 ** len(self.architecture.widths)

    @property
    def is_fitted(self) -> bool:
        return bool(self.members)

    def fit(
        self,
        images: np.ndarray,
        values: np.ndarray,
        *,
        seed: SeedLike = 0,
        target: Mapping[str, Any] | None = None,
        ensemble_size: int | None = None,
        progress: bool = False,
    ) -> NetworkSurrogate:
        """Train the ensemble on labelled images (replacing any earlier fit).

        Parameters
        ----------
        images : ndarray, ``N x H x W`` labels 0/1
            Sides multiples of :attr:`stride` (16 for the default trunk).
        values : ndarray, ``N``
            The property of each image.
        seed : int, numpy.random.Generator or numpy.random.SeedSequence
            Seeds each member's validation split, head initialisation, batch order and
            augmentation (and, for ``scratch``, the trunk's initialisation). Member ``k`` of an
            int seed draws from ``default_rng([seed, k])`` (as it always has); a generator or
            sequence gives each member a child of :meth:`~numpy.random.SeedSequence.spawn`.
        target : mapping, optional
            What the values are (e.g. the evaluator and its parameters); saved with the model.
        ensemble_size : int, optional
            Members; ``config.ensemble_size`` by default.
        progress : bool
            Show a progress bar over the training steps.

        Returns
        -------
        NetworkSurrogate
            ``self``, fitted.
        """
        images = check_labels(images, stride=self.stride)
        y = check_values(values, len(images))
        m = self.config.ensemble_size if ensemble_size is None else int(ensemble_size)
        if m < 1:
            raise InputError(f"ensemble_size: must be at least 1, got {m}")
        start = time.perf_counter()
        self.std_scale = 1.0  # a calibration belongs to the members it was made for
        self.y_mean = float(y.mean())
        self.y_std = float(y.std()) or 1.0
        ys = torch.as_tensor((y - self.y_mean) / self.y_std, dtype=torch.float32)
        x = labels_to_signed(images, device=self.device)
        ys = ys.to(self.device)
        if isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
            rngs = [np.random.default_rng(s) for s in as_seed_sequence(seed).spawn(m)]
        else:
            rngs = [np.random.default_rng([int(seed), k]) for k in range(m)]
        self.members, infos = [], []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=m, desc=f"fit {self.mode}", unit="member", leave=False)
        try:
            for rng in rngs:
                member, info = self._fit_member(x, ys, rng)
                self.members.append(member)
                infos.append(info)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        self.target = dict(target or {})
        self.fit_info = FitInfo(len(images), time.perf_counter() - start, infos)
        return self

    def predict(self, images: np.ndarray) -> Prediction:
        """Predicted values ``N`` and their ensemble spread for ``N x H x W`` labels.

        The spread is multiplied by :attr:`std_scale` (1 until :meth:`calibrate` is called).
        """
        self._check_fitted()
        images = check_labels(images, stride=self.stride)
        out = self._member_predictions(images)
        return Prediction(mean=out.mean(0), std=out.std(0) * self.std_scale)

    def calibrate(self, images: np.ndarray, values: np.ndarray) -> float:
        """Scale the ensemble spread to match the errors on held-out labelled images.

        Deep ensembles tend to be overconfident on small data. One factor ``s`` (variance
        scaling; Levi et al., "Evaluating and calibrating uncertainty prediction in regression
        tasks", Sensors 22, 5540, 2022) is fitted by maximum likelihood of a Gaussian error
        model, ``s^2 = mean(((y - mean) / spread)^2)``, and applied to every later prediction
        (it is saved with the model). Use images the model was not trained on.

        Parameters
        ----------
        images : ndarray, ``N x H x W`` labels
        values : ndarray, ``N``
            Their true values (non-finite ones are skipped).

        Returns
        -------
        float
            The factor, also stored in :attr:`std_scale`.
        """
        self._check_fitted()
        images = check_labels(images, stride=self.stride)
        y = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(y) != len(images):
            raise InputError(f"values: {len(y)} for {len(images)} images")
        out = self._member_predictions(images)
        mean, spread = out.mean(0), out.std(0)
        ok = np.isfinite(y) & (spread > 0)
        if ok.sum() < 2:
            raise InputError("calibrate: needs at least 2 finite values with a nonzero spread")
        self.std_scale = float(np.sqrt(np.mean(((y[ok] - mean[ok]) / spread[ok]) ** 2)))
        return self.std_scale

    def member_predictions(self, images: np.ndarray) -> np.ndarray:
        """Each member's prediction, ``M x N`` float64 in the values' units."""
        self._check_fitted()
        return self._member_predictions(check_labels(images, stride=self.stride))

    def trunk(self, member: int = 0) -> DiscriminatorTrunk:
        """A copy of a fitted member's trunk (for cross-property transfer), in eval mode."""
        self._check_fitted()
        return copy.deepcopy(self.members[member].trunk).cpu().eval()

    def __repr__(self) -> str:
        fitted = f"{len(self.members)} members" if self.members else "not fitted"
        return f"NetworkSurrogate({self.mode!r}, {fitted})"

    # -- internals ----------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not self.members:
            raise InputError("the surrogate is not fitted: call fit(images, values) first")

    def _member_predictions(self, images: np.ndarray) -> np.ndarray:
        bs = self.config.predict_batch
        out = np.empty((len(self.members), len(images)))
        for lo in range(0, len(images), bs):
            x = labels_to_signed(images[lo : lo + bs], device=self.device)
            with torch.inference_mode():
                if self.mode == "frozen":
                    # all members share the trunk: compute its features once
                    f = self.members[0].eval().features(x)
                    for k, mem in enumerate(self.members):
                        out[k, lo : lo + len(x)] = mem.head.eval()(f).double().cpu().numpy()
                else:
                    for k, mem in enumerate(self.members):
                        out[k, lo : lo + len(x)] = mem.eval()(x).double().cpu().numpy()
        return out * self.y_std + self.y_mean

    def _fit_member(
        self, x: torch.Tensor, ys: torch.Tensor, rng: np.random.Generator
    ) -> tuple[ImageRegressor, dict[str, Any]]:
        cfg = self.config
        tr, va = _split(len(x), config=cfg, rng=rng)
        gen = torch.Generator().manual_seed(_seed_of(rng))
        if self.mode == "scratch":
            trunk = scratch_trunk(self.architecture, seed=_seed_of(rng)).to(self.device)
        elif self.mode == "frozen" and self.members:
            trunk = self.members[0].trunk  # shared, never trained
        else:
            trunk = copy.deepcopy(self._pretrained).to(self.device).eval()
        pool = cfg.pool
        head = new_head(feature_count(trunk, pool=pool), cfg.head_hidden, generator=gen)
        model = ImageRegressor(trunk, head.to(self.device), pool=pool)
        info: dict[str, Any] = {"n_train": len(tr), "n_val": len(va)}
        if self.mode in ("frozen", "finetune"):
            info.update(_fit_head(model, x, ys, tr, va, config=cfg))
        if self.mode in ("finetune", "scratch"):
            info.update(_fit_trunk(model, x, ys, tr, va, mode=self.mode, config=cfg, gen=gen))
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval(), info


@torch.no_grad()
def _features(model: ImageRegressor, x: torch.Tensor, *, batch: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([model.features(x[lo : lo + batch]) for lo in range(0, len(x), batch)])


def _mse(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float(F.mse_loss(pred, y))


def _fit_head(model: ImageRegressor, x, ys, tr, va, *, config: SurrogateNetworkConfig) -> dict:
    """Train the head on the frozen trunk's features (full batch, early stopping).

    Features are computed once, for the training images and their three mirror images
    (symmetries of the property) and for the validation images.
    """
    head = model.head
    xt = x[torch.as_tensor(tr)]
    f_train = _features(model, flip_views(xt) if config.augment else xt)
    y_train = ys[torch.as_tensor(tr)].repeat(4 if config.augment else 1)
    f_val = _features(model, x[torch.as_tensor(va)])
    y_val = ys[torch.as_tensor(va)]
    head.set_standardization(f_train)
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr_head, weight_decay=config.weight_decay)
    best, best_step, best_state = float("inf"), 0, copy.deepcopy(head.state_dict())
    step = 0
    for step in range(1, config.head_steps + 1):
        head.train()
        loss = F.mse_loss(head(f_train), y_train)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            val = _mse(head.eval()(f_val), y_val)
        if val < best:
            best, best_step, best_state = val, step, copy.deepcopy(head.state_dict())
        elif step - best_step >= config.head_patience:
            break
    head.load_state_dict(best_state)
    return {"head_steps": step, "head_best_step": best_step, "val_rmse": best**0.5}


def _set_train_mode(model: ImageRegressor, mode: str, config: SurrogateNetworkConfig) -> None:
    """Training mode; with ``config.finetune_norm`` ``frozen``, a pretrained trunk's BatchNorm
    keeps its running statistics."""
    model.train()
    if mode == "finetune" and config.finetune_norm == "frozen":
        for m in model.trunk.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


def _fit_trunk(
    model: ImageRegressor,
    x,
    ys,
    tr,
    va,
    *,
    mode: str,
    config: SurrogateNetworkConfig,
    gen: torch.Generator,
) -> dict:
    """Train trunk and head together (minibatches, augmentation, early stopping on val)."""
    lr = config.lr_finetune if mode == "finetune" else config.lr_scratch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    x_tr, y_tr = x[torch.as_tensor(tr)], ys[torch.as_tensor(tr)]
    x_va, y_va = x[torch.as_tensor(va)], ys[torch.as_tensor(va)]
    bs = min(config.batch_size, len(tr))

    def val_loss() -> float:
        model.eval()
        with torch.no_grad():
            return _mse(
                torch.cat([model(x_va[i : i + 256]) for i in range(0, len(x_va), 256)]), y_va
            )

    steps_per_epoch = -(-len(tr) // bs)
    patience = max(config.patience_steps, config.patience_epochs * steps_per_epoch)
    # fine-tuning is stopped exactly as scratch training is (patience counted from its start,
    # not from the probed head's validation loss, which the first steps at a new learning rate
    # overshoot); only at the end is the probe kept if fine-tuning never beat it
    probe = (val_loss(), copy.deepcopy(model.state_dict())) if mode == "finetune" else None
    best = float("inf")
    best_step, best_state = 0, copy.deepcopy(model.state_dict())
    step, stop = 0, False
    while not stop:
        order = torch.randperm(len(tr), generator=gen)
        # drop a last batch of one image: BatchNorm cannot train on it
        for lo in range(0, len(tr) - 1, bs):
            idx = order[lo : lo + bs]
            if len(idx) < 2:
                break
            xb = x_tr[idx]
            if config.augment:
                xb = augment(xb, generator=gen)
            _set_train_mode(model, mode, config)
            loss = F.mse_loss(model(xb), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step >= config.max_steps:
                stop = True
                break
        # validation once per epoch
        val = val_loss()
        if val < best:
            best, best_step, best_state = val, step, copy.deepcopy(model.state_dict())
        elif step - best_step >= patience:
            stop = True
    kept_probe = probe is not None and probe[0] <= best
    if kept_probe:
        best, best_step, best_state = probe[0], 0, probe[1]
    model.load_state_dict(best_state)
    info = {"steps": step, "best_step": best_step, "val_rmse": best**0.5}
    if probe is not None:
        info["kept_probe"] = kept_probe
    return info


def transfer_surrogate(
    source: Any,
    *,
    mode: Literal["frozen", "finetune"] = "finetune",
    config: SurrogateNetworkConfig = SURROGATE_DEFAULTS.network,
    pretrained: str | None = None,
    device: torch.device | str | None = None,
) -> NetworkSurrogate:
    """A surrogate that starts from a pretrained trunk (Yang et al. 2018; Gupta et al. 2021).

    Parameters
    ----------
    source : GANCheckpoint, Discriminator, DiscriminatorTrunk or NetworkSurrogate
        The GAN (its discriminator's trunk), a trunk, or a fitted surrogate of another property
        (its first member's trunk: cross-property transfer).
    mode : {"frozen", "finetune"}
    config : SurrogateNetworkConfig
    pretrained : str, optional
        Provenance saved with the model; derived from ``source`` when not given.

    Returns
    -------
    NetworkSurrogate
        Not yet fitted.
    """
    from mdesign.gan.checkpoint import GANCheckpoint

    if mode not in ("frozen", "finetune"):
        raise InputError(f"mode: expected frozen or finetune for transfer, got {mode!r}")
    if isinstance(source, GANCheckpoint):
        trunk = discriminator_trunk(source.discriminator)
        where = f"gan:{source.path}" if source.path else "gan"
    elif isinstance(source, Discriminator):
        trunk, where = discriminator_trunk(source), "discriminator"
    elif isinstance(source, DiscriminatorTrunk):
        trunk, where = source, "trunk"
    elif isinstance(source, NetworkSurrogate):
        trunk = source.trunk()
        where = f"surrogate:{source.target.get('task') or source.target or source.mode}"
    else:
        raise InputError(
            "source: expected a GAN checkpoint, a discriminator, a trunk or a fitted network "
            f"surrogate, got {type(source).__name__}"
        )
    return NetworkSurrogate(
        mode, trunk=trunk, config=config, pretrained=pretrained or where, device=device
    )


def scratch_surrogate(
    architecture: DiscriminatorConfig = GAN_DEFAULTS.discriminator,
    *,
    config: SurrogateNetworkConfig = SURROGATE_DEFAULTS.network,
    device: torch.device | str | None = None,
) -> NetworkSurrogate:
    """The same regressor with the trunk trained from the DCGAN initialisation."""
    return NetworkSurrogate("scratch", architecture=architecture, config=config, device=device)


# ---------------------------------------------------------------------------------------------
# the classical baseline


def s2_features(images: np.ndarray, *, max_distance: int) -> np.ndarray:
    """The periodic S2 map of phase 1 in the window ``|dx|, |dy| <= R``, flattened.

    Parameters
    ----------
    images : ndarray, ``N x H x W`` labels
    max_distance : int
        ``R``; the window is ``(2R + 1) x (2R + 1)`` displacements, directions kept (so an
        anisotropic microstructure's x and y correlations differ).

    Returns
    -------
    ndarray of float64, ``N x (2R + 1)**2``
        ``S2(d)``: the probability that two points ``d`` apart both lie in phase 1 (Torquato
        2002); the centre is the volume fraction.
    """
    from mdesign.descriptors import two_point_correlation

    images = check_labels(images)
    h, w = images.shape[1:]
    r = int(max_distance)
    if 2 * r + 1 > min(h, w):
        raise InputError(
            f"s2.max_distance {r}: the window {2 * r + 1} exceeds the images' side {min(h, w)}"
        )
    out = []
    for lo in range(0, len(images), 256):
        s2 = two_point_correlation(images[lo : lo + 256], phase=1)
        cy, cx = h // 2, w // 2
        out.append(s2[:, cy - r : cy + r + 1, cx - r : cx + r + 1].reshape(len(s2), -1))
    return np.concatenate(out).astype(np.float64)


class S2Surrogate:
    """PCA of the two-point correlation map, then Gaussian-process regression.

    Parameters
    ----------
    config : SurrogateS2Config
        The S2 window and the number of principal components.

    Notes
    -----
    The GP is BoTorch's ``SingleTaskGP`` (an RBF kernel with one length scale per component and
    BoTorch's dimension-scaled priors, a Gaussian likelihood) with inputs normalised to the unit
    cube and outputs standardised, fitted by maximising the marginal likelihood in float64.
    """

    kind = "s2_gp"
    mode = "s2_gp"

    def __init__(self, config: SurrogateS2Config = SURROGATE_DEFAULTS.s2):
        self.config = config
        self.pca_mean: np.ndarray | None = None
        self.pca_components: np.ndarray | None = None
        self.gp = None
        self.train_x: torch.Tensor | None = None
        self.train_y: torch.Tensor | None = None
        self.target: dict[str, Any] = {}
        self.fit_info: FitInfo | None = None

    @property
    def is_fitted(self) -> bool:
        return self.gp is not None

    def fit(
        self,
        images: np.ndarray,
        values: np.ndarray,
        *,
        seed: SeedLike = 0,
        target: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> S2Surrogate:
        """Fit PCA and GP on labelled images (``N x H x W``, values ``N``).

        ``seed`` (an int, a numpy ``Generator`` or ``SeedSequence``) seeds BoTorch's restarts
        from prior samples, which it makes only when the first optimisation of the
        hyperparameters fails. ``progress`` is accepted for a common
        signature; the fit is short.
        """
        start = time.perf_counter()
        x = s2_features(images, max_distance=self.config.max_distance)
        y = check_values(values, len(x))
        mean = x.mean(0)
        # principal axes from the SVD of the centred maps
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        k = max(1, min(self.config.n_components, len(x) - 1, vt.shape[0]))
        self.pca_mean, self.pca_components = mean, vt[:k].copy()
        z = torch.as_tensor(self._project(x))
        yt = torch.as_tensor(y[:, None])
        self.gp = _fit_gp(z, yt, seed=seed if isinstance(seed, Integral) else seed_int(seed))
        self.train_x, self.train_y = z, yt
        self.target = dict(target or {})
        self.fit_info = FitInfo(len(x), time.perf_counter() - start, [{"n_components": k}])
        return self

    def predict(self, images: np.ndarray) -> Prediction:
        """Posterior mean and standard deviation (of the latent function) for ``N x H x W``."""
        if self.gp is None:
            raise InputError("the surrogate is not fitted: call fit(images, values) first")
        z = torch.as_tensor(
            self._project(s2_features(images, max_distance=self.config.max_distance))
        )
        means, stds = [], []
        with torch.no_grad():
            for lo in range(0, len(z), 1024):
                post = self.gp.posterior(z[lo : lo + 1024])
                means.append(post.mean.squeeze(-1))
                stds.append(post.variance.clamp_min(0).sqrt().squeeze(-1))
        return Prediction(mean=torch.cat(means).numpy(), std=torch.cat(stds).numpy())

    def _project(self, x: np.ndarray) -> np.ndarray:
        return (x - self.pca_mean) @ self.pca_components.T

    def __repr__(self) -> str:
        return f"S2Surrogate({'fitted' if self.gp is not None else 'not fitted'})"


def build_gp(train_x: torch.Tensor, train_y: torch.Tensor):
    """The (unfitted) ``SingleTaskGP`` of :class:`S2Surrogate` on float64 ``n x d``, ``n x 1``."""
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize

    return SingleTaskGP(
        train_x,
        train_y,
        input_transform=Normalize(d=train_x.shape[-1]),
        outcome_transform=Standardize(m=1),
    )


def _fit_gp(train_x: torch.Tensor, train_y: torch.Tensor, *, seed: int):
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    gp = build_gp(train_x, train_y)
    mll = ExactMarginalLogLikelihood(gp.likelihood, gp)
    # BoTorch restarts a failed fit from hyperparameters drawn from their priors with the global
    # generator; fork_rng confines that draw to a seeded copy and restores the global state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        fit_gpytorch_mll(mll)
    # the model kept is rebuilt from the fitted state exactly as loading rebuilds it, so a saved
    # and reloaded surrogate predicts bit for bit the same (the fitted object's caches differ
    # from a fresh one's in the last digit)
    fresh = build_gp(train_x, train_y)
    fresh.load_state_dict(gp.state_dict())
    return fresh.eval()


def make_surrogate(
    model: str,
    *,
    gan: Any = None,
    config=SURROGATE_DEFAULTS,
    device: torch.device | str | None = None,
):
    """An unfitted surrogate by name: ``frozen``, ``finetune``, ``scratch`` or ``s2_gp``.

    Parameters
    ----------
    model : str
    gan : GANCheckpoint or NetworkSurrogate, optional
        The pretrained source of ``frozen`` and ``finetune`` (and the architecture of
        ``scratch``: the GAN's discriminator's, else the default).
    config : SurrogateConfig
    """
    if model == "s2_gp":
        return S2Surrogate(config.s2)
    if model == "scratch":
        if gan is not None and hasattr(gan, "config") and hasattr(gan, "discriminator"):
            arch = gan.config.discriminator
        elif isinstance(gan, NetworkSurrogate):
            arch = gan.architecture
        else:
            arch = GAN_DEFAULTS.discriminator
        return scratch_surrogate(arch, config=config.network, device=device)
    if model in ("frozen", "finetune"):
        if gan is None:
            raise InputError(
                f"gan: model {model} needs a pretrained source (a GAN checkpoint or a network "
                "surrogate), got None"
            )
        return transfer_surrogate(gan, mode=model, config=config.network, device=device)
    raise InputError(f"model: expected one of frozen, finetune, scratch, s2_gp, got {model!r}")
