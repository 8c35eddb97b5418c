"""The console entry point: a passive OpenMP pool unless the user chose, set before torch loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mdesign.cli
from mdesign import __main__ as entry


def test_sets_a_passive_pool_unless_the_user_chose_one(monkeypatch):
    seen = []
    env = ("OMP_WAIT_POLICY", "MPLBACKEND")
    monkeypatch.setattr(mdesign.cli, "main", lambda: seen.append([os.environ[k] for k in env]))
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    entry.main()
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("MPLBACKEND", "pdf")
    entry.main()
    assert seen == [["PASSIVE", "Agg"], ["ACTIVE", "pdf"]]


def test_torch_is_not_loaded_before_the_command_runs():
    # the policy is read when torch loads OpenMP: the entry and the parser must not import it
    code = (
        "import sys; import mdesign.__main__, mdesign.cli; mdesign.cli.build_parser(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _console_script() -> Path:
    script = Path(sys.executable).with_name("mdesign")
    if not script.exists():
        pytest.skip("the mdesign console script is not installed beside this interpreter")
    return script


def test_the_console_command_finds_an_evaluator_module_in_the_current_directory(tmp_path):
    (tmp_path / "myprops.py").write_text(
        "def black(images):\n    return (images == 1).mean(axis=(1, 2))\n"
    )
    (tmp_path / "numpy.py").write_text("raise ImportError('the local numpy.py was imported')\n")
    images = np.zeros((2, 8, 8), np.uint8)
    images[0, :2] = 1
    np.save(tmp_path / "in.npy", images)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    run = [str(_console_script()), "evaluate", "in.npy", "--evaluator", "myprops:black"]
    out = subprocess.run([*run, "--json", "-q"], cwd=tmp_path, env=env, capture_output=True)
    assert out.returncode == 0, out.stderr
    # found, and appended after the installed packages: the local numpy.py shadows nothing
    assert json.loads(out.stdout)["values"] == [0.25, 0.0]


def test_the_current_directory_is_appended_once_and_not_under_safe_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["/somewhere", *sys.path])
    entry._add_cwd_to_path()
    entry._add_cwd_to_path()
    assert sys.path[-1] == str(tmp_path) and sys.path.count(str(tmp_path)) == 1
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    monkeypatch.setattr(sys, "flags", type("F", (), {"safe_path": True})())
    entry._add_cwd_to_path()  # python -P / PYTHONSAFEPATH: no implied path
    assert str(tmp_path) not in sys.path
