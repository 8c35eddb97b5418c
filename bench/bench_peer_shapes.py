"""Closed networks and round particles, in numbers, per column of the peer benches' cached runs.

Reads the runs that ``bench_reconstruction.py --seeds ... --variants default`` (``--li-runs``)
and ``bench_reconstruction_kinds.py --replays default`` (``--kinds-runs``) cached, with their
DeeSse and SNESIM realisations, and measures per image, seed and column (exemplar, the GRF of
the same seed, DeeSse, SNESIM, mdesign's default):

* networks (the kinds bench's Voronoi ``network``, phase 1; the Li ``alloy``'s grain boundaries,
  phase 0): the open ends of the network's skeleton (:func:`mdesign.reconstruction.ends.
  network_ends`: dead ends, spurs under 4 px not counted; ends within 4 px of the edge of a
  non-periodic image left out), 0 for a closed network;
* particles (the kinds bench's ``disks`` and the Li ``pmma``, phase 1): the particles (4-connected,
  at least 10 px) that do not touch the image's edge, their median solidity (area / convex hull
  area: 1 for a convex particle; a pair of overlapping disks about 0.9) and the share above 0.9.

Usage: ``python bench/bench_peer_shapes.py --li-runs DIR --kinds-runs DIR``; results
``bench/results/NAME.md`` (``--name``, default ``reconstruction_peer_shapes``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from skimage.measure import label, regionprops

sys.path.insert(0, str(Path(__file__).parent))
import bench_reconstruction as br
import bench_reconstruction_kinds as bk
from _util import RESULTS

from mdesign.reconstruction.ends import network_ends

LI = ("alloy", "carbonate", "ceramics", "copolymer", "pmma", "sandstone")
KINDS = ("photograph", "disks", "network")
NETWORK = {"network": 1, "alloy": 0}
PARTICLES = {"disks": 1, "pmma": 1}


def open_ends(labels: np.ndarray, phase: int, periodic: bool) -> int:
    return len(network_ends(labels, phase=phase, periodic=periodic, border=0 if periodic else 4))


def solidity(labels: np.ndarray, phase: int) -> tuple[int, float, float]:
    """Interior particles of ``phase`` (>= 10 px, not touching the edge): count, median solidity,
    share of solidity above 0.9."""
    h, w = labels.shape
    s = [
        r.solidity
        for r in regionprops(label(labels == phase, connectivity=1))
        if r.area >= 10 and min(r.bbox[:2]) > 0 and r.bbox[2] < h and r.bbox[3] < w
    ]
    if not s:
        return 0, float("nan"), float("nan")
    return len(s), float(np.median(s)), float(np.mean(np.array(s) > 0.9))


def columns(name: str, ex: np.ndarray, seed: int, peers: dict, mine: np.ndarray) -> dict:
    grf = br.grf_baseline(ex, ex.shape, phases=int(ex.max()) + 1, seed=seed)[0]
    out = {"exemplar": (ex, False), "GRF": (grf, True)}
    out.update({c: (labels, False) for c, labels in peers.items()})
    out["default"] = (mine, True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--li-runs", type=Path, required=True)
    parser.add_argument("--kinds-runs", type=Path, required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--name", default="reconstruction_peer_shapes")
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        kinds_peers = {
            c: np.load(args.kinds_runs / f"{c}__{seed}__{'_'.join(KINDS)}.npz")["labels"]
            for c in br.PEERS
        }
        li = args.li_runs / f"128_{seed}_default"
        li_peers = {c: np.load(li / f"{c}__{'_'.join(LI)}.npz")["labels"] for c in br.PEERS}
        work = []
        for name in ("network", "disks"):
            i = KINDS.index(name)
            mine = next(args.kinds_runs.glob(f"{name}__{seed}__default__*.npy"))
            peers = {c: v[i] for c, v in kinds_peers.items()}
            work.append((name, bk.image(name), peers, np.load(mine)))
        for name in ("alloy", "pmma"):
            i = LI.index(name)
            peers = {c: v[i] for c, v in li_peers.items()}
            mine = np.load(li / f"default__{name}.npz")["labels"]
            work.append((name, br.crop(name, 128), peers, mine))
        for name, ex, peers, mine in work:
            for column, (labels, periodic) in columns(name, ex, seed, peers, mine).items():
                r = {"image": name, "seed": seed, "column": column}
                if name in NETWORK:
                    r["open ends"] = open_ends(labels, NETWORK[name], periodic)
                else:
                    n, med, share = solidity(labels, PARTICLES[name])
                    r.update({"particles": n, "solidity": med, "share > 0.9": share})
                rows.append(r)
                print(r, flush=True)
    lines = ["| image | seed | column | open ends | interior particles | median solidity | "
             "solidity > 0.9 |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        cells = [r["image"], r["seed"], r["column"], r.get("open ends", "")]
        if "particles" in r:
            cells += [r["particles"], f"{r['solidity']:.3f}", f"{r['share > 0.9']:.2f}"]
        else:
            cells += ["", "", ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    text = "\n\n".join(
        [
            "# Closed networks and round particles per column (the peer benches' cached runs)",
            "`python bench/bench_peer_shapes.py` (module docstring: the measures). Networks: open "
            "ends of the thin phase's skeleton (0: closed). Particles: interior particles (>= 10 "
            "px, not touching the edge), median solidity and the share above 0.9.",
            "\n".join(lines),
        ]
    )
    (RESULTS / f"{args.name}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
