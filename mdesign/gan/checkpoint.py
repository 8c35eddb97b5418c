"""GAN checkpoints: state dicts plus the config that built them, written atomically.

A checkpoint is a plain dictionary saved with :func:`torch.save` and read back with
``torch.load(..., weights_only=True)``, so loading it runs no pickled code:

* ``format``: ``"mdesign.gan/1"`` (anything else is a foreign file);
* ``config``: the :class:`~mdesign.config.GANConfig` as a mapping (it rebuilds the networks);
* ``generator``, ``discriminator``: state dicts;
* ``epoch``: epochs completed;
* ``data_meta``: provenance of the training images (their count, shape, digest and the ``meta``
  record of the ``mdesign grf`` run that made them, so :func:`mdesign.gan.grf_reference` can draw
  fresh images from the same distribution);
* for resuming (the full training checkpoint only): ``optimizer_g``, ``optimizer_d`` (Adam
  states), ``rng`` (the state of the training's random generator), and, when the saved
  ``generator`` is a moving average of the weights (``train.ema_decay``), the generator being
  trained (``generator_train``) and the number of averaging updates (``ema_updates``).

The inference checkpoint (``model.pt``, and the shipped ``artifacts/gan/checkpoint.pt``) leaves
out the optimiser and RNG states: a third of the size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mdesign.config import GANConfig, config_from_dict
from mdesign.device import default_device
from mdesign.errors import InputError
from mdesign.gan.networks import Discriminator, Generator
from mdesign.io import save_torch

__all__ = [
    "FORMAT",
    "PAPER_CHECKPOINT",
    "SHIPPED_CHECKPOINT",
    "GANCheckpoint",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
    "shipped_checkpoint",
]

FORMAT = "mdesign.gan/1"

_ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

SHIPPED_CHECKPOINT = _ARTIFACTS / "gan" / "checkpoint.pt"
"""The shipped model, ``artifacts/gan/checkpoint.pt`` at the repository root (the project is
installed editable, so the path is found from the package): 16 local latent cells and one
global value. See ``artifacts/gan/README.md``."""

PAPER_CHECKPOINT = _ARTIFACTS / "gan_paper" / "checkpoint.pt"
"""The paper's network (Yang et al. 2018; the typed defaults of :class:`mdesign.config.GANConfig`),
``artifacts/gan_paper/checkpoint.pt``: the shipped model until the global-channel model replaced
it. Its discriminator transfers best to structure-property models, so the surrogates start from
it (``artifacts/gan_paper/README.md``)."""


@dataclass(frozen=True)
class GANCheckpoint:
    """A trained DCGAN, ready for inference.

    Attributes
    ----------
    generator : Generator
        In eval mode (BatchNorm uses its running statistics), on the requested device.
    discriminator : Discriminator
        In eval mode.
    config : GANConfig
        The configuration the networks were built and trained with.
    epoch : int
        Epochs of training completed.
    data_meta : dict
        Provenance of the training images: ``n_images``, ``shape``, ``sha256`` of the label
        bytes, ``volume_fraction`` (mean), ``source`` (the file) and ``grf`` (the ``meta`` of
        the ``mdesign grf`` run that made them, when there was one).
    path : Path or None
        The file it was read from.
    """

    generator: Generator
    discriminator: Discriminator
    config: GANConfig
    epoch: int
    data_meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """``(C + G, h, w)`` of the training latent map (``(1, 4, 4)`` for the default)."""
        g = self.config.generator
        return (g.latent_channels + g.global_channels, g.latent_size, g.latent_size)


def save_checkpoint(
    path: str | os.PathLike,
    *,
    generator: Generator,
    discriminator: Discriminator,
    config: GANConfig,
    epoch: int,
    data_meta: dict[str, Any] | None = None,
    optimizer_g: torch.optim.Optimizer | None = None,
    optimizer_d: torch.optim.Optimizer | None = None,
    rng: torch.Generator | None = None,
    generator_train: Generator | None = None,
    ema_updates: int | None = None,
) -> Path:
    """Write a checkpoint atomically (a killed write leaves the previous file as it was).

    Tensors are moved to the CPU, so a checkpoint written on a GPU loads anywhere. Optimiser
    and RNG states, and the trained (not averaged) generator ``generator_train``, are written
    only when given (the resumable training checkpoint); ``generator`` is the one sampled.
    """
    from mdesign import __version__

    def cpu(sd: dict) -> dict:
        return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in sd.items()}

    state: dict[str, Any] = {
        "format": FORMAT,
        "version": __version__,
        "config": config.model_dump(mode="json"),
        "epoch": int(epoch),
        "generator": cpu(generator.state_dict()),
        "discriminator": cpu(discriminator.state_dict()),
        "data_meta": data_meta or {},
    }
    if optimizer_g is not None and optimizer_d is not None:
        state["optimizer_g"] = _optimizer_to_cpu(optimizer_g.state_dict())
        state["optimizer_d"] = _optimizer_to_cpu(optimizer_d.state_dict())
    if rng is not None:
        state["rng"] = rng.get_state()
    if generator_train is not None:
        state["generator_train"] = cpu(generator_train.state_dict())
    if ema_updates is not None:
        state["ema_updates"] = int(ema_updates)
    return save_torch(state, path)


def _optimizer_to_cpu(sd: dict) -> dict:
    return {
        "state": {
            k: {n: t.detach().cpu() if isinstance(t, torch.Tensor) else t for n, t in s.items()}
            for k, s in sd["state"].items()
        },
        "param_groups": sd["param_groups"],
    }


# files a user may pass by mistake (a training set, an image, a config): named, not unpickled
_NOT_CHECKPOINTS = frozenset(
    {".npz", ".npy", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".json", ".yaml", ".yml", ".csv"}
)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dictionary, checked to be an mdesign GAN checkpoint.

    Raises
    ------
    InputError
        A missing file, a file that is not a PyTorch archive (corrupted or truncated), or one
        that is not an mdesign GAN checkpoint (another project's model, a bare state dict).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a checkpoint file")
    if path.suffix.lower() in _NOT_CHECKPOINTS:
        raise InputError(
            f"{path}: a {path.suffix} file, not a checkpoint (give the checkpoint.pt or model.pt "
            "that mdesign train writes)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, disallowed global: not ours to read
        text = str(exc).strip()
        first = text.splitlines()[0][:200] if text else type(exc).__name__
        raise InputError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"{path}: not an mdesign GAN checkpoint (no format {FORMAT!r})")
    missing = [k for k in ("config", "epoch", "generator", "discriminator") if k not in state]
    if missing:
        raise InputError(f"{path}: incomplete checkpoint, missing {', '.join(missing)}")
    return state


def config_of(state: dict[str, Any], *, source: str) -> GANConfig:
    """The :class:`GANConfig` stored in a raw checkpoint."""
    return config_from_dict(GANConfig, state["config"], source=f"{source}: config")


def networks_from_state(
    state: dict[str, Any], config: GANConfig, *, source: str, device: torch.device
) -> tuple[Generator, Discriminator]:
    """Rebuild both networks from ``config`` and load their state dicts."""
    gen = Generator.from_config(config)
    disc = Discriminator.from_config(config)
    for name, net in (("generator", gen), ("discriminator", disc)):
        try:
            net.load_state_dict(state[name])
        except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
            first = (str(exc).strip() or type(exc).__name__).splitlines()[0][:200]
            raise InputError(
                f"{source}: the {name} weights do not fit its config ({first})"
            ) from None
    return gen.to(device), disc.to(device)


def load_checkpoint(path: str | os.PathLike, *, device=None) -> GANCheckpoint:
    """Load a trained DCGAN for inference.

    Parameters
    ----------
    path : path-like
        A checkpoint written by ``mdesign train`` (``checkpoint.pt`` or ``model.pt``), or
        :data:`SHIPPED_CHECKPOINT`.
    device : torch.device or str, optional
        Where to put the networks; CUDA when available by default.

    Returns
    -------
    GANCheckpoint
        Both networks in eval mode, the config, the epoch and the training data's provenance.

    Raises
    ------
    InputError
        A missing, corrupted or foreign file, or weights that do not match the stored config.
    """
    path = Path(path)
    state = read_checkpoint(path)
    config = config_of(state, source=str(path))
    dev = default_device(device)
    gen, disc = networks_from_state(state, config, source=str(path), device=dev)
    meta = state.get("data_meta") or {}
    if not isinstance(meta, dict):
        raise InputError(f"{path}: data_meta is not a mapping")
    return GANCheckpoint(
        generator=gen.eval(),
        discriminator=disc.eval(),
        config=config,
        epoch=int(state["epoch"]),
        data_meta=meta,
        path=path,
    )


def shipped_checkpoint(*, device=None) -> GANCheckpoint:
    """The shipped model (:data:`SHIPPED_CHECKPOINT`), with a clear error if it is missing."""
    if not SHIPPED_CHECKPOINT.is_file():
        raise InputError(
            f"{SHIPPED_CHECKPOINT}: the shipped GAN checkpoint is missing; it is committed with "
            "the repository (artifacts/gan/), or retrain it with the commands in "
            "artifacts/gan/README.md"
        )
    return load_checkpoint(SHIPPED_CHECKPOINT, device=device)
