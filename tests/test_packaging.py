"""What the distribution installs: every package of the source tree, under the project's names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_installed_and_flows_is_not_a_generic_name():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = tool.get("package-dir", {})
    assert mapping == {"mdesign_flows": "flows"}
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mdesign").rglob("__init__.py")
    }
    on_disk |= {"mdesign_flows"} if (ROOT / "flows" / "__init__.py").is_file() else set()
    assert set(tool["packages"]) == on_disk
    assert not any(p == "flows" or p.startswith("flows.") for p in tool["packages"])


def test_the_flows_import_no_generic_flows_package():
    # inside flows/, imports are relative (they work under the installed name)
    for path in sorted((ROOT / "flows").glob("*.py")):
        text = path.read_text()
        assert "from flows" not in text and "import flows" not in text, path.name


# The distribution itself: `python -m build` (no isolation, so nothing is downloaded) on a copy of
# what the build reads, then the wheel installed into a fresh venv whose dependencies are those
# of this interpreter (a .pth to its site-packages, whose own .pth files, an editable mdesign
# among them, are not processed there) and run from outside the source tree.

BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "CITATION.cff", "MANIFEST.in")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    pytest.importorskip("build")
    tmp = tmp_path_factory.mktemp("dist")
    src = tmp / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("mdesign", "flows"):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    cmd = [sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check"]
    res = subprocess.run(
        [*cmd, "--outdir", str(tmp / "dist"), str(src)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("mdesign-*.whl")
    (sdist,) = (tmp / "dist").glob("mdesign-*.tar.gz")
    return wheel, sdist


def _package_data() -> set[str]:
    data = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mdesign/data/li2018").iterdir()}
    data |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "mdesign/evaluators").glob("data/*")}
    return data


def test_the_wheel_holds_every_module_the_package_data_and_the_console_script(dist):
    wheel, _ = dist
    names = set(zipfile.ZipFile(wheel).namelist())
    data = _package_data()
    assert any(n.endswith(".npy") for n in data) and any(n.startswith("mdesign/eval") for n in data)
    assert data <= names
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mdesign").rglob("*.py")}
    modules |= {f"mdesign_flows/{p.name}" for p in (ROOT / "flows").glob("*.py")}
    assert modules <= names
    assert not any(n.startswith(("flows/", "tests/")) for n in names)
    info = f"mdesign-{tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['version']}"
    entry_points = zipfile.ZipFile(wheel).read(f"{info}.dist-info/entry_points.txt").decode()
    assert "[console_scripts]\nmdesign = mdesign.__main__:main" in entry_points
    assert any(n.startswith(f"{info}.dist-info/") and n.endswith("LICENSE") for n in names)


def test_the_sdist_holds_the_sources_license_and_citation(dist):
    _, sdist = dist
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"LICENSE", "CITATION.cff", "README.md", "pyproject.toml", "flows/design.py"} <= names
    assert _package_data() <= names


def test_the_wheel_installs_into_a_fresh_venv_and_reconstructs(dist, tmp_path):
    wheel, _ = dist
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]
    Path(purelib, "_mdesign_test_deps.pth").write_text("\n".join(deps) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    res = subprocess.run([*pip, "--no-deps", "--no-index", str(wheel)], capture_output=True)
    assert res.returncode == 0, res.stderr.decode()[-3000:]
    mdesign = venv / "bin" / "mdesign"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)

    def run(*args) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(a) for a in args], cwd=tmp_path, env=env, capture_output=True, text=True
        )

    where = run(python, "-c", "import mdesign, mdesign_flows; print(mdesign.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv)  # the wheel's, not the source tree's
    helped = run(mdesign, "--help")
    assert helped.returncode == 0 and "reconstruct" in helped.stdout
    listed = run(mdesign, "evaluators")
    assert listed.returncode == 0, listed.stderr
    assert "effective_conductivity" in listed.stdout and "optical_absorption" in listed.stdout
    # a small offline reconstruction of a shipped exemplar (package data read from the wheel)
    code = "import numpy as np; from mdesign.data import li2018_exemplar as e; "
    made = run(python, "-c", code + "np.save('ex.npy', e('ceramics', 64))")
    assert made.returncode == 0, made.stderr
    rec = run(
        mdesign, "reconstruct", "ex.npy", "-o", "rec.npy", "--size", "48", "48",
        "--weights", "random", "--iterations", "10", "--seed", "0", "-q",
    )  # fmt: skip
    assert rec.returncode == 0, rec.stderr
    exemplar, out = np.load(tmp_path / "ex.npy"), np.load(tmp_path / "rec.npy")
    assert out.shape == (48, 48)
    # the annealing makes the phase fraction the exemplar's to within one pixel
    assert abs(out.mean() - exemplar.mean()) <= 1 / out.size + 1e-12
