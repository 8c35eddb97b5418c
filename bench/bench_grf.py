"""GRF generator: speed, exactness and memory against PoreSpy's ``blobs``.

Prints, on this machine and in one run:

* generation time of 5,000 images of 128x128 (median of 3), fixed and per-image-drawn parameters;
* time per image against ``porespy.generators.blobs`` at the same size (median over images),
  and the ratio;
* the fraction error of both at a low and a middle target fraction;
* the peak memory of generating 5,000 x 128x128 (a fresh child process, so imports are counted
  apart from the generation itself);
* what the correlation length means for the binary images (the table in ``mdesign.grf``).

Usage: ``python bench/bench_grf.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import median_time, report

from mdesign.descriptors import chord_lengths, two_point_correlation_radial
from mdesign.grf import grf_microstructures

MEMORY_CHILD = """
import sys
sys.path.insert(0, {bench!r})
from _util import peak_rss_mb
from mdesign.grf import grf_microstructures
base = peak_rss_mb()
grf_microstructures({n}, (128, 128), volume_fraction=(0.2, 0.6), correlation_length=(3, 8),
                    seed=0)
print(base, peak_rss_mb())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (for a smoke run)")
    args = parser.parse_args()
    n = 500 if args.quick else 5000
    n_blobs = 20 if args.quick else 100
    import porespy as ps

    rows = []
    for label, kw in [
        ("fixed vf 0.4, l 6", dict(volume_fraction=0.4, correlation_length=6)),
        ("drawn vf 0.2:0.6, l 3:8", dict(volume_fraction=(0.2, 0.6), correlation_length=(3, 8))),
    ]:
        t = median_time(lambda kw=kw: grf_microstructures(n, (128, 128), seed=1, **kw), repeat=3)
        rows.append(
            {"case": f"mdesign {label}", "images": n, "seconds": t, "ms_per_image": 1e3 * t / n}
        )
    # PoreSpy blobs, one image per call (it has no batch), after a warm-up
    ps.generators.blobs([128, 128], porosity=0.4, blobiness=1, seed=0)
    per = []
    for i in range(n_blobs):
        t = time.perf_counter()
        ps.generators.blobs([128, 128], porosity=0.4, blobiness=1, seed=i)
        per.append(time.perf_counter() - t)
    blobs_ms = 1e3 * statistics.median(per)
    rows.append(
        {
            "case": "porespy blobs vf 0.4",
            "images": n_blobs,
            "seconds": sum(per),
            "ms_per_image": blobs_ms,
        }
    )
    ours_ms = min(r["ms_per_image"] for r in rows[:2])
    worst_ms = max(r["ms_per_image"] for r in rows[:2])
    for r in rows:
        r["blobs_over_this"] = blobs_ms / r["ms_per_image"]
    report("grf_speed", rows, title="GRF generation, 128x128")
    print(f"per-image speed-up over blobs: {blobs_ms / worst_ms:.1f}x to {blobs_ms / ours_ms:.1f}x")

    # exactness: |fraction - target| in pixels
    frows = []
    for target in (0.05, 0.4):
        ours = grf_microstructures(
            200, (128, 128), volume_fraction=target, correlation_length=6, seed=2
        ).images
        err_ours = np.abs(ours.reshape(200, -1).mean(1) - target)
        err_blobs = np.array(
            [
                abs(
                    1 - ps.generators.blobs([128, 128], porosity=1 - target, seed=i).mean() - target
                )
                for i in range(n_blobs)
            ]
        )
        frows.append(
            {
                "target": target,
                "mdesign_max_err_px": float(err_ours.max() * 128 * 128),
                "blobs_mean_abs_err": float(err_blobs.mean()),
                "blobs_max_abs_err": float(err_blobs.max()),
            }
        )
    report("grf_exactness", frows, title="fraction error (mdesign: pixels; blobs: fraction)")

    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD.format(n=n, bench=str(Path(__file__).parent))],
        capture_output=True,
        text=True,
        check=True,
    )
    base, peak = map(float, proc.stdout.split())
    report(
        "grf_memory",
        [
            {
                "images": n,
                "rss_after_imports_mb": base,
                "peak_rss_mb": peak,
                "generation_mb": peak - base,
            }
        ],
        title="peak memory generating 128x128 images",
    )

    lrows = []
    for cov in ("gaussian", "matern", "exponential"):
        for length in (4, 8, 12):
            imgs = grf_microstructures(
                50 if args.quick else 200,
                (256, 256),
                volume_fraction=0.5,
                correlation_length=length,
                covariance=cov,
                seed=0,
            ).images
            s2 = two_point_correlation_radial(imgs, max_distance=64).mean(0)
            y = (s2 - 0.25) / 0.25
            i = int(np.argmax(y < np.exp(-1)))
            r_e = i - 1 + (y[i - 1] - np.exp(-1)) / (y[i - 1] - y[i])
            lrows.append(
                {
                    "covariance": cov,
                    "l_px": length,
                    "mean_chord_over_l": chord_lengths(imgs).mean / length,
                    "s2_1_over_e_at_r_over_l": r_e / length,
                }
            )
    report("grf_length_scale", lrows, title="what the correlation length means (fraction 1/2)")


if __name__ == "__main__":
    main()
