"""Descriptors: S2 (and the lineal path) over a 5,000 x 128x128 stack against PoreSpy.

Prints, on this machine and in one run:

* radial S2 of every image of a 5,000-image 128x128 GRF stack, per image, periodic and
  non-periodic (median of 3 runs);
* ``porespy.metrics.two_point_correlation`` per image on the same images (after its ~1.3 s
  numba warm-up; median over images), and the ratio;
* the lineal path and chord lengths of the same stack (PoreSpy has no Torquato L(r) to compare
  with; its ``lineal_path_distribution`` is a chord-length histogram).

Usage: ``python bench/bench_descriptors.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import median_time, report

from mdesign.descriptors import (
    chord_lengths,
    lineal_path,
    two_point_correlation_radial,
)
from mdesign.grf import grf_microstructures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (for a smoke run)")
    args = parser.parse_args()
    n = 500 if args.quick else 5000
    n_peer = 20 if args.quick else 100
    import porespy as ps

    images = grf_microstructures(
        n, (128, 128), volume_fraction=(0.2, 0.6), correlation_length=(3, 8), seed=0
    ).images
    rows = []
    for periodic in (True, False):
        t = median_time(
            lambda p=periodic: two_point_correlation_radial(images, max_distance=32, periodic=p),
            repeat=3,
        )
        rows.append(
            {
                "method": f"mdesign S2 radial ({'periodic' if periodic else 'non-periodic'})",
                "images": n,
                "seconds": t,
                "ms_per_image": 1e3 * t / n,
            }
        )
    ps.metrics.two_point_correlation(images[0] == 1)  # numba compile
    per = []
    for img in images[:n_peer]:
        t = time.perf_counter()
        ps.metrics.two_point_correlation(img == 1)
        per.append(time.perf_counter() - t)
    peer_ms = 1e3 * statistics.median(per)
    rows.append(
        {
            "method": "porespy two_point_correlation (non-periodic)",
            "images": n_peer,
            "seconds": sum(per),
            "ms_per_image": peer_ms,
        }
    )
    for r in rows:
        r["porespy_over_this"] = peer_ms / r["ms_per_image"]
    t = median_time(lambda: lineal_path(images, max_distance=32), repeat=3)
    rows.append(
        {
            "method": "mdesign lineal path L(r), x and y",
            "images": n,
            "seconds": t,
            "ms_per_image": 1e3 * t / n,
            "porespy_over_this": None,
        }
    )
    t = median_time(lambda: chord_lengths(images), repeat=3)
    rows.append(
        {
            "method": "mdesign chord lengths, x and y",
            "images": n,
            "seconds": t,
            "ms_per_image": 1e3 * t / n,
            "porespy_over_this": None,
        }
    )
    report("descriptors_speed", rows, title="descriptors of 128x128 images")


if __name__ == "__main__":
    main()
