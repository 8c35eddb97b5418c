"""Each method's confirmed best design per seed, as images: what the optical campaigns found.

Rows: BO on descriptors (``configs/campaign_optical_descriptors.yaml``), BO on the latents (the
paper's, ``configs/campaign_optical.yaml``) and random GRF images; columns: seeds. Each title
gives the design's absorption confirmed at RCWA order 9, its silicon (phase-1) fraction and its
specific surface (1/pixel, periodic Crofton estimate). Reads the campaigns' stores only
(``bench/bench_campaign_optical.py`` runs them)::

    python bench/plot_optical_bests.py -o artifacts/campaigns/optical_descriptors/bests.png
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_campaign_optical", ROOT / "bench" / "bench_campaign_optical.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", type=Path, required=True, help="the figure (.png)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument(
        "--descriptors-root", type=Path, default=ROOT / "runs/campaign_optical_descriptors"
    )
    p.add_argument("--root", type=Path, default=ROOT / "runs/campaign_optical")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdesign.descriptors import specific_surface
    from mdesign.optimization.campaign import campaign_context
    from mdesign.optimization.problem import load_space

    bench = _bench()
    configs = ROOT / "configs"
    rows = [
        (
            "BO on descriptors",
            args.descriptors_root,
            configs / "campaign_optical_descriptors.yaml",
            "bo",
        ),
        ("BO on latents (the paper's)", args.root, configs / "campaign_optical.yaml", "bo"),
        ("random GRF", args.root, configs / "campaign_optical.yaml", "grf"),
    ]
    first = bench.load_config(rows[1][2], seed=args.seeds[0], budget=None)
    space = load_space(campaign_context(first, config_dir=configs)["space"])
    fig, axes = plt.subplots(
        3, len(args.seeds), figsize=(2.2 * len(args.seeds), 8.0), squeeze=False
    )
    for i, (label, root, config, method) in enumerate(rows):
        for j, s in enumerate(args.seeds):
            cfg = bench.load_config(config, seed=s, budget=None)
            row = bench.seed_summary(root / f"seed{s}", cfg)["methods"][method]["confirmed"]
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
            if not row or row["design"] is None:
                ax.set_title(f"seed {s}\nnot run" if i == 0 else "not run", fontsize=8)
                continue
            d = row["design"]
            img = (
                space.grf(d["grf_seed"])[0]
                if "grf_seed" in d
                else space.decode(np.array([d["latent"]]))[0]
            )
            ax.imshow(img, cmap="gray_r", interpolation="nearest")
            head = f"seed {s}\n" if i == 0 else ""
            surface = specific_surface(img[None])[0]
            ax.set_title(
                f"{head}{row['best']:.4f}  (f {img.mean():.2f}, s {surface:.3f})", fontsize=8
            )
    fig.suptitle(
        "Each method's best design, confirmed at RCWA order 9: absorption "
        "(silicon fraction f, specific surface s, 1/px)",
        fontsize=10,
    )
    fig.tight_layout(h_pad=1.5)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
