"""Tutorial: a design campaign with your own evaluator (Yang et al. 2018).

Run ``python docs/tutorials/campaign.py`` (a few minutes on 2 cores); ``--quick`` runs a tiny
budget (the test suite). Figures go to ``--out`` (default: ``docs/tutorials/figures``).
"""

import argparse
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "figures")
parser.add_argument("--quick", action="store_true", help="a tiny budget")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
budget, initial, batch_size = (6, 4, 2) if args.quick else (40, 12, 4)

# --8<-- [start:evaluator]
from mdesign.descriptors import specific_surface
from mdesign.evaluators import register_evaluator


@register_evaluator
def interface_density(images: np.ndarray, *, phase: int = 1) -> np.ndarray:
    """Interface length per pixel of each image (N x H x W labels -> N values)."""
    return specific_surface(images, phase=phase)


# --8<-- [end:evaluator]

# --8<-- [start:config]
from mdesign.config import CampaignConfig
from mdesign.gan import SHIPPED_CHECKPOINT

config = CampaignConfig.model_validate(
    {
        "name": "interface",
        "generator": {"checkpoint": str(SHIPPED_CHECKPOINT)},
        "objectives": [{"evaluator": "interface_density", "goal": "maximize"}],
        "constraints": [{"evaluator": "volume_fraction", "min": 0.3, "max": 0.5}],
        "bo": {"budget": budget, "initial": initial, "batch_size": batch_size},
        "baselines": ["random", "grf"],
        "seed": 0,
    }
)
# --8<-- [end:config]

# --8<-- [start:run]
from mdesign.optimization import run_campaign

with tempfile.TemporaryDirectory() as folder:
    summary = run_campaign(config, Path(folder) / "interface", progress=False)
    for method, value in summary.best.items():
        print(f"{method}: best interface density {value:.4f}")
    print("BO's improvement over the baselines [%]:", summary.improvement)
    best_so_far = {m: r.best_so_far() for m, r in summary.methods.items()}
    with np.load(summary.out_dir / "best.npz") as best:  # the best BO designs, decoded
        designs = best["images"][:4]
    shutil.copy(summary.out_dir / "report.png", args.out / "campaign_report.png")
# --8<-- [end:run]

# --8<-- [start:plot]
from mdesign.plotting import show_labels

fig, axes = plt.subplots(
    1, 1 + len(designs), figsize=(13, 3.2), width_ratios=[2] + [1] * len(designs)
)
for method, curve in best_so_far.items():
    axes[0].plot(np.arange(1, len(curve) + 1), curve, label=method)
axes[0].set(xlabel="evaluations", ylabel="best interface density", title="best so far")
axes[0].legend()
for ax, image in zip(axes[1:], designs, strict=False):
    show_labels(ax, image, k=2, title=f"vf {image.mean():.2f}")
fig.tight_layout()
fig.savefig(args.out / "campaign.png", dpi=90)
# --8<-- [end:plot]
