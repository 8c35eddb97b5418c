"""The whole 3D bench's run with ``anneal.volume_sheets`` on (issue 28, item 2).

Runs ``bench_reconstruction_3d.run_one`` (a volume at ``side^3`` from the central 128x128 crop,
the 2D reconstructions at ``side^2`` and 128^2 in the same process, the fitted GRF, the
conductivity tensor) with the defaults plus ``anneal.volume_sheets: true`` (and ``--set``
settings), one process per seed, one thread. Per seed and axis: slice cluster counts per window
against the exemplar's, the slice S2 RMSE over the same run's 2D reconstruction's (at ``side^2``,
the 3D bench's reference being the smaller of the two, and at 128^2), CPU seconds, load.
Outputs ``results/volume_sheets.md`` / ``.json``.

    python bench/bench_volume_sheets.py --seeds 0 1
    python bench/bench_volume_sheets.py --seeds 0 1 --merge
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import RESULTS, report


def run(material: str, side: int, seed: int, out: Path, sets: list[str]) -> None:
    """``run_one`` in this process with the sheets on (the config class patched)."""
    import bench_reconstruction_3d as b3
    from bench_volume_stages import _updated

    import mdesign.config as mc

    base = mc.ReconstructionConfig

    def sheets(**kw):
        cfg = base(**kw)
        cfg = cfg.model_copy(
            update={"anneal": cfg.anneal.model_copy(update={"volume_sheets": True})}
        )
        return _updated(cfg, sets)

    mc.ReconstructionConfig = sheets
    try:
        b3.run_one(material, side, seed, out)
    finally:
        mc.ReconstructionConfig = base


def row(path: Path) -> dict:
    info = json.loads(str(np.load(path)["info"]))
    s2 = [a["s2_rmse"] for a in info["axes"]]
    ref64, ref128 = info["two_d"]["s2_rmse"], info["two_d_full"]["s2_rmse"]
    return {
        "material": info["material"],
        "side": info["side"],
        "seed": info["seed"],
        "clusters_exemplar": [round(c, 2) for c in info["axes"][0]["clusters_exemplar"]],
        "clusters_rel_axes_phase0_1": [
            "/".join(f"{100 * x:+.0f}%" for x in a["clusters_rel"]) for a in info["axes"]
        ],
        "s2_rmse_axes": [round(x, 5) for x in s2],
        "s2_rmse_2d": round(ref64, 5),
        "s2_rmse_2d_128": round(ref128, 5),
        "s2_ratio_to_2d": round(max(s2) / min(ref64, ref128), 2),
        "s2_ratio_to_2d_128": round(max(s2) / ref128, 2),
        "s2_rmse_grf": round(float(np.mean([a["s2_rmse"] for a in info["grf_axes"]])), 5),
        "lineal_path_rmse_max": round(max(a["lineal_path_rmse"] for a in info["axes"]), 4),
        "surface_rel": f"{100 * np.mean([a['specific_surface_rel'] for a in info['axes']]):+.0f}%",
        "cpu_seconds": round(info["cpu_seconds"], 1),
        "peak_rss_mb": round(info["peak_rss_mb"]),
        "load": [round(info["load_before"], 1), round(info["load_after"], 1)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--material", default="alloy")
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--runs", type=Path, default=Path("/tmp/volume_sheets_runs"))
    ap.add_argument("--set", action="append", default=[], help="section.key=value (JSON)")
    ap.add_argument("--merge", action="store_true", help="only assemble the cached runs")
    ap.add_argument("--name", default="volume_sheets", help="results file name")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    path = lambda s: args.runs / f"whole_{args.material}_{args.side}_s{s}.npz"  # noqa: E731
    if args.one is not None:
        run(args.material, args.side, args.one, path(args.one), args.set)
        return
    if not args.merge:  # one process per seed, side by side
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--one", str(s), "--material", args.material]
                + ["--side", str(args.side), "--runs", str(args.runs)]
                + [x for item in args.set for x in ("--set", item)]
            )
            for s in args.seeds
            if not path(s).exists()
        ]
        for p in procs:
            p.wait()
    rows = [row(path(s)) for s in args.seeds if path(s).exists()]
    report(args.name, rows, title="3D with anneal.volume_sheets, the whole bench's run")
    keys = list(rows[0])
    lines = [
        "# 3D with `anneal.volume_sheets` on (the whole bench's run)",
        "",
        "`python bench/bench_volume_sheets.py --seeds "
        + " ".join(map(str, args.seeds))
        + "".join(f" --set {x}" for x in args.set)
        + "`: `bench_reconstruction_3d.run_one` with the sheets on, one process per seed, one "
        "thread, `nice -n 10`, on 2 cores shared with other jobs (load as given). "
        "`s2_ratio_to_2d`: the largest axis's slice S2 RMSE over the smaller of the same run's 2D "
        "reconstructions' (at the slices' size and at 128^2, as the 3D bench); "
        "`s2_ratio_to_2d_128`: over the 128^2 one's.",
        "",
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
    ]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
