"""Speed and iterations of ``elastic_stiffness`` on 128^2 images and 64^3 volumes.

Seconds per 128^2 image (a batch of 8, full 3x3 tensor) and per 64^3 volume (full 6x6 tensor)
at contrast 10 and 100 (Young's moduli 1 and 10 or 100, Poisson's ratio 0.3) and with 30% pores
(phase 0 of modulus 0), with the conjugate-gradient iterations, on one thread
(``results/mechanics_speed.json``). The accuracy is checked in the tests against scikit-fem's
Q1 elements on the same voxels (``tests/evaluators/test_elasticity.py``); muSpectre is not run
here yet.

Usage: ``python bench/bench_mechanics.py`` (``--quick``: 64^2 and 32^3).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import report

from mdesign.evaluators import stiffness_tensor
from mdesign.grf import grf_microstructures

CASES = {"contrast 10": (1.0, 10.0), "contrast 100": (1.0, 100.0), "30% pores": (0.0, 1.0)}


def run(shape: tuple[int, ...], n: int, repeat: int) -> list[dict]:
    rows = []
    for case, moduli in CASES.items():
        fraction = 0.7 if case == "30% pores" else 0.5
        imgs = grf_microstructures(
            n, shape, volume_fraction=fraction, correlation_length=4, seed=1
        ).images
        times, its = [], None
        for _ in range(repeat):
            t = time.perf_counter()
            _, its = stiffness_tensor(imgs, youngs_moduli=moduli, return_iterations=True)
            times.append((time.perf_counter() - t) / n)
        rows.append(
            {
                "shape": "x".join(map(str, shape)),
                "case": case,
                "images": n,
                "median s/image": round(statistics.median(times), 3),
                "CG iterations (max over loads)": int(its.max()),
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rows = run((64, 64) if args.quick else (128, 128), 8, 3)
    rows += run((32, 32, 32) if args.quick else (64, 64, 64), 1, 1)
    report("mechanics_speed", rows, title="elastic_stiffness: seconds per image, one thread")


if __name__ == "__main__":
    main()
