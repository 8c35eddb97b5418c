"""Tutorial: a structure-property surrogate from a few labelled images.

Run ``python docs/tutorials/surrogates.py`` (a few minutes on 2 cores); ``--quick`` uses fewer
images and a short training (the test suite). Figures go to ``--out`` (default:
``docs/tutorials/figures``).
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "figures")
parser.add_argument("--quick", action="store_true", help="fewer images, short training")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
n_train, n_test, side = (24, 16, 64) if args.quick else (100, 200, 64)

# --8<-- [start:data]
from mdesign.evaluators import effective_conductivity
from mdesign.grf import grf_microstructures

images = grf_microstructures(
    n_train + n_test,
    (side, side),
    volume_fraction=(0.3, 0.6),
    correlation_length=(2, 4),
    seed=0,
).images  # uint8 labels, N x side x side
sigma = effective_conductivity(images, conductivities=(1.0, 10.0))  # along x, N values
train, test = slice(0, n_train), slice(n_train, None)
print(f"{n_train} labelled images, {n_test} test images; sigma {sigma.min():.2f}-{sigma.max():.2f}")
# --8<-- [end:data]

# --8<-- [start:fit]
from mdesign.config import SURROGATE_DEFAULTS
from mdesign.gan import PAPER_CHECKPOINT, load_checkpoint
from mdesign.surrogates import make_surrogate

config = SURROGATE_DEFAULTS
if args.quick:  # a short training for the test suite; the defaults otherwise
    network = config.network.model_copy(update={"max_steps": 20, "head_steps": 40})
    config = config.model_copy(update={"network": network})
gan = load_checkpoint(PAPER_CHECKPOINT, device="cpu")  # its discriminator is the pretrained trunk
predictions = {}
for model in ("s2_gp", "finetune"):
    surrogate = make_surrogate(model, gan=gan, config=config)
    extra = {"ensemble_size": 2} if args.quick and model != "s2_gp" else {}
    surrogate.fit(images[train], sigma[train], seed=0, **extra)
    predictions[model] = surrogate.predict(images[test])  # Prediction(mean, std)
    error = np.abs(predictions[model].mean - sigma[test]).mean()
    print(f"{model}: test MAE {error:.3f}")
# --8<-- [end:fit]

# --8<-- [start:plot]
fig, axes = plt.subplots(1, len(predictions), figsize=(9, 4), sharey=True)
lims = [sigma.min(), sigma.max()]
for ax, (model, p) in zip(axes, predictions.items(), strict=True):
    ax.errorbar(sigma[test], p.mean, yerr=p.std, fmt="o", ms=3, alpha=0.6)
    ax.plot(lims, lims, "k--", lw=1)
    r2 = 1 - ((p.mean - sigma[test]) ** 2).sum() / ((sigma[test] - sigma[test].mean()) ** 2).sum()
    ax.set(xlabel="true effective conductivity", title=f"{model}: R² {r2:.2f} ({n_train} labels)")
axes[0].set_ylabel("predicted (± std)")
fig.tight_layout()
fig.savefig(args.out / "surrogates.png", dpi=90)
# --8<-- [end:plot]
