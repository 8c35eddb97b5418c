"""The console entry point: a passive OpenMP pool unless the user chose, set before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys

import mdesign.cli
from mdesign import __main__ as entry


def test_sets_a_passive_pool_unless_the_user_chose_one(monkeypatch):
    seen = []
    monkeypatch.setattr(mdesign.cli, "main", lambda: seen.append(os.environ["OMP_WAIT_POLICY"]))
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    entry.main()
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    entry.main()
    assert seen == ["PASSIVE", "ACTIVE"]


def test_torch_is_not_loaded_before_the_command_runs():
    # the policy is read when torch loads OpenMP: the entry and the parser must not import it
    code = (
        "import sys; import mdesign.__main__, mdesign.cli; mdesign.cli.build_parser(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
