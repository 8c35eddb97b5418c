"""More annealing variants replayed on the other kinds of image (issue 28, item 3).

``bench_reconstruction_kinds.py`` with its ``STAGES`` extended by :data:`MORE` (annealing
settings that are not stages switched off: more sweeps, a walk past accepted swaps, the
temperature schedule, the cluster guard with a lighter neighbourhood term), so that they can be
picked with ``--replays``. Everything else (inputs, cached runs, metrics, tables) is that
bench's; for example ``python bench/bench_reconstruction_kinds_more.py --merge --images
photograph disks network --runs DIR --name NAME --replays default "sweeps 2"``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_reconstruction_kinds as kinds

MORE: dict[str, dict] = {
    "sweeps 2": {"anneal": {"sweeps": 2.0}},
    "sweeps 3": {"anneal": {"sweeps": 3.0}},
    "walk": {"anneal": {"walk": True}},
    "final temperature 1e-4": {"anneal": {"final_temperature": 1e-4}},
    "initial acceptance 0.2": {"anneal": {"initial_acceptance": 0.2}},
    "weight 1, sweeps 2": {"anneal": {"neighbour_weight": 1.0, "sweeps": 2.0}},
    "no guard, weight 1": {"anneal": {"neighbour_weight": 1.0, "keep_clusters": False}},
    "weight 2": {"anneal": {"neighbour_weight": 2.0}},
    "weight 5": {"anneal": {"neighbour_weight": 5.0}},
    "weight 10": {"anneal": {"neighbour_weight": 10.0}},
}
"""Annealing settings replayed beside ``bench_reconstruction_kinds.STAGES`` (overrides)."""

if __name__ == "__main__":
    kinds.STAGES.update(MORE)
    kinds.main()
