"""The reconstruction bench's peer helpers: the SNESIM worker's GSLIB files and parameter file
(``bench/_snesim_worker.py``) and the copy check ``block_match`` (``bench_reconstruction.py``)."""

import numpy as np
import pytest

from tests.conftest import bench_module


@pytest.fixture(scope="module")
def worker():
    with bench_module("_snesim_worker") as module:
        yield module


@pytest.fixture(scope="module")
def bench():
    with bench_module("bench_reconstruction") as module:
        yield module


def test_gslib_round_trips_a_non_square_three_phase_image(worker, tmp_path):
    labels = np.random.default_rng(0).integers(0, 3, size=(5, 7))
    path = tmp_path / "ti.dat"
    worker.write_gslib(path, labels)
    head = path.read_text().split("\n")
    assert head[0] == "7 5 1"  # x (columns) first
    assert head[3] == str(labels[0, 0]) and head[4] == str(labels[0, 1])  # x fastest
    assert np.array_equal(worker.read_gslib(path), labels)


def test_gslib_reader_takes_mpslib_output_on_one_line_and_refuses_a_short_grid(worker, tmp_path):
    path = tmp_path / "sim.gslib"
    path.write_text("3 2 1\n1\nv\n0 1 1 0 0 1\n")
    assert worker.read_gslib(path).tolist() == [[0, 1, 1], [0, 0, 1]]
    path.write_text("3 2 1\n1\nv\n0 1 1 0 0\n")
    with pytest.raises(ValueError, match="5 values"):
        worker.read_gslib(path)


def test_parameter_file_carries_the_setting_in_mpslib_order(worker):
    req = {"template": 11, "multiple_grids": 3, "n_cond": 81, "min_node_count": 0, "seed": 4}
    text = worker.par_text({**req, "phases": 2}, (64, 96), "ti.dat", "out")
    values = [line.split(" # ")[1] for line in text.splitlines()]
    assert len(values) == 28
    assert values[:8] == ["1", "4", "3", "0", "81", "11 11", "11 11", "1 1"]
    assert values[8:11] == ["96", "64", "1"]  # grid size X (columns), Y (rows), Z
    assert values[17:19] == ["ti.dat", "out"] and values[23] == "0;1"


def test_block_match_is_one_for_a_shifted_copy_and_below_for_another_image(bench):
    rng = np.random.default_rng(1)
    ex = (rng.random((96, 96)) < 0.4).astype(np.uint8)
    shifted = ex[10:74, 23:87]  # a 64 x 64 window of the exemplar, blocks cut anywhere
    assert bench.block_match(shifted, ex) == pytest.approx((1.0, 1.0))
    other = (rng.random((64, 64)) < 0.4).astype(np.uint8)
    median, largest = bench.block_match(other, ex)
    assert largest < 0.75 and median <= largest


def test_report_prints_rows_of_other_keys_as_a_table_of_their_own(tmp_path, monkeypatch, capsys):
    # a summary of goals followed by the CPU ratios (bench_reconstruction.py's merge): the
    # ratios printed under their own header, not as rows of "None" under the goals' keys
    with bench_module("_util") as util:
        monkeypatch.setattr(util, "RESULTS", tmp_path)
        rows = [
            {"column": "default", "clusters": "6/6", "median_cpu_seconds": 12.5},
            {"column": "SNESIM", "clusters": "4/6"},
            {"ratio": "default / SNESIM", "cpu_ratio": 3.2},
        ]
        util.report("summary", rows, title="goals")
    out = capsys.readouterr().out
    assert "None" not in out
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert lines[1] == ["column", "clusters", "median_cpu_seconds"]
    assert lines[3] == ["SNESIM", "4/6"]
    assert lines[4] == ["ratio", "cpu_ratio"] and lines[5] == ["default", "/", "SNESIM", "3.2"]
    assert (tmp_path / "summary.json").exists()
