"""Which annealing stages help a 64^3 volume keep its morphology (issue 28, item 2).

Inputs: the central 128x128 crops of the Li et al. (2018) exemplars (as
``bench_reconstruction_3d.py``). ``--decode`` runs ``reconstruct`` at ``side^3`` with the defaults
(seed 0, one torch thread) once per material and caches the k-means decoded volume (before any
annealing) and the default labels in ``--runs``. The variants then run only the annealing
(``pipeline._anneal``, the one chain) on that cached volume, each with one volume stage turned on:
the cluster guard (``volume_keep_clusters``), the neighbourhood term
(``volume_neighbour_weight``), the surface stage (``volume_surface``), the cleanup
(``volume_cleanup``: network joining, small-cluster removal, a second annealing), the network
sheets (``volume_sheets``: a thin network phase rebuilt as Voronoi sheets, then annealed within
the guard), all, and ``matrix`` (``volume_matrix``: the image's stages where the exemplar is a
matrix material, the default). Every variant but ``default`` and ``matrix`` turns
``volume_matrix`` off, so it measures the ``volume_`` keys alone; ``volume`` is the volume keys'
defaults (the default before ``volume_matrix`` was on).

``--init shell`` (or ``lamellae``) decodes from that lamellar start (``slices.init``), cached
apart; ``--source start`` anneals the start labels themselves (no Adam stage), and the variant
``none`` measures the cached volume unannealed (where the stripes break: start, decoded, annealed).

Per variant: per-axis slice cluster counts per window against the exemplar's (equal windows,
``slice_errors``), the slices' S2 and lineal-path RMSE, the ratio of the largest axis's S2 RMSE to
the committed 2D reconstruction's (``results/reconstruction_3d.json``), and the annealing's
seconds. Outputs ``results/volume_stages.md`` / ``.json``.

    python bench/bench_volume_stages.py --decode alloy copolymer
    python bench/bench_volume_stages.py alloy copolymer
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import RESULTS, report
from bench_reconstruction_3d import _updated, crop

VARIANTS = {
    "none": None,
    "default": {},
    "guard": {"volume_keep_clusters": True},
    "neighbour": {"volume_neighbour_weight": 3.0},
    "guard+neighbour": {"volume_keep_clusters": True, "volume_neighbour_weight": 3.0},
    "guard+surface": {"volume_keep_clusters": True, "volume_surface": True},
    "guard+cleanup": {"volume_keep_clusters": True, "volume_cleanup": True},
    "matrix": {"volume_matrix": True},
    "volume": {"volume_matrix": False},
    "sheets": {"volume_sheets": True},
    "sheets+surface": {"volume_sheets": True, "volume_surface": True},
    "all": {
        "volume_keep_clusters": True,
        "volume_neighbour_weight": 3.0,
        "volume_surface": True,
        "volume_cleanup": True,
    },
}


def _stem(material: str, side: int, init: str, tag: str = "") -> str:
    return f"{material}_{side}" + ("" if init == "grf" else f"_{init}") + (f"_{tag}" if tag else "")


def decode(material: str, side: int, runs: Path, init: str = "grf", tag: str = "", sets=()) -> None:
    from mdesign.config import ReconstructionConfig
    from mdesign.reconstruction import reconstruct

    torch.set_num_threads(1)
    out = runs / f"{_stem(material, side, init, tag)}_decoded.npz"
    if out.exists():
        return
    ex = crop(material)
    t = time.perf_counter()
    cpu = time.process_time()
    cfg = ReconstructionConfig(seed=0)
    cfg = cfg.model_copy(update={"slices": cfg.slices.model_copy(update={"init": init})})
    cfg = _updated(cfg, list(sets))
    res = reconstruct(ex, (side,) * 3, cfg, device="cpu")
    info = {
        "seconds": res.seconds,
        "seconds_optimization": res.seconds_optimization,
        "seconds_annealing": res.seconds_annealing,
        "wall": time.perf_counter() - t,
        "cpu_seconds": time.process_time() - cpu,
        "load": os.getloadavg()[0],
    }
    np.savez_compressed(
        out, decoded=res.decoded, labels=res.labels, start=res.start, info=json.dumps(info)
    )
    print(material, side, info, flush=True)


def variant(
    material: str,
    side: int,
    name: str,
    runs: Path,
    sweeps: float | None,
    init: str = "grf",
    source: str = "decoded",
    tag: str = "",
    sets=(),
) -> dict:
    from mdesign.config import ReconstructionConfig
    from mdesign.reconstruction.metrics import slice_errors
    from mdesign.reconstruction.pipeline import _anneal

    stem = _stem(material, side, init, tag)
    suffix = "" if sweeps is None else f"_sweeps{sweeps:g}"
    suffix += "" if source == "decoded" else f"_{source}"
    out = runs / f"{stem}_{name}{suffix}.json"
    if out.exists():
        return json.loads(out.read_text())
    cached = np.load(runs / f"{stem}_decoded.npz")
    ex = crop(material)
    k = int(ex.max()) + 1
    cfg = ReconstructionConfig(seed=0)
    # the volume keys alone, but for the default and the matrix rule itself
    update = {} if name in ("default", "matrix") else {"volume_matrix": False}
    update |= VARIANTS[name] or {}
    if sweeps is not None:
        update["volume_sweeps"] = sweeps
    cfg = cfg.model_copy(update={"anneal": cfg.anneal.model_copy(update=update)})
    cfg = _updated(cfg, list(sets))
    load = os.getloadavg()[0]
    cpu = time.process_time()
    t = time.perf_counter()
    if VARIANTS[name] is None:  # the volume as cached, unannealed
        labels, seconds = cached[source], 0.0
    elif (
        name == "default" and sweeps is None and source == "decoded"
    ):  # main's labels and time (the one chain's are pinned to them)
        labels = cached["labels"]
        seconds = json.loads(str(cached["info"]))["seconds_annealing"]
    else:
        labels = _anneal(
            cached[source],
            [ex] * 3,
            cfg,
            phases=k,
            quarter=side // 4,
            cleanup_seed=1,
            progress=False,
        ).labels
        seconds = time.perf_counter() - t
    cpu = time.process_time() - cpu
    axes = [slice_errors(ex, labels, axis=a, phases=k) for a in range(3)]
    info = {
        "material": material,
        "side": side,
        "variant": name,
        "init": init + (f"+{tag}" if tag else ""),
        "source": source,
        "volume_sweeps": update.get("volume_sweeps", cfg.anneal.volume_sweeps),
        "seconds_annealing": seconds,
        "cpu_seconds": cpu,
        "reconstruct_cpu_seconds": json.loads(str(cached["info"])).get("cpu_seconds"),
        "load": [load, os.getloadavg()[0]],
        "clusters_exemplar": [float(c) for c in axes[0].morphology_exemplar.clusters],
        "clusters_axes": [[float(c) for c in a.morphology_reconstruction.clusters] for a in axes],
        "s2_rmse_axes": [a.s2_rmse for a in axes],
        "lineal_path_rmse_axes": [a.lineal_path_rmse for a in axes],
        "surface_rel": float(
            np.mean(
                [
                    a.morphology_reconstruction.specific_surface[1]
                    / a.morphology_exemplar.specific_surface[1]
                    - 1
                    for a in axes
                ]
            )
        ),
    }
    out.write_text(json.dumps(info))
    print(name, material, json.dumps(info), flush=True)
    return info


def _cached(runs: Path, stem: str, name: str, sweeps, source: str) -> Path | None:
    tag = "" if sweeps is None else f"_sweeps{sweeps:g}"
    tag += "" if source == "decoded" else f"_{source}"
    path = runs / f"{stem}_{name}{tag}.json"
    return path if path.exists() else None


def table(infos: list[dict]) -> list[dict]:
    # the committed 2D reference: the smaller S2 RMSE of the 2D reconstructions at side^2 and
    # at 128^2 (as bench_reconstruction_3d's s2_ratio_to_2d)
    path = RESULTS / "reconstruction_3d.json"
    ref = {}
    if path.exists():
        for r in json.loads(path.read_text())["rows"]:
            ref[(r["material"], r["side"])] = min(r["s2_rmse_2d"], r["s2_rmse_2d_128"])
    rows = []
    for i in infos:
        ce = np.array(i["clusters_exemplar"])
        ca = np.array(i["clusters_axes"])
        rel = ca / np.where(ce > 0, ce, np.nan) - 1
        s2ref = ref.get((i["material"], i["side"]))
        rows.append(
            {
                "material": i["material"],
                "variant": i["variant"],
                "start": f"{i.get('init', 'grf')}/{i.get('source', 'decoded')}",
                "volume_sweeps": i["volume_sweeps"],
                "clusters_exemplar": [round(float(c), 1) for c in ce],
                "clusters_per_axis": [[round(float(c), 1) for c in a] for a in ca],
                "clusters_rel_per_phase": [
                    "/".join(f"{100 * x:+.0f}%" for x in rel[:, j]) for j in range(ce.size)
                ],
                "s2_rmse_max": round(max(i["s2_rmse_axes"]), 5),
                "s2_ratio_to_2d": None
                if s2ref is None
                else round(max(i["s2_rmse_axes"]) / s2ref, 2),
                "lineal_path_rmse_max": round(max(i["lineal_path_rmse_axes"]), 4),
                "surface_rel": f"{100 * i['surface_rel']:+.0f}%",
                "seconds_annealing": round(i["seconds_annealing"], 1),
                "cpu_seconds": round(i["cpu_seconds"], 1),
                "reconstruct_cpu": None
                if i.get("reconstruct_cpu_seconds") is None
                else round(i["reconstruct_cpu_seconds"]),
                "load": [round(x, 1) for x in i["load"]],
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("materials", nargs="*", default=["alloy", "copolymer"])
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--decode", action="store_true")
    ap.add_argument("--sweeps", type=float, default=None, help="volume_sweeps of every variant")
    ap.add_argument("--table", action="store_true", help="only assemble the cached runs")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--runs", type=Path, default=Path("/tmp/volume_stages_runs"))
    ap.add_argument("--out", default="volume_stages", help="results/OUT.md / .json")
    ap.add_argument(
        "--init", choices=["grf", "shell", "lamellae"], default="grf", help="slices.init"
    )
    ap.add_argument(
        "--source", choices=["decoded", "start"], default="decoded", help="the volume annealed"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        help="section.key=value (JSON) for the decoding and the variants, e.g. "
        "slices.coarse_to_fine=true; give --tag to cache them apart",
    )
    ap.add_argument("--tag", default="", help="name of the --set settings in the cache")
    ap.add_argument("--tags", nargs="*", default=None, help="--table: the tags to collect")
    args = ap.parse_args()
    args.runs.mkdir(exist_ok=True)
    torch.set_num_threads(1)
    if args.decode:
        for m in args.materials:
            decode(m, args.side, args.runs, args.init, args.tag, args.set)
        return
    if args.table:  # every cached run of these materials, each sweeps setting
        infos = [
            json.loads(path.read_text())
            for sweeps in (1.0, None)
            for m in args.materials
            for v in args.variants
            for init in ("grf", "shell", "lamellae")
            for tag in args.tags or [args.tag]
            for source in ("decoded", "start")
            if (path := _cached(args.runs, _stem(m, args.side, init, tag), v, sweeps, source))
            is not None
        ]
    else:
        infos = [
            variant(
                m, args.side, v, args.runs, args.sweeps, args.init, args.source, args.tag, args.set
            )
            for m in args.materials
            for v in args.variants
        ]
    rows = table(infos)
    report(args.out, rows, title="3D annealing stages, 64^3 volumes of the Li et al. crops")
    write_markdown(rows, [x for i in infos for x in i["load"]], args)


def write_markdown(rows: list[dict], loads: list[float], args) -> None:
    """``results/volume_stages.md``: the table, with how it was made."""
    keys = list(rows[0])
    lines = [
        "# 3D annealing stages on 64^3 volumes of the Li et al. (2018) crops",
        "",
        f"2 CPUs shared with other jobs (load average {min(loads):.0f}-{max(loads):.0f}), one "
        "thread, `nice -n 10`. `python bench/bench_volume_stages.py --decode "
        f"{' '.join(args.materials)}` then `python bench/bench_volume_stages.py "
        f"{' '.join(args.materials)} [--sweeps 1]`, then `--table`: one decoded volume per "
        "material (`reconstruct`, defaults, seed 0, the central 128x128 crop), annealed by each "
        "variant (`volume_sweeps` as given: 1, or the default 3; seed 0; the default at 3 sweeps "
        "is the `reconstruct` run's own annealing). Clusters per slice window against the "
        "exemplar's in equal windows (`slice_errors`), per axis; `s2_ratio_to_2d` is the "
        "largest axis's slice S2 RMSE over the committed 2D reconstruction's "
        "(`reconstruction_3d.json`, the smaller of 64^2 and 128^2); `cpu_seconds` is the "
        "annealing's own CPU time (the wall time is inflated by the machine's load). `start`: "
        "`slices.init` (`--init`: grf, shell, lamellae) / the volume annealed (`--source`: "
        "`decoded`, after Adam and k-means; `start`, the start labels, no Adam); the variant "
        "`none` is that volume unannealed.",
        "",
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
    ]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
