"""Reconstruction of images of other kinds, and which annealing stage costs ``S2`` / lineal path.

Inputs (128 x 128, two phases, none tuned on): ``photograph``, skimage's ``gravel`` photograph,
resized to 256 x 256 (anti-aliased), its central crop thresholded at Otsu's level;
``disks``, overlapping disks of radius 6 px at random centres (35 % cover); ``network``, the
boundaries of 40 random Voronoi cells (about 3 px wide: the cells' one-sided boundary dilated by
a cross); and, with ``--images``, the Li et al. (2018) crops of ``bench_reconstruction.py``
(``li_NAME``).

For each image and seed (``--seeds``, default 0 and 1) one full run of ``mdesign reconstruct``'s
defaults is cached with its decoded (k-means) image. The annealing's variants (``STAGES``: the
stages switched off one at a time) are then replayed from that decoded image with the code as it
is at merge time (:func:`mdesign.reconstruction.pipeline._anneal`, a few seconds each; cached
per digest of the annealing's code; the Li crops replay the default, ``neighbourhood weight 1``
and the direction sectors only): the L-BFGS
fit, which takes most of the time, is shared by every column, and ``decoded`` is the Gram fit
alone (fractions not yet exact). ``GRF`` is the fitted level-cut GRF
(:func:`mdesign.reconstruction.grf_baseline`) with the same seed; ``DeeSse`` geone's
multiple-point simulation with the image as its training image, at ``bench_reconstruction.py``'s
setting and through its worker (``deesse_images``; one worker process per seed, cached;
``--no-deesse`` leaves it out); ``SNESIM`` mpslib's SNESIM the same way (``snesim_images``,
``--no-snesim``). The columns' seconds are those of the full run (the annealing's
replay differs by a few seconds). The figure has a row per image and seed.

Metrics: those of ``bench_reconstruction.py`` (``S2`` and lineal-path RMSE of phase 1, cluster
counts per phase) and the shape (:mod:`mdesign.reconstruction.metrics`): local thickness mean /
90th percentile per phase (px, radius), the directional ``S2`` ratio of phase 1 (rows / columns,
lags 4-16 px) and the quadrant fraction deviation of phase 1.

Usage: ``python bench/bench_reconstruction_kinds.py`` (runs, then merge); ``--merge`` only
assembles (replaying the annealing); ``--images``/``--seeds`` pick a share; ``--overrides JSON``
runs the full runs with a changed config (a texture term: give them a ``--runs`` folder of their
own) and ``--replays`` picks the annealing columns replayed; ``--export DIR``
writes the full runs and the replayed defaults of ``li_*`` images as ``bench_reconstruction.py``
cached runs (``DIR/full|replay/128_SEED_default/default__NAME.npz``: before and after a change
of the annealing). Results: ``bench/results/NAME.md``, ``NAME.json``
(``--name``, default ``reconstruction_kinds``), ``NAME_grid.png``. ``--merge --stages``: the shape
after every stage of the chain instead, for ``--stage-columns`` (``NAME_stages.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))
from _util import RESULTS, machine, report, timed_reconstruction
from bench_reconstruction import (
    DEESSE,
    DEESSE_VERSION,
    SNESIM,
    SNESIM_VERSION,
    block_match,
    deesse_images,
    snesim_images,
)

from mdesign.config import ReconstructionConfig
from mdesign.data import LI2018_MATERIALS, li2018_exemplar
from mdesign.reconstruction import grf_baseline, reconstruction_errors
from mdesign.reconstruction import pipeline as _pipeline

SIZE = 128
STAGES: dict[str, dict] = {
    "default": {},
    "no cleanup": {"anneal_cleanup": False},
    "no cluster guard": {"anneal_keep_clusters": False},
    "no surface stage": {"anneal_surface": False},
    "no neighbourhood term": {"anneal_neighbour_weight": 0.0},
    "neighbourhood weight 1": {"anneal_neighbour_weight": 1.0},
    "sectors 2": {"anneal_sectors": 2},
    "sectors 4": {"anneal_sectors": 4},
    "sectors 2, weight 1": {"anneal_sectors": 2, "anneal_neighbour_weight": 1.0},
    "shape particles": {"anneal": {"shape_particles": True}},
    # a thin network phase rebuilt as a fitted tessellation first (anneal.image_sheets)
    "image sheets": {"anneal": {"image_sheets": True}},
    "image sheets, no close ends": {"anneal": {"image_sheets": True, "close_ends": False}},
    "image sheets, no cleanup": {"anneal": {"image_sheets": True, "cleanup": False}},
    # the default before anneal.image_sheets was on (image sheets above: the default since)
    "no image sheets": {"anneal": {"image_sheets": False}},
    "image sheets, unfitted": {"anneal": {"image_sheets": True, "sheets_fit_steps": 0}},
    # the sheets' fit also to the exemplar's grain sizes, no slivers (anneal.sheets_shape_weight)
    "sheets shape 10": {"anneal": {"sheets_shape_weight": 10.0}},
    "sheets shape 20": {"anneal": {"sheets_shape_weight": 20.0}},
    "sheets shape 30": {"anneal": {"sheets_shape_weight": 30.0}},
}
"""Annealing variants replayed from the default run's decoded image (overrides of the config)."""


def photograph(size: int = SIZE) -> np.ndarray:
    """skimage's gravel photograph at 256 x 256, central crop, thresholded at Otsu's level."""
    from skimage import data, filters, transform

    img = transform.resize(data.gravel().astype(float), (256, 256), anti_aliasing=True)
    y0 = (256 - size) // 2
    img = img[y0 : y0 + size, y0 : y0 + size]
    return (img > filters.threshold_otsu(img)).astype(np.uint8)


def disks(size: int = SIZE, radius: int = 6, cover: float = 0.35, seed: int = 7) -> np.ndarray:
    """Overlapping disks at uniform random centres, Poisson number for the expected cover."""
    rng = np.random.default_rng(seed)
    n = round(-np.log(1 - cover) * size * size / (np.pi * radius**2))
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((size, size), bool)
    for cy, cx in rng.uniform(0, size, (n, 2)):
        out |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    return out.astype(np.uint8)


def network(size: int = SIZE, cells: int = 40, seed: int = 7) -> np.ndarray:
    """The boundaries of random Voronoi cells, about 3 px wide (grain boundaries, phase 1)."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, size, (cells, 2))
    yy, xx = np.mgrid[:size, :size]
    cell = ((yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2).argmin(-1)
    b = np.zeros((size, size), bool)
    b[:-1] |= cell[:-1] != cell[1:]
    b[:, :-1] |= cell[:, :-1] != cell[:, 1:]
    b = ndimage.binary_dilation(b, structure=ndimage.generate_binary_structure(2, 1))
    return b.astype(np.uint8)


KINDS = {"photograph": photograph, "disks": disks, "network": network}
IMAGES = [*KINDS, *(f"li_{m}" for m in LI2018_MATERIALS if m != "composite")]


def image(name: str) -> np.ndarray:
    if name.startswith("li_"):
        img = li2018_exemplar(name[3:], 256)
        y0 = (256 - SIZE) // 2
        return img[y0 : y0 + SIZE, y0 : y0 + SIZE]
    return KINDS[name]()


def run_full(name: str, seed: int, runs: Path, force: bool, overrides: dict | None = None) -> None:
    """One default reconstruction (with ``overrides`` of the config: ``--overrides``), cached
    with its decoded image."""
    path = runs / f"{name}__{seed}.npz"
    if path.exists() and not force:
        return
    ex = image(name)
    res, info = timed_reconstruction(ex, ReconstructionConfig(seed=seed, **(overrides or {})))
    info["overrides"] = overrides or {}
    np.savez(path, labels=res.labels, decoded=res.decoded, info=json.dumps(info))
    print(f"{name} seed {seed}: S2 {res.errors.s2_rmse:.4f}, {res.seconds:.1f} s", flush=True)


def replay(decoded: np.ndarray, ex: np.ndarray, seed: int, overrides: dict) -> np.ndarray:
    """The default run's annealing (with ``overrides``) from its decoded image."""
    config = ReconstructionConfig(seed=seed, **overrides)
    quarter = min(*decoded.shape, *ex.shape) // 4
    annealing = _pipeline._anneal(
        decoded,
        [ex],
        config,
        phases=int(ex.max()) + 1,
        quarter=quarter,
        cleanup_seed=seed + 1,  # reconstruct's second seed for an int seed
        progress=False,
    )
    return annealing.labels


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _code_key() -> str:
    """A digest of the annealing's code: replays are cached per version of it."""
    import hashlib

    h = hashlib.sha1()
    for module in ("annealing", "cells", "ends", "lags", "pipeline", "metrics", "particles"):
        h.update((Path(_pipeline.__file__).parent / f"{module}.py").read_bytes())
    return h.hexdigest()[:10]


def metrics(ex: np.ndarray, labels: np.ndarray, *, periodic: bool = True) -> dict:
    """Errors of periodic labels (the reconstruction's and the GRF's, as in
    ``bench_reconstruction.py``; DeeSse's with ``periodic=False``) against the exemplar
    (in-image)."""
    k = int(ex.max()) + 1
    e = reconstruction_errors(ex, labels, phases=k, reconstruction_periodic=periodic)
    m = e.morphology_report()
    return {
        "s2_rmse": e.s2_rmse,
        "lineal_path_rmse": e.lineal_path_rmse,
        "fraction_error_px": e.fraction_error_pixels,
        "clusters_exemplar": m["clusters_exemplar"],
        "clusters": m["clusters_reconstruction"],
        "thickness_exemplar": _thickness(m, "exemplar"),
        "thickness": _thickness(m, "reconstruction"),
        "thickness_rel": [
            [_r(a), _r(b)]
            for a, b in zip(
                m["local_thickness_mean_relative_error"],
                m["local_thickness_p90_relative_error"],
                strict=True,
            )
        ],
        "s2_ratio_exemplar": [_r(v) for v in m["s2_directional_ratio_exemplar"]],
        "s2_ratio": [_r(v) for v in m["s2_directional_ratio_reconstruction"]],
        "clusters_rel": m["clusters_relative_error"],
        "specific_surface_rel": m["specific_surface_relative_error"][-1],
        "quadrant_dev_exemplar": m["quadrant_fraction_deviation_exemplar"][1],
        "quadrant_dev": m["quadrant_fraction_deviation_reconstruction"][1],
        "block_match": [_r(v) for v in block_match(labels, ex)],
        "slivers": slivers(ex, labels),
    }


def slivers(ex: np.ndarray, labels: np.ndarray) -> list[int] | None:
    """Sliver grains of an image with a thin network phase (``None`` without one): of the grains
    (4-connected clusters of the other phases) that do not touch the image's edge, how many are
    longer than the exemplar's interior grains allow (area over ``pi r^2``, ``r`` the inscribed
    radius, above :attr:`~mdesign.reconstruction.cells.GrainSizes.elongation`), and how many
    there are."""
    from mdesign.reconstruction.annealing import _sheet_phases
    from mdesign.reconstruction.cells import grain_sections, grain_sizes

    net = _sheet_phases([ex], int(ex.max()) + 1)
    if not net:
        return None
    bound = grain_sizes([ex], net[0], ex.shape).elongation
    r, a, inner = grain_sections(labels != net[0])
    return [int((a[inner] > bound * np.pi * r[inner] ** 2).sum()), int(inner.sum())]


def _r(v):
    return None if v is None or not np.isfinite(v) else round(float(v), 3)


GOALS_LI = ("clusters", "surface", "S2 < GRF", "L < GRF", "ratio", "thickness")
"""The goals on the Li crops: clusters within 30% (phases of >= 10 in the exemplar), specific
surface within 10%, S2 and lineal-path RMSE below the GRF's (issue 11), and the shape goals of
issue 28: directional S2 ratio within 15% of the exemplar's and local thickness mean and 90th
percentile within 20%, every phase."""


def row_goals(r: dict) -> dict[str, bool]:
    """The goals a replayed row meets (the Li crops': :data:`GOALS_LI`; the others' S2 and L)."""
    out = {"S2 < GRF": r["s2_vs_grf"] < 1, "L < GRF": r["lineal_path_vs_grf"] < 1}
    if not r["image"].startswith("li_"):
        return out
    out["clusters"] = all(
        rel is not None and abs(rel) <= 0.30
        for n, rel in zip(r["clusters_exemplar"], r["clusters_rel"], strict=True)
        if n >= 10
    )
    out["surface"] = abs(r["specific_surface_rel"]) <= 0.10
    out["ratio"] = all(
        e is not None and x is not None and abs(x / e - 1) <= 0.15
        for x, e in zip(r["s2_ratio"], r["s2_ratio_exemplar"], strict=True)
    )
    out["thickness"] = all(v is not None and abs(v) <= 0.20 for p in r["thickness_rel"] for v in p)
    return out


def goals_markdown(rows: list[dict], seeds: list[int]) -> str:
    """Per column and seed, how many images meet each goal (Li crops and the other kinds
    apart), with the annealing's median CPU time of the replays."""
    lines = []
    for group, pick in (("Li crops", True), ("other kinds", False)):
        sel = [r for r in rows if r["image"].startswith("li_") == pick and "goals" in r]
        if not sel:
            continue
        names = GOALS_LI if pick else ("S2 < GRF", "L < GRF")
        head = ["column", *(f"{g}, seed {s}" for g in names for s in seeds)]
        head += ["annealing CPU s", "run CPU s"]
        lines += [f"{group}:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for column in dict.fromkeys(r["column"] for r in sel):
            cells = [column]
            for g in names:
                for s in seeds:
                    got = [r["goals"][g] for r in sel if r["column"] == column and r["seed"] == s]
                    cells.append(f"{sum(got)}/{len(got)}")
            for key in ("anneal_cpu_seconds", "cpu_seconds"):
                cpu = [r.get(key) for r in sel if r["column"] == column]
                cpu = [c for c in cpu if c is not None]
                cells.append(f"{np.median(cpu):.1f}" if cpu else "")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _thickness(m: dict, side: str) -> list[str]:
    means, p90 = m[f"local_thickness_mean_{side}"], m[f"local_thickness_p90_{side}"]
    return [f"{a:.1f}/{b:.0f}" for a, b in zip(means, p90, strict=True)]


def merge(args, runs: Path, names: list[str]) -> None:
    rows, images, loads = [], {}, []
    peer = {
        seed: deesse_images(
            {name: image(name) for name in names},
            seed,
            args.deesse_venv,
            runs / f"DeeSse__{seed}__{'_'.join(names)}.npz",
            force=args.force,
        )
        for seed in ([] if args.no_deesse else args.seeds)
    }
    mps = {
        seed: snesim_images(
            {name: image(name) for name in names},
            seed,
            args.snesim_venv,
            runs / f"SNESIM__{seed}__{'_'.join(names)}.npz",
            force=args.force,
        )
        for seed in ([] if args.no_snesim else args.seeds)
    }
    for name in names:
        ex = image(name)
        for seed in args.seeds:
            images[(name, "exemplar", seed)] = ex
            grf, _ = grf_baseline(ex, ex.shape, phases=int(ex.max()) + 1, seed=seed)
            grf_row = {"image": name, "seed": seed, "column": "GRF", **metrics(ex, grf)}
            rows.append(grf_row)
            images[(name, "GRF", seed)] = grf
            for column, runs_of in (("DeeSse", peer), ("SNESIM", mps)):
                if name not in runs_of.get(seed, {}):
                    continue
                labels, info = runs_of[seed][name]
                r = {"image": name, "seed": seed, "column": column}
                r.update(metrics(ex, labels, periodic=False))
                r["s2_vs_grf"] = r["s2_rmse"] / grf_row["s2_rmse"]
                r["lineal_path_vs_grf"] = r["lineal_path_rmse"] / grf_row["lineal_path_rmse"]
                r.update(cpu_seconds=info["cpu_seconds"], copy_fraction=info.get("copy_fraction"))
                r["goals"] = row_goals(r)
                rows.append(r)
                images[(name, column, seed)] = labels
            path = runs / f"{name}__{seed}.npz"
            if not path.exists():
                print(f"missing run: {name} seed {seed}")
                continue
            data = np.load(path)
            info = json.loads(str(data["info"]))
            loads += [info["load_before"], info["load_after"]]
            columns = {"decoded": data["decoded"], "full run": data["labels"]}
            # the Li crops: the default, a lighter neighbourhood term and the direction sectors
            li = (
                "default",
                "neighbourhood weight 1",
                "sectors 2",
                "sectors 4",
                "sectors 2, weight 1",
            )
            stages = {k: STAGES[k] for k in li} if name.startswith("li_") else STAGES
            if args.replays:
                stages = {k: STAGES[k] for k in args.replays}
            cpu = {}
            for stage, overrides in stages.items():
                cached = runs / f"{name}__{seed}__{_slug(stage)}__{_code_key()}.npy"
                if not cached.exists():
                    t = time.process_time()
                    np.save(cached, replay(data["decoded"], ex, seed, overrides))
                    cached.with_suffix(".cpu").write_text(str(time.process_time() - t))
                columns[stage] = np.load(cached)
                timing = cached.with_suffix(".cpu")
                cpu[stage] = float(timing.read_text()) if timing.exists() else None
            if args.export and name.startswith("li_"):
                for part, column in (("full", "full run"), ("replay", "default")):
                    out = args.export / part / f"{SIZE}_{seed}_default"
                    out.mkdir(parents=True, exist_ok=True)
                    np.savez(
                        out / f"default__{name[3:]}.npz",
                        labels=columns[column],
                        info=json.dumps({**info, "overrides": {}, "column": column}),
                    )
            for column, labels in columns.items():
                r = {"image": name, "seed": seed, "column": column, **metrics(ex, labels)}
                r["s2_vs_grf"] = r["s2_rmse"] / grf_row["s2_rmse"]
                r["lineal_path_vs_grf"] = r["lineal_path_rmse"] / grf_row["lineal_path_rmse"]
                r["cpu_seconds"] = info["cpu_seconds"]
                r["anneal_cpu_seconds"] = cpu.get(column)
                if column in stages:
                    r["goals"] = row_goals(r)
                rows.append(r)
                images[(name, column, seed)] = labels
    report(args.name, rows, title="reconstruction of images of other kinds, stages switched off")
    load = (min(loads), max(loads)) if loads else (float("nan"),) * 2
    write_markdown(RESULTS / f"{args.name}.md", rows, load, args)
    _write_grid(RESULTS / f"{args.name}_grid.png", images, names, args.seeds)


def write_markdown(path: Path, rows: list[dict], load, args) -> None:
    m = machine()
    cols = [
        "image", "seed", "column", "s2_rmse", "s2_vs_grf", "lineal_path_rmse",
        "lineal_path_vs_grf", "clusters_exemplar", "clusters", "thickness_exemplar", "thickness",
        "s2_ratio_exemplar", "s2_ratio", "quadrant_dev_exemplar", "quadrant_dev",
        "fraction_error_px", "cpu_seconds", "anneal_cpu_seconds", "copy_fraction", "block_match",
        "slivers",
    ]  # fmt: skip

    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, list):
            return "[" + ", ".join(cell(x) for x in v) + "]"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    stages = "\n".join(f"* `{k}`: {json.dumps(v)}" for k, v in STAGES.items())
    text = "\n\n".join(
        [
            "# Reconstruction of images of other kinds: which stage costs S2 / lineal path",
            f"128 x 128, seeds {' '.join(map(str, args.seeds))}, 1 torch thread per run; "
            f"{m['cpus']} CPUs shared with other jobs (load average {load[0]:.1f}-{load[1]:.1f} "
            f"during the full runs), torch {m['torch']}. "
            "`python bench/bench_reconstruction_kinds.py` (module docstring: inputs, replay).",
            "Columns: `GRF` the fitted level-cut GRF; `DeeSse` geone's multiple-point simulation "
            f"(geone {DEESSE_VERSION}, {json.dumps(DEESSE)}, the image as its training image, "
            "not periodic and measured so, `bench_reconstruction.py`'s worker; `copy_fraction`: "
            "1 is a verbatim copy); `SNESIM` mpslib's SNESIM (scikit-mps "
            f"{SNESIM_VERSION} `mps_snesim_tree`, {json.dumps(SNESIM)}, the image as its training "
            "image, not periodic, mpslib seed the run's + 1); `block_match`: for each 32 x 32 "
            "block, the largest share of its pixels equal to the exemplar's at any placement, "
            "median / largest over the blocks (1 for a shifted copy); `decoded` the Gram fit's "
            "k-means image; "
            "`full run` the cached default run; the rest the annealing replayed from `decoded` "
            "with the code at merge time:",
            stages,
            "Metrics: S2 and lineal-path RMSE of phase 1 (`_vs_grf`: ratio to the GRF of the same "
            "seed); clusters per phase (4-connected, in-image); local thickness mean/90th "
            "percentile per phase (px, radius); `s2_ratio`: S2 along rows / columns, lags 4-16, "
            "per phase; `quadrant_dev`: largest relative deviation of a quadrant's phase-1 "
            "fraction; `anneal_cpu_seconds`: CPU time of the replayed annealing; `slivers` "
            "(images with a thin network phase): interior grains longer than the exemplar's "
            "interior grains allow (`slivers` in the bench) / interior grains.",
            "Goals met, per column and seed (the replayed columns; `row_goals` in the bench):",
            goals_markdown(rows, args.seeds),
            "\n".join(lines),
        ]
    )
    path.write_text(text + "\n")


def _write_grid(path: Path, images: dict, names: list[str], seeds: list[int]) -> None:
    """One row per image and seed; the columns that have an image (exemplar, GRF, DeeSse,
    SNESIM, decoded, the replayed stages)."""
    from matplotlib.figure import Figure

    from mdesign.plotting import save_figure, show_labels

    have = {key[1] for key in images}
    cols = [c for c in ("exemplar", "GRF", "DeeSse", "SNESIM", "decoded", *STAGES) if c in have]
    rows = [(name, seed) for name in names for seed in seeds]
    fig = Figure(figsize=(2.6 * len(cols), 2.9 * len(rows)), layout="constrained", dpi=100)
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for i, (name, seed) in enumerate(rows):
        for j, col in enumerate(cols):
            im = images.get((name, col, seed))
            if im is None:
                axes[i, j].axis("off")
                continue
            show_labels(axes[i, j], im, k=2, title=f"{name}, seed {seed}: {col}")
    save_figure(fig, path, dpi=100)


def stage_labels(decoded, ex, seed, overrides) -> dict[str, np.ndarray]:
    """The labels after each stage of the annealing chain (:func:`replay`'s, stage by stage:
    the public functions in the order of ``pipeline._anneal``; the last equals the replay)."""
    from mdesign.reconstruction.annealing import (
        anneal_fractions,
        join_network_fragments,
        remove_small_clusters,
    )

    config = ReconstructionConfig(seed=seed, **overrides)
    k = int(ex.max()) + 1
    kw = _pipeline._anneal_kwargs(
        config,
        ndim=2,
        size=decoded.size,
        phases=k,
        quarter=min(*decoded.shape, *ex.shape) // 4,
    )
    out = {"decoded": decoded}
    out["fractions"] = anneal_fractions(
        decoded, ex, seed=seed, surface=False, **kw | {"steps": 0}
    ).labels
    out["swaps"] = anneal_fractions(decoded, ex, seed=seed, surface=False, **kw).labels
    out["joined"] = join_network_fragments(out["swaps"], ex, phases=k)
    out["small clusters removed"] = remove_small_clusters(
        out["joined"], ex, phases=k, periodic=config.periodic
    )
    again = dict(seed=seed + 1, **kw)
    out["swaps again"] = anneal_fractions(
        out["small clusters removed"], ex, surface=False, **again
    ).labels
    out["surface"] = anneal_fractions(
        out["small clusters removed"], ex, surface=True, **again
    ).labels
    return out


def stages_table(args, runs: Path, names: list[str]) -> None:
    """Where the anisotropy and the thickness come from: the shape after every stage, for the
    default and the variants of ``--stage-columns`` (``NAME_stages.md``)."""
    lines = [
        "| image | seed | column | stage | s2_ratio (exemplar) | thickness (exemplar) | clusters |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        ex = image(name)
        for seed in args.seeds:
            data = np.load(runs / f"{name}__{seed}.npz")
            for column in args.stage_columns:
                labels = stage_labels(data["decoded"], ex, seed, STAGES[column])
                final = replay(data["decoded"], ex, seed, STAGES[column])
                assert np.array_equal(labels["surface"], final), "the stages are not the chain's"
                for stage, lab in labels.items():
                    r = metrics(ex, lab)
                    cells = [name, seed, column, stage]
                    cells += [f"{r[c]} ({r[c + '_exemplar']})" for c in ("s2_ratio", "thickness")]
                    cells.append(f"{r['clusters']} ({r['clusters_exemplar']})")
                    lines.append("| " + " | ".join(map(str, cells)) + " |")
    m = machine()
    text = "\n\n".join(
        [
            "# The shape after each annealing stage",
            f"128 x 128, seeds {' '.join(map(str, args.seeds))}, replayed from each default "
            f"run's decoded image (`decoded`: the Gram fit's k-means labels; `fractions`: the "
            f"greedy flips to exact fractions; `swaps`: the Metropolis swaps; then the cleanup's "
            f"joining and dissolving, the second annealing and its surface stage); "
            f"{m['cpus']} CPUs shared. `python bench/bench_reconstruction_kinds.py --merge "
            f"--stages --images ...`. `s2_ratio`: S2 along rows / columns, lags 4-16, per phase; "
            f"thickness: local thickness mean/90th percentile per phase (px); clusters per phase.",
            "\n".join(lines),
        ]
    )
    (RESULTS / f"{args.name}_stages.md").write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", choices=IMAGES, default=list(KINDS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path(tempfile.gettempdir()) / "mdesign_bench_reconstruction_kinds",
        help="folder of the cached full runs",
    )
    parser.add_argument("--merge", action="store_true", help="only assemble the cached runs")
    parser.add_argument("--no-merge", action="store_true", help="only run, do not assemble")
    parser.add_argument("--force", action="store_true", help="redo cached runs")
    parser.add_argument("--export", type=Path, help="write li_* defaults as bench runs here")
    parser.add_argument("--name", default="reconstruction_kinds", help="results file name")
    parser.add_argument("--stages", action="store_true", help="the shape after every stage")
    parser.add_argument("--no-deesse", action="store_true", help="leave out the DeeSse column")
    parser.add_argument(
        "--deesse-venv", type=Path, default=Path(__file__).parent / ".peer-venvs" / "geone"
    )
    parser.add_argument("--no-snesim", action="store_true", help="leave out the SNESIM column")
    parser.add_argument(
        "--snesim-venv", type=Path, default=Path(__file__).parent / ".peer-venvs" / "mpslib"
    )
    parser.add_argument(
        "--overrides",
        type=json.loads,
        default={},
        help="config overrides of the full runs, JSON (e.g. '{\"texture\": {...}}'); use a "
        "--runs folder of their own",
    )
    parser.add_argument(
        "--replays", nargs="+", choices=list(STAGES), help="replay only these annealing columns"
    )
    parser.add_argument(
        "--stage-columns", nargs="+", choices=list(STAGES), default=["default", "sectors 2"]
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.runs.mkdir(parents=True, exist_ok=True)
    if not args.merge:
        for name in args.images:
            for seed in args.seeds:
                run_full(name, seed, args.runs, args.force, args.overrides)
    if args.stages:
        stages_table(args, args.runs, args.images)
    elif not args.no_merge:
        merge(args, args.runs, args.images)


if __name__ == "__main__":
    main()
