"""Tutorial: explore the GAN's latent design space (Yang et al. 2018).

Run ``python docs/tutorials/latent.py`` (under a minute on 2 cores); ``--quick`` decodes fewer
images (the test suite). Figures go to ``--out`` (default: ``docs/tutorials/figures``). The
notebook ``notebooks/latent_exploration.ipynb`` goes further.
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "figures")
parser.add_argument("--quick", action="store_true", help="fewer images")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
n = 32 if args.quick else 500

# --8<-- [start:load]
from mdesign.gan import (
    SHIPPED_CHECKPOINT,  # artifacts/gan/checkpoint.pt: any checkpoint works
    latent_shape,
    load_checkpoint,
)

ckpt = load_checkpoint(SHIPPED_CHECKPOINT, device="cpu")
generator = ckpt.generator
shape = latent_shape(ckpt.config)  # (C, h, w): the design variables of one image
n_global = ckpt.config.generator.global_channels  # the last channels hold one value per image
print("latent", shape, "of which global channels:", n_global)
# --8<-- [end:load]

# --8<-- [start:sample]
from mdesign.gan import decode, grf_reference, sample_latents
from mdesign.gan.sampling import sample_fractions, training_fractions

z = np.asarray(sample_latents(n, shape, seed=0, global_channels=n_global))  # uniform in [-1, 1]
own = decode(generator, z)  # n x 128 x 128 uint8 labels, cut at the generator's own fraction
# the fraction is a design variable of its own: cut at fractions drawn like the training set's
fractions = sample_fractions(n, training_fractions(ckpt.data_meta), seed=0)
generated = decode(generator, z, fractions=fractions)
real = grf_reference(ckpt.data_meta, n, seed=1).images  # fresh images like the training set
print("generated", generated.shape, "mean phase-1 fraction", generated.mean().round(3))
assert np.abs(generated.mean((1, 2)) - fractions).max() <= 1 / 128**2  # exact to one pixel
# --8<-- [end:sample]

# --8<-- [start:descriptors]
from mdesign.descriptors import characterize

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
bins = np.linspace(0.2, 0.7, 26)
for name, images in (("generated", generated), ("training distribution", real)):
    c = characterize(images)  # fractions, S2, lineal path, chords, specific surface
    lo, mid, hi = np.quantile(c.s2, [0.05, 0.5, 0.95], axis=0)
    axes[0].plot(mid, label=name)
    axes[0].fill_between(np.arange(len(mid)), lo, hi, alpha=0.3)
    axes[1].hist(c.volume_fractions[:, 1], bins, alpha=0.5, label=name)
axes[1].hist(own.mean((1, 2)), bins, histtype="step", color="k", label="generated, own fraction")
axes[0].set(xlabel="r [px]", ylabel="S2(r), phase 1", title="two-point correlation (5-95%)")
axes[1].set(xlabel="phase-1 fraction", ylabel="images", title="volume fractions")
axes[0].legend()
axes[1].legend(fontsize=8)
fig.tight_layout()
fig.savefig(args.out / "latent.png", dpi=90)
# --8<-- [end:descriptors]

# --8<-- [start:interpolate]
from mdesign.plotting import show_labels

t = np.linspace(0, 1, 6)
path = decode(generator, np.stack([(1 - s) * z[0] + s * z[1] for s in t]), fractions=0.45)
fig, axes = plt.subplots(1, len(t), figsize=(13, 2.6))
for ax, s, image in zip(axes, t, path, strict=True):
    show_labels(ax, image, k=2, title=f"t = {s:.1f}")
fig.tight_layout()
fig.savefig(args.out / "latent_path.png", dpi=90)
changes = [(path[i] != path[i + 1]).mean() for i in range(len(t) - 1)]
print("pixels changed per step:", np.round(changes, 3))
# --8<-- [end:interpolate]

# --8<-- [start:cell]
values = np.linspace(-1, 1, 5)
sweep = np.repeat(z[2:3], len(values), axis=0)
sweep[:, 0, 1, 2] = values  # move one design variable: channel 0, row 1, column 2
images = decode(generator, sweep)
fig, axes = plt.subplots(1, len(values), figsize=(12, 2.8))
for ax, v, image in zip(axes, values, images, strict=True):
    show_labels(ax, image, k=2, title=f"z[0, 1, 2] = {v:+.1f}, vf {image.mean():.2f}")
    ax.add_patch(plt.Rectangle((64 - 0.5, 32 - 0.5), 32, 32, fill=False, ec="tab:orange"))
fig.tight_layout()
fig.savefig(args.out / "latent_cell.png", dpi=90)
# --8<-- [end:cell]
