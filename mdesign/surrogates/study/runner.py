"""One run of the study: fit its model on its labels, score it on the held-out sets.

Everything a run needs but its own fields travels in a :class:`StudyContext`: the GAN, the image
sets and their labels, the config, and the cache of the cross-property source models.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mdesign.config import SurrogateConfig
from mdesign.surrogates.models import Surrogate, make_surrogate, transfer_surrogate
from mdesign.surrogates.persistence import load_surrogate, save_surrogate
from mdesign.surrogates.study.labels import TaskLabels
from mdesign.surrogates.study.metrics import regression_metrics
from mdesign.surrogates.study.plan import Run, subset, valid_indices

__all__ = ["StudyContext", "fit_run", "score", "source_model", "task_target"]


@dataclass(frozen=True)
class StudyContext:
    """What every run of one study shares.

    Attributes
    ----------
    gan : GANCheckpoint
        The trained GAN (its discriminator is the pretrained trunk).
    sets : mapping of str to ndarray
        ``pool``, ``test`` and ``gan`` images, ``N x H x W``.
    labels : mapping of str to TaskLabels
        Per task, its values on each set.
    config : SurrogateConfig
    cache : Path
        Folder of the cross-property source models (regenerable).
    checkpoint_sha256 : str
        The GAN checkpoint's digest (names the cached source models).
    sources : dict
        Source models already trained or loaded in this process, by (task, seed).
    """

    gan: Any
    sets: Mapping[str, np.ndarray]
    labels: Mapping[str, TaskLabels]
    config: SurrogateConfig
    cache: Path
    checkpoint_sha256: str
    sources: dict[tuple[str, int], Surrogate] = field(default_factory=dict)

    def source_path(self, task: str, seed: int) -> Path:
        """Where the fine-tuned source model of ``task`` and ``seed`` is cached."""
        return self.cache / f"{task}_finetune_seed{seed}_{self.checkpoint_sha256[:12]}.pt"


def task_target(config: SurrogateConfig, name: str) -> dict:
    """What a model of task ``name`` predicts (saved with it): task, evaluator, parameters."""
    task = next(t for t in config.study.tasks if t.name == name)
    return {"task": name, "evaluator": task.evaluator, "params": dict(task.params)}


def score(
    model: Surrogate, images: np.ndarray, y: np.ndarray, prefix: str = ""
) -> dict[str, float]:
    """:func:`regression_metrics` of ``model`` on the images with a finite label, plus the
    prediction's wall time, keys prefixed by ``prefix``."""
    ok = np.isfinite(y)
    if not ok.any():
        return {}
    t = time.perf_counter()
    pred = model.predict(images[ok])
    out = {f"{prefix}{k}": v for k, v in regression_metrics(pred.mean, y[ok]).items()}
    out[f"{prefix}predict_seconds"] = time.perf_counter() - t
    return out


def fit_run(run: Run, ctx: StudyContext) -> dict:
    """Fit and score one run; its journal row (the run's fields, fit record and scores)."""
    config = ctx.config
    vals = ctx.labels[run.task].values
    idx = subset(valid_indices(vals["pool"]), run.size, run.seed)
    if run.is_cross:
        model = transfer_surrogate(
            source_model(run.source, run.seed, ctx),
            mode=run.model.removeprefix("cross_"),
            config=config.network,
            pretrained=f"surrogate:{run.source}",
        )
    else:
        model = make_surrogate(run.model, gan=ctx.gan, config=config)
    kw = {} if run.model == "s2_gp" else {"ensemble_size": 1}
    model.fit(
        ctx.sets["pool"][idx],
        vals["pool"][idx],
        seed=run.seed,
        target=task_target(config, run.task),
        **kw,
    )
    row = run.row()
    row["fit_seconds"] = model.fit_info.seconds
    row["fit"] = model.fit_info.members[0]
    row.update(score(model, ctx.sets["test"], vals["test"]))
    if len(ctx.sets["gan"]):
        row.update(score(model, ctx.sets["gan"], vals["gan"], prefix="gan_"))
    if run.model == "finetune" and run.size == max(config.study.sizes):
        # the source of cross-property transfer: keep it for the target tasks' runs
        save_surrogate(model, ctx.source_path(run.task, run.seed))
        ctx.sources[(run.task, run.seed)] = model
    return row


def source_model(task: str, seed: int, ctx: StudyContext) -> Surrogate:
    """The fine-tuned regressor of ``task`` at the largest K (trained now if not cached)."""
    if (task, seed) in ctx.sources:
        return ctx.sources[(task, seed)]
    path = ctx.source_path(task, seed)
    if path.is_file():
        model = load_surrogate(path)
    else:
        vals = ctx.labels[task].values
        idx = subset(valid_indices(vals["pool"]), max(ctx.config.study.sizes), seed)
        model = make_surrogate("finetune", gan=ctx.gan, config=ctx.config)
        model.fit(
            ctx.sets["pool"][idx],
            vals["pool"][idx],
            seed=seed,
            ensemble_size=1,
            target=task_target(ctx.config, task),
        )
        save_surrogate(model, path)
    ctx.sources[(task, seed)] = model
    return model
