"""Single-exemplar reconstruction on the Li et al. (2018) exemplars, against the fitted GRF.

For each exemplar (the central 128x128 crop of each 256x256 file: a crop keeps the pixel scale
and the labels exact, where resizing would halve the features and blur the phases) this runs, in
one process and one after another:

* the reconstruction, hybrid (Gram + ``S2`` term, the default) and Gram-only, with ``random``
  VGG19 weights, and with ``imagenet`` weights when torchvision's file is in the torch hub cache;
* the GRF baseline: a level-cut GRF fitted to the exemplar's ``S2`` (``mdesign.reconstruction.
  baseline``), the paper's GRF comparison;

and prints for each: ``S2`` RMSE, lineal-path RMSE (all phases, ``r = 0..32``), fraction error in
pixels, seconds per reconstruction, and the ratio of the reconstruction's ``S2`` RMSE to the
GRF's. A summary counts the two-phase materials where the reconstruction's ``S2`` RMSE is below
the GRF's. A second table times one VGG19 forward and backward pass at 128x128 through pool4
with 1 and 2 torch threads (median of 5), which decides ``--threads``.

Usage: ``python bench/bench_reconstruction.py`` (``--quick``: two materials, 20 iterations).
``--coarse-to-fine`` adds the hybrid with coarse-to-fine optimisation (100 iterations at half
size, 50 at full size) to see whether it buys speed at equal fidelity. Results:
``bench/results/NAME.json``, ``NAME_summary.json`` and ``NAME.md`` (``--name``, default
``reconstruction``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import RESULTS, machine, median_time, report

from mdesign.data import LI2018_MATERIALS, li2018_exemplar
from mdesign.reconstruction import (
    grf_baseline,
    reconstruct,
    reconstruction_errors,
    vgg19_features,
)
from mdesign.reconstruction.vgg import IMAGENET_URL

MATERIALS = LI2018_MATERIALS


def crop(name: str, size: int) -> np.ndarray:
    img = li2018_exemplar(name, 256)
    y0, x0 = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    return img[y0 : y0 + size, x0 : x0 + size]


def vgg_pass_seconds(threads: int) -> float:
    torch.set_num_threads(threads)
    model = vgg19_features(
        ["relu1_1", "pool1", "pool2", "pool3", "pool4"],
        weights="random",
        padding_mode="circular",
        device="cpu",
    )
    x = torch.rand(1, 3, 128, 128, requires_grad=True)

    def step():
        sum(f.square().mean() for f in model(x)).backward()

    return median_time(step, repeat=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two materials, 20 iterations")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, help="L-BFGS iterations (default: config)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--coarse-to-fine",
        action="store_true",
        help="also hybrid with coarse-to-fine (100 iterations at half size, 50 at full size)",
    )
    parser.add_argument("--materials", nargs="+", choices=MATERIALS, help="a subset")
    parser.add_argument("--name", default="reconstruction", help="results file name")
    args = parser.parse_args()
    materials = args.materials or (("ceramics", "composite") if args.quick else MATERIALS)
    iterations = 20 if args.quick and args.iterations is None else args.iterations

    trows = [{"threads": t, "vgg19_fwd_bwd_s": vgg_pass_seconds(t)} for t in (1, 2)]
    report(f"{args.name}_vgg_pass", trows, title="VGG19 forward+backward, 128x128, to pool4")
    torch.set_num_threads(args.threads)

    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_URL.rsplit("/", 1)[-1]
    weights = ["random"] + (["imagenet"] if hub_file.is_file() else [])
    if not hub_file.is_file():
        print(f"no ImageNet weights at {hub_file}: imagenet rows skipped (offline machine)")
    methods = [("hybrid", {}), ("gram-only", {"s2_weight": 0.0})]
    if args.coarse_to_fine:
        methods.append(("hybrid c2f 100+50", {"coarse_to_fine": True, "iterations": 50}))
    kw = {} if iterations is None else {"iterations": iterations}

    rows = []
    for name in materials:
        ex = crop(name, args.size)
        k = int(ex.max()) + 1
        t = time.perf_counter()
        grf, fit = grf_baseline(ex, ex.shape, phases=k, seed=args.seed)
        t_grf = time.perf_counter() - t
        ge = reconstruction_errors(ex, grf, phases=k)
        rows.append(
            {
                "material": name,
                "phases": k,
                "method": f"GRF ({fit.covariance}, l={fit.correlation_length:.2f})",
                "weights": "-",
                "s2_rmse": ge.s2_rmse,
                "lineal_path_rmse": ge.lineal_path_rmse,
                "fraction_error_px": ge.fraction_error_pixels,
                "seconds": t_grf,
                "s2_vs_grf": 1.0,
                "converged": "-",
            }
        )
        for w in weights:
            for method, extra in methods:
                res = reconstruct(ex, weights=w, seed=args.seed, device="cpu", **{**kw, **extra})
                e = res.errors
                rows.append(
                    {
                        "material": name,
                        "phases": k,
                        "method": method,
                        "weights": w,
                        "s2_rmse": e.s2_rmse,
                        "lineal_path_rmse": e.lineal_path_rmse,
                        "fraction_error_px": e.fraction_error_pixels,
                        "seconds": res.seconds,
                        "s2_vs_grf": e.s2_rmse / ge.s2_rmse,
                        "converged": res.converged,
                    }
                )
                print(
                    f"{name} {method} {w}: S2 {e.s2_rmse:.5f} (GRF {ge.s2_rmse:.5f}), "
                    f"{res.seconds:.1f} s",
                    flush=True,
                )
    title = (
        f"reconstruction of the Li et al. 2018 exemplars, central {args.size}x{args.size} crops, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    report(args.name, rows, title=title)

    summary = []
    for w in weights:
        for method, _ in methods:
            mine = [r for r in rows if r["method"] == method and r["weights"] == w]
            two = [r for r in mine if r["phases"] == 2]
            summary.append(
                {
                    "method": method,
                    "weights": w,
                    "two_phase_s2_below_grf": f"{sum(r['s2_vs_grf'] < 1 for r in two)}/{len(two)}",
                    "median_s2_vs_grf": statistics.median(r["s2_vs_grf"] for r in mine),
                    "max_fraction_error_px": max(r["fraction_error_px"] for r in mine),
                    "median_seconds": statistics.median(r["seconds"] for r in mine),
                    "max_seconds": max(r["seconds"] for r in mine),
                }
            )
    report(f"{args.name}_summary", summary, title="summary against the fitted GRF")
    write_markdown(RESULTS / f"{args.name}.md", title, trows, rows, summary)


def _md_table(rows: list[dict]) -> str:
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def write_markdown(path: Path, title: str, trows, rows, summary) -> None:
    m = machine()
    text = "\n\n".join(
        [
            f"# {title}",
            f"{m['cpus']} CPUs, torch {m['torch']}, CUDA {m['cuda']}. "
            "`python bench/bench_reconstruction.py`.",
            "## VGG19 forward+backward, 128x128, to pool4",
            _md_table(trows),
            "## Per material",
            _md_table(rows),
            "## Summary against the fitted GRF",
            _md_table(summary),
        ]
    )
    path.write_text(text + "\n")


if __name__ == "__main__":
    main()
