"""Segmentation of a degraded micrograph: pixels right and time, against one global Otsu.

For each Li et al. (2018) exemplar with known labels (ceramics, carbonate, sandstone: two
phases; composite: three), a synthetic micrograph (:func:`mdesign.segment.synthetic_micrograph`:
illumination falling 35% across, white noise at SNR 5, the contrast of adjacent phases over the
noise sigma) for seeds 0-2, segmented by

* ``otsu``: one global Otsu / multi-Otsu threshold (what ``mdesign.io`` did before);
* ``defaults``: :func:`mdesign.segment.segment` as configured (flat field, Otsu, Potts, then the
  prior learned from the labels: ``regularize: learned``);
* ``potts (ICM)``: the same with the fixed Potts prior only (the default before);
* ``+ min_error``: the defaults with Kittler-Illingworth's thresholds;
* ``flat field only``, ``+ median``, ``+ non-local means``, ``+ bilateral`` (no relabelling).

The learned prior was developed on these four images. Three more exemplars it was not tuned on
(alloy, copolymer, pmma; two phases) are run with ``defaults`` and ``potts (ICM)`` only. Prints
the share of pixels right (min-max over seeds) and the median time per image
(``results/segment.json``) with the machine's load. Usage: ``python bench/bench_segment.py``.
"""

from __future__ import annotations

import os

from _util import median_time, report

from mdesign.data import li2018_exemplar
from mdesign.segment import segment, synthetic_micrograph

METHODS = {
    "otsu": {"background": "none", "regularize": "none"},
    "defaults": {},
    "potts (ICM)": {"regularize": "potts"},
    "+ min_error": {"threshold": "min_error"},
    "flat field only": {"regularize": "none"},
    "+ median (r 1)": {"regularize": "none", "denoise": "median", "median_radius": 1},
    "+ non-local means": {"regularize": "none", "denoise": "nl_means"},
    "+ bilateral": {"regularize": "none", "denoise": "bilateral"},
}


def main() -> None:
    rows = []
    images = {name: METHODS for name in ("ceramics", "carbonate", "sandstone", "composite")}
    untuned = {m: METHODS[m] for m in ("defaults", "potts (ICM)")}
    images.update({name: untuned for name in ("alloy", "copolymer", "pmma")})
    for name, methods in images.items():
        labels = li2018_exemplar(name, 256)
        k = int(labels.max()) + 1
        for method, kw in methods.items():
            acc = []
            for seed in range(3):
                gray = synthetic_micrograph(labels, gradient=0.35, snr=5.0, seed=seed)
                acc.append(float((segment(gray, phases=k, **kw).labels == labels).mean()))
            gray = synthetic_micrograph(labels, gradient=0.35, snr=5.0, seed=0)
            t = median_time(lambda g=gray, kw=kw, k=k: segment(g, phases=k, **kw), repeat=3)
            rows.append(
                {
                    "image": name,
                    "method": method,
                    "right_min_%": 100 * min(acc),
                    "right_max_%": 100 * max(acc),
                    "seconds": t,
                    "tuned_on": name in ("ceramics", "carbonate", "sandstone", "composite"),
                    "load_1min": os.getloadavg()[0],
                }
            )
    report("segment", rows, title="segmentation, 35% gradient, SNR 5, 256 x 256, seeds 0-2")


if __name__ == "__main__":
    main()
