"""The own-material tutorial (docs/guide/own-material.md) runs: its exact commands, in order."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "guide" / "own-material.md"
MARKER = "<!-- tutorial: tests/test_tutorial.py runs exactly these commands -->"


def tutorial_commands() -> list[str]:
    """The lines of the bash block after the marker on the page."""
    text = PAGE.read_text()
    block = text.split(MARKER, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_page_has_at_most_five_commands_and_no_python():
    cmds = tutorial_commands()
    assert 1 <= len(cmds) <= 5
    assert all(c.startswith("mdesign ") for c in cmds)
    assert cmds[-1].startswith("mdesign optimize")


def test_the_tutorial_runs_from_a_micrograph_to_a_campaign_report(tmp_path, monkeypatch, run_cli):
    # the repository paths the commands name, in a fresh working directory
    src = ROOT / "mdesign" / "data" / "li2018" / "ceramics_sem.png"
    (tmp_path / "mdesign" / "data" / "li2018").mkdir(parents=True)
    shutil.copy(src, tmp_path / "mdesign" / "data" / "li2018" / src.name)
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "campaign_own.yaml", tmp_path / "configs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
    )
    monkeypatch.chdir(tmp_path)
    for cmd in tutorial_commands():
        words = shlex.split(cmd)
        if words[1] != "optimize":
            # in this process (the imports are paid once); the same argv as the console script
            res = run_cli(*words[1:])
            assert res.code == 0, (cmd, res.err[-3000:])
            continue
        # the campaign starts a Prefect server: in a process of its own, as in tests/flows
        argv = [sys.executable, "-P", "-m", *words]  # -P: not the cwd's mdesign/ folder
        res = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert res.returncode == 0, (cmd, res.stderr[-3000:])
    own = tmp_path / "own"
    for name in ("labels.npz", "overlay.png", "train.npz", "gan/model.pt", "validation.png"):
        assert (own / name).stat().st_size > 0, name
    report = json.loads((own / "validation.json").read_text())
    assert "held-out tiles" in report["reference"]
    assert len(report["memorisation"]["samples"]["values"]) == 64
    text = (own / "campaign" / "report.md").read_text()
    assert "random training images" in text and "random latents" in text
