"""mpslib SNESIM realisations of each training image of a .npy stack (run in its own venv).

Called by ``bench_reconstruction.py`` with the virtualenv's python and one JSON argument
(``images``: a .npy of labels ``N x H x W``; ``out``: the .npy to write, ``N x H x W`` uint8;
``seed``; the SNESIM settings ``template``, ``multiple_grids``, ``n_cond``, ``min_node_count``).
The binary is ``mps_snesim_tree`` (Strebelle 2002's search tree) as shipped prebuilt in the
scikit-mps wheel (``mpslib/bin``; the package is located, not imported). Each image is its own
training image, written as a GSLIB/EAS file, and the simulation grid has its size
(unconditional, non-periodic, one realisation, one thread, random path). Prints one JSON list:
per image the CPU seconds of the whole binary process (user + system, from the children's
resource usage: reading the training image, building the tree, simulating, writing). Imports
nothing of mdesign.
"""

import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def write_gslib(path: Path, labels: np.ndarray) -> None:
    """A 2D label image ``H x W`` as a GSLIB/EAS grid file: title ``W H 1``, one column, x
    (the column index) fastest, one value a line (mps_snesim_tree reads the first value of each
    line only: a file of one line reads as a constant image)."""
    h, w = labels.shape
    values = "\n".join(str(int(v)) for v in labels.ravel())
    Path(path).write_text(f"{w} {h} 1\n1\nlabel\n{values}\n")


def read_gslib(path: Path) -> np.ndarray:
    """The inverse of :func:`write_gslib` for a one-column 2D grid (any whitespace between the
    values, as mpslib writes them): ``H x W`` int64."""
    lines = Path(path).read_text().split("\n")
    w, h, d = (int(v) for v in lines[0].split()[:3])
    ncols = int(lines[1])
    if ncols != 1 or d != 1:
        raise ValueError(f"{path}: {ncols} columns, {d} layers (one 2D column expected)")
    values = np.array(" ".join(lines[2 + ncols :]).split(), dtype=float)
    if values.size != w * h:
        raise ValueError(f"{path}: {values.size} values for a {w} x {h} grid")
    return values.round().astype(np.int64).reshape(h, w)


def par_text(req: dict, shape: tuple[int, int], ti: str, out_dir: str) -> str:
    """mps_snesim_tree's parameter file (the layout scikit-mps 0.6.0 writes) for an
    unconditional 2D simulation of ``shape`` (H, W) from the training image file ``ti``."""
    h, w = shape
    t, cats = int(req["template"]), int(req["phases"])
    lines = [
        ("Number of realizations", 1),
        ("Random Seed (0 `random` seed)", int(req["seed"])),
        ("Number of mulitple grids (start from 0)", int(req["multiple_grids"])),
        ("Min Node count (0 if not set any limit)", int(req["min_node_count"])),
        ("Maximum number condtitional data (0: all)", int(req["n_cond"])),
        ("Search template size X", f"{t} {t}"),
        ("Search template size Y", f"{t} {t}"),
        ("Search template size Z", "1 1"),
        ("Simulation grid size X", w),
        ("Simulation grid size Y", h),
        ("Simulation grid size Z", 1),
        ("Simulation grid world/origin X", 0),
        ("Simulation grid world/origin Y", 0),
        ("Simulation grid world/origin Z", 0),
        ("Simulation grid grid cell size X", 1),
        ("Simulation grid grid cell size Y", 1),
        ("Simulation grid grid cell size Z", 1),
        ("Training image file (spaces not allowed)", ti),
        ("Output folder (spaces in name not allowed)", out_dir),
        ("Shuffle Simulation Grid path (0: sequential, 1: random, 2: preferential, EF)", "1 4"),
        ("Shuffle Training Image path (1 : random, 0 : sequential)", 1),
        ("HardData filename  (same size as the simulation grid)", "hard.dat"),
        ("HardData seach radius (world units)", 1),
        ("Softdata categories (separated by ;)", ";".join(str(c) for c in range(cats))),
        ("Soft datafilenames (separated by ; only need (number_categories - 1) grids)", "soft.dat"),
        ("Number of threads (not currently used)", 1),
        ("Debug mode(2: write to file, 1: show preview, 0: show counters, -1: no )", -1),
        ("Mask grid filename (same size as the simulation grid)", "mask.dat"),
    ]
    return "".join(f"{key} # {value}\n" for key, value in lines)


def binary() -> Path:
    """``mps_snesim_tree`` of the installed scikit-mps (found without importing the package)."""
    spec = importlib.util.find_spec("mpslib")
    exe = Path(next(iter(spec.submodule_search_locations))) / "bin" / "mps_snesim_tree"
    if not os.access(exe, os.X_OK):
        exe.chmod(0o755)
    return exe


def simulate(ti: np.ndarray, req: dict, exe: Path) -> tuple[np.ndarray, float]:
    with tempfile.TemporaryDirectory() as tmp:
        write_gslib(Path(tmp) / "ti.dat", ti)
        (Path(tmp) / "out").mkdir()
        par = Path(tmp) / "mps_snesim.txt"
        par.write_text(par_text({**req, "phases": int(ti.max()) + 1}, ti.shape, "ti.dat", "out"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([exe, par.name], cwd=tmp, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = Path(tmp) / "out" / "ti.dat_sg_0.gslib"
        if proc.returncode or not out.exists():
            raise RuntimeError(f"mps_snesim_tree failed ({proc.returncode}): {proc.stdout[-800:]}")
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return read_gslib(out).astype(np.uint8), cpu


if __name__ == "__main__":
    req = json.loads(sys.argv[1])
    images = np.load(req["images"])
    exe = binary()
    sims, info = [], []
    for ti in images:
        sim, cpu = simulate(ti, req, exe)
        sims.append(sim)
        info.append({"cpu_seconds": cpu})
    np.save(req["out"], np.stack(sims))
    print(json.dumps(info))
