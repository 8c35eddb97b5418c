"""Tutorial: reconstruct a micrograph in 2D, then a volume from it (Li et al. 2018).

Run ``python docs/tutorials/reconstruct.py`` (about 2 minutes on 2 cores with the default VGG19,
fetched once by ``mdesign weights``); ``--quick`` uses tiny sizes and random weights (offline, the
test suite runs it). Figures go to ``--out`` (default: ``docs/tutorials/figures``).
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "figures")
parser.add_argument("--quick", action="store_true", help="tiny sizes, random weights, offline")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
crop, side, side_3d = (64, 32, 32) if args.quick else (128, 128, 48)
weights = "random" if args.quick else "normalized"  # "normalized": the paper's VGG19
# the defaults (configs/reconstruct.yaml) at full size; a few steps of each stage in the test
quick = {"optimiser": {"iterations": 5}, "anneal": {"sweeps": 0.2}} if args.quick else {}
quick_3d = {"slices": {"iterations": 5}, "anneal": {"volume_sweeps": 0.3}} if args.quick else {}

# --8<-- [start:exemplar]
from mdesign.data import li2018_exemplar

exemplar = li2018_exemplar("ceramics", size=256)  # uint8 labels 0/1, 256 x 256
start = (256 - crop) // 2
exemplar = exemplar[start : start + crop, start : start + crop]  # a central crop
print("exemplar", exemplar.shape, "phase-1 fraction", exemplar.mean().round(3))
# --8<-- [end:exemplar]

# --8<-- [start:reconstruct]
from mdesign.config import ReconstructionConfig
from mdesign.reconstruction import reconstruct

config = ReconstructionConfig(texture={"weights": weights}, **quick)  # configs/reconstruct.yaml
result = reconstruct(exemplar, (side, side), config, seed=0)
image = result.labels  # uint8 labels, side x side
errors = result.errors  # S2 and lineal-path errors, fractions, morphology
print(f"2D: {result.seconds:.0f} s, S2 RMSE {errors.s2_rmse:.2g}, fraction error "
      f"{errors.fraction_error_pixels:.1f} px")  # fmt: skip
assert errors.fraction_error_pixels <= 1  # the annealing makes the fraction exact
# --8<-- [end:reconstruct]

# --8<-- [start:plot2d]
from mdesign.plotting import show_labels

fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
show_labels(axes[0], exemplar, k=2, title=f"exemplar {crop}x{crop}")
show_labels(axes[1], image, k=2, title=f"reconstruction {side}x{side}")
s2_exemplar, s2_image = errors.s2_exemplar[0], errors.s2_reconstruction[0]  # rows: phases
axes[2].plot(s2_exemplar, label="exemplar")
axes[2].plot(s2_image, "--", label="reconstruction")
axes[2].set(xlabel="distance r [px]", ylabel="S2(r) of phase 1", title="two-point correlation")
axes[2].legend()
fig.tight_layout()
fig.savefig(args.out / "reconstruct_2d.png", dpi=90)
# --8<-- [end:plot2d]

# --8<-- [start:volume]
config_3d = ReconstructionConfig(texture={"weights": weights}, **quick_3d)
volume = reconstruct(exemplar, (side_3d, side_3d, side_3d), config_3d, seed=0)  # 3 sides
labels = volume.labels  # uint8 labels, side_3d ** 3
assert labels.shape == (side_3d,) * 3
for axis, err in enumerate(volume.axes):  # the slices normal to each axis against the exemplar
    print(f"3D: slices normal to axis {axis}: S2 RMSE {err.s2_rmse:.2g}")
# --8<-- [end:volume]

# --8<-- [start:plot3d]
mid = side_3d // 2
fig, axes = plt.subplots(1, 4, figsize=(12, 3.3))
window = exemplar[:side_3d, :side_3d]  # at the volume's pixel scale
show_labels(axes[0], window, k=2, title=f"exemplar, a {side_3d}x{side_3d} window")
for axis, ax in enumerate(axes[1:]):
    show_labels(ax, np.take(labels, mid, axis=axis), k=2, title=f"slice normal to axis {axis}")
fig.tight_layout()
fig.savefig(args.out / "reconstruct_3d.png", dpi=90)
# --8<-- [end:plot3d]
