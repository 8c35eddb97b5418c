"""Descriptors: S2 (and the lineal path) over a 5,000 x 128x128 stack against PoreSpy.

Prints, on this machine and in one run:

* radial S2 of every image of a 5,000-image 128x128 GRF stack, per image, periodic and
  non-periodic (median of 3 runs);
* ``porespy.metrics.two_point_correlation`` per image on the same images (after its ~1.3 s
  numba warm-up; median over images), and the ratio;
* the lineal path and chord lengths of the same stack (PoreSpy has no Torquato L(r) to compare
  with; its ``lineal_path_distribution`` is a chord-length histogram);
* directional S2 along the axes and the diagonals (the validation's anisotropy), ``k = 0..32``,
  non-periodic, against the numpy a user would write (shifted slices multiplied and averaged,
  the whole stack at once; PoreSpy has no directional S2), with a check that both agree;
* volumes (``results/descriptors_speed_3d.json``): radial S2 of one 64^3 GRF volume over 3D
  displacements, periodic and non-periodic, against ``porespy.metrics.two_point_correlation``
  on the same volume (median of 5 runs each, after PoreSpy's warm-up), and the three-axis
  lineal path, chords and specific surface.

Usage: ``python bench/bench_descriptors.py`` (``--quick`` for a smaller run; ``--volumes`` for
the 3D part only; ``--directional`` for the directional S2 only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import median_time, report

from mdesign.descriptors import (
    chord_lengths,
    lineal_path,
    specific_surface,
    two_point_correlation_directional,
    two_point_correlation_radial,
)
from mdesign.grf import grf_microstructures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (for a smoke run)")
    parser.add_argument("--volumes", action="store_true", help="only the 3D (64^3) part")
    parser.add_argument(
        "--directional", action="store_true", help="only S2 along the axes and the diagonals"
    )
    args = parser.parse_args()
    n = 500 if args.quick else 5000
    if not args.directional:
        bench_volumes()
    if args.volumes:
        return
    n_peer = 20 if args.quick else 100
    import porespy as ps

    images = grf_microstructures(
        n, (128, 128), volume_fraction=(0.2, 0.6), correlation_length=(3, 8), seed=0
    ).images
    if args.directional:
        report(
            "descriptors_directional_speed",
            bench_directional(images),
            title="S2 along the axes and the diagonals of 128x128 images",
        )
        return
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
    report(
        "descriptors_directional_speed",
        bench_directional(images),
        title="S2 along the axes and the diagonals of 128x128 images",
    )


DIRECTIONS = ((1, 0), (0, 1), (1, 1), (1, -1))


def numpy_directional(images: np.ndarray, r_max: int) -> np.ndarray:
    """The peer: S2 at k * d from shifted slices of the stack (in-image pairs only)."""
    x = images.astype(np.float32)
    n, h, w = x.shape
    out = np.empty((n, len(DIRECTIONS), r_max + 1))
    for j, (dy, dx) in enumerate(DIRECTIONS):
        for k in range(r_max + 1):
            a, b = k * dy, k * dx
            left = x[:, : h - a, max(0, -b) : w - max(0, b)]
            right = x[:, a:, max(0, b) : w + min(0, b)]
            out[:, j, k] = (left * right).mean((1, 2))
    return out


def bench_directional(images: np.ndarray, r_max: int = 32) -> list[dict]:
    """Directional S2 (4 directions, k <= r_max) of the stack: ours against numpy slices."""
    n = len(images)
    ours = two_point_correlation_directional(
        images, directions=DIRECTIONS, max_distance=r_max, periodic=False
    )
    peer = numpy_directional(images[:200], r_max)
    err = float(np.abs(ours[:200] - peer).max())
    if err > 1e-5:
        raise SystemExit(f"error: directional S2 differs from the numpy peer by {err:.3g}")
    t_ours = median_time(
        lambda: two_point_correlation_directional(
            images, directions=DIRECTIONS, max_distance=r_max, periodic=False
        ),
        repeat=3,
    )
    t_peer = median_time(lambda: numpy_directional(images, r_max), repeat=3)
    rows = []
    for method, t in (
        ("mdesign S2 along axes and diagonals (non-periodic), k <= 32", t_ours),
        ("numpy shifted slices, the same S2", t_peer),
    ):
        rows.append(
            {
                "method": method,
                "images": n,
                "seconds": t,
                "ms_per_image": 1e3 * t / n,
                "numpy_over_this": t_peer / t,
            }
        )
    print(f"directional S2: ours and numpy agree to {err:.1e}", flush=True)
    return rows


def bench_volumes(size: int = 64, repeat: int = 5) -> None:
    """One ``size^3`` volume: our radial S2 against PoreSpy's, and the other 3D descriptors."""
    import porespy as ps

    vol = grf_microstructures(
        1, (size, size, size), volume_fraction=0.35, correlation_length=4, seed=0
    ).images
    r_max = size // 4
    bins = np.arange(0, r_max + 2)
    ps.metrics.two_point_correlation(vol[0] == 1, bins=bins)  # numba compile
    peer = median_time(
        lambda: ps.metrics.two_point_correlation(vol[0] == 1, bins=bins), repeat=repeat
    )
    rows = []
    for periodic in (True, False):
        t = median_time(
            lambda p=periodic: two_point_correlation_radial(vol, max_distance=r_max, periodic=p),
            repeat=repeat,
        )
        kind = "periodic" if periodic else "non-periodic"
        rows.append({"method": f"mdesign S2 radial 3D ({kind}), R = {r_max}", "seconds": t})
    rows.append(
        {
            "method": f"porespy two_point_correlation 3D (non-periodic), {r_max + 1} bins",
            "seconds": peer,
        }
    )
    for name, fn in (
        ("mdesign lineal path L(r), 3 axes", lambda: lineal_path(vol, max_distance=r_max)),
        ("mdesign chord lengths, 3 axes", lambda: chord_lengths(vol)),
        ("mdesign specific surface 2 P_L", lambda: specific_surface(vol)),
    ):
        rows.append({"method": name, "seconds": median_time(fn, repeat=repeat)})
    for r in rows:
        r["volume"] = f"{size}^3"
        r["porespy_over_this"] = (
            peer / r["seconds"] if "S2" in r["method"] or "porespy" in r["method"] else None
        )
    report("descriptors_speed_3d", rows, title=f"descriptors of one {size}^3 volume")


if __name__ == "__main__":
    main()
