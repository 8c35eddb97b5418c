"""The tutorials of the docs run: each script at reduced size (``--quick``), and each page shows
the figures its script writes (the committed ones come from ``make docs-tutorials``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"
NAMES = sorted(p.stem for p in TUTORIALS.glob("*.py"))


def _figures_of(name: str) -> set[str]:
    """The figure files the tutorial's page shows."""
    page = (TUTORIALS / f"{name}.md").read_text()
    return set(re.findall(r"\]\(figures/([\w.-]+\.png)\)", page))


def test_every_tutorial_has_a_page_and_a_make_target():
    assert NAMES == ["campaign", "latent", "reconstruct", "surrogates"]
    targets = re.search(r"^TUTORIALS := (.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert sorted(targets.group(1).split()) == NAMES
    for name in NAMES:
        figures = _figures_of(name)
        assert figures, name
        assert all((TUTORIALS / "figures" / f).is_file() for f in figures), name


@pytest.mark.parametrize("name", NAMES)
def test_each_page_shows_every_section_of_its_script(name):
    script = (TUTORIALS / f"{name}.py").read_text()
    sections = re.findall(r"^# --8<-- \[start:(\w+)\]$", script, re.M)
    assert sections == re.findall(r"^# --8<-- \[end:(\w+)\]$", script, re.M)
    page = (TUTORIALS / f"{name}.md").read_text()
    included = re.findall(rf'^--8<-- "docs/tutorials/{name}\.py:(\w+)"$', page, re.M)
    assert included == sections  # all of them, in order, and nothing else is a snippet
    assert page.count("--8<--") == len(included)


@pytest.mark.parametrize("name", NAMES)
def test_tutorial_runs_at_reduced_size(name, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    script = TUTORIALS / f"{name}.py"
    cmd = [sys.executable, str(script), "--quick", "--out", str(tmp_path)]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    written = {p.name for p in tmp_path.glob("*.png")}
    assert written == _figures_of(name)  # the page shows what the script makes, and all of it
    for f in written:
        with Image.open(tmp_path / f) as im:
            assert min(im.size) >= 100 and len(im.getcolors(1 << 20) or range(1 << 20)) > 2
