"""The worked example's checks beyond `mdesign sample --report` (README.md here says why).

1. **A perfect GAN**: new 64 x 64 windows of the training region (random positions and dihedral
   transforms: the distribution the GAN was trained on, drawn perfectly) validated against the
   held-out tiles like the samples: what the data allows any generator to score.
2. **Copies at any position**: the distance from each sample (and each held-out tile, and each
   perfect-GAN window) to the nearest of *all* 64 x 64 windows of the training region, in all 8
   dihedral transforms (the training tiles are 1024 of them), by FFT correlation.
3. **What the data holds for the campaign**: sigma_x of 1024 random training windows with a
   phase-1 fraction in the campaign's [0.3, 0.5], against the campaign's bests.

Usage: python artifacts/own_material/ceramics/analyse.py RUN_DIR (the folder of README.md's
commands); writes perfect_gan.json, memorisation.json, memorisation.png and tiles.png here.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from mdesign.dataset import nearest_distances
from mdesign.gan.validation import validate

HERE = Path(__file__).resolve().parent


def dihedral(img: np.ndarray) -> list[np.ndarray]:
    out = []
    for k in range(4):
        r = np.rot90(img, k)
        out += [r, r[:, ::-1]]
    return out


def nearest_window(images: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Hamming distance (share of pixels) to the nearest window of ``region``, any D4 transform."""
    from scipy.signal import fftconvolve

    t = images.shape[1]
    r = region.astype(np.float64)
    win_sum = fftconvolve(r, np.ones((t, t)), mode="valid")
    out = np.empty(len(images))
    for i, img in enumerate(images):
        best = np.inf
        for s in dihedral(img.astype(np.float64)):
            corr = fftconvolve(r, s[::-1, ::-1], mode="valid")
            d = s.sum() + win_sum - 2 * corr
            best = min(best, float(np.rint(d).min()))
        out[i] = best / t**2
    return out


def stats(v: np.ndarray) -> dict:
    return {
        "min": float(v.min()),
        "q05": float(np.quantile(v, 0.05)),
        "q25": float(np.quantile(v, 0.25)),
        "median": float(np.median(v)),
        "max": float(v.max()),
        "pixels_min": round(float(v.min()) * 64 * 64),
    }


def main(run: Path) -> None:
    rng = np.random.default_rng(7)
    with np.load(run / "train.npz") as d:
        train, holdout = d["images"], d["holdout"]
        meta = json.loads(str(d["meta"]))
    with np.load(run / "labels.npz") as d:
        labels = d["images"][0]
    with np.load(run / "samples.npz") as d:
        samples = d["images"]
    x0 = meta["sources"][0]["holdout_region"][2]
    region = labels[:, :x0]  # the training region: columns left of the held-out band
    t = train.shape[1]
    n = len(samples)
    # 1. a perfect GAN: fresh windows of the training region, in random dihedral transforms
    ys = rng.integers(0, region.shape[0] - t + 1, n)
    xs = rng.integers(0, region.shape[1] - t + 1, n)
    ks = rng.integers(0, 8, n)
    perfect = np.stack(
        [dihedral(region[y : y + t, x : x + t])[k] for y, x, k in zip(ys, xs, ks, strict=True)]
    )
    m = len(holdout) // 2
    real, real_b = holdout[:m], holdout[m : 2 * m]
    rows = {}
    for name, imgs in (("gan samples", samples), ("perfect gan", perfect)):
        s = validate(imgs, real, real_b).summary()
        rows[name] = {
            "s2_ratio": s["s2_ratio"],
            "specific_surface_error": s["specific_surface_error"],
            "clusters_error": s["clusters_error"],
            "volume_fraction_mean": s["volume_fraction_mean"],
            "anisotropy_ratio": s["anisotropy_ratio"],
        }
    rows["real vs real (the held-out halves)"] = {
        "specific_surface_error": s["specific_surface_error_real"],
        "clusters_error": s["clusters_error_real"],
    }
    (HERE / "perfect_gan.json").write_text(json.dumps(rows, indent=1) + "\n")
    # 2. nearest training tile (as `sample --report`) and nearest window anywhere (any D4)
    mem = {}
    for name, imgs in (("samples", samples), ("holdout", holdout), ("perfect gan", perfect)):
        mem[name] = {
            "nearest_training_tile": stats(nearest_distances(imgs, train)),
            "nearest_window_any_position": stats(nearest_window(imgs, region)),
        }
    # 3. sigma_x of training windows in the campaign's fraction range, and the campaign's bests
    from mdesign.evaluators.conductivity import effective_conductivity

    pool = train[rng.choice(len(train), 1024, replace=False)]
    f = pool.mean((1, 2))
    pool = pool[(f >= 0.3) & (f <= 0.5)]
    sig = np.asarray(effective_conductivity(pool, conductivities=[1.0, 10.0], direction="x"))
    best = {}
    with open(run / "campaign" / "evaluations.csv") as fh:
        for row in csv.DictReader(fh):
            if row["status"] == "ok" and row["feasible"] == "true":
                v = float(row["value"])
                best[row["method"]] = max(best.get(row["method"], -np.inf), v)
    mem["campaign"] = {
        "best_feasible_by_method": best,
        "training_windows_in_range": len(pool),
        "training_windows_sigma_x": {
            "max": float(sig.max()),
            "q95": float(np.quantile(sig, 0.95)),
            "median": float(np.median(sig)),
        },
    }
    (HERE / "memorisation.json").write_text(json.dumps(mem, indent=1) + "\n")
    figures(samples, train, holdout, perfect, mem, run)


def figures(samples, train, holdout, perfect, mem, run: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s_tile = nearest_distances(samples, train)
    h_tile = nearest_distances(holdout, train)
    p_tile = nearest_distances(perfect, train)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bins = np.linspace(0, max(s_tile.max(), h_tile.max()) + 0.02, 40)
    ax.hist(p_tile, bins, alpha=0.5, label="perfect GAN (new training windows)", density=True)
    ax.hist(h_tile, bins, alpha=0.5, label="held-out tiles", density=True)
    ax.hist(s_tile, bins, alpha=0.5, label="GAN samples", density=True)
    ax.set_xlabel("share of pixels differing from the nearest training tile")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "memorisation.png", dpi=120)
    plt.close(fig)
    # samples, their nearest training tiles, held-out tiles, perfect-GAN windows
    import torch

    a = torch.from_numpy(samples[:8].reshape(8, -1).astype(np.float32))
    b = torch.from_numpy(train.reshape(len(train), -1).astype(np.float32))
    nn = (a.sum(1)[:, None] + b.sum(1)[None] - 2 * a @ b.T).argmin(1).numpy()
    rows = [
        ("GAN samples", samples[:8]),
        ("nearest training tile", train[nn]),
        ("held-out tiles", holdout[:8]),
        ("training tiles", train[::1024][:8]),
    ]
    fig, axes = plt.subplots(len(rows), 8, figsize=(8, 4.4))
    for r, (name, imgs) in enumerate(rows):
        for c in range(8):
            axes[r, c].imshow(imgs[c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "tiles.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
