"""Training the DCGAN on a two-phase label stack (``mdesign train``).

The loop follows Yang et al. (2018) and the PyTorch DCGAN example: Adam (lr 5e-4, beta1 0.5),
the non-saturating cross-entropy loss (the generator maximises ``log D(G(z))``), latents drawn
from the uniform prior on ``[-1, 1]^d``, and a configurable number of discriminator steps per
generator step. WGAN-GP (Gulrajani et al. 2017) is an option (``train.loss: wgan-gp``).

An epoch shows every training image to the discriminator once (``N // batch_size`` steps, in a
fresh random order; the last incomplete batch is left out). After every epoch the run directory
gets, each written atomically:

* ``checkpoint.pt``: both networks, both optimisers, the config, the epoch and the state of the
  run's random generator, so ``resume=True`` continues exactly where a killed run stopped (the
  same weights as an uninterrupted run, bit for bit on the same device);
* ``model.pt``: the same without the optimiser and RNG states (the inference checkpoint, a third
  of the size);
* a line of ``metrics.jsonl``: mean losses, the discriminator's mean output on real and fake
  images, seconds, and a quality monitor: the volume fraction of ``monitor_size`` generated
  images against the training images', the S2 distance between them
  (:func:`mdesign.gan.validation.s2_distance`), and the share of their pixels whose tanh output
  is below 0.9 in magnitude (``grey_fraction``: the training images are all -1 or +1, and a
  generator whose output stays grey loses to a discriminator that sees it, which the binarised
  fraction and S2 hide);
* ``samples/epoch_NNNN.png``: a grid of images decoded from fixed latents.

All randomness (initial weights, batch order, latents, penalty mixing) comes from generators
seeded by ``train.seed``; none from global state.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mdesign.config import GAN_DEFAULTS, GANConfig, config_from_dict, dump_config
from mdesign.device import default_device
from mdesign.errors import InputError
from mdesign.gan.checkpoint import (
    config_of,
    networks_from_state,
    read_checkpoint,
    save_checkpoint,
)
from mdesign.gan.networks import Discriminator, Generator, init_weights, labels_to_signed
from mdesign.gan.sampling import QUANTILE_POINTS, _fused, _sample_latents, decode, latent_shape
from mdesign.io import atomic_path, write_images
from mdesign.runs import refuse_other_run

__all__ = ["TrainResult", "check_training_images", "data_provenance", "train"]

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
METRICS = "metrics.jsonl"
GREY_LEVEL = 0.9
"""A monitored pixel is grey when its tanh output is below this in magnitude."""


@dataclass(frozen=True)
class TrainResult:
    """What a training run left behind.

    Attributes
    ----------
    out_dir : Path
        The run directory.
    checkpoint : Path
        ``out_dir / "checkpoint.pt"`` (resumable).
    model : Path
        ``out_dir / "model.pt"`` (inference only).
    epoch : int
        Epochs completed in total.
    metrics : list of dict
        One record per epoch trained in this call.
    """

    out_dir: Path
    checkpoint: Path
    model: Path
    epoch: int
    metrics: list[dict[str, Any]]


def check_training_images(
    images: np.ndarray, config: GANConfig = GAN_DEFAULTS, *, source: str = "images"
) -> np.ndarray:
    """Check that ``images`` is a two-phase label stack the generator can make.

    Parameters
    ----------
    images : ndarray, ``N x H x W``
        Labels 0 and 1.
    config : GANConfig
        The generator's depth and training latent size fix ``H = W = 2**depth * latent_size``.
    source : str
        Named in the error messages.

    Returns
    -------
    ndarray of uint8, ``N x H x W``

    Raises
    ------
    InputError
        Not a 3D integer stack, labels other than 0 and 1, non-square images, sides not
        divisible by the generator's 32 (``2**depth``), a side that the config's
        ``generator.latent_size`` does not give, or fewer images than a batch.
    """
    arr = np.asarray(images)
    if arr.ndim != 3 or arr.dtype.kind not in "biu":
        raise InputError(
            f"expected a label stack N x H x W of integers, got {arr.dtype} of shape {arr.shape}",
            param=source,
        )
    labels = np.unique(arr)
    if not np.isin(labels, (0, 1)).all():
        raise InputError(
            f"the DCGAN models two-phase stacks (labels 0 and 1), got labels "
            f"{', '.join(map(str, labels.tolist()))}",
            param=source,
        )
    n, h, w = arr.shape
    s = config.scale
    if h % s or w % s:
        raise InputError(
            f"image side {h}x{w} is not divisible by {s}; the generator makes "
            f"{s} pixels per latent cell",
            param=source,
        )
    if h != w:
        raise InputError(f"training images must be square, got {h}x{w}", param=source)
    if h != s * config.generator.latent_size:
        raise InputError(
            f"images are {h}x{w} but generator.latent_size "
            f"{config.generator.latent_size} makes {s * config.generator.latent_size}x"
            f"{s * config.generator.latent_size}; set generator.latent_size: {h // s}",
            param=source,
        )
    if n < config.train.batch_size:
        raise InputError(
            f"{n} images are fewer than one batch (train.batch_size {config.train.batch_size})",
            param=source,
        )
    return arr.astype(np.uint8, copy=False)


def data_provenance(
    images: np.ndarray, *, source: str | None = None, meta: dict | None = None
) -> dict[str, Any]:
    """The ``data_meta`` record stored in checkpoints: what the GAN was trained on.

    Includes the digest of the labels (checked on resume), the quantiles of the images' phase-1
    fractions (two-phase data), the file's absolute ``path``, and, when the images came from
    ``mdesign grf``, its ``meta`` record under ``grf`` (the parameters of the distribution);
    from ``mdesign dataset``, its provenance under ``dataset`` (the sources' sha256, the
    regions, the held-out tiles' digest, the independent data).
    """
    arr = np.ascontiguousarray(images, dtype=np.uint8)
    record: dict[str, Any] = {
        "source": None if source is None else str(source),
        "n_images": int(arr.shape[0]),
        "shape": [int(s) for s in arr.shape[1:]],
        "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
        "volume_fraction": float(arr.mean()),
    }
    if arr.ndim >= 2 and len(arr) and int(arr.max()) <= 1:
        # the quantile function of the images' phase-1 fractions: what random design points
        # are cut at (mdesign.gan.sampling.training_fractions)
        per_image = arr.reshape(len(arr), -1).mean(1)
        u = np.linspace(0, 1, QUANTILE_POINTS)
        record["volume_fraction_quantiles"] = [float(v) for v in np.quantile(per_image, u)]
    if source is not None:
        # where the file was: validation and campaigns read the training and held-out tiles
        # from it (mdesign.dataset.find_training_data, which checks sha256)
        record["path"] = str(Path(source).resolve())
    if meta and meta.get("command") == "grf":
        record["grf"] = json.loads(json.dumps(meta, default=str))
    if meta and meta.get("command") == "dataset":
        keep = (
            "config",
            "sources",
            "n_tiles",
            "n_holdout",
            "independent_tiles",
            "holdout_independent_tiles",
            "holdout_sha256",
            "warning",
        )
        record["dataset"] = json.loads(json.dumps({k: meta.get(k) for k in keep}, default=str))
    return record


def _gradient_penalty(
    disc: Discriminator, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """``E[(||grad D(x_hat)|| - 1)^2]`` on random mixtures of real and fake (Gulrajani 2017)."""
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _ema_update(ema: Generator, gen: Generator, *, decay: float, updates: int) -> None:
    """``ema <- d ema + (1 - d) gen`` for the weights, ``d = min(decay, (1 + t) / (10 + t))``.

    The warm-up of ``d`` over the first updates (as TensorFlow's ``ExponentialMovingAverage``
    with ``num_updates``) keeps the average from clinging to the random initial weights.
    """
    d = min(decay, (1 + updates) / (10 + updates))
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), gen.parameters(), strict=True):
            pe.lerp_(p, 1 - d)


def standing_statistics(
    generator: Generator,
    latent_shape: tuple,
    *,
    seed: int,
    n_batches: int = 16,
    batch_size: int = GAN_DEFAULTS.train.batch_size,
) -> Generator:
    """Recompute the generator's BatchNorm running statistics from its own outputs.

    Averaged weights were never run, so their BatchNorm statistics are unknown; these are the
    cumulative mean and variance over ``n_batches`` batches of prior latents in training mode
    ("standing statistics", Brock et al. 2019). Leaves the generator in eval mode.
    """
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    dev = next(generator.parameters()).device
    gen = torch.Generator().manual_seed(int(seed))
    generator.train()
    with torch.no_grad():
        for _ in range(n_batches):
            z = _sample_latents(
                batch_size, latent_shape, generator=gen, global_channels=generator.global_channels
            )
            generator(z.to(dev))
    for m, mom in zip(norms, momenta, strict=True):
        m.momentum = mom
    return generator.eval()


def _monitor(
    gen: Generator, images: np.ndarray, z: torch.Tensor, max_distance: int
) -> dict[str, float]:
    """Volume fraction, S2 distance and grey share of generated images against training images."""
    from mdesign.gan.validation import s2_distance

    fake = decode(gen, z)
    # the eval-mode output, without switching the generator's mode: the folded generator
    # decode has just built (and cached)
    fused = _fused(gen, torch.float32)
    with torch.no_grad():
        raw = fused(z.to(fused.weights[0].device))
    return {
        "volume_fraction_generated": float(fake.mean()),
        "volume_fraction_real": float(images.mean()),
        "s2_distance": s2_distance(fake, images, max_distance=max_distance),
        "grey_fraction": float((raw.abs() < GREY_LEVEL).float().mean()),
    }


def _trim_metrics(path: Path, epoch: int) -> None:
    """Drop metrics lines beyond ``epoch`` (written after the checkpoint a resume starts from)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if isinstance(rec, dict) and int(rec.get("epoch", 0)) <= epoch:
            keep.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(k + "\n" for k in keep))


def train(
    images: np.ndarray,
    out_dir: str | os.PathLike,
    config: GANConfig | None = None,
    *,
    epochs: int | None = None,
    resume: bool = False,
    data_meta: dict[str, Any] | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train the DCGAN (Yang et al. 2018) and write a checkpoint every epoch.

    Parameters
    ----------
    images : ndarray, ``N x H x W``
        Two-phase labels (:func:`check_training_images`).
    out_dir : path-like
        Run directory; created if missing. It must not hold a checkpoint unless ``resume``.
    config : GANConfig, optional
        Networks and training settings, :data:`~mdesign.config.GAN_DEFAULTS` if omitted. With
        ``resume`` the checkpoint's config is used, and a different one given here is an error
        (``train.epochs`` aside).
    epochs : int, optional
        Total epochs to reach (default ``config.train.epochs``); a resumed run continues up to
        it. The config written with the checkpoints records it as ``train.epochs``.
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` with the same images.
    data_meta : dict, optional
        Provenance to store (:func:`data_provenance`); computed from ``images`` if omitted.
    device : torch.device or str, optional
        CUDA when available by default.
    progress : bool
        Show a progress bar per epoch with the running losses.

    Returns
    -------
    TrainResult
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file, expected a directory", param="out_dir")
    ckpt_path, model_path, metrics_path = out / CHECKPOINT, out / MODEL, out / METRICS
    dev = default_device(device)
    state = None
    if resume:
        if not ckpt_path.exists():
            raise InputError(f"{ckpt_path} does not exist; nothing to resume", param="resume")
        state = read_checkpoint(ckpt_path)
        stored = config_of(state, source=str(ckpt_path))
        if config is not None:
            refuse_other_run(
                ckpt_path,
                previous=stored.model_dump(mode="json", exclude={"train": {"epochs"}}),
                current=config.model_dump(mode="json", exclude={"train": {"epochs"}}),
                what="a GAN training run",
                remedy="resume it without a config (or with the same one)",
            )
        config = stored
        if (
            "optimizer_g" not in state
            or "rng" not in state
            or (config.train.ema_decay > 0 and "generator_train" not in state)
        ):
            raise InputError(f"{ckpt_path} has no optimiser state (not resumable)", param="resume")
    elif ckpt_path.exists():
        raise InputError(
            f"{out}: already holds {CHECKPOINT}; resume it, or choose another folder",
            param="out_dir",
        )
    if config is None:
        config = GAN_DEFAULTS
    images = check_training_images(images, config)
    meta = data_meta if data_meta is not None else data_provenance(images)
    if state is not None:
        old = (state.get("data_meta") or {}).get("sha256")
        new = data_provenance(images)["sha256"]
        if old and old != new:
            raise InputError(
                f"these images differ from the ones {ckpt_path} was trained on", param="resume"
            )
        meta = state.get("data_meta") or meta
    total = int(epochs if epochs is not None else config.train.epochs)
    if total < 1:
        raise InputError(f"must be at least 1, got {total}", param="epochs")
    if total != config.train.epochs:
        raw = config.model_dump()
        raw["train"]["epochs"] = total
        config = config_from_dict(GANConfig, raw, source="epochs")
    tc = config.train

    # networks, optimisers and the run's random stream; `ema` is the generator that is saved
    # and sampled (the average of `gen`'s weights), or `gen` itself without averaging
    rng = torch.Generator()
    if state is None:
        gen = init_weights(Generator.from_config(config), seed=tc.seed).to(dev)
        disc = init_weights(Discriminator.from_config(config), seed=tc.seed + 1).to(dev)
        ema = copy.deepcopy(gen) if tc.ema_decay > 0 else gen
        rng.manual_seed(tc.seed)
        start = 0
        ema_updates = 0
    else:
        ema, disc = networks_from_state(state, config, source=str(ckpt_path), device=dev)
        gen = ema
        if tc.ema_decay > 0:
            gen = Generator.from_config(config).to(dev)
            gen.load_state_dict(state["generator_train"])
        rng.set_state(state["rng"])
        start = int(state["epoch"])
        ema_updates = int(state.get("ema_updates", 0))
    betas = (tc.beta1, tc.beta2)
    opt_g = torch.optim.Adam(gen.parameters(), lr=tc.lr, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=tc.lr, betas=betas)
    if state is not None:
        opt_g.load_state_dict(state["optimizer_g"])
        opt_d.load_state_dict(state["optimizer_d"])
    del state

    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_text(dump_config(config))
    _trim_metrics(metrics_path, start)

    zshape = latent_shape(config)
    # fixed latents for the grids and the monitor: derived from the seed, not from the run's
    # stream, so they are the same on resume
    prior = {"global_channels": config.generator.global_channels}
    grid_z = _sample_latents(tc.grid_size, zshape, seed=tc.seed + 2, **prior)
    monitor_z = (
        _sample_latents(tc.monitor_size, zshape, seed=tc.seed + 3, **prior)
        if tc.monitor_size
        else None
    )
    monitor_real = images[: tc.monitor_size] if tc.monitor_size else None
    data = torch.from_numpy(images)
    n_batches = images.shape[0] // tc.batch_size
    bs = tc.batch_size
    records = []
    for epoch in range(start, total):
        t0 = time.perf_counter()
        lr = tc.lr_at(epoch + 1)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        gen.train()
        disc.train()
        order = torch.randperm(images.shape[0], generator=rng)
        sums = {"loss_d": 0.0, "loss_g": 0.0, "d_real": 0.0, "d_fake": 0.0}
        g_steps = 0
        bar = tqdm(
            range(n_batches),
            desc=f"epoch {epoch + 1}/{total}",
            unit="batch",
            disable=not progress,
            leave=False,
        )
        for b in bar:
            real = labels_to_signed(data[order[b * bs : (b + 1) * bs]], device=dev)
            z = _sample_latents(bs, zshape, generator=rng, **prior).to(dev)
            g_step = (b + 1) % tc.d_steps == 0
            with torch.set_grad_enabled(g_step):
                fake = gen(z)
            # discriminator step
            d_real = disc(real)
            d_fake_det = disc(fake.detach())
            if tc.loss == "bce":
                loss_d = F.binary_cross_entropy_with_logits(
                    d_real, torch.ones_like(d_real)
                ) + F.binary_cross_entropy_with_logits(d_fake_det, torch.zeros_like(d_fake_det))
            else:
                eps = torch.rand((bs, 1, 1, 1), generator=rng).to(dev)
                loss_d = (
                    d_fake_det.mean()
                    - d_real.mean()
                    + tc.gp_weight * _gradient_penalty(disc, real, fake.detach(), eps)
                )
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            sums["loss_d"] += loss_d.item()
            if tc.loss == "bce":
                sums["d_real"] += torch.sigmoid(d_real.detach()).mean().item()
                sums["d_fake"] += torch.sigmoid(d_fake_det.detach()).mean().item()
            else:
                sums["d_real"] += d_real.detach().mean().item()
                sums["d_fake"] += d_fake_det.detach().mean().item()
            # generator step (every d_steps-th batch), on the same fakes
            if g_step:
                d_fake = disc(fake)
                if tc.loss == "bce":
                    loss_g = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
                else:
                    loss_g = -d_fake.mean()
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                if ema is not gen:
                    _ema_update(ema, gen, decay=tc.ema_decay, updates=ema_updates)
                    ema_updates += 1
                sums["loss_g"] += loss_g.item()
                g_steps += 1
            bar.set_postfix(
                loss_d=f"{sums['loss_d'] / (b + 1):.3f}",
                loss_g=f"{sums['loss_g'] / max(g_steps, 1):.3f}",
                refresh=False,
            )
        bar.close()
        seconds = time.perf_counter() - t0
        gen.eval()
        disc.eval()
        if ema is not gen:
            # BatchNorm statistics of the averaged weights, from latents fixed by (seed, epoch)
            standing_statistics(ema, zshape, seed=tc.seed * 100_003 + epoch, batch_size=bs)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss_d": sums["loss_d"] / n_batches,
            "loss_g": sums["loss_g"] / max(g_steps, 1),
            "d_real": sums["d_real"] / n_batches,
            "d_fake": sums["d_fake"] / n_batches,
            "lr": lr,
            "seconds": seconds,
            "images_per_second": n_batches * bs / seconds,
        }
        if monitor_z is not None:
            record.update(_monitor(ema, monitor_real, monitor_z, min(32, images.shape[1] // 4)))
        write_images(out / "samples" / f"epoch_{epoch + 1:04d}.png", decode(ema, grid_z))
        record["seconds_total"] = time.perf_counter() - t0
        # the metrics line first: if a kill comes before the checkpoint, the resumed run redoes
        # this epoch and _trim_metrics drops the line
        with open(metrics_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        save_checkpoint(
            ckpt_path,
            generator=ema,
            discriminator=disc,
            config=config,
            epoch=epoch + 1,
            data_meta=meta,
            optimizer_g=opt_g,
            optimizer_d=opt_d,
            rng=rng,
            generator_train=gen if ema is not gen else None,
            ema_updates=ema_updates,
        )
        save_checkpoint(
            model_path,
            generator=ema,
            discriminator=disc,
            config=config,
            epoch=epoch + 1,
            data_meta=meta,
        )
        records.append(record)
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}/{total}: loss_d {record['loss_d']:.3f} loss_g "
                f"{record['loss_g']:.3f} D(real) {record['d_real']:.3f} D(fake) "
                f"{record['d_fake']:.3f}"
                + (
                    f" vf {record['volume_fraction_generated']:.3f}/"
                    f"{record['volume_fraction_real']:.3f} S2 dist {record['s2_distance']:.4f}"
                    f" grey {record['grey_fraction']:.3f}"
                    if "s2_distance" in record
                    else ""
                )
                + f" ({seconds:.1f} s)"
            )
    return TrainResult(
        out_dir=out,
        checkpoint=ckpt_path,
        model=model_path,
        epoch=max(start, total),
        metrics=records,
    )
