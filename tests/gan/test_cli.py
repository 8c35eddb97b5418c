"""``mdesign train`` and ``mdesign sample`` end to end, on a tiny config, and their bad input."""

import json

import numpy as np
import pytest
import torch

from tests.conftest import assert_input_error, snapshot


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 32x32 GRF stack made by the CLI and a tiny model trained on it for 2 epochs."""
    import yaml

    from mdesign.cli import main
    from tests.gan.conftest import TINY

    root = tmp_path_factory.mktemp("gan_cli")
    data = root / "grf.npz"
    args = ["grf", "-n", "32", "--size", "32", "--volume-fraction", "0.3:0.5"]
    args += ["--correlation-length", "2:3", "--seed", "1", "-o", str(data), "-q"]
    assert main(args) == 0
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = root / "run"
    first = ["train", "--data", str(data), "--config", str(cfg), "--out", str(out), "-q"]
    assert main([*first, "--epochs", "1"]) == 0
    assert main(["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--resume"]) == 0
    return data, cfg, out


def test_train_writes_the_contract_files(tiny_run):
    _, _, out = tiny_run
    for name in ("checkpoint.pt", "model.pt", "config.yaml", "metrics.jsonl"):
        assert (out / name).is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert (out / "samples" / "epoch_0002.png").is_file()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and state["data_meta"]["grf"]["seed"] == 1


def test_train_resume_with_nothing_to_do(run_cli, tiny_run):
    data, _, out = tiny_run
    res = run_cli("train", "--data", data, "--out", out, "--epochs", "2", "--resume")
    assert res.code == 0 and "nothing to do" in res.err


def test_sample_writes_images_with_their_latents(run_cli, tiny_run, tmp_path):
    _, _, out = tiny_run
    first = tmp_path / "s.npz"
    res = run_cli(
        "sample",
        "--checkpoint",
        out / "model.pt",
        "-n",
        5,
        "--latent-size",
        2,
        "--seed",
        3,
        "-o",
        first,
        "-q",
    )
    assert res.code == 0, res.err
    with np.load(first) as f:
        images, latents, meta = f["images"], f["latents"], json.loads(str(f["meta"]))
    assert images.shape == (5, 64, 64) and latents.shape == (5, 1, 2, 2)
    assert latents.dtype == np.float32 and np.abs(latents).max() <= 1
    assert meta["command"] == "sample" and meta["seed"] == 3 and meta["epoch"] == 2
    # decoding the saved latents again gives the same images
    again = tmp_path / "again.npz"
    res = run_cli("sample", "--checkpoint", out / "checkpoint.pt", "--latent", first, "-o", again)
    assert res.code == 0, res.err
    with np.load(again) as f:
        assert np.array_equal(f["images"], images)
    np.save(tmp_path / "z.npy", latents[0])  # a single C x h x w latent
    res = run_cli(
        "sample",
        "--checkpoint",
        out / "model.pt",
        "--latent",
        tmp_path / "z.npy",
        "--periodic",
        "-o",
        tmp_path / "one.png",
        "-q",
    )
    assert res.code == 0 and (tmp_path / "one.png").is_file()


def test_sample_report(run_cli, tiny_run, tmp_path):
    _, _, out = tiny_run
    report, plot = tmp_path / "r.json", tmp_path / "r.png"
    res = run_cli(
        "sample",
        "--checkpoint",
        out / "model.pt",
        "-n",
        20,
        "-o",
        tmp_path / "g.npz",
        "--report",
        report,
        "--plot",
        plot,
    )
    assert res.code == 0, res.err
    rep = json.loads(report.read_text())
    assert rep["n_images"] == 20 and rep["max_distance"] == 16  # half of 32
    assert rep["s2_ratio"] == pytest.approx(rep["s2_distance_generated"] / rep["s2_distance_real"])
    assert "S2 distance" in res.err and plot.is_file()


def test_bad_data(run_cli, tmp_path, tiny_yaml):
    three = tmp_path / "three.npz"
    np.savez(three, images=np.tile(np.arange(3, dtype=np.uint8), (40, 32, 11))[:, :, :32])
    res = run_cli("train", "--data", three, "--config", tiny_yaml, "--out", tmp_path / "r")
    assert_input_error(res, "two-phase")
    odd = tmp_path / "odd.npz"
    np.savez(odd, images=np.zeros((40, 48, 48), np.uint8))
    res = run_cli("train", "--data", odd, "--out", tmp_path / "r")
    assert_input_error(res, "not divisible by 32")
    notstack = tmp_path / "x.npz"
    np.savez(notstack, data=np.zeros(3))
    assert_input_error(run_cli("train", "--data", notstack, "--out", tmp_path / "r"), "images")
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG")
    assert_input_error(run_cli("train", "--data", png, "--out", tmp_path / "r"), ".npz")
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_existing_run_is_left_alone(run_cli, tiny_run):
    data, cfg, out = tiny_run
    before = (out / "checkpoint.pt").read_bytes()
    res = run_cli("train", "--data", data, "--config", cfg, "--out", out)
    assert_input_error(res, "--resume")
    assert (out / "checkpoint.pt").read_bytes() == before


def test_bad_checkpoints(run_cli, tiny_run, tmp_path):
    data, _, out = tiny_run
    cut = tmp_path / "cut.pt"
    cut.write_bytes((out / "model.pt").read_bytes()[:1000])
    res = run_cli("sample", "--checkpoint", cut, "-o", tmp_path / "s.npz")
    assert_input_error(res, "cut.pt", "not a readable checkpoint")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    res = run_cli("sample", "--checkpoint", foreign, "-o", tmp_path / "s.npz")
    assert_input_error(res, "not an mdesign GAN checkpoint")
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(cut.read_bytes())
    before = (run / "checkpoint.pt").read_bytes()
    res = run_cli("train", "--data", data, "--out", run, "--resume")
    assert_input_error(res, "not a readable checkpoint")
    assert (run / "checkpoint.pt").read_bytes() == before
    assert not (tmp_path / "s.npz").exists()


@pytest.mark.parametrize(
    ("latents", "needle"),
    [
        (np.zeros((3, 2, 2, 2), np.float32), "2 channels"),
        (np.zeros((3, 4), np.float32), "N x C x h x w"),
        (np.zeros((1, 1, 1, 2, 2), np.float32), "N x C x h x w"),
    ],
)
def test_bad_latent_files(run_cli, tiny_run, tmp_path, latents, needle):
    _, _, out = tiny_run
    path = tmp_path / "z.npy"
    np.save(path, latents)
    res = run_cli(
        "sample", "--checkpoint", out / "model.pt", "--latent", path, "-o", tmp_path / "s.npz"
    )
    assert_input_error(res, "z.npy", needle)
    assert not (tmp_path / "s.npz").exists()


def test_sample_usage_errors(run_cli, tiny_run, tmp_path):
    _, _, out = tiny_run
    ck = out / "model.pt"
    npz = tmp_path / "z.npz"
    np.savez(npz, other=np.zeros(2))
    assert_input_error(
        run_cli("sample", "--checkpoint", ck, "--latent", npz, "-o", tmp_path / "s.npz"),
        "no 'latents' array",
    )
    assert_input_error(
        run_cli("sample", "--checkpoint", ck, "--latent", npz, "-n", 2, "-o", tmp_path / "s.npz"),
        "--latent",
    )
    assert_input_error(run_cli("sample", "--checkpoint", ck, "-o", tmp_path / "s.txt"), "-o")
    assert_input_error(
        run_cli(
            "sample", "--checkpoint", ck, "--plot", tmp_path / "p.png", "-o", tmp_path / "s.npz"
        ),
        "--plot",
    )
    assert_input_error(
        run_cli("sample", "--checkpoint", ck, "-n", 0, "-o", tmp_path / "s.npz"), "-n"
    )


def test_bad_device(run_cli, tiny_run, tmp_path):
    _, _, out = tiny_run
    res = run_cli(
        "sample", "--checkpoint", out / "model.pt", "--device", "gpu", "-o", tmp_path / "s.npz"
    )
    assert_input_error(res, "--device", "gpu")


# --- hardening (issue 13): validate everything first, write together at the end, never clobber


def test_sample_with_a_missing_reference_writes_nothing(run_cli, tiny_run, tmp_path):
    _, _, out = tiny_run
    res = run_cli(
        "sample", "--checkpoint", out / "model.pt", "-n", 2, "--report", tmp_path / "r.json",
        "--reference", tmp_path / "missing.npz", "-o", tmp_path / "o.npz",
    )  # fmt: skip
    assert_input_error(res, "missing.npz", "no such file")
    assert list(tmp_path.iterdir()) == []


def test_sample_with_an_unwritable_report_keeps_the_main_output(run_cli, tiny_run, tmp_path):
    _, _, out = tiny_run
    (tmp_path / "o.npz").write_bytes(b"an earlier sample")
    before = snapshot(tmp_path)
    res = run_cli(
        "sample", "--checkpoint", out / "model.pt", "-n", 2,
        "--report", "/proc/mdesign-r.json", "-o", tmp_path / "o.npz",
    )  # fmt: skip
    assert_input_error(res, "--report", "/proc")
    assert snapshot(tmp_path) == before


def test_sample_disk_full_on_the_report_replaces_no_output(
    run_cli, tiny_run, tmp_path, monkeypatch
):
    import errno
    import os
    import pathlib

    _, _, out = tiny_run
    (tmp_path / "o.npz").write_bytes(b"an earlier sample")
    before = snapshot(tmp_path)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pathlib.Path, "write_text", full)
    res = run_cli(
        "sample", "--checkpoint", out / "model.pt", "-n", 2,
        "--report", tmp_path / "r.json", "-o", tmp_path / "o.npz", "-q",
    )  # fmt: skip
    assert_input_error(res, "r.json", "No space left on device")
    assert snapshot(tmp_path) == before  # o.npz not replaced, no temporaries left


def test_sample_output_over_its_latents_is_refused(run_cli, tiny_run, tmp_path):
    _, _, out = tiny_run
    z = tmp_path / "z.npy"
    np.save(z, np.zeros((2, 1, 1, 1), np.float32))
    before = snapshot(tmp_path)
    res = run_cli("sample", "--checkpoint", out / "model.pt", "--latent", z, "-o", z)
    assert_input_error(res, "-o", "is the input --latent")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("value", "ok"), [(3.0, False), (-1.5, False), (1 + 1e-6, True)])
def test_sample_latents_outside_the_box(run_cli, tiny_run, tmp_path, value, ok):
    _, _, out = tiny_run
    z = tmp_path / "z.npy"
    latents = np.zeros((2, 1, 1, 1), np.float32)
    latents[1] = value
    np.save(z, latents)
    res = run_cli(
        "sample", "--checkpoint", out / "model.pt", "--latent", z, "-o", tmp_path / "s.npz"
    )
    if ok:  # float rounding past the box is fine
        assert res.code == 0, res.err
    else:
        assert_input_error(res, "z.npy", "outside the latent box")
        assert not (tmp_path / "s.npz").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--seed", "-1"],
        ["--seed", str(2**32)],
        ["--latent-size", "100000"],
        ["--latent-size", "1000"],  # the latents fit, their images do not
        ["-n", "1000000000"],
    ],
)
def test_sample_bad_seed_and_size_exit_2(run_cli, tiny_run, tmp_path, args):
    _, _, out = tiny_run
    res = run_cli("sample", "--checkpoint", out / "model.pt", *args, "-o", tmp_path / "s.npz")
    assert_input_error(res, args[0])
    assert not (tmp_path / "s.npz").exists()


def test_sample_refuses_huge_latents_from_the_header(run_cli, tiny_run, tmp_path):
    from tests.conftest import npz_with_header_only

    _, _, out = tiny_run
    path = tmp_path / "z.npz"
    npz_with_header_only(path, (10**6, 1, 1000, 1000), np.float32, key="latents")
    res = run_cli(
        "sample", "--checkpoint", out / "model.pt", "--latent", path, "-o", tmp_path / "s.npz"
    )
    assert_input_error(res, "--latent", "of memory")


def test_train_refuses_bad_configs_seeds_and_folders(run_cli, tiny_run, tmp_path):
    data, _, _ = tiny_run
    binary = tmp_path / "c.yaml"
    binary.write_bytes(b"PK\x03\x04\x00\xff\xfe binary")
    latin = tmp_path / "l.yaml"
    latin.write_bytes("train: {epochs: 2}  # caf\xe9\n".encode("latin-1"))
    afile = tmp_path / "file"
    afile.write_bytes(b"x")
    before = snapshot(tmp_path)
    for args, needles in [
        (["--config", binary], ("c.yaml", "binary")),
        (["--config", latin], ("l.yaml", "not UTF-8")),
        (["--seed", "-1"], ("--seed",)),
        (["--out", afile], ("--out", "is a file")),
        (["--out", "/proc/mdesign-run"], ("--out", "cannot write")),
    ]:
        full = ["train", "--data", data, "--out", tmp_path / "run", *args, "-q"]
        assert_input_error(run_cli(*full), *needles)
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()


def test_sample_cuts_at_training_fractions_by_default(run_cli, tiny_run, tmp_path):
    _, _, out = tiny_run
    ck = out / "model.pt"
    state = torch.load(ck, weights_only=True)
    q = np.asarray(state["data_meta"]["volume_fraction_quantiles"])
    s = tmp_path / "s.npz"
    assert run_cli("sample", "--checkpoint", ck, "-n", 40, "--seed", 2, "-o", s, "-q").code == 0
    with np.load(s) as f:
        images, fractions, meta = f["images"], f["volume_fraction"], json.loads(str(f["meta"]))
    vf = images.reshape(40, -1).mean(1)
    # each image holds its drawn fraction to the pixel, drawn within the training range
    assert np.array_equal(vf, np.rint(fractions * 32 * 32) / (32 * 32))
    assert q[0] <= fractions.min() and fractions.max() <= q[-1] and fractions.std() > 0
    assert meta["fraction"] == "training" and meta["binarize"] is None
    # a value and a range; the saved fractions decode the same images again
    one = tmp_path / "one.npz"
    assert run_cli("sample", "--checkpoint", ck, "-n", 3, "--fraction", 0.25, "-o", one).code == 0
    with np.load(one) as f:
        assert np.array_equal(f["images"].reshape(3, -1).sum(1), [256] * 3)
    again = tmp_path / "again.npz"
    assert run_cli("sample", "--checkpoint", ck, "--latent", s, "-o", again, "-q").code == 0
    with np.load(again) as f:
        assert np.array_equal(f["images"], images)
        assert json.loads(str(f["meta"]))["fraction"] == "from --latent"
    np.save(tmp_path / "z.npy", np.load(s)["latents"])  # latents without their fractions
    drawn = tmp_path / "drawn.npz"
    args = ("--latent", tmp_path / "z.npy", "--fraction", "training", "-o", drawn, "-q")
    assert run_cli("sample", "--checkpoint", ck, *args).code == 0
    with np.load(drawn) as f:
        assert json.loads(str(f["meta"]))["fraction"] == "training"
    # free: the generator's own fraction, as --binarize asks
    free = tmp_path / "free.npz"
    assert (
        run_cli("sample", "--checkpoint", ck, "-n", 4, "--binarize", "otsu", "-o", free).code == 0
    )
    with np.load(free) as f:
        assert "volume_fraction" not in f.files
    for args, needle in [
        (["--fraction", "2"], "--fraction"),
        (["--fraction", "0.6:0.2"], "--fraction"),
        (["--fraction", "x"], "--fraction"),
        (["--fraction", "0.5", "--binarize", "otsu"], "--binarize"),
        (["--latent", s, "--fraction", "0.5"], "--fraction"),
    ]:
        assert_input_error(
            run_cli("sample", "--checkpoint", ck, *args, "-o", tmp_path / "bad.npz"), needle
        )
    assert not (tmp_path / "bad.npz").exists()


def test_sample_with_a_global_channel_round_trips_its_latents(run_cli, tmp_path):
    from mdesign.gan import save_checkpoint
    from tests.gan.conftest import tiny_config, tiny_networks

    config = tiny_config(generator={"global_channels": 1})
    g, d = tiny_networks(config)
    ckpt = save_checkpoint(
        tmp_path / "g.pt", generator=g, discriminator=d, config=config, epoch=1, data_meta={}
    )
    first = tmp_path / "s.npz"
    args = ("--checkpoint", ckpt, "--fraction", "free", "-q")
    res = run_cli("sample", *args, "-n", 4, "--latent-size", 3, "--seed", 2, "-o", first)
    assert res.code == 0, res.err
    with np.load(first) as f:
        images, latents = f["images"], f["latents"]
    assert images.shape == (4, 96, 96) and latents.shape == (4, 2, 3, 3)
    # the global channel is one value per image, and decoding the latents again is exact
    assert np.array_equal(latents[:, 1], np.broadcast_to(latents[:, 1, :1, :1], (4, 3, 3)))
    res = run_cli("sample", *args, "--latent", first, "-o", tmp_path / "again.npz")
    assert res.code == 0, res.err
    with np.load(tmp_path / "again.npz") as f:
        assert np.array_equal(f["images"], images)
    np.save(tmp_path / "local.npy", latents[:, :1])  # the local channel alone
    res = run_cli("sample", *args, "--latent", tmp_path / "local.npy", "-o", tmp_path / "x.npz")
    assert res.code == 2 and "channels, the generator takes 2" in res.err
    assert not (tmp_path / "x.npz").exists()
    varying = latents.copy()
    varying[:, 1] = np.random.default_rng(0).uniform(-1, 1, (4, 3, 3))  # not one value per image
    np.save(tmp_path / "varying.npy", varying)
    res = run_cli("sample", *args, "--latent", tmp_path / "varying.npy", "-o", tmp_path / "x.npz")
    assert res.code == 2 and "global_channels=1" in res.err and "latent 0 varies" in res.err
    assert not (tmp_path / "x.npz").exists()
