"""Surrogates: training time per model, prediction speed against the true evaluators.

Prints, on this machine and in one run, with torch on ``--threads`` threads (2 by default, the
dev machine's cores):

* **training**: wall time of ``fit`` for each model (frozen trunk + head, fine-tuned, scratch,
  PCA(S2) + GP) on K = 100 and K = 1000 labelled 128x128 GRF images (effective conductivity at
  contrast 10; one ensemble member, the study's setting; median of ``--repeat`` fits at K = 100,
  one at K = 1000), with the steps taken; beside the networks, in the same process and
  interleaved, a plain PyTorch loop (same trunk and head, AdamW, same batch, no augmentation,
  validation or checkpointing) timed per step, and the ratio of mdesign's time per step to it
  (mdesign's step includes its augmentation and a share of the per-epoch validation); beside the
  GP, scikit-learn's ``GaussianProcessRegressor`` (RBF with one length scale per component, white
  noise, 3 restarts) on the same principal components, with both models' test MAE as a check;
* **prediction**: milliseconds per image of each fitted model (1,000 images, median of 3) and of
  the evaluators it stands in for (effective conductivity at the default accuracy, optical
  absorption at the study's low order and at its defaults), and the speed-up.

The pretrained trunk is the paper network's discriminator
(``artifacts/gan_paper/checkpoint.pt``, what ``mdesign surrogate-train`` starts from) when
present, else an untrained one of the same architecture (the same cost). The dev machine's 2
cores are shared: the load average is printed, and times vary by tens of percent between runs.

Usage: ``python bench/bench_surrogates.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report


def _data(n: int, seed: int):
    from mdesign.evaluators import effective_conductivity
    from mdesign.grf import grf_microstructures

    images = grf_microstructures(
        n, (128, 128), volume_fraction=(0.3, 0.6), correlation_length=(4, 8), seed=seed
    ).images
    return images, effective_conductivity(images, conductivities=(1, 10))


def _gan():
    from mdesign.gan import PAPER_CHECKPOINT, load_checkpoint
    from mdesign.gan.networks import Discriminator, init_weights

    if PAPER_CHECKPOINT.is_file():
        return load_checkpoint(PAPER_CHECKPOINT, device="cpu"), "the paper GAN's discriminator"
    return init_weights(Discriminator(), seed=0).eval(), "untrained discriminator (no paper GAN)"


def _plain_loop_seconds_per_step(images, values, *, mode: str, steps: int, gan) -> float:
    """The peer: a bare training loop of the same network, seconds per step."""
    import copy

    import torch
    import torch.nn.functional as F

    from mdesign.config import SURROGATE_DEFAULTS
    from mdesign.gan.networks import Discriminator, discriminator_trunk
    from mdesign.surrogates.networks import (
        ImageRegressor,
        feature_count,
        new_head,
        scratch_trunk,
        trunk_architecture,
    )

    cfg = SURROGATE_DEFAULTS.network
    gen = torch.Generator().manual_seed(0)
    disc = gan if isinstance(gan, Discriminator) else gan.discriminator
    if mode == "scratch":
        trunk = scratch_trunk(trunk_architecture(discriminator_trunk(disc)), seed=0)
    else:
        trunk = copy.deepcopy(discriminator_trunk(disc))
    head = new_head(feature_count(trunk, pool=cfg.pool), cfg.head_hidden, generator=gen)
    model = ImageRegressor(trunk, head, pool=cfg.pool).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=cfg.weight_decay)
    x = torch.as_tensor(images).float().mul(2).sub(1).unsqueeze(1)
    y = torch.as_tensor((values - values.mean()) / values.std(), dtype=torch.float32)
    bs = min(cfg.batch_size, len(x))
    t = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (bs,), generator=gen)
        loss = F.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t) / max(steps, 1)


def _sklearn_gp(model, images, values, test_images, test_values):
    """The peer of the S2 + GP baseline: scikit-learn's GP on the same principal components."""
    import numpy as np
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    from mdesign.surrogates import s2_features

    r = model.config.max_distance
    z = model._project(s2_features(images, max_distance=r))
    zt = model._project(s2_features(test_images, max_distance=r))
    lo, hi = z.min(0), z.max(0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    kernel = ConstantKernel() * RBF(length_scale=np.ones(z.shape[1])) + WhiteKernel()
    gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=3, random_state=0)
    t = time.perf_counter()
    gp.fit((z - lo) / scale, values)
    seconds = time.perf_counter() - t
    mae = float(np.abs(gp.predict((zt - lo) / scale) - test_values).mean())
    return seconds, mae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="fits at the small K (median)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: K = 50 and 100, 40 trunk steps"
    )
    args = parser.parse_args()

    import numpy as np
    import torch

    from mdesign.config import SURROGATE_DEFAULTS
    from mdesign.evaluators import effective_conductivity, optical_absorption
    from mdesign.surrogates import make_surrogate

    torch.set_num_threads(args.threads)
    sizes = (50, 100) if args.quick else (100, 1000)
    n_test = 200 if args.quick else 1000
    print(f"load average before: {os.getloadavg()[0]:.2f}; torch threads {args.threads}")
    t = time.perf_counter()
    images, values = _data(max(sizes) + n_test, seed=21)
    test_images, test_values = images[max(sizes) :], values[max(sizes) :]
    print(f"labelled {len(images)} images in {time.perf_counter() - t:.0f} s")
    gan, which = _gan()
    print(f"pretrained trunk: {which}")
    config = SURROGATE_DEFAULTS
    if args.quick:
        net = config.network.model_copy(update={"max_steps": 40, "head_steps": 200})
        config = config.model_copy(update={"network": net})

    rows, fitted = [], {}
    for k in sizes:
        for name in ("frozen", "finetune", "scratch", "s2_gp"):
            repeat = args.repeat if k == min(sizes) else 1
            times, model = [], None
            peer_steps = []
            for _ in range(repeat):
                model = make_surrogate(name, gan=gan, config=config)
                kw = {} if name == "s2_gp" else {"ensemble_size": 1}
                t = time.perf_counter()
                model.fit(images[:k], values[:k], seed=0, **kw)
                times.append(time.perf_counter() - t)
                info = model.fit_info.members[0]
                if name in ("finetune", "scratch"):
                    peer_steps.append(
                        _plain_loop_seconds_per_step(
                            images[:k], values[:k], mode=name, steps=20, gan=gan
                        )
                    )
            seconds = statistics.median(times)
            mae = float(np.abs(model.predict(test_images).mean - test_values).mean())
            row = {
                "model": name,
                "K": k,
                "fit_s": seconds,
                "head_steps": info.get("head_steps", ""),
                "trunk_steps": info.get("steps", ""),
                "s_per_step": "",
                "peer": "",
                "peer_s_per_step": "",
                "ratio": "",
                "test_mae": mae,
                "peer_mae": "",
            }
            if peer_steps:
                head_s = 0.0
                if name == "finetune":
                    # the head-only stage (features once, full-batch head) is not in the peer
                    probe = make_surrogate("frozen", gan=gan, config=config)
                    t = time.perf_counter()
                    probe.fit(images[:k], values[:k], seed=0, ensemble_size=1)
                    head_s = time.perf_counter() - t
                per_step = (seconds - head_s) / max(info["steps"], 1)
                peer = statistics.median(peer_steps)
                row.update(
                    s_per_step=per_step,
                    peer="plain torch loop",
                    peer_s_per_step=peer,
                    ratio=per_step / peer,
                )
            if name == "s2_gp":
                peer_s, peer_mae = _sklearn_gp(
                    model, images[:k], values[:k], test_images, test_values
                )
                row.update(
                    peer="sklearn GPR",
                    peer_s_per_step="",
                    ratio=seconds / peer_s,
                    peer_mae=peer_mae,
                )
                row["peer_fit_s"] = peer_s
            rows.append(row)
            fitted[name] = model
            print(f"  {name} K={k}: {seconds:.1f} s", flush=True)
    for r in rows:
        r.setdefault("peer_fit_s", "")
    report(
        "surrogates_training",
        rows,
        title=f"surrogate fit time, one member, {args.threads} threads "
        "(ratio: mdesign time per step / peer's; GP: fit time / sklearn's)",
    )

    pred_rows = []
    for name, model in fitted.items():
        model.predict(test_images[:8])
        times = []
        for _ in range(3):
            t = time.perf_counter()
            model.predict(test_images)
            times.append(time.perf_counter() - t)
        pred_rows.append(
            {
                "what": f"surrogate {name}",
                "ms_per_image": 1e3 * statistics.median(times) / len(test_images),
            }
        )
    ens = make_surrogate("finetune", gan=gan, config=config)
    ens.fit(images[: min(sizes)], values[: min(sizes)], seed=0, ensemble_size=5)
    t = time.perf_counter()
    ens.predict(test_images)
    pred_rows.append(
        {
            "what": "surrogate finetune x 5",
            "ms_per_image": 1e3 * (time.perf_counter() - t) / len(test_images),
        }
    )
    sub = test_images[:32]
    t = time.perf_counter()
    effective_conductivity(sub, conductivities=(1, 10))
    cond = 1e3 * (time.perf_counter() - t) / len(sub)
    pred_rows.append({"what": "effective_conductivity (default accuracy)", "ms_per_image": cond})
    study_abs = dict(config.study.tasks[-1].params)
    t = time.perf_counter()
    optical_absorption(sub[:8], **study_abs)
    pred_rows.append(
        {
            "what": f"optical_absorption {study_abs}",
            "ms_per_image": 1e3 * (time.perf_counter() - t) / 8,
        }
    )
    if not args.quick:
        t = time.perf_counter()
        optical_absorption(sub[:2])
        pred_rows.append(
            {
                "what": "optical_absorption (defaults)",
                "ms_per_image": 1e3 * (time.perf_counter() - t) / 2,
            }
        )
    for r in pred_rows:
        r["conductivity_over_this"] = cond / r["ms_per_image"]
    report(
        "surrogates_prediction",
        pred_rows,
        title="prediction cost per 128x128 image (conductivity_over_this: speed-up of the "
        "surrogate over the true conductivity evaluator)",
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
