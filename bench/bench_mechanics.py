"""``elastic_stiffness`` against muSpectre: seconds per 128^2 image and 64^3 volume, accuracy.

Timing (``results/mechanics_speed.json``): 5 GRF 128x128 images and one 64^3 volume
(contrast 10 only unless ``--all-3d``), at contrast 10 and 100 (Young's moduli 1 and 10 or 100,
Poisson's ratio 0.3, plane strain) and with 30% pores (phase 0 of modulus 0, fraction 0.3), the
full tensor of each (3 or 6 load cases), on one thread: mdesign's Q1 voxel elements
(``stiffness_tensor``, default tolerance 1e-4) and muSpectre's rotated scheme (Willot 2015;
muFFT's ``averaged_upwind`` derivative, Newton-CG, tolerance 1e-6 on the equilibrium), on the
same images in the same run.

Accuracy (``results/mechanics_accuracy.json``): each method's Hill bulk and shear moduli and
E_x on 5 GRF 64x64 images and 3 GRF 12^3 volumes (smaller, so that a converged reference is
affordable), against the reference of mdesign's Q1 elements on each pixel split 4x4 (voxel
split 3x3x3): the same voxel geometry, approached from above, in per cent.

muSpectre (pip ``muspectre``) is installed by this script into its own virtualenv
(``--venv``, default ``bench/.peer-venvs/muspectre``), never into the project's; it runs as a
subprocess (``_muspectre_worker.py``).

Cross-check (``results/mechanics_skfem.json``): the largest relative difference of the tensor
(tolerance 1e-8) to scikit-fem's Q1 elements assembled on the same voxels and solved directly
(the tests' ``skfem_tensor``), on 5 GRF 64x64 images and 3 GRF 12^3 volumes per case.

Usage: ``python bench/bench_mechanics.py`` (``--quick``: 64^2 and 32^3 timing, 2 accuracy
samples).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1]))  # the repository: tests' scikit-fem solve
from _util import report

from mdesign.evaluators import elastic_moduli, stiffness_tensor
from mdesign.grf import grf_microstructures

HERE = Path(__file__).parent
CASES = {"contrast 10": (1.0, 10.0), "contrast 100": (1.0, 100.0), "30% pores": (0.0, 1.0)}
NU = (0.3, 0.3)


def peer_python(path: Path) -> Path:
    """The python of muSpectre's virtualenv, made and filled on first use."""
    py = path / "bin" / "python"
    if not py.exists():
        print(f"making {path} (pip install muspectre)", flush=True)
        venv.create(path, with_pip=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "muspectre", "numpy"], check=True)
    return py


def muspectre(py: Path, imgs: np.ndarray, moduli, *, tol: float = 1e-6) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.npy"
        np.save(path, imgs)
        req = {"images": str(path), "moduli": list(moduli), "nu": list(NU), "scheme": "rot"}
        req["tol"] = tol
        out = subprocess.run(
            [py, HERE / "_muspectre_worker.py", json.dumps(req)],
            capture_output=True,
            text=True,
            env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        )
    if out.returncode:
        raise RuntimeError(out.stderr[-1500:])
    return json.loads(out.stdout)


def samples(n: int, shape: tuple[int, ...], case: str, seed: int, corr: float) -> np.ndarray:
    fraction = 0.7 if case == "30% pores" else 0.5  # phase-1 fraction
    return grf_microstructures(
        n, shape, volume_fraction=fraction, correlation_length=corr, seed=seed
    ).images


def timing(py: Path, shape: tuple[int, ...], n: int, cases: list[str]) -> list[dict]:
    rows = []
    for case in cases:
        moduli = CASES[case]
        imgs = samples(n, shape, case, seed=1, corr=4)
        ours = []
        for img in imgs:
            t = time.perf_counter()
            _, its = stiffness_tensor(
                img[None], youngs_moduli=moduli, poissons_ratios=NU, return_iterations=True
            )
            ours.append((time.perf_counter() - t, int(its.max())))
        t = time.perf_counter()
        stiffness_tensor(imgs, youngs_moduli=moduli, poissons_ratios=NU)
        batch = (time.perf_counter() - t) / n
        try:
            peer = muspectre(py, imgs, moduli)
            peer_s = statistics.median(r["seconds"] for r in peer)
        except RuntimeError as exc:
            print(f"muSpectre failed on {case}: {exc}", flush=True)
            peer_s = float("nan")
        ours_s = statistics.median(s for s, _ in ours)
        rows.append(
            {
                "shape": "x".join(map(str, shape)),
                "case": case,
                "n": n,
                "mdesign s/image (one at a time)": round(ours_s, 3),
                "mdesign s/image (batch)": round(batch, 3) if n > 1 else "",
                "mdesign CG iterations": max(i for _, i in ours),
                "muSpectre s/image": round(peer_s, 3),
                "ratio muSpectre/mdesign": round(peer_s / ours_s, 2),
            }
        )
        print(rows[-1], flush=True)
    return rows


def accuracy(py: Path, shape: tuple[int, ...], n: int, refinement: int) -> list[dict]:
    rows = []
    for case, moduli in CASES.items():
        imgs = samples(n, shape, case, seed=2, corr=4 if len(shape) == 2 else 2.5)
        ref = elastic_moduli(
            stiffness_tensor(imgs, youngs_moduli=moduli, poissons_ratios=NU, refinement=refinement)
        )
        ours = elastic_moduli(stiffness_tensor(imgs, youngs_moduli=moduli, poissons_ratios=NU))
        try:
            peer = elastic_moduli(np.array([r["tensor"] for r in muspectre(py, imgs, moduli)]))
        except RuntimeError as exc:
            print(f"muSpectre failed on {case}: {exc}", flush=True)
            peer = None
        row = {"shape": "x".join(map(str, shape)), "case": case, "n": n, "ref": refinement}
        for q in ("bulk", "shear", "E_x"):
            r = getattr(ref, q)
            for name, m in (("mdesign", ours), ("muSpectre", peer)):
                if m is None:
                    row[f"{name} {q} err %"] = "failed"
                    continue
                err = 100 * (getattr(m, q) / r - 1)
                row[f"{name} {q} err %"] = f"{err.min():+.2f}..{err.max():+.2f}"
        rows.append(row)
        print(row, flush=True)
    return rows


def crosscheck() -> list[dict]:
    """Largest relative difference to scikit-fem's Q1 solve on the same voxels."""
    from tests.evaluators.test_elasticity import skfem_tensor

    rows = []
    for shape, n in (((64, 64), 5), ((12, 12, 12), 3)):
        for case, moduli in CASES.items():
            imgs = samples(n, shape, case, seed=3, corr=4 if len(shape) == 2 else 2.5)
            ours = stiffness_tensor(imgs, youngs_moduli=moduli, poissons_ratios=NU, tolerance=1e-8)
            diffs = []
            for img, c in zip(imgs, ours, strict=True):
                ref = skfem_tensor(img, moduli, NU)
                diffs.append(np.abs(c - ref).max() / np.abs(ref).max())
            rows.append(
                {
                    "shape": "x".join(map(str, shape)),
                    "case": case,
                    "n": n,
                    "max |C - C_skfem| / max |C_skfem|": f"{max(diffs):.1e}",
                }
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--venv", type=Path, default=HERE / ".peer-venvs" / "muspectre")
    ap.add_argument("--part", choices=["all", "speed", "accuracy", "crosscheck"], default="all")
    ap.add_argument(
        "--all-3d",
        action="store_true",
        help="time the 64^3 volume in every case, not only at "
        "contrast 10 (about 30 more minutes on a loaded 2-core machine)",
    )
    args = ap.parse_args()
    if args.part in ("all", "crosscheck"):
        report("mechanics_skfem", crosscheck(), title="elastic_stiffness against scikit-fem Q1")
        if args.part == "crosscheck":
            return
    py = peer_python(args.venv)
    if args.part in ("all", "speed"):
        rows = timing(
            py, (64, 64) if args.quick else (128, 128), 2 if args.quick else 5, list(CASES)
        )
        cases3d = list(CASES) if args.all_3d else ["contrast 10"]
        rows += timing(py, (32, 32, 32) if args.quick else (64, 64, 64), 1, cases3d)
        report("mechanics_speed", rows, title="elastic_stiffness vs muSpectre: s per image")
    if args.part in ("all", "accuracy"):
        rows = accuracy(py, (64, 64), 2 if args.quick else 5, 4)
        rows += accuracy(py, (12, 12, 12), 1 if args.quick else 3, 3)
        report("mechanics_accuracy", rows, title="error against refined Q1, %")


if __name__ == "__main__":
    main()
