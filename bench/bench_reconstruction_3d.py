"""2D-to-3D reconstruction on the Li et al. (2018) exemplars: slices per axis, time, memory.

Inputs: the central 128x128 crop of each 256x256 exemplar (as ``bench_reconstruction.py``).
For each material and volume side ``S`` (64 for every material, 96 for ``--big``), one
``reconstruct`` (``size`` H W D) run with the defaults (one torch thread, ``--jobs`` runs side
by side), and beside it what a user would otherwise have:

* the 2D reconstruction of the same exemplar at ``S x S`` (the same ``R = S / 4`` of the curves
  as the volume's slices): the goal is a per-axis slice ``S2`` RMSE within 1.5x of its;
* the fitted 3D Gaussian random field the volume starts from (the classical 2D-to-3D method:
  a level cut matching ``S2``), measured the same way.

Each run also gives its peak resident memory (``VmHWM`` of its own process), the seconds of each
stage, the exactness of the fractions, and the 3D effective conductivity tensor of the volume
(phase 0 at 1, phase 1 at 10; :func:`mdesign.evaluators.conductivity.conductivity_tensor`).

Outputs ``results/reconstruction_3d.md`` / ``.json`` and ``reconstruction_3d_grid.png``
(exemplar | the three middle slices, each size; ``--out NAME`` writes ``results/NAME*`` in their
place). Runs are cached in ``--runs`` (each one a separate process, so a crash or kill loses only
that run); ``--merge`` assembles them. ``--seed`` takes several seeds (a row per seed).
``--splice`` puts the cached runs' rows into the committed ``results/OUT`` table in place of its
rows of the same material, side and seed (no seed: 0), keeps the others and the table's columns,
recomputes its goals and keeps its notes (one added); the grid is redrawn only when ``--runs``
also holds every kept row's run, reproducing its figures.

    python bench/bench_reconstruction_3d.py                 # 6 two-phase materials at 64^3
    python bench/bench_reconstruction_3d.py --big alloy carbonate   # and those at 96^3
    python bench/bench_reconstruction_3d.py --materials carbonate --seed 0 1 --out rocks
    python bench/bench_reconstruction_3d.py --materials alloy --big alloy --splice
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import RESULTS, machine, peak_rss_mb, report

from mdesign.data import LI2018_MATERIALS, li2018_exemplar

MATERIALS = [m for m in LI2018_MATERIALS if m != "composite"]
CONDUCTIVITIES = (1.0, 10.0)


def crop(name: str, size: int = 128) -> np.ndarray:
    img = li2018_exemplar(name, 256)
    y0, x0 = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    return img[y0 : y0 + size, x0 : x0 + size]


def _axis_summary(errors) -> dict:
    """Slice statistics of one axis (``slice_errors`` / ``reconstruction_errors``)."""
    m_e, m_r = errors.morphology_exemplar, errors.morphology_reconstruction
    rel = lambda r, e: [float(x / y - 1) if y else None for x, y in zip(r, e, strict=True)]  # noqa: E731
    return {
        "s2_rmse": errors.s2_rmse,
        "lineal_path_rmse": errors.lineal_path_rmse,
        "clusters_exemplar": [float(c) for c in m_e.clusters],
        "clusters": [float(c) for c in m_r.clusters],
        "clusters_rel": rel(m_r.clusters, m_e.clusters),
        "specific_surface_rel": float(m_r.specific_surface[1] / m_e.specific_surface[1] - 1),
        "mean_chord_rel": rel(m_r.mean_chord_length, m_e.mean_chord_length),
    }


def _updated(cfg, sets):
    """``cfg`` with ``section.key=value`` settings (the value as JSON, else a string)."""
    for item in sets:
        key, value = item.split("=", 1)
        section, name = key.split(".")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
        part = getattr(cfg, section).model_copy(update={name: value})
        cfg = cfg.model_copy(update={section: part})
    return cfg


def run_one(material: str, side: int, seed: int, out: Path, sets=()) -> None:
    """One material at ``side^3`` (in this process): volume, 2D reference, GRF, conductivity
    (``sets``: ``section.key=value`` settings of all three reconstructions)."""
    from mdesign.config import ReconstructionConfig
    from mdesign.evaluators.conductivity import conductivity_tensor
    from mdesign.reconstruction import reconstruct
    from mdesign.reconstruction.metrics import slice_errors

    torch.set_num_threads(1)
    ex = crop(material)
    k = int(ex.max()) + 1
    load_before = os.getloadavg()[0]
    cpu = time.process_time()
    cfg = _updated(ReconstructionConfig(seed=seed), sets)
    res = reconstruct(ex, (side,) * 3, cfg, device="cpu")
    cpu = time.process_time() - cpu
    peak = peak_rss_mb()
    load_after = os.getloadavg()[0]
    counts = np.bincount(res.labels.ravel(), minlength=k)
    grf_axes = [_axis_summary(slice_errors(ex, res.start, axis=a, phases=k)) for a in range(3)]
    # the 2D reconstruction at the slices' size, and at the exemplar's (the command's default),
    # each measured as one slice with the slices' R and cluster windows
    t = time.perf_counter()
    two_d = reconstruct(ex, (side, side), cfg, device="cpu")
    t2d = time.perf_counter() - t
    ref = _axis_summary(slice_errors(ex, two_d.labels[None], axis=0, phases=k))
    full = reconstruct(ex, None, cfg, device="cpu")
    ref_full = _axis_summary(
        slice_errors(ex, full.labels[None], axis=0, phases=k, max_distance=side // 4)
    )
    t = time.perf_counter()
    tensor = conductivity_tensor(res.labels[None], conductivities=CONDUCTIVITIES)[0]
    t_cond = time.perf_counter() - t
    info = {
        "material": material,
        "side": side,
        "seed": seed,
        "settings": list(sets),
        "seconds": res.seconds,
        "cpu_seconds": cpu,
        "seconds_optimization": res.seconds_optimization,
        "seconds_annealing": res.seconds_annealing,
        "peak_rss_mb": peak,
        "load_before": load_before,
        "load_after": load_after,
        "fraction_error_voxels": int(np.abs(counts - res.annealing.target_counts).max()),
        "gram_initial": float(res.optimization.gram_losses[:10].mean()),
        "gram_final": float(res.optimization.gram_losses[-10:].mean()),
        "axes": [_axis_summary(e) for e in res.axes],
        "grf_axes": grf_axes,
        "two_d": ref,
        "two_d_seconds": t2d,
        "two_d_full": ref_full,
        "conductivity_tensor": tensor.tolist(),
        "conductivity_seconds": t_cond,
        "specific_surface_volume": float(res.specific_surface[1]),
    }
    np.savez_compressed(out, labels=res.labels, start=res.start, info=json.dumps(info))
    s2 = ", ".join(f"{a['s2_rmse']:.4f}" for a in info["axes"])
    print(
        f"{material} {side}^3: slice S2 RMSE {s2} (2D {ref['s2_rmse']:.4f} at {side}^2, "
        f"{ref_full['s2_rmse']:.4f} at 128^2, GRF "
        f"{np.mean([a['s2_rmse'] for a in grf_axes]):.4f}), {res.seconds:.0f} s, "
        f"peak {peak:.0f} MB, load {load_before:.1f}-{load_after:.1f}",
        flush=True,
    )


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def crop_floor(material: str, side: int) -> float:
    """How far the exemplar's own ``side^2`` windows are from it: the mean ``S2`` RMSE of its
    four corner windows (in-image) against the whole exemplar, ``R = side / 4``. A slice error
    below this is within the exemplar's own variation."""
    from mdesign.reconstruction.metrics import slice_errors

    ex = crop(material)
    w = min(side, ex.shape[0])
    corners = [ex[y : y + w, x : x + w] for y in (0, ex.shape[0] - w) for x in (0, ex.shape[1] - w)]
    k = int(ex.max()) + 1
    return float(
        np.mean(
            [
                slice_errors(ex, c[None], axis=0, phases=k, volume_periodic=False).s2_rmse
                for c in corners
            ]
        )
    )


def row(info: dict) -> dict:
    axes, grf, ref, full = info["axes"], info["grf_axes"], info["two_d"], info["two_d_full"]
    s2 = [a["s2_rmse"] for a in axes]
    k = len(ref["clusters"])
    tensor = np.array(info["conductivity_tensor"])
    diag = np.diag(tensor)
    return {
        "material": info["material"],
        "side": info["side"],
        "seed": info.get("seed", 0),
        "seconds": round(info["seconds"], 1),
        "cpu_seconds": round(info["cpu_seconds"], 1),
        "peak_mb": round(info["peak_rss_mb"]),
        "fraction_error_voxels": info["fraction_error_voxels"],
        "s2_rmse_axes": [round(v, 5) for v in s2],
        "s2_rmse_2d": round(ref["s2_rmse"], 5),
        "s2_rmse_2d_128": round(full["s2_rmse"], 5),
        "s2_ratio_to_2d": round(max(s2) / min(ref["s2_rmse"], full["s2_rmse"]), 2),
        "s2_crop_floor": round(crop_floor(info["material"], info["side"]), 5),
        "s2_rmse_grf": round(float(np.mean([a["s2_rmse"] for a in grf])), 5),
        "lineal_path_rmse_axes": [round(a["lineal_path_rmse"], 4) for a in axes],
        "lineal_path_rmse_2d": round(ref["lineal_path_rmse"], 4),
        "lineal_path_rmse_grf": round(float(np.mean([a["lineal_path_rmse"] for a in grf])), 4),
        "clusters_rel": [_pct(_mean(a["clusters_rel"][j] for a in axes)) for j in range(k)],
        "clusters_exemplar": [round(c, 1) for c in axes[0]["clusters_exemplar"]],
        "clusters_rel_worst_axis": [
            _pct(_worst(a["clusters_rel"][j] for a in axes)) for j in range(k)
        ],
        "clusters_rel_2d": [_pct(ref["clusters_rel"][j]) for j in range(k)],
        "clusters_rel_grf": [_pct(_mean(a["clusters_rel"][j] for a in grf)) for j in range(k)],
        "specific_surface_rel": _pct(_mean(a["specific_surface_rel"] for a in axes)),
        "specific_surface_rel_2d": _pct(ref["specific_surface_rel"]),
        "specific_surface_rel_grf": _pct(_mean(a["specific_surface_rel"] for a in grf)),
        "conductivity_diag": [round(float(v), 3) for v in diag],
        "conductivity_offdiag_max": round(float(np.abs(tensor - np.diag(diag)).max()), 4),
        "conductivity_seconds": round(info["conductivity_seconds"], 1),
    }


def _worst(values) -> float | None:
    """The value farthest from 0 (one axis's relative error)."""
    vals = [v for v in values if v is not None]
    return max(vals, key=abs) if vals else None


def _counted_ok(r: dict) -> bool:
    """Every phase with at least 10 exemplar clusters per window within +-30% on every axis."""
    return all(
        abs(float(w.rstrip("%"))) <= 30
        for c, w in zip(r["clusters_exemplar"], r["clusters_rel_worst_axis"], strict=True)
        if c >= 10 and w
    )


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:+.0f}%"


def goals(rows: list[dict]) -> dict:
    small = [r for r in rows if r["side"] == 64]
    big = [r for r in rows if r["side"] == 96]
    return {
        "runs_64": len(small),
        "seconds_64_le_600": f"{sum(r['seconds'] <= 600 for r in small)}/{len(small)}",
        "median_seconds_64": float(np.median([r["seconds"] for r in small])) if small else None,
        "max_seconds_64": max((r["seconds"] for r in small), default=None),
        "cpu_seconds_64_le_300": f"{sum(r['cpu_seconds'] <= 300 for r in small)}/{len(small)}",
        "clusters_counted_within_30pct": f"{sum(_counted_ok(r) for r in rows)}/{len(rows)}",
        "s2_within_1.5x_of_2d": f"{sum(r['s2_ratio_to_2d'] <= 1.5 for r in rows)}/{len(rows)}",
        "median_s2_ratio_to_2d": float(np.median([r["s2_ratio_to_2d"] for r in rows])),
        "fractions_exact": f"{sum(r['fraction_error_voxels'] <= 1 for r in rows)}/{len(rows)}",
        "runs_96": len(big),
        "peak_96_le_4096_mb": f"{sum(r['peak_mb'] <= 4096 for r in big)}/{len(big)}",
        "max_peak_mb_96": max((r["peak_mb"] for r in big), default=None),
    }


def _key(r: dict) -> tuple:
    return r["material"], r["side"], r.get("seed", 0)


def splice(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` with each row of the same material, side and seed as a ``new`` row replaced by it
    (restricted to ``old``'s columns); the new rows without one are appended. A table without a
    seed column takes seed 0 only."""
    columns = list(old[0])
    if "seed" not in columns and any(r.get("seed", 0) for r in new):
        raise ValueError("the table has no seed column: splice seed 0 only")
    fresh = {_key(r): {k: r[k] for k in columns if k in r} for r in new}
    rows = [fresh.pop(_key(r), r) for r in old]
    return rows + list(fresh.values())


def _notes(md: str) -> list[str]:
    """The paragraphs of a table's markdown between its machine line and its column notes."""
    paragraphs = md.split("\n\n")
    end = next(i for i, p in enumerate(paragraphs) if p.startswith("Slice statistics"))
    return paragraphs[2:end]


def splice_table(out: str, infos: list[dict], sets, runs: Path) -> None:
    """``--splice``: the runs of ``infos`` into the committed ``results/OUT`` table."""
    old = json.loads((RESULTS / f"{out}.json").read_text())["rows"]
    rows = splice(old, [row(i) for i in infos])
    old_goals = json.loads((RESULTS / f"{out}_summary.json").read_text())["rows"][0]
    full = goals([{"clusters_exemplar": [], "clusters_rel_worst_axis": [], **r} for r in rows])
    summary = {k: full[k] for k in old_goals}
    md = (RESULTS / f"{out}.md").read_text()
    loads = [x for i in infos for x in (i["load_before"], i["load_after"])]
    new_load = f"{min(loads):.1f}-{max(loads):.1f}"
    was = re.search(r"load average ([\d.]+)-([\d.]+)", md)
    loads += [float(was[1]), float(was[2])] if was else []
    load = (min(loads), max(loads))
    # the kept rows' runs, where --runs holds them with the same figures
    kept = [r for r in rows if _key(r) not in {_key(row(i)) for i in infos}]
    found = []
    for r in kept:
        path = runs / f"seed{r.get('seed', 0)}" / f"{r['material']}_{r['side']}.npz"
        info = json.loads(str(np.load(path)["info"])) if path.exists() else None
        if info is not None and all(row(info)[k] == v for k, v in r.items()):
            found.append(info)
    redraw = len(found) == len(kept)
    names = ", ".join(f"{i['material']} {i['side']}^3 seed {i.get('seed', 0)}" for i in infos)
    how = f" with `{' '.join(sets)}`" if sets else " with the defaults"
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    at = f" at {head.stdout.strip()}" if head.returncode == 0 else ""
    note = (
        f"Rows re-taken{how} and spliced in by `--splice`{at} "
        f"(`{' '.join(sys.argv[1:])}`): {names} (load {new_load}); the other rows as before. "
        "The grid figure is "
        + ("redrawn from every row's run." if redraw else "the earlier run's.")
    )
    notes = _notes(md)
    if redraw:  # the earlier notes' word on the figure no longer holds
        notes = [re.sub(r"\s*The grid\s+figure is the earlier run's\.", "", n) for n in notes]
    write_markdown(RESULTS / f"{out}.md", rows, summary, load, notes=[*notes, note])
    for name, table in ((out, rows), (f"{out}_summary", [summary])):
        data = json.loads((RESULTS / f"{name}.json").read_text())
        (RESULTS / f"{name}.json").write_text(json.dumps({**data, "rows": table}, indent=1) + "\n")
    if redraw:
        by_key = {_key(row(i)): i for i in found + infos}
        write_grid(RESULTS / f"{out}_grid.png", [by_key[_key(r)] for r in rows], runs)
    print(f"spliced {len(infos)} rows into {RESULTS / (out + '.md')}; grid redrawn: {redraw}")


def write_grid(path: Path, infos: list[dict], runs: Path) -> None:
    """Exemplar | the middle slice normal to each axis, one row per run, one scale."""
    from matplotlib.figure import Figure

    from mdesign.plotting import save_figure, show_labels

    dpi = 100
    panel = 2 * 128 / dpi
    fig = Figure(figsize=(4 * panel + 0.5, (panel + 0.5) * len(infos)), layout="constrained")
    axes = fig.subplots(len(infos), 4, squeeze=False)
    for i, info in enumerate(infos):
        seed = info.get("seed", 0)
        labels = np.load(runs / f"seed{seed}" / f"{info['material']}_{info['side']}.npz")["labels"]
        ex = crop(info["material"])
        k = int(ex.max()) + 1
        name = info["material"] + (f", seed {seed}" if seed else "")
        show_labels(axes[i, 0], ex, k=k, title=f"{name}: exemplar 128x128")
        for a in range(3):
            mid = labels.shape[a] // 2
            sl = np.take(labels, mid, axis=a)
            ax = axes[i, a + 1]
            show_labels(ax, sl, k=k, title=f"{info['side']}^3, slice normal to axis {a}")
            # one scale: a voxel is as large as an exemplar pixel; gray beyond the slice
            ax.set_xlim(-0.5, 127.5)
            ax.set_ylim(127.5, -0.5)
            ax.set_facecolor("0.75")
    save_figure(fig, path, dpi=dpi)


def write_markdown(
    path: Path, rows: list[dict], summary: dict, load: tuple, sets=(), notes=()
) -> None:
    m = machine()
    settings = f" Settings beside the defaults: `{' '.join(sets)}`." if sets else ""
    lines = [
        "# 2D-to-3D reconstruction of the Li et al. 2018 exemplars (central 128x128 crops)",
        "",
        f"{m['cpus']} CPUs shared with other jobs (load average {load[0]:.1f}-{load[1]:.1f}), "
        f"1 torch thread per run, torch {m['torch']}, CUDA {m['cuda']}. "
        f"`python bench/bench_reconstruction_3d.py`; figure: `{path.stem}_grid.png`.",
        "",
        *(line for n in notes for line in (n, "")),
        "Slice statistics: the slices normal to each axis against the exemplar (S2 and lineal "
        "path of phase 1, R = side / 4, the volume periodic, the exemplar in-image). The 2D "
        "columns are `mdesign reconstruct` of the same exemplar (defaults, the same seed) at "
        "side x side (`_2d`) and at the exemplar's 128 x 128 (`_2d_128`, S2 to the same R); "
        "`s2_ratio_to_2d` is the largest axis's S2 RMSE over the smaller of the two; "
        "`s2_crop_floor` is the mean S2 RMSE of the exemplar's own four corner windows of the "
        "slices' size against the whole exemplar: the exemplar's own variation at that size, "
        "for scale (the goal is the ratio). The GRF "
        "column is the fitted 3D Gaussian random field the volume starts from. Clusters and "
        "chords are compared in windows of the slices' size. Conductivity: phase 0 at 1, "
        "phase 1 at 10, the 3D tensor of the volume (periodic, default accuracy)." + settings,
        "",
        "## Goals",
        "",
        "| " + " | ".join(summary) + " |",
        "|" + "---|" * len(summary),
        "| " + " | ".join(str(v) for v in summary.values()) + " |",
        "",
        "## Runs",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
    ]
    lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in rows]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--materials", nargs="+", choices=MATERIALS, default=MATERIALS)
    parser.add_argument("--big", nargs="*", choices=MATERIALS, default=[], help="also at 96^3")
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side")
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path(tempfile.gettempdir()) / "mdesign_bench_reconstruction_3d",
        help="folder of the cached runs",
    )
    parser.add_argument("--merge", action="store_true", help="only assemble the cached runs")
    parser.add_argument(
        "--splice",
        action="store_true",
        help="put the runs' rows into the committed results/OUT table in place of its rows of the "
        "same material, side and seed (the others, its columns and notes kept)",
    )
    parser.add_argument("--out", default="reconstruction_3d", help="results/OUT.md and the rest")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        help="section.key=value (JSON) for every reconstruction, e.g. anneal.volume_matrix=false; "
        "give another --runs to cache them apart",
    )
    parser.add_argument("--one", nargs=2, metavar=("MATERIAL", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    for seed in args.seed:
        (args.runs / f"seed{seed}").mkdir(parents=True, exist_ok=True)
    if args.one:
        material, side = args.one[0], int(args.one[1])
        out = args.runs / f"seed{args.seed[0]}" / f"{material}_{side}.npz"
        run_one(material, side, args.seed[0], out, args.set)
        return
    sized = [(m, 64) for m in args.materials] + [(m, 96) for m in args.big]
    jobs = [(m, s, seed) for seed in args.seed for m, s in sized]
    path_of = lambda m, s, seed: args.runs / f"seed{seed}" / f"{m}_{s}.npz"  # noqa: E731
    if not args.merge:
        todo = [j for j in jobs if not path_of(*j).exists()]
        # largest first, so the long ones do not run alone at the end
        todo.sort(key=lambda j: -j[1])

        def launch(job):
            cmd = [sys.executable, __file__, "--one", job[0], str(job[1])]
            cmd += ["--seed", str(job[2]), "--runs", str(args.runs)]
            cmd += [f"--set={item}" for item in args.set]
            return subprocess.run(cmd, check=False).returncode

        with ThreadPoolExecutor(args.jobs) as pool:
            codes = list(pool.map(launch, todo))
        if any(codes):
            print(f"{sum(c != 0 for c in codes)} runs failed", file=sys.stderr)
    infos = []
    for job in jobs:
        path = path_of(*job)
        if path.exists():
            infos.append(json.loads(str(np.load(path)["info"])))
    if not infos:
        sys.exit("no runs to assemble")
    if args.splice:
        splice_table(args.out, infos, args.set, args.runs)
        return
    rows = [row(i) for i in infos]
    summary = goals(rows)
    report(args.out, rows, title="2D-to-3D reconstruction, Li et al. exemplars")
    report(f"{args.out}_summary", [summary], title="goals of issues 14 and 28")
    loads = [x for i in infos for x in (i["load_before"], i["load_after"])]
    write_markdown(RESULTS / f"{args.out}.md", rows, summary, (min(loads), max(loads)), args.set)
    write_grid(RESULTS / f"{args.out}_grid.png", infos, args.runs)
    print(f"wrote {RESULTS / (args.out + '.md')}")


if __name__ == "__main__":
    main()
