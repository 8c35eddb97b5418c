"""The 3D reconstruction bench's ``--splice`` (``bench/bench_reconstruction_3d.py``): rows replaced
by material, side and seed, the others and the table's columns kept."""

import pytest

from tests.conftest import bench_module


def test_splice_replaces_rows_by_material_side_and_seed_only():
    old = [
        {"material": "alloy", "side": 64, "seconds": 1.0},  # no seed: seed 0
        {"material": "carbonate", "side": 64, "seconds": 2.0},
        {"material": "alloy", "side": 96, "seconds": 3.0},
    ]
    new = [
        {"material": "alloy", "side": 64, "seed": 0, "seconds": 9.0, "clusters_exemplar": [1]},
        {"material": "alloy", "side": 96, "seed": 1, "seconds": 8.0},
        {"material": "pmma", "side": 96, "seed": 0, "seconds": 7.0},
    ]
    with bench_module("bench_reconstruction_3d") as bench:
        with pytest.raises(ValueError, match="seed column"):
            bench.splice(old, new)  # seed 1 into a table without seeds
        rows = bench.splice(old, new[::2])
        seeded = bench.splice([{**r, "seed": 0} for r in old], new)
        md = "# t\n\nmachine\n\nnote one\n\nnote two\n\nSlice statistics: ...\n\n## Goals\n"
        assert bench._notes(md) == ["note one", "note two"]
    # replaced in place, in the table's columns (the new row's extra keys dropped)
    assert rows[0] == {"material": "alloy", "side": 64, "seconds": 9.0}
    # the same material at another side, and another material: untouched
    assert rows[1] is old[1] and rows[2] is old[2]
    # another material and side: appended
    assert rows[3:] == [{"material": "pmma", "side": 96, "seconds": 7.0}]
    # with seeds: another seed is appended, not replacing
    assert [(r["material"], r["side"], r["seed"], r["seconds"]) for r in seeded] == [
        ("alloy", 64, 0, 9.0),
        ("carbonate", 64, 0, 2.0),
        ("alloy", 96, 0, 3.0),
        ("alloy", 96, 1, 8.0),
        ("pmma", 96, 0, 7.0),
    ]
