"""Shared fixtures: tiny seeded stacks made by the project's own generator, and a CLI runner."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mdesign.cli import main
from mdesign.grf import grf_microstructures


@dataclass
class CLIResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys):
    """Run ``mdesign ARGS`` in-process; returns the exit code and what it printed."""

    def run(*args: str) -> CLIResult:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        cap = capsys.readouterr()
        return CLIResult(code, cap.out, cap.err)

    return run


def assert_input_error(res: CLIResult, *needles: str) -> None:
    """Exit 2 with exactly one ``error:`` line naming what is wrong, and no traceback."""
    assert res.code == 2, (res.code, res.err)
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.err
    assert "Traceback" not in res.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def snapshot(folder) -> dict:
    """Every file under ``folder`` with its bytes and mtime: what a refused command must keep."""
    return {
        p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def npz_with_header_only(path, shape, dtype=np.uint8, *, key="images"):
    """A tiny .npz whose ``key`` header claims ``shape``: the size check reads only that."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{key}.npy", buf.getvalue() + b"\0" * 64)


@pytest.fixture(scope="session")
def grf_stack() -> np.ndarray:
    """32 periodic two-phase 32x32 images, fraction 0.35, correlation length 3."""
    return grf_microstructures(
        32, (32, 32), volume_fraction=0.35, correlation_length=3, seed=7
    ).images


@contextlib.contextmanager
def bench_module(name: str):
    """The script ``bench/NAME.py`` imported as a module (registered while in use, so that its
    dataclasses resolve), for tests of a bench's own logic."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
