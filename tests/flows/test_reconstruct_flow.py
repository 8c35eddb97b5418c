"""The folder flow's tasks, called directly (an embedded Prefect start costs 6-14 s)."""

import csv
import json

import numpy as np
import pytest
import torch

from mdesign.errors import InputError
from mdesign.io import read_images

pytest.importorskip("prefect")
from mdesign_flows.reconstruct import reconstruct_task, table_task

from mdesign.data import LI2018_DIR as LI2018


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread (see tests/reconstruction/conftest.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FAST = {"weights": "random", "iterations": 3, "anneal_sweeps": 0.2}


def test_tasks_write_outputs_and_one_table(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    li = np.load(LI2018 / "ceramics_64.npy")  # a real exemplar
    np.save(src / "a.npy", li[:32, :32])
    np.save(src / "b.npy", li[32:, 32:])
    (src / "notes.txt").write_text("not an image")
    from mdesign.reconstruction.batch import exemplar_files

    files = exemplar_files(src)
    assert [f.name for f in files] == ["a.npy", "b.npy"]
    out = tmp_path / "out"
    rows = [reconstruct_task.fn(str(f), str(out), FAST) for f in files]
    table = table_task.fn(rows, str(out / "reconstructions.csv"))
    with open(table) as fh:
        got = list(csv.DictReader(fh))
    assert [r["exemplar"] for r in got] == [str(f) for f in files]
    for r, f in zip(got, files, strict=True):
        stem = f.stem
        assert read_images(out / f"{stem}.npz").images.shape == (1, 32, 32)
        assert read_images(out / f"{stem}_grf.npz").images.shape == (1, 32, 32)
        report = json.loads((out / f"{stem}.json").read_text())
        assert float(r["s2_rmse"]) == pytest.approx(report["s2_rmse"])
        assert float(r["fraction_error_pixels"]) <= 1
        assert float(r["grf_s2_rmse"]) >= 0 and r["grf_covariance"]
        assert (out / f"{stem}.png").stat().st_size > 0


def test_empty_folder_is_an_input_error(tmp_path):
    from mdesign.reconstruction.batch import exemplar_files

    with pytest.raises(InputError, match="no exemplar files"):
        exemplar_files(tmp_path)
