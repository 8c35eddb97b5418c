import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from mdesign.io import read_images
from mdesign.reconstruction.metrics import cluster_counts
from tests.conftest import assert_input_error, snapshot

FAST = ("--weights", "random", "--iterations", "4", "-q")
CONTRACT_KEYS = {
    "volume_fraction_exemplar",
    "volume_fraction_reconstruction",
    "s2_rmse",
    "lineal_path_rmse",
    "iterations",
    "seconds",
    "weights",
}


@pytest.fixture
def exemplar(tmp_path, ceramics_crop):
    path = tmp_path / "ex.npy"
    np.save(path, ceramics_crop)
    return path


def test_reconstruct_writes_stack_report_and_plot(run_cli, tmp_path, exemplar, ceramics_crop):
    out, rep, plot = tmp_path / "rec.npz", tmp_path / "rep.json", tmp_path / "rec.png"
    res = run_cli(
        "reconstruct", exemplar, "-o", out, "--size", "36", "40", "--seed", "2",
        "--report", rep, "--plot", plot, *FAST,
    )  # fmt: skip
    assert res.code == 0, res.err
    stack = read_images(out)
    assert stack.images.shape == (1, 36, 40)
    assert stack.extras["meta"]["command"] == "reconstruct"
    report = json.loads(rep.read_text())
    assert CONTRACT_KEYS <= report.keys()
    assert report["weights"] == "random" and report["iterations"] == 4
    phi = float(ceramics_crop.mean())
    assert report["volume_fraction_exemplar"] == pytest.approx([1 - phi, phi])
    assert abs(report["volume_fraction_reconstruction"][1] - phi) * 36 * 40 <= 1
    assert plot.stat().st_size > 10_000
    assert res.err == ""  # -q: no bars, no notes
    # the out-of-loss morphology, of the written image and of the exemplar
    # (sizes differ: the output is counted in windows of the exemplar's 32 x 32, at 3 x 3
    # offsets, by a flood fill here)
    rec = stack.images[0]
    windows = [rec[y : y + 32, x : x + 32] for y in (0, 2, 4) for x in (0, 4, 8)]
    mean = [np.mean([ndimage.label(w == j)[1] for w in windows]) for j in (0, 1)]
    assert report["clusters_reconstruction"] == pytest.approx(mean, abs=0.005)
    assert report["clusters_exemplar"] == cluster_counts(ceramics_crop, phases=2).tolist()
    for key in ("specific_surface", "mean_chord_length"):
        assert len(report[f"{key}_exemplar"]) == len(report[f"{key}_reconstruction"]) == 2
        ex, re = report[f"{key}_exemplar"][1], report[f"{key}_reconstruction"][1]
        assert report[f"{key}_relative_error"][1] == pytest.approx(re / ex - 1)
    assert report["lineal_path_rmse_per_phase"][1] == pytest.approx(report["lineal_path_rmse"])


def test_weights_file_through_the_cli(run_cli, tmp_path, exemplar, vgg_file):
    out = tmp_path / "rec.png"
    res = run_cli("reconstruct", exemplar, "-o", out, "--weights", vgg_file, "--iterations", "2")
    assert res.code == 0, res.err
    assert read_images(out).images.shape == (1, 32, 32)


@pytest.mark.parametrize(
    ("make", "args", "needles"),
    [
        (lambda p: np.save(p, np.zeros((2, 32, 32), np.uint8)), (), ("one 2D image",)),
        (lambda p: np.save(p, np.ones((32, 32), np.uint8)), (), ("only one phase",)),
        (None, ("--phases", "9"), ("--phases", "8")),
        (lambda p: np.save(p, np.eye(24, dtype=np.uint8)), (), ("at least 32",)),
        (None, ("--size", "20"), ("--size", "32")),
        (None, ("--size", "40", "40", "40", "40"), ("--size", "4 numbers")),
        (None, ("--iterations", "0"), ("iterations",)),
    ],
)
def test_bad_input(run_cli, tmp_path, exemplar, make, args, needles):
    path = exemplar
    if make is not None:
        path = tmp_path / "bad.npy"
        make(path)
    res = run_cli("reconstruct", path, "-o", tmp_path / "o.npz", "--weights", "random", *args)
    assert_input_error(res, *needles)
    assert not (tmp_path / "o.npz").exists()


def test_nine_labels_in_a_stack(run_cli, tmp_path):
    # a .npz stack holds labels by contract: nine of them are nine phases, not a gray image
    path = tmp_path / "nine.npz"
    np.savez(path, images=(np.arange(32 * 32).reshape(1, 32, 32) % 9).astype(np.uint8))
    res = run_cli("reconstruct", path, "-o", tmp_path / "o.npz", "--weights", "random")
    assert_input_error(res, str(path), "8")


def test_bad_weights_leave_the_old_output_alone(run_cli, tmp_path, exemplar):
    out = tmp_path / "o.npz"
    out.write_bytes(b"precious")
    junk = tmp_path / "w.pth"
    junk.write_bytes(b"junk")
    res = run_cli("reconstruct", exemplar, "-o", out, "--weights", junk)
    assert_input_error(res, str(junk), "cannot read")
    wrong = tmp_path / "wrong.pth"
    torch.save({"0.weight": torch.zeros(64, 3, 3, 3)}, wrong)
    res = run_cli("reconstruct", exemplar, "-o", out, "--weights", wrong)
    assert_input_error(res, "missing", "VGG19")
    res = run_cli("reconstruct", exemplar, "-o", out, "--weights", tmp_path / "none.pth")
    assert_input_error(res, "no such file")
    assert out.read_bytes() == b"precious"


def test_imagenet_offline_is_an_error_not_a_fallback(run_cli, tmp_path, exemplar, monkeypatch):
    def offline(url, **kw):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    res = run_cli("reconstruct", exemplar, "-o", tmp_path / "o.npz", "--weights", "imagenet")
    assert_input_error(res, "--weights: imagenet: cannot fetch", "or random")
    assert not (tmp_path / "o.npz").exists()


def test_bad_report_suffix_before_any_work(run_cli, tmp_path, exemplar):
    res = run_cli("reconstruct", exemplar, "-o", tmp_path / "o.npz", "--report", tmp_path / "r.txt")
    assert_input_error(res, "--report")


# --- hardening (issue 13) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["-o", "{ex}"], ("-o", "is the input EXEMPLAR")),
        (["-o", "{tmp}/old.npz", "--report", "/proc/mdesign-r.json"], ("--report", "/proc")),
        (["-o", "{tmp}/old.npz", "--size", "100000", "100000"], ("--size", "of memory")),
        (["-o", "{tmp}/old.npz", "--seed", "-1"], ("--seed",)),
        (["-o", "{tmp}/old.npz", "--config", "{ex}"], ("ex.npy", "binary")),
    ],
)
def test_refused_before_work_and_nothing_replaced(
    run_cli, tmp_path, exemplar, monkeypatch, args, needles
):
    import mdesign.reconstruction

    (tmp_path / "old.npz").write_bytes(b"an earlier reconstruction")
    before = snapshot(tmp_path)

    def must_not_run(*a, **k):
        raise AssertionError("the reconstruction started before the input was checked")

    monkeypatch.setattr(mdesign.reconstruction, "reconstruct", must_not_run)
    args = [a.format(ex=exemplar, tmp=tmp_path) for a in args]
    assert_input_error(run_cli("reconstruct", exemplar, *args, *FAST), *needles)
    assert snapshot(tmp_path) == before


# --- volumes (--size H W D) ------------------------------------------------------------------

VOLUME_CONFIG = """\
layers: [relu1_1, pool1, pool2]
s2_max_lag: 6
volume_anneal_sweeps: 0.05
volume_anneal_max_lag: 4
"""


@pytest.fixture
def fast_volume(tmp_path):
    path = tmp_path / "fast.yaml"
    path.write_text(VOLUME_CONFIG)
    return ("--config", path, "--weights", "random", "--iterations", "2", "-q")


def test_volume_writes_stack_report_plot_and_tif(
    run_cli, tmp_path, exemplar, ceramics_crop, fast_volume
):
    out, rep, plot = tmp_path / "vol.npz", tmp_path / "rep.json", tmp_path / "vol.png"
    res = run_cli(
        "reconstruct", exemplar, "-o", out, "--size", "32", "32", "32", "--seed", "5",
        "--report", rep, "--plot", plot, *fast_volume,
    )  # fmt: skip
    assert res.code == 0, res.err
    assert res.err == ""
    with np.load(out) as z:
        volume = z["images"]
        assert volume.shape == (1, 32, 32, 32) and volume.dtype == np.uint8
        meta = json.loads(str(z["meta"]))
        phi = float(volume.mean())
        assert z["volume_fraction"] == pytest.approx([phi])
    assert meta["command"] == "reconstruct" and meta["size"] == [32, 32, 32]
    assert meta["exemplar"] == [str(exemplar)]
    # the exemplar's fraction, to one voxel
    assert abs(phi - ceramics_crop.mean()) * 32**3 <= 1
    report = json.loads(rep.read_text())
    assert CONTRACT_KEYS <= report.keys()
    assert report["iterations"] == 2 and report["weights"] == "random"  # --iterations: Adam steps
    assert report["shape"] == [32, 32, 32] and len(report["axes"]) == 3
    assert report["volume_fraction_reconstruction"][1] == pytest.approx(phi)
    assert plot.stat().st_size > 10_000
    # the same run to a .tif: one page per H, the same voxels, read back as a volume
    tif = tmp_path / "vol.tif"
    res = run_cli(
        "reconstruct", exemplar, "-o", tif, "--size", "32", "32", "32", "--seed", "5",
        *fast_volume,
    )  # fmt: skip
    assert res.code == 0, res.err
    back = read_images(tif, volumes=True).images
    assert back.shape == (1, 32, 32, 32)
    np.testing.assert_array_equal(back, volume)
    res = run_cli("characterize", tif, "--json", "-q")
    assert res.code == 0, res.err
    char = json.loads(res.out)
    assert char["n_images"] == 1 and char["shape"] == [32, 32, 32]


@pytest.fixture
def three_phase_file(tmp_path):
    from mdesign.data import li2018_exemplar

    path = tmp_path / "composite.npy"
    np.save(path, li2018_exemplar("composite", 64))
    return path


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["{ex}", "{ex}", "-o", "{tmp}/old.npz", "--size", "32", "32", "32"], ("got 2",)),
        (["{ex}", "{ex}", "{ex}", "-o", "{tmp}/old.npz"], ("3 exemplars", "--size H W D")),
        (["{ex}", "{ex}", "{ex}", "-o", "{tmp}/old.npz", "--size", "40"], ("3 exemplars",)),
        (["{ex}", "{ex}", "{ex}", "-o", "{tmp}/old.npz", "--size", "40", "40"], ("3 exemplars",)),
        (["{ex}", "-o", "{tmp}/old.npz", "--size", "32", "32", "16"], ("--size", "at least 32")),
        (["{ex}", "-o", "{tmp}/old.npz", "--size", "1", "2", "3", "4"], ("--size", "4 numbers")),
        (["{ex}", "-o", "{tmp}/x.png", "--size", "32", "32", "32"], ("-o", ".png")),
        (
            ["{ex}", "{three}", "{ex}", "-o", "{tmp}/old.npz", "--size", "32", "32", "32"],
            ("same phases", "composite.npy: 3"),
        ),
        (["{ex}", "-o", "{tmp}/old.npz", "--size", "4000", "4000", "4000"], ("--size", "memory")),
        (
            ["{ex}", "-o", "{tmp}/old.npz", "--size", "32", "32", "32", "--iterations", "0"],
            ("--iterations",),
        ),
    ],
)
def test_volume_refused_before_work_and_nothing_replaced(
    run_cli, tmp_path, exemplar, three_phase_file, monkeypatch, args, needles
):
    import mdesign.reconstruction

    (tmp_path / "old.npz").write_bytes(b"an earlier reconstruction")
    before = snapshot(tmp_path)

    def must_not_run(*a, **k):
        raise AssertionError("the reconstruction started before the input was checked")

    monkeypatch.setattr(mdesign.reconstruction, "reconstruct", must_not_run)
    args = [a.format(ex=exemplar, tmp=tmp_path, three=three_phase_file) for a in args]
    assert_input_error(run_cli("reconstruct", *args, "--weights", "random", "-q"), *needles)
    assert snapshot(tmp_path) == before


def test_volume_memory_budget_counts_the_chunk(run_cli, tmp_path, exemplar, monkeypatch):
    # a budget that holds the default chunk of slices but not 64 of them
    import mdesign.reconstruction
    from mdesign.config import RECONSTRUCTION_DEFAULTS
    from mdesign.errors import InputError
    from mdesign.memory import ENV_LIMIT
    from mdesign.reconstruction.pipeline import reconstruction_memory

    shape = (32, 40, 48)
    chunk = RECONSTRUCTION_DEFAULTS.slices.chunk
    assert chunk < 64
    monkeypatch.setenv(ENV_LIMIT, str(reconstruction_memory(shape, chunk=chunk)))

    def started(*a, **k):
        raise InputError("started")

    monkeypatch.setattr(mdesign.reconstruction, "reconstruct", started)
    size = ("--size", *map(str, shape))
    out = tmp_path / "o.npz"
    assert_input_error(run_cli("reconstruct", exemplar, "-o", out, *size, "-q"), "started")
    config = tmp_path / "big.yaml"
    config.write_text("volume_chunk: 64\n")
    res = run_cli("reconstruct", exemplar, "-o", out, *size, "--config", config, "-q")
    assert_input_error(res, "--size", "memory")
    assert not out.exists()
