import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mdesign.descriptors import characterize
from mdesign.io import read_images
from tests.conftest import assert_input_error, npz_with_header_only, snapshot


def test_grf_writes_the_contract_stack(tmp_path, run_cli):
    out = tmp_path / "grf.npz"
    res = run_cli(
        "grf",
        "-n",
        6,
        "--size",
        32,
        40,
        "--volume-fraction",
        "0.2:0.5",
        "--correlation-length",
        "2:4",
        "--seed",
        1,
        "-o",
        out,
        "-q",
    )
    assert res.code == 0, res.err
    with np.load(out) as data:
        images = data["images"]
        assert images.shape == (6, 32, 40) and images.dtype == np.uint8
        vf = data["volume_fraction"]
        assert vf.shape == (6,) and data["correlation_length"].shape == (6,)
        meta = json.loads(str(data["meta"]))
    assert meta["command"] == "grf" and meta["seed"] == 1 and meta["version"]
    counts = images.reshape(6, -1).sum(1)
    assert np.abs(counts - vf * 32 * 40).max() < 1
    again = tmp_path / "again.npz"
    run_cli(
        "grf",
        "-n",
        6,
        "--size",
        32,
        40,
        "--volume-fraction",
        "0.2:0.5",
        "--correlation-length",
        "2:4",
        "--seed",
        1,
        "-o",
        again,
        "-q",
    )
    assert read_images(again).images.tobytes() == images.tobytes()


def test_grf_three_phases_and_options(tmp_path, run_cli):
    out = tmp_path / "g3.npz"
    res = run_cli(
        "grf",
        "-n",
        3,
        "--size",
        32,
        "--volume-fraction",
        "0.2,0.3",
        "--phases",
        3,
        "--correlation-length",
        3,
        "--covariance",
        "matern",
        "--anisotropy",
        2,
        "--angle",
        30,
        "--no-periodic",
        "--seed",
        0,
        "-o",
        out,
        "-q",
    )
    assert res.code == 0, res.err
    data = np.load(out)
    assert data["phase_fractions"].shape == (3, 3)
    assert json.loads(str(data["meta"]))["config"]["periodic"] is False


def test_characterize_json_and_plot(tmp_path, run_cli, grf_stack):
    np.savez(tmp_path / "s.npz", images=grf_stack)
    plot = tmp_path / "d.png"
    res = run_cli("characterize", tmp_path / "s.npz", "--json", "--plot", plot, "-q")
    assert res.code == 0, res.err
    rep = json.loads(res.out)
    for key in ("n_images", "shape", "volume_fractions", "s2", "lineal_path", "specific_surface"):
        assert key in rep
    lib = characterize(grf_stack).summary()
    assert np.allclose(rep["s2"], lib["s2"]) and rep["s2"][0] == pytest.approx(
        rep["volume_fractions"][1], abs=1e-6
    )
    assert plot.stat().st_size > 10_000
    res0 = run_cli("characterize", tmp_path / "s.npz", "--json", "--phase", 0, "--max-distance", 5)
    rep0 = json.loads(res0.out)
    assert len(rep0["s2"]) == 6 and rep0["s2"][0] == pytest.approx(rep0["volume_fractions"][0])
    table = run_cli("characterize", tmp_path / "s.npz")
    assert table.code == 0 and "volume fractions" in table.out


def test_characterize_reads_a_grayscale_png(tmp_path, run_cli):
    from PIL import Image

    rng = np.random.default_rng(0)
    gray = (rng.integers(0, 2, (32, 32)) * 100 + rng.integers(0, 30, (32, 32))).astype(np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    res = run_cli("characterize", tmp_path / "g.png", "--json")
    assert res.code == 0
    assert "segmented" in res.err and json.loads(res.out)["n_images"] == 1


GRF = [
    "grf",
    "-n",
    "2",
    "--size",
    "32",
    "--volume-fraction",
    "0.4",
    "--correlation-length",
    "3",
    "--seed",
    "0",
]


def _with(args, option, value):
    args = list(args)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    return args


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--volume-fraction", "0", "--volume-fraction"),
        ("--volume-fraction", "1", "--volume-fraction"),
        ("--volume-fraction", "1.5", "--volume-fraction"),
        ("--volume-fraction", "-0.1", "--volume-fraction"),
        ("--volume-fraction", "abc", "--volume-fraction"),
        ("--volume-fraction", "0.6:0.2", "--volume-fraction"),
        ("--correlation-length", "0", "--correlation-length"),
        ("--correlation-length", "-2", "--correlation-length"),
        ("--correlation-length", "33", "--correlation-length"),
        ("-n", "0", "-n"),
        ("-n", "-5", "-n"),
        ("--phases", "9", "phases"),
        ("--size", "0", "--size"),
        ("--anisotropy", "0", "--anisotropy"),
    ],
)
def test_grf_bad_parameters_exit_2(tmp_path, run_cli, option, value, needle):
    args = [*_with(GRF, option, value), "-o", str(tmp_path / "x.npz")]
    assert_input_error(run_cli(*args), needle)
    assert not (tmp_path / "x.npz").exists()


def test_grf_bad_output_and_usage_exit_2(tmp_path, run_cli):
    assert_input_error(run_cli(*GRF, "-o", tmp_path / "x.txt"), "unsupported output format")
    assert_input_error(run_cli("grf", "-n", "2"), "required")
    assert_input_error(run_cli(*GRF[:-2], "--seed", "x", "-o", tmp_path / "x.npz"), "--seed")
    assert_input_error(run_cli("nonsense"), "invalid choice")


@pytest.mark.parametrize(
    ("name", "make", "needle"),
    [
        ("missing.npz", lambda p: None, "no such file"),
        ("bad.png", lambda p: p.write_bytes(b"\x89PNG garbage"), "cannot read"),
        ("bad.bmp", lambda p: p.write_bytes(b"BM"), "unsupported format"),
        ("one.npy", lambda p: np.save(p, np.zeros(7)), "2D image"),
        ("five.npy", lambda p: np.save(p, np.zeros((1, 2, 3, 4, 5))), "2D image"),
        ("nan.npy", lambda p: np.save(p, np.full((4, 4), np.nan)), "NaN"),
        ("nine.npz", lambda p: np.savez(p, images=np.arange(81).reshape(1, 9, 9) % 9), "at most 8"),
        ("empty.npz", lambda p: np.savez(p, images=np.zeros((0, 4, 4), np.uint8)), "empty"),
    ],
)
def test_characterize_bad_inputs_exit_2(tmp_path, run_cli, name, make, needle):
    path = tmp_path / name
    make(path)
    assert_input_error(run_cli("characterize", path, "--json"), needle, name)


def test_characterize_bad_options_exit_2(tmp_path, run_cli, grf_stack):
    np.savez(tmp_path / "s.npz", images=grf_stack)
    assert_input_error(run_cli("characterize", tmp_path / "s.npz", "--phase", 3), "--phase")
    assert_input_error(
        run_cli("characterize", tmp_path / "s.npz", "--max-distance", 0), "--max-distance"
    )
    assert_input_error(
        run_cli("characterize", tmp_path / "s.npz", "--plot", tmp_path / "p.jpg"), "--plot"
    )


def test_real_processes_console_script_and_module(tmp_path):
    """The installed `mdesign` script and `python -m mdesign` exit 2 without a traceback."""
    bindir = __import__("pathlib").Path(sys.executable).parent
    for cmd in ([str(bindir / "mdesign")], [sys.executable, "-m", "mdesign"]):
        proc = subprocess.run(
            [*cmd, "characterize", str(tmp_path / "nope.npz")], capture_output=True, text=True
        )
        assert proc.returncode == 2
        assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    ok = subprocess.run([sys.executable, "-m", "mdesign", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "grf" in ok.stdout and "characterize" in ok.stdout


# --- hardening (issue 13): one error line, exit 2, nothing written or clobbered ---------------


@pytest.mark.parametrize(
    "err", [errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EEXIST, errno.EDQUOT, errno.EIO]
)
def test_os_error_while_writing_is_one_line_naming_the_output(tmp_path, run_cli, monkeypatch, err):
    # a read-only filesystem, a full disk, ...: simulated in the writer (we may run as root,
    # for whom chmod does not block writes)
    out = tmp_path / "x.npz"
    out.write_bytes(b"the user's earlier result")
    before = snapshot(tmp_path)

    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))

    import mdesign.io

    monkeypatch.setattr(mdesign.io, "_savez", fail)
    res = run_cli(*GRF, "-q", "-o", out)
    assert_input_error(res, str(out), os.strerror(err))
    assert snapshot(tmp_path) == before  # the old file kept, no temporary left behind


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("/proc/mdesign-x.npz", "cannot write in /proc"),  # a real failure, even for root
        ("{tmp}/file.npz/x.npz", "is not a directory"),
        ("{tmp}/sub", "unsupported output format"),
        ("{tmp}/dir.npz", "is a directory"),
    ],
)
def test_unwritable_outputs_are_refused_before_work(tmp_path, run_cli, monkeypatch, target, needle):
    import mdesign.grf

    (tmp_path / "file.npz").write_bytes(b"x")
    (tmp_path / "dir.npz").mkdir()
    (tmp_path / "sub").mkdir()
    before = snapshot(tmp_path)
    monkeypatch.setattr(mdesign.grf, "grf_microstructures", _must_not_run)
    res = run_cli(*GRF, "-q", "-o", target.format(tmp=tmp_path))
    assert_input_error(res, "-o", needle)
    assert snapshot(tmp_path) == before


def _must_not_run(*args, **kwargs):
    raise AssertionError("the work started before the outputs were checked")


def test_output_parent_folders_are_created(tmp_path, run_cli):
    out = tmp_path / "a" / "b" / "x.npz"
    assert run_cli(*GRF, "-q", "-o", out).code == 0
    assert read_images(out).images.shape == (2, 32, 32)


def test_internal_failure_is_one_error_line_with_exit_1(tmp_path, run_cli, monkeypatch):
    import mdesign.grf

    def boom(*args, **kwargs):
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(mdesign.grf, "grf_microstructures", boom)
    res = run_cli(*GRF, "-q", "-o", tmp_path / "x.npz")
    assert res.code == 1
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: internal failure: RuntimeError: a bug")
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("seed", ["-1", str(2**32), "1.5", "abc", "0x10"])
def test_grf_seed_outside_the_rule_is_refused_at_parse_time(tmp_path, run_cli, seed):
    assert_input_error(
        run_cli(*_with(GRF, "--seed", seed), "-q", "-o", tmp_path / "x.npz"), "--seed"
    )
    assert not (tmp_path / "x.npz").exists()


def test_seed_rule_bounds_are_inclusive_exclusive(tmp_path, run_cli):
    from mdesign.cli._common import SEED_LIMIT, seed_type

    assert seed_type("0") == 0 and seed_type(str(SEED_LIMIT - 1)) == SEED_LIMIT - 1
    res = run_cli(*_with(GRF, "--seed", str(SEED_LIMIT - 1)), "-q", "-o", tmp_path / "x.npz")
    assert res.code == 0, res.err


@pytest.mark.parametrize(
    ("n", "size", "needle"),
    [("1", "100000", "--size"), ("1000000000", "32", "-n")],
)
def test_grf_sizes_the_machine_cannot_hold_are_refused(tmp_path, run_cli, n, size, needle):
    res = run_cli(*_with(_with(GRF, "-n", n), "--size", size), "-o", tmp_path / "x.npz")
    assert_input_error(res, needle, "of memory")
    assert not (tmp_path / "x.npz").exists()


def test_memory_limit_from_the_environment(tmp_path, run_cli, monkeypatch):
    from mdesign.grf import grf_memory

    need = grf_memory(2, (32, 32))
    monkeypatch.setenv("MDESIGN_MEMORY_LIMIT", str(need - 1))
    assert_input_error(
        run_cli(*GRF, "-q", "-o", tmp_path / "x.npz"), "--size", "MDESIGN_MEMORY_LIMIT"
    )
    monkeypatch.setenv("MDESIGN_MEMORY_LIMIT", str(need))
    assert run_cli(*GRF, "-q", "-o", tmp_path / "x.npz").code == 0


@pytest.mark.parametrize("link", ["same", "hard", "symlink", "dotted"])
def test_characterize_plot_over_its_input_is_refused(tmp_path, run_cli, grf_stack, link):
    from mdesign.io import write_images

    src = write_images(tmp_path / "x.png", grf_stack[0])
    plot = {
        "same": src,
        "hard": tmp_path / "h.png",
        "symlink": tmp_path / "s.png",
        "dotted": tmp_path / "." / "x.png",
    }[link]
    if link == "hard":
        os.link(src, plot)
    if link == "symlink":
        plot.symlink_to(src)
    before = snapshot(tmp_path)
    assert_input_error(run_cli("characterize", src, "--plot", plot), "--plot", "is the input")
    assert snapshot(tmp_path) == before


def test_characterize_refuses_a_huge_image_from_its_header(tmp_path, run_cli):
    path = tmp_path / "big.npz"
    npz_with_header_only(path, (20000, 20000))
    assert path.stat().st_size < 4096
    assert_input_error(run_cli("characterize", path, "--json"), str(path), "of memory")
