"""Single-exemplar reconstruction on the Li et al. (2018) exemplars: morphology, not only S2.

Inputs: the central 128x128 crop of each 256x256 exemplar (a crop keeps the pixel scale and the
labels exact), the six two-phase ones and the three-phase composite. Columns (``VARIANTS``):

* ``before, random`` / ``before, normalized``: the method as it was before issue 11 (Gram +
  ``S2`` loss, k-means, annealing on the ``S2`` lag window), with random and with the normalised
  VGG19 weights;
* ``default``: ``mdesign reconstruct``'s defaults (``configs/reconstruct.yaml``), and the same
  with ``random`` weights (the offline fallback);
* the variants tried on the way (each one change against the default; ``no surface stage`` is
  the default before the annealing's surface stage;
  ``reconstruction_previous.md`` holds the run before the cluster guard, the joining of network
  fragments and the annealing window of 32 px, with the columns of that time);
* the fitted level-cut GRF (:func:`mdesign.reconstruction.grf_baseline`), the paper's baseline;
* ``DeeSse``: geone's multiple-point simulation (Mariethoz et al. 2010) with the crop as its
  training image, at :data:`DEESSE` (a setting that does not copy the training image: the copy
  fraction of ``_deesse_worker.py`` is reported), in its own virtualenv
  (``bench/.peer-venvs/geone``, ``pip install geone==1.3.4``, made on first use; ``--no-deesse``
  leaves it out);
* ``SNESIM``: mpslib's single normal equation simulation with a search tree (Strebelle 2002;
  ``mps_snesim_tree`` as prebuilt in the scikit-mps wheel) with the crop as its training image,
  at :data:`SNESIM` through ``_snesim_worker.py``, in its own virtualenv
  (``bench/.peer-venvs/mpslib``, ``pip install --no-deps scikit-mps==0.6.0 numpy``, made on
  first use; ``--no-snesim`` leaves it out). mpslib's seed 0 draws from the clock, so a run's
  seed ``s`` is passed as ``s + 1``.

The CPU time of the peers and the GRF's are recorded per image and the summary states mdesign's
ratio to each, from the same run. ``block_match`` checks that no column copies its exemplar: for
each 32 x 32 block of the output, the largest share of its pixels equal to the exemplar's at any
placement inside the exemplar, median and largest over the blocks (:func:`block_match`; 1 for a
shifted verbatim copy).

For each: ``S2`` and lineal-path RMSE (phase 1 for two phases, every phase for three), the
fraction error in pixels, seconds, and the out-of-loss morphology of
:mod:`mdesign.reconstruction.metrics` (cluster counts per phase, specific surface, mean chord
length per phase, per-phase lineal-path RMSE), with relative errors against the exemplar. The
goals of issue 11 are checked for every two-phase exemplar and variant. The figure grid
(``NAME_grid.png``) shows exemplar | GRF | variants for every material at twice full resolution,
nearest neighbour.

Runs are independent (one reconstruction each, one torch thread) and are cached as files in
``--runs`` so that several processes can share the work (``--variants``/``--materials`` pick a
share) and a final ``--merge`` assembles the tables and the figure without recomputing. The load
average of the machine is recorded before and after every run (the machine is shared).

Usage: ``python bench/bench_reconstruction.py`` (all, in one process); ``--quick``: two
materials, 20 iterations. Results: ``bench/results/NAME.md``, ``NAME.json``,
``NAME_summary.json``, ``NAME_grid.png`` (``--name``, default ``reconstruction``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import RESULTS, machine, median_time, report, timed_reconstruction

from mdesign.config import ReconstructionConfig
from mdesign.data import LI2018_MATERIALS, li2018_exemplar
from mdesign.reconstruction import (
    grf_baseline,
    reconstruct,
    reconstruction_errors,
    vgg19_features,
)

MATERIALS = LI2018_MATERIALS
BEFORE = {
    "tv_weight": 0.0,
    "anneal_neighbour_weight": 0.0,
    "anneal_radial": False,
    "anneal_cleanup": False,
    "anneal_max_lag": 16,
    "anneal_keep_clusters": False,
    "anneal_surface": False,
}
"""The settings of the method before issue 11 (main's defaults then), the weights apart."""
VARIANTS: dict[str, dict] = {
    "before, random": {"weights": "random", **BEFORE},
    "before, normalized": {"weights": "normalized", **BEFORE},
    "default": {},
    "default, random": {"weights": "random"},
    "no variation term": {"tv_weight": 0.0},
    "no cleanup": {"anneal_cleanup": False},
    "annealing R = 16": {"anneal_max_lag": 16},
    "no cluster guard": {"anneal_keep_clusters": False},
    "no surface stage": {"anneal_surface": False},
    "shape particles": {"anneal": {"shape_particles": True}},
    # a thin network phase rebuilt as a fitted tessellation first (anneal.image_sheets)
    "image sheets": {"anneal": {"image_sheets": True}},
    "image sheets, no cleanup": {"anneal": {"image_sheets": True, "cleanup": False}},
    # the default before anneal.image_sheets was on (image sheets above: the default since)
    "no image sheets": {"anneal": {"image_sheets": False}},
    # the sheets' fit also to the exemplar's grain sizes, no slivers (anneal.sheets_shape_weight)
    "sheets shape 20": {"anneal": {"sheets_shape_weight": 20.0}},
    "sheets shape 30": {"anneal": {"sheets_shape_weight": 30.0}},
    # the optimiser's defaults before issue 28: 100 L-BFGS iterations at full size from noise
    "before issue 28": {"optimiser": {"init": "noise", "coarse_to_fine": False, "iterations": 100}},
    # issue 28's second speed-up, tried and not the default (docs/performance.md): fewer
    # full-size L-BFGS iterations, half the annealing before the cleanup, both, pool3 at full size
    "12 + 40 iterations": {"optimiser": {"iterations": 12, "coarse_iterations": 40}},
    "first annealing 0.5 sweeps": {"anneal": {"first_sweeps": 0.5}},
    "12 + 40, first annealing 0.5 sweeps": {
        "optimiser": {"iterations": 12, "coarse_iterations": 40},
        "anneal": {"first_sweeps": 0.5},
    },
    "full size to pool3": {"texture": {"fine_layers": ["relu1_1", "pool1", "pool2", "pool3"]}},
    # issue 28's third speed-up: the VGG19 passes in bfloat16
    "bfloat16 VGG": {"texture": {"precision": "bfloat16"}},
    # issue 28's anisotropy term (texture.anisotropy_weight) and a crop's S2 target with the
    # pairs' own means (texture.s2_local_means), tried, not the defaults (docs/performance.md)
    "anisotropy 100": {"texture": {"anisotropy_weight": 100.0}},
    "S2 local means": {"texture": {"s2_local_means": True}},
    "local means, temperature 0.3": {"texture": {"s2_local_means": True, "temperature": 0.3}},
    # the same target for the annealing too (anneal.s2_local_means), and with 2 direction sectors
    "local means in both": {
        "texture": {"s2_local_means": True},
        "anneal": {"s2_local_means": True},
    },
    "local means in both, sectors 2": {
        "texture": {"s2_local_means": True},
        "anneal": {"s2_local_means": True, "sectors": 2},
    },
    "local means in both, whole window": {
        "texture": {"s2_local_means": True},
        "anneal": {"s2_local_means": True, "radial": False},
    },
    # issue 28's last anisotropy keys, tried (docs/performance.md): the S2 term on the minority
    # phase, a uniformity term on the block fractions (the loss's, the annealing's), an isotropic
    # share of the Gram targets
    "S2 minority": {"texture": {"s2_minority": 0.5}},
    # the default before texture.s2_minority (phase 1 in the S2 term of every two-phase image)
    "phase 1 in S2": {"texture": {"s2_minority": 0.0}},
    "uniformity 10": {"texture": {"uniformity_weight": 10.0}},
    "S2 minority, uniformity 10": {"texture": {"s2_minority": 0.5, "uniformity_weight": 10.0}},
    "S2 minority, uniformity 100": {"texture": {"s2_minority": 0.5, "uniformity_weight": 100.0}},
    "annealing uniformity 1": {"anneal": {"uniformity_weight": 1.0, "uniformity_below": 1.0}},
    "annealing uniformity 0.1": {"anneal": {"uniformity_weight": 0.1, "uniformity_below": 1.0}},
    "annealing uniformity 1, sparse phases": {
        "anneal": {"uniformity_weight": 1.0, "uniformity_below": 0.1}
    },
    "S2 minority, annealing uniformity 1": {
        "texture": {"s2_minority": 0.5},
        "anneal": {"uniformity_weight": 1.0, "uniformity_below": 1.0},
    },
    # the default before the directional term (and the annealing's uniformity term on sparse
    # phases) became the default
    "before directional": {
        "anneal": {"directional_weight": 0.0, "uniformity_weight": 0.0, "uniformity_below": 1.0}
    },
    "directional 100, no tolerance": {"anneal": {"directional_tolerance": 0.0}},
}
GOAL_CLUSTERS = 0.30
GOAL_SURFACE = 0.10
GOAL_LINEAL = 0.015
GOAL_SECONDS = 60.0
DEESSE = {
    "nneighboringNode": 48,
    "distanceThreshold": 0.02,
    "maxScanFraction": 0.5,
    "npostProcessingPathMax": 1,
}
"""DeeSse's setting: 48 neighbours, 2% mismatched neighbours accepted, half the training image
scanned at most, one post-processing pass."""
DEESSE_VERSION = "1.3.4"
SNESIM = {"template": 11, "multiple_grids": 3, "n_cond": 81, "min_node_count": 0}
"""SNESIM's setting (mpslib's documented parameter-file keys): an 11 x 11 search template on 3
multiple grids (mpslib's count, from 0), at most 81 conditioning data, no minimum node count.
Chosen over 9 x 9 with 49 data after one trial (seed 0; the alloy, pmma, and the network and
disks of ``bench_reconstruction_kinds.py``): it halves S2 and lineal-path RMSE on the alloy, the
network and the disks (pmma's rise) at 1.4-2.6x the CPU."""
SNESIM_VERSION = "0.6.0"
PEERS = ("DeeSse", "SNESIM")
"""The multiple-point peers, columns of their own in the tables and the figure."""
BLOCK = 32


def crop(name: str, size: int) -> np.ndarray:
    img = li2018_exemplar(name, 256)
    y0, x0 = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    return img[y0 : y0 + size, x0 : x0 + size]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


_WARM: list[bool] = []


def warm_up() -> None:
    """One tiny reconstruction, untimed, so that every timed run finds its modules imported
    (torch's optimisers import torch._dynamo on first use, k-means scikit-learn: seconds of CPU
    that only a process's first reconstruction pays)."""
    ex = crop("ceramics", 64)
    c = ReconstructionConfig(optimiser={"iterations": 1, "coarse_iterations": 1})
    reconstruct(ex, None, c.model_copy(update={"seed": 0}), device="cpu")


def run_one(variant: str, material: str, args, runs: Path) -> None:
    path = runs / f"{_slug(variant)}__{material}.npz"
    if path.exists() and not args.force:
        return
    if not _WARM:
        warm_up()
        _WARM.append(True)
    ex = crop(material, args.size)
    kw = dict(VARIANTS[variant])
    if args.iterations is not None:
        kw["iterations"] = args.iterations
    # the variants' settings by their flat keys, mapped into the config's sections
    res, info = timed_reconstruction(ex, ReconstructionConfig(seed=args.seed, **kw))
    info["overrides"] = kw
    load_before, load_after = info["load_before"], info["load_after"]
    np.savez(path, labels=res.labels, info=json.dumps(info))
    print(
        f"{material} / {variant}: S2 {res.errors.s2_rmse:.4f}, L {res.errors.lineal_path_rmse:.4f}"
        f", clusters {res.errors.morphology_reconstruction.clusters.tolist()} "
        f"(exemplar {res.errors.morphology_exemplar.clusters.tolist()}), {res.seconds:.1f} s, "
        f"load {load_before:.1f}-{load_after:.1f}",
        flush=True,
    )


def vgg_pass_seconds(threads: int) -> float:
    """Median of 5 VGG19 forward+backward passes at 128x128 through pool4 (random weights)."""
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

    seconds = median_time(step, repeat=5)
    torch.set_num_threads(1)
    return seconds


def row(
    material: str,
    column: str,
    ex: np.ndarray,
    labels: np.ndarray,
    k: int,
    extra: dict,
    *,
    periodic: bool = True,
):
    e = reconstruction_errors(ex, labels, phases=k, reconstruction_periodic=periodic)
    m = e.morphology_report()
    r = {
        "material": material,
        "phases": k,
        "column": column,
        "s2_rmse": e.s2_rmse,
        "lineal_path_rmse": e.lineal_path_rmse,
        "fraction_error_px": e.fraction_error_pixels,
        "clusters_exemplar": m["clusters_exemplar"],
        "clusters": m["clusters_reconstruction"],
        "clusters_rel": m["clusters_relative_error"],
        "specific_surface_exemplar": m["specific_surface_exemplar"][-1],
        "specific_surface_rel": m["specific_surface_relative_error"][-1],
        "mean_chord_exemplar": m["mean_chord_length_exemplar"],
        "mean_chord_rel": m["mean_chord_length_relative_error"],
        "lineal_path_rmse_per_phase": m["lineal_path_rmse_per_phase"],
        **shape_columns(m),
        "block_match": [round(v, 3) for v in block_match(labels, ex)],
    }
    r.update(extra)
    return r


def shape_columns(m: dict) -> dict:
    """The shape metrics of a report's morphology keys (issue 28): local thickness mean / 90th
    percentile per phase (px), exemplar's and relative errors; the directional S2 ratio (rows /
    columns, lags 4-16) and the quadrant fraction deviation per phase, exemplar's and ours."""

    def pair(side):
        mean, p90 = m[f"local_thickness_mean_{side}"], m[f"local_thickness_p90_{side}"]
        return [f"{a:.1f}/{b:.0f}" for a, b in zip(mean, p90, strict=True)]

    def rounded(key):
        return [None if v is None else round(v, 3) for v in m[key]]

    return {
        "thickness_exemplar": pair("exemplar"),
        "thickness": pair("reconstruction"),
        "thickness_mean_rel": m["local_thickness_mean_relative_error"],
        "thickness_p90_rel": m["local_thickness_p90_relative_error"],
        "s2_ratio_exemplar": rounded("s2_directional_ratio_exemplar"),
        "s2_ratio": rounded("s2_directional_ratio_reconstruction"),
        "s2_ratio_rel": m["s2_directional_ratio_relative_error"],
        "quadrant_dev_exemplar": rounded("quadrant_fraction_deviation_exemplar"),
        "quadrant_dev": rounded("quadrant_fraction_deviation_reconstruction"),
    }


def goals(r: dict, grf: dict, material: str) -> dict:
    """The goals of issue 11 for one two-phase row."""
    clusters_ok = all(
        rel is not None and abs(rel) <= GOAL_CLUSTERS
        for n, rel in zip(r["clusters_exemplar"], r["clusters_rel"], strict=True)
        if n >= 10
    )
    out = {
        "clusters_within_30pct": clusters_ok,
        "specific_surface_within_10pct": abs(r["specific_surface_rel"]) <= GOAL_SURFACE,
        "lineal_path_le_0.015": r["lineal_path_rmse"] <= GOAL_LINEAL,
        "lineal_path_below_grf": r["lineal_path_rmse"] < grf["lineal_path_rmse"],
        "s2_below_grf": r["s2_rmse"] < grf["s2_rmse"],
        "fraction_within_1px": r["fraction_error_px"] <= 1 + 1e-9,
        # CPU time of the single-threaded run: the wall time on this shared machine (load 4-6 on
        # 2 cores) measures the other jobs as much as this one
        "cpu_seconds_le_60": (r.get("cpu_seconds") or r["seconds"]) <= GOAL_SECONDS,
    }
    if material == "alloy":  # the thin grain-boundary phase (the fewer clusters) stays connected
        thin = int(np.argmin(r["clusters_exemplar"]))
        out["alloy_thin_phase_le_3x"] = r["clusters"][thin] <= 3 * r["clusters_exemplar"][thin]
    return out


def merge(args, runs: Path, variants: list[str], materials: list[str]) -> None:
    trows = [{"threads": t, "vgg19_fwd_bwd_s": vgg_pass_seconds(t)} for t in (1, 2)]
    report(f"{args.name}_vgg_pass", trows, title="VGG19 forward+backward, 128x128, to pool4")
    rows, images, loads = [], {}, []
    peer = {} if args.no_deesse else deesse(materials, args, runs)
    mps = {} if args.no_snesim else snesim(materials, args, runs)
    for material in materials:
        ex = crop(material, args.size)
        k = int(ex.max()) + 1
        t, cpu = time.perf_counter(), time.process_time()
        grf, fit = grf_baseline(ex, ex.shape, phases=k, seed=args.seed)
        cpu = time.process_time() - cpu
        grf_row = row(
            material,
            "GRF",
            ex,
            grf,
            k,
            {
                "seconds": time.perf_counter() - t,
                "cpu_seconds": cpu,
                "note": f"{fit.covariance}, l={fit.correlation_length:.2f}",
            },
        )
        rows.append(grf_row)
        images[(material, "exemplar")] = ex
        images[(material, "GRF")] = grf
        if material in peer:
            rows.append(deesse_row(material, ex, k, peer[material], grf_row))
            images[(material, "DeeSse")] = peer[material][0]
        if material in mps:
            rows.append(snesim_row(material, ex, k, mps[material], grf_row))
            images[(material, "SNESIM")] = mps[material][0]
        for variant in variants:
            path = runs / f"{_slug(variant)}__{material}.npz"
            if not path.exists():
                print(f"missing run: {material} / {variant}")
                continue
            data = np.load(path)
            info = json.loads(str(data["info"]))
            loads += [info["load_before"], info["load_after"]]
            r = row(
                material,
                variant,
                ex,
                data["labels"],
                k,
                {
                    "seconds": info["seconds"],
                    "cpu_seconds": info.get("cpu_seconds"),
                    "seconds_annealing": info["seconds_annealing"],
                    "weights": info["weights"],
                    "load": f"{info['load_before']:.1f}-{info['load_after']:.1f}",
                },
            )
            r["s2_vs_grf"] = r["s2_rmse"] / grf_row["s2_rmse"]
            r["lineal_path_vs_grf"] = r["lineal_path_rmse"] / grf_row["lineal_path_rmse"]
            if k == 2:
                r["goals"] = goals(r, grf_row, material)
            rows.append(r)
            images[(material, variant)] = data["labels"]
    title = (
        f"reconstruction of the Li et al. 2018 exemplars, central {args.size}x{args.size} crops, "
        f"1 torch thread per run, seed {args.seed}"
    )
    report(args.name, rows, title=title)
    summary = []
    for variant in variants:
        mine = [r for r in rows if r["column"] == variant and r["phases"] == 2]
        if not mine:
            continue
        s = {"column": variant, "two_phase_materials": len(mine)}
        keys = dict.fromkeys(k for r in mine for k in r["goals"])
        for key in keys:
            have = [r["goals"][key] for r in mine if key in r["goals"]]
            s[key] = f"{sum(have)}/{len(have)}"
        s["median_seconds"] = float(np.median([r["seconds"] for r in mine]))
        s["max_seconds"] = float(np.max([r["seconds"] for r in mine]))
        cpu = [r["cpu_seconds"] for r in mine if r.get("cpu_seconds")]
        s["median_cpu_seconds"] = float(np.median(cpu)) if cpu else None
        s["max_cpu_seconds"] = float(np.max(cpu)) if cpu else None
        summary.append(s)
    peer_goals, ratios = peer_summary(rows)
    summary += peer_goals
    report(f"{args.name}_summary", summary + ratios, title="goals of issue 11, two-phase exemplars")
    load = (min(loads), max(loads)) if loads else (float("nan"),) * 2
    write_markdown(RESULTS / f"{args.name}.md", title, rows, summary, variants, load, trows)
    with (RESULTS / f"{args.name}.md").open("a") as f:
        f.write(peer_markdown(rows, ratios))
    peers = [c for c, have in zip(PEERS, (peer, mps), strict=True) if have]
    write_grid(RESULTS / f"{args.name}_grid.png", images, materials, ["GRF", *peers, *variants])
    return rows


def deesse(materials: list[str], args, runs: Path) -> dict:
    """DeeSse's realisation of every crop: ``{material: (labels, info)}`` (module docstring);
    cached in ``runs`` as the reconstructions are."""
    cache = runs / f"DeeSse__{'_'.join(materials)}.npz"
    images = {m: crop(m, args.size) for m in materials}
    return deesse_images(images, args.seed, args.deesse_venv, cache, force=args.force)


def deesse_images(
    images: dict[str, np.ndarray], seed: int, venv_dir: Path, cache: Path, *, force: bool = False
) -> dict:
    """DeeSse at :data:`DEESSE` with each image as its own training image, one worker process
    (``_deesse_worker.py`` in ``venv_dir``, made on first use), one thread:
    ``{name: (labels, {"cpu_seconds", "copy_fraction"})}``, cached in ``cache``; ``{}`` (and a
    message) when the worker fails. Also used by ``bench_reconstruction_kinds.py``."""
    install = [f"geone=={DEESSE_VERSION}"]
    req = {"seed": seed, **DEESSE}
    return _peer_images("DeeSse", "_deesse_worker.py", install, req, images, venv_dir, cache, force)


def deesse_row(material: str, ex: np.ndarray, k: int, run: tuple, grf_row: dict) -> dict:
    """A DeeSse row: its output is not periodic, and is measured so."""
    labels, info = run
    extra = {
        "seconds": info["cpu_seconds"],
        "cpu_seconds": info["cpu_seconds"],
        "copy_fraction": info["copy_fraction"],
        "note": f"geone {DEESSE_VERSION}, " + ", ".join(f"{a}={b}" for a, b in DEESSE.items()),
    }
    r = row(material, "DeeSse", ex, labels, k, extra, periodic=False)
    r["s2_vs_grf"] = r["s2_rmse"] / grf_row["s2_rmse"]
    r["lineal_path_vs_grf"] = r["lineal_path_rmse"] / grf_row["lineal_path_rmse"]
    if k == 2:
        r["goals"] = goals(r, grf_row, material)
    return r


def snesim(materials: list[str], args, runs: Path) -> dict:
    """SNESIM's realisation of every crop: ``{material: (labels, info)}`` (module docstring);
    cached in ``runs`` as the reconstructions are."""
    cache = runs / f"SNESIM__{'_'.join(materials)}.npz"
    images = {m: crop(m, args.size) for m in materials}
    return snesim_images(images, args.seed, args.snesim_venv, cache, force=args.force)


def snesim_images(
    images: dict[str, np.ndarray], seed: int, venv_dir: Path, cache: Path, *, force: bool = False
) -> dict:
    """SNESIM at :data:`SNESIM` with each image as its own training image, one worker process
    (``_snesim_worker.py`` in ``venv_dir``, made on first use), one thread, mpslib seed
    ``seed + 1``: ``{name: (labels, {"cpu_seconds"})}``, cached in ``cache``; ``{}`` (and a
    message) when the worker fails. Also used by ``bench_reconstruction_kinds.py``."""
    install = ["--no-deps", f"scikit-mps=={SNESIM_VERSION}", "numpy"]
    req = {"seed": seed + 1, **SNESIM}
    return _peer_images("SNESIM", "_snesim_worker.py", install, req, images, venv_dir, cache, force)


def _peer_images(
    column: str,
    worker: str,
    install: list[str],
    req: dict,
    images: dict[str, np.ndarray],
    venv_dir: Path,
    cache: Path,
    force: bool,
) -> dict:
    """One peer's worker over ``images`` (a stack in a temporary .npy), in ``venv_dir`` (made
    on first use, ``pip install INSTALL``), one thread: ``{name: (labels, info)}``, cached."""
    names = list(images)
    if cache.exists() and not force:
        data = np.load(cache)
        info = json.loads(str(data["info"]))
        return {m: (data["labels"][i], info[i]) for i, m in enumerate(names)}
    py = venv_dir / "bin" / "python"
    if not py.exists():
        print(f"making {venv_dir} (pip install {' '.join(install)})", flush=True)
        venv.create(venv_dir, with_pip=True)
        subprocess.run([py, "-m", "pip", "install", "-q", *install], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        stack, out = Path(tmp) / "images.npy", Path(tmp) / "sims.npy"
        np.save(stack, np.stack([images[m] for m in names]))
        req = {"images": str(stack), "out": str(out), **req}
        threads = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        proc = subprocess.run(
            [py, Path(__file__).parent / worker, json.dumps(req)],
            capture_output=True,
            text=True,
            env={**os.environ, **threads},
        )
        if proc.returncode:
            print(f"{column} failed, column left out:\n{proc.stderr[-2000:]}")
            return {}
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        sims = np.load(out)
    np.savez(cache, labels=sims, info=json.dumps(info))
    return {m: (sims[i], info[i]) for i, m in enumerate(names)}


def snesim_row(material: str, ex: np.ndarray, k: int, run: tuple, grf_row: dict) -> dict:
    """A SNESIM row: its output is not periodic, and is measured so."""
    labels, info = run
    extra = {
        "seconds": info["cpu_seconds"],
        "cpu_seconds": info["cpu_seconds"],
        "note": f"scikit-mps {SNESIM_VERSION} mps_snesim_tree, "
        + ", ".join(f"{a}={b}" for a, b in SNESIM.items()),
    }
    r = row(material, "SNESIM", ex, labels, k, extra, periodic=False)
    r["s2_vs_grf"] = r["s2_rmse"] / grf_row["s2_rmse"]
    r["lineal_path_vs_grf"] = r["lineal_path_rmse"] / grf_row["lineal_path_rmse"]
    if k == 2:
        r["goals"] = goals(r, grf_row, material)
    return r


def block_match(labels: np.ndarray, ex: np.ndarray, block: int = BLOCK) -> tuple[float, float]:
    """Whether ``labels`` copies ``ex``: for every non-overlapping ``block`` x ``block`` block
    of ``labels``, the largest share of its pixels equal to ``ex``'s at any placement of the
    block inside ``ex`` (no wrap-around); the median and the largest over the blocks. A block
    cut from ``ex`` gives 1; independent images of the same fractions give about
    ``sum(phi**2)`` plus what the best of the placements adds."""
    from scipy.signal import fftconvolve

    k = int(max(labels.max(), ex.max())) + 1
    h, w = labels.shape
    best = []
    for y in range(0, h - block + 1, block):
        for x in range(0, w - block + 1, block):
            b = labels[y : y + block, x : x + block]
            hits = sum(
                fftconvolve((ex == p).astype(float), (b[::-1, ::-1] == p).astype(float), "valid")
                for p in range(k)
            )
            best.append(float(hits.max()) / block**2)
    return float(np.median(best)), float(np.max(best))


def peer_summary(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The peers' goals (DeeSse, SNESIM), and the CPU seconds per image of mdesign's default, the
    peers and the GRF (medians over the two-phase crops of this run) with mdesign's ratio to
    each."""
    two = [r for r in rows if r["phases"] == 2]
    out = []
    for column in PEERS:
        mine = [r for r in two if r["column"] == column]
        if not mine:
            continue
        s = {"column": column, "two_phase_materials": len(mine)}
        for key in dict.fromkeys(k for r in mine for k in r["goals"]):
            have = [r["goals"][key] for r in mine if key in r["goals"]]
            s[key] = f"{sum(have)}/{len(have)}"
        s["median_cpu_seconds"] = float(np.median([r["cpu_seconds"] for r in mine]))
        out.append(s)

    def med(column):
        cpu = [r["cpu_seconds"] for r in two if r["column"] == column and r.get("cpu_seconds")]
        return float(np.median(cpu)) if cpu else None

    ours = med("default")
    ratios = [
        {
            "ratio": f"default / {column}",
            "median_cpu_seconds_default": ours,
            "median_cpu_seconds_other": med(column),
            "cpu_ratio": ours / med(column),
        }
        for column in ("before issue 28", *PEERS, "GRF")
        if ours and med(column)
    ]
    return out, ratios


def peer_markdown(rows: list[dict], ratios: list[dict]) -> str:
    """The section on the peers and the CPU-time ratios, appended to the table."""
    lines = [
        "",
        "## CPU seconds per 128x128 image: mdesign against DeeSse, SNESIM and the fitted GRF",
        "",
        "Medians over the two-phase crops of this run (1 thread each; the process CPU time of "
        "the reconstruction, of DeeSse's simulation in its worker, of SNESIM's whole binary "
        "process, of the GRF's fit and draw).",
        "",
        "| ratio | default s | other s | default / other |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['ratio']} | {r['median_cpu_seconds_default']:.2f} | "
        f"{r['median_cpu_seconds_other']:.2f} | {r['cpu_ratio']:.2f} |"
        for r in ratios
    ]
    peer = [r for r in rows if r["column"] == "DeeSse"]
    if peer:
        lines += [
            "",
            f"DeeSse: geone {DEESSE_VERSION}, {json.dumps(DEESSE)}, the crop as training image, "
            "unconditional, one realisation, seed as the run's. Copy fraction (horizontally "
            "adjacent pixels whose training-image sources are adjacent too; 1 is a verbatim "
            "copy): " + ", ".join(f"{r['material']} {r['copy_fraction']:.3f}" for r in peer) + ".",
        ]
    mps = [r for r in rows if r["column"] == "SNESIM"]
    if mps:
        lines += [
            "",
            f"SNESIM: scikit-mps {SNESIM_VERSION} `mps_snesim_tree`, {json.dumps(SNESIM)}, the "
            "crop as training image, unconditional, one realisation, random path, mpslib seed "
            "the run's + 1.",
        ]
    copy = [r for r in rows if r["column"] in (*PEERS, "GRF", "default")]
    if copy:
        lines += [
            "",
            f"Copy check (`block_match`, {BLOCK} x {BLOCK} blocks: the largest share of a block's "
            "pixels equal to the exemplar's at any placement, median / largest over the blocks; "
            "1 for a shifted copy): "
            + "; ".join(
                f"{r['material']} {r['column']} {r['block_match'][0]:.2f} / "
                f"{r['block_match'][1]:.2f}"
                for r in copy
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_cell(x) if x is not None else "-" for x in v) + "]"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return str(v)


def _pct(v) -> str:
    return "-" if v is None else f"{v:+.0%}"


def write_markdown(path: Path, title, rows, summary, variants, load, trows) -> None:
    m = machine()
    cols = [
        "material", "column", "s2_rmse", "s2_vs_grf", "lineal_path_rmse", "lineal_path_vs_grf",
        "fraction_error_px", "clusters_exemplar", "clusters", "clusters_rel",
        "specific_surface_rel", "mean_chord_rel", "lineal_path_rmse_per_phase", "seconds",
        "cpu_seconds", "thickness_exemplar", "thickness", "s2_ratio_exemplar", "s2_ratio",
        "quadrant_dev_exemplar", "quadrant_dev", "block_match",
    ]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            if c in ("clusters_rel", "mean_chord_rel"):
                cells.append("[" + ", ".join(_pct(x) for x in v) + "]")
            elif c == "specific_surface_rel":
                cells.append(_pct(v))
            else:
                cells.append(_cell(v))
        lines.append("| " + " | ".join(cells) + " |")
    goal_lines = []
    if summary:
        keys = list(dict.fromkeys(k for s in summary for k in s))
        goal_lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        goal_lines += [
            "| " + " | ".join(_cell(s.get(k, "-")) for k in keys) + " |" for s in summary
        ]
    per = []
    for variant in variants:
        mine = [r for r in rows if r["column"] == variant and "goals" in r]
        if not mine:
            continue
        keys = list(dict.fromkeys(k for r in mine for k in r["goals"]))
        per.append(f"### {variant}\n")
        per.append("| material | " + " | ".join(keys) + " |")
        per.append("|---|" + "---|" * len(keys))
        per += [
            f"| {r['material']} | " + " | ".join(_cell(r["goals"].get(k, "")) for k in keys) + " |"
            for r in mine
        ]
        per.append("")
    settings = "\n".join(f"* `{v}`: {json.dumps(VARIANTS[v]) or '{}'}" for v in variants)
    text = "\n\n".join(
        [
            f"# {title}",
            f"{m['cpus']} CPUs shared with other jobs (load average {load[0]:.1f}-{load[1]:.1f} "
            f"during the runs), torch {m['torch']}, CUDA {m['cuda']}. "
            f"`python bench/bench_reconstruction.py`; figure: `{path.stem}_grid.png`.",
            "Relative errors are reconstruction / exemplar - 1. Clusters: 4-connected components "
            "of each phase, counted in the image as a window (no wrap-around merging) for "
            "exemplar and reconstruction alike. Specific surface: Crofton estimate (phase 1's "
            "interface, the same for both phases of a two-phase image). Mean chord length: "
            "chords inside the image, per phase. S2 and lineal-path RMSE: phase 1 for two "
            "phases, all phases for three.",
            "## VGG19 forward+backward, 128x128, to pool4 (median of 5)",
            "\n".join(
                ["| threads | seconds |", "|---|---|"]
                + [f"| {t['threads']} | {t['vgg19_fwd_bwd_s']:.3f} |" for t in trows]
            ),
            "## Columns (overrides of the defaults)",
            settings,
            "## Goals of issue 11 (two-phase exemplars)",
            "\n".join(goal_lines),
            "\n".join(per),
            "## Per material",
            "\n".join(lines),
        ]
    )
    path.write_text(text + "\n")


def write_grid(path: Path, images: dict, materials: list[str], columns: list[str]) -> None:
    """Exemplar | GRF | variants, one row per material, each image at 2x, nearest neighbour."""
    from matplotlib.figure import Figure

    from mdesign.plotting import save_figure, show_labels
    from mdesign.reconstruction.metrics import cluster_counts

    cols = ["exemplar", *columns]
    side = max(im.shape[0] for im in images.values())
    dpi = 100
    panel = 2 * side / dpi
    fig = Figure(
        figsize=(panel * len(cols) + 0.5, (panel + 0.45) * len(materials)),
        layout="constrained",
        dpi=dpi,
    )
    axes = fig.subplots(len(materials), len(cols), squeeze=False)
    for i, material in enumerate(materials):
        k = int(images[(material, "exemplar")].max()) + 1
        for j, col in enumerate(cols):
            ax = axes[i, j]
            im = images.get((material, col))
            if im is None:
                ax.axis("off")
                continue
            counts = ",".join(str(c) for c in cluster_counts(im, phases=k))
            show_labels(ax, im, k=k, title=f"{material}: {col}\nclusters {counts}")
    save_figure(fig, path, dpi=dpi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two materials, 20 iterations")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, help="L-BFGS iterations (default: config)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds", nargs="+", type=int, help="several seeds: NAME_seedS.md each, NAME_seeds.md"
    )
    parser.add_argument("--materials", nargs="+", choices=MATERIALS, help="a subset")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="a subset")
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path(tempfile.gettempdir()) / "mdesign_bench_reconstruction",
        help="folder of the cached runs",
    )
    parser.add_argument("--merge", action="store_true", help="only assemble the cached runs")
    parser.add_argument("--no-merge", action="store_true", help="only run, do not assemble")
    parser.add_argument("--force", action="store_true", help="redo cached runs")
    parser.add_argument("--name", default="reconstruction", help="results file name")
    parser.add_argument("--no-deesse", action="store_true", help="leave out the DeeSse column")
    parser.add_argument(
        "--deesse-venv", type=Path, default=Path(__file__).parent / ".peer-venvs" / "geone"
    )
    parser.add_argument("--no-snesim", action="store_true", help="leave out the SNESIM column")
    parser.add_argument(
        "--snesim-venv", type=Path, default=Path(__file__).parent / ".peer-venvs" / "mpslib"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    materials = args.materials or (("ceramics", "composite") if args.quick else MATERIALS)
    if args.quick and args.iterations is None:
        args.iterations = 20
    variants = args.variants or list(VARIANTS)
    if args.seeds:
        seeds_main(args, materials, variants)
        return
    run_and_merge(args, materials, variants)


def run_and_merge(args, materials: list[str], variants: list[str]) -> list[dict]:
    """One seed (``args.seed``): the runs not cached yet (unless ``--merge``), then the tables of
    the variants given (unless ``--no-merge``); the merged rows."""
    runs = args.runs / f"{args.size}_{args.seed}_{args.iterations or 'default'}"
    runs.mkdir(parents=True, exist_ok=True)
    if not args.merge:
        for material in materials:
            for variant in variants:
                run_one(variant, material, args, runs)
    return [] if args.no_merge else merge(args, runs, variants, materials)


GOAL_RATIO = 0.15
GOAL_THICKNESS = 0.20


def seeds_main(args, materials: list[str], variants: list[str]) -> None:
    """``--seeds``: every seed as a run of its own (``NAME_seedS.*``), then one table of the
    shape goals of issue 28 over the seeds (``NAME_seeds.md``)."""
    name, rows = args.name, []
    for seed in args.seeds:
        args.seed, args.name = seed, f"{name}_seed{seed}"
        merged = run_and_merge(args, materials, variants)
        keep = (*variants, "GRF", *PEERS)
        rows += [{**r, "seed": seed} for r in merged if r["column"] in keep]
    args.name = name
    if rows:
        write_seeds_markdown(RESULTS / f"{name}_seeds.md", rows, args.seeds)


def shape_goals(r: dict) -> tuple[bool, bool]:
    """A row's shape goals of issue 28: the directional S2 ratio within 15% of the exemplar's
    and the local thickness mean and 90th percentile within 20%, every phase."""
    ratio_ok = all(
        e is not None and abs(x / e - 1) <= GOAL_RATIO
        for x, e in zip(r["s2_ratio"], r["s2_ratio_exemplar"], strict=True)
        if x is not None
    )
    thick_ok = all(
        v is not None and abs(v) <= GOAL_THICKNESS
        for v in (*r["thickness_mean_rel"], *r["thickness_p90_rel"])
    )
    return ratio_ok, thick_ok


def write_seeds_markdown(path: Path, rows: list[dict], seeds: list[int]) -> None:
    """The shape goals per material, column and seed: directional S2 ratio within 15% of the
    exemplar's (every phase), local thickness mean and 90th percentile within 20% (every
    phase), quadrant deviation at most the exemplar's (phase 1), with S2 / L / clusters."""
    cols = [
        "material", "column", "seed", "s2_rmse", "lineal_path_rmse", "clusters_exemplar",
        "clusters", "s2_ratio_exemplar", "s2_ratio", "ratio_within_15pct", "thickness_exemplar",
        "thickness", "thickness_within_20pct", "quadrant_dev_exemplar", "quadrant_dev",
    ]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    met: dict[str, list[bool]] = {}
    for r in sorted(rows, key=lambda r: (r["material"], r["column"] != "GRF", r["seed"])):
        ratio_ok, thick_ok = shape_goals(r)
        r = {**r, "ratio_within_15pct": ratio_ok, "thickness_within_20pct": thick_ok}
        if r["column"] != "GRF":
            met.setdefault(r["column"], []).append((ratio_ok, thick_ok))
        lines.append("| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |")
    title = f"# Shape goals of issue 28 on the Li crops, seeds {' '.join(map(str, seeds))}"
    note = (
        "`s2_ratio`: S2 along the rows / along the columns, means over lags 4-16 px, per phase "
        "(goal: within 15% of the exemplar's, every phase). `thickness`: local thickness mean / "
        "90th percentile per phase in px (goal: both within 20%). `quadrant_dev`: largest "
        "|phi_q / phi - 1| over the quadrants, per phase. Runs and machine load: the files "
        "NAME_seedS.md of the same run."
    )
    summary = "\n".join(
        f"* `{c}`: ratio within 15% in {sum(a for a, _ in v)}/{len(v)} runs, local thickness "
        f"within 20% in {sum(b for _, b in v)}/{len(v)}"
        for c, v in met.items()
    )
    text = [title, note, summary, "\n".join(lines), seeds_goals_markdown(rows, seeds)]
    path.write_text("\n\n".join(text) + "\n")


SEED_GOALS = {
    "clusters": "clusters_within_30pct",
    "surface": "specific_surface_within_10pct",
    "S2 < GRF": "s2_below_grf",
    "L < GRF": "lineal_path_below_grf",
}


def seeds_goals_markdown(rows: list[dict], seeds: list[int]) -> str:
    """Per column (the GRF's and the peers' too) and seed: the two-phase crops meeting each goal
    (issue 11's four, the shape goals of :func:`write_seeds_markdown`), the median CPU seconds
    and the default's ratio to it; then the same medians over all seeds together."""
    two = [r for r in rows if r["phases"] == 2]
    columns = list(dict.fromkeys(r["column"] for r in two))

    def med(column, seed=None):
        cpu = [
            r["cpu_seconds"]
            for r in two
            if r["column"] == column and r.get("cpu_seconds") and seed in (None, r["seed"])
        ]
        return float(np.median(cpu)) if cpu else None

    head = [*SEED_GOALS, "ratio", "thickness"]
    lines = [
        "| column | seed | " + " | ".join(head) + " | median CPU s | default / column |",
        "|---|---|" + "---|" * (len(head) + 2),
    ]
    for column in columns:
        for seed in [*seeds, "all"]:
            mine = [r for r in two if r["column"] == column and seed in ("all", r["seed"])]
            cells = []
            for key in head:
                if key in SEED_GOALS:
                    got = [r["goals"][SEED_GOALS[key]] for r in mine if "goals" in r]
                else:
                    got = [shape_goals(r)[key == "thickness"] for r in mine]
                cells.append(f"{sum(got)}/{len(got)}" if got else "")
            s = None if seed == "all" else seed
            ours, theirs = med("default", s), med(column, s)
            ratio = f"{ours / theirs:.2f}" if ours and theirs and column != "default" else ""
            cpu = f"{theirs:.2f}" if theirs else ""
            lines.append(f"| {column} | {seed} | " + " | ".join(cells) + f" | {cpu} | {ratio} |")
    note = (
        "Goals met per column and seed over the two-phase crops (`all`: both seeds; the GRF "
        "is the reference of `S2 < GRF` and `L < GRF`), with the median CPU seconds per image "
        "(1 thread; the peers' in their worker processes) and the default's CPU ratio to the "
        "column, from the same run."
    )
    return "## Goals and CPU time per column\n\n" + note + "\n\n" + "\n".join(lines)


if __name__ == "__main__":
    main()
