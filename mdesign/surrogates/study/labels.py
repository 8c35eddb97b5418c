"""The study's images and their labels: GRF pool and test images from the GAN's training
distribution, GAN samples, and every task's values on them, cached per image set."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdesign.config import SurrogateConfig, SurrogateTaskConfig
from mdesign.evaluators import evaluate_batch, evaluator_params, get_evaluator
from mdesign.gan import decode, latent_shape, sample_latents
from mdesign.gan.validation import grf_reference
from mdesign.io import atomic_path

__all__ = ["TaskLabels", "image_digest", "label_task", "study_images"]


@dataclass(frozen=True)
class TaskLabels:
    """A task's values on each image set.

    Attributes
    ----------
    values : dict of str to ndarray
        Per set (``pool``, ``test``, ``gan``): one value per image, NaN where evaluation failed.
    seconds : dict of str to float
        Evaluation wall time per set (as first measured, for a cached set).
    cached : list of str
        The sets read from the cache rather than evaluated.
    """

    values: dict[str, np.ndarray]
    seconds: dict[str, float]
    cached: list[str]


def image_digest(*arrays: np.ndarray) -> str:
    """SHA-256 of the arrays' bytes: the identity of an image set in the cache."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def study_images(gan, config: SurrogateConfig, *, progress: bool = False):
    """Pool, test (GRF from the GAN's training distribution) and GAN-sample images."""
    st = config.study
    grf = grf_reference(gan.data_meta, st.n_pool + st.n_test, seed=st.image_seed, progress=progress)
    pool, test = grf.images[: st.n_pool], grf.images[st.n_pool :]
    gan_images = np.zeros((0, *pool.shape[1:]), np.uint8)
    if st.n_gan_test:
        z = sample_latents(
            st.n_gan_test,
            latent_shape(gan.config),
            seed=st.image_seed,
            global_channels=gan.config.generator.global_channels,
        )
        gan_images = decode(gan.generator, z)
    return pool, test, gan_images


def label_task(
    task: SurrogateTaskConfig,
    sets: Mapping[str, np.ndarray],
    cache: Path,
    *,
    progress: bool,
    log: Callable[[str], None],
) -> TaskLabels:
    """Values of ``task`` on every image set; a set is read from ``cache`` when its images'
    digest and the evaluator's parameters match (so another GAN checkpoint relabels only its
    samples, not the GRF images)."""
    evaluator = get_evaluator(task.evaluator, **task.params)
    spec = json.dumps(
        {"evaluator": task.evaluator, "params": evaluator_params(evaluator)}, sort_keys=True
    )
    old: dict[str, Any] = {}
    if cache.is_file():
        with np.load(cache) as f:
            if str(f["spec"]) == spec:
                old = {k: f[k] for k in f.files}
    values, seconds, failed, cached = {}, {}, 0, []
    for name, images in sets.items():
        digest = image_digest(images)
        if str(old.get(f"{name}_sha256", "")) == digest:
            values[name], seconds[name] = old[name], float(old[f"{name}_seconds"])
            cached.append(name)
            continue
        if len(images):
            log(f"labels of {task.name}: evaluating {len(images)} {name} images")
        res = evaluate_batch(evaluator, images, progress=progress)
        values[name], seconds[name] = res.values, res.seconds
        failed += len(res.errors)
    if cached:
        log(f"labels of {task.name}: {', '.join(cached)} read from {cache}")
    if failed:
        log(f"labels of {task.name}: {failed} images failed and are left out")
    if len(cached) < len(sets):
        arrays = {}
        for name, images in sets.items():
            arrays[name] = values[name]
            arrays[f"{name}_sha256"] = np.array(image_digest(images))
            arrays[f"{name}_seconds"] = np.array(seconds[name])
        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, spec=np.array(spec), **arrays)
    return TaskLabels(values=values, seconds=seconds, cached=cached)
