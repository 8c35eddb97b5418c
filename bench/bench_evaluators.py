"""Evaluators: speed, accuracy against Keller's duality, an independent solver, RCWA convergence.

Prints, on this machine and in one run:

1. ``effective_conductivity`` per 128x128 image at the default accuracy, one image at a time and
   in batches, on one torch thread (what the solver uses) and, for comparison, on all of them;
2. Keller's duality error at contrast 10 and 100 against cost, for the plain one-cell-per-pixel
   scheme, finer pixel subdivisions and Richardson extrapolation (the default is 2x2 with
   extrapolation from 1x1);
3. agreement with TauFactor (Kench & Cooper 2023), the tool a user would reach for: effective
   diffusivity of phase 1 with an insulating phase 0, between fixed-potential faces. On the
   mirror-extended image mdesign's periodic problem is exactly TauFactor's boundary-value problem,
   so the same discretisation must agree to TauFactor's convergence level, and the default
   accuracy shows how far the one-cell-per-pixel answer is from the refined one;
4. ``optical_absorption`` seconds per image at its setting before issue 31 (15 wavelengths,
   trapezoidal rule, grid 64: the low fidelity), and the convergence of its value in the Fourier
   truncation order (and the raster grid); ``bench_optics.py`` measures the new defaults;
5. in 3D, agreement with TauFactor's multi-phase solver on 64^3 two-phase volumes at contrast 10
   and 100 (same discretisation, see :func:`mirror_dirichlet`), wall times on one torch thread,
   and the cost of mdesign's periodic 3x3 tensor with its conjugate-gradient iterations
   (``results/evaluators_taufactor_3d.json``). :func:`tensor_3d` is the call a later bench makes
   for the tensor of one volume.

Usage: ``python bench/bench_evaluators.py`` (``--quick`` for a smaller run, ``--part 2d|3d`` for
one half).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import median_time, report

from mdesign.device import single_thread
from mdesign.evaluators import conductivity_tensor, effective_conductivity, optical_absorption
from mdesign.evaluators.conductivity import _pcg_solve
from mdesign.grf import grf_microstructures

R90 = np.array([[0.0, -1.0], [1.0, 0.0]])


def blobs(n: int, seed: int) -> np.ndarray:
    """128x128 periodic blob images like the design space's: fractions 0.3-0.6, L 4-8 px."""
    return grf_microstructures(
        n, (128, 128), volume_fraction=(0.3, 0.6), correlation_length=(4, 8), seed=seed
    ).images


def conductivity_speed(images: np.ndarray) -> None:
    cond = (1.0, 10.0)
    rows = []
    for label, threads in (("1 (the solver's setting)", 1), ("all, forced", None)):
        for batch in (1, 16):
            if threads is None:
                # bypass the solver's one-thread context to show what it avoids
                import mdesign.evaluators.conductivity as mc

                saved = mc.single_thread
                mc.single_thread = _no_change
            try:
                t = median_time(
                    lambda b=batch: effective_conductivity(images[:b], conductivities=cond),
                    repeat=5 if batch == 1 else 3,
                )
            finally:
                if threads is None:
                    mc.single_thread = saved
            rows.append(
                {
                    "torch_threads": label if threads == 1 else f"{torch.get_num_threads()}",
                    "images_per_call": batch,
                    "ms_per_image": 1e3 * t / batch,
                    "goal_ms": 200,
                }
            )
    report(
        "evaluators_conductivity_speed",
        rows,
        title="effective_conductivity, one direction, 128x128, contrast 10, default accuracy",
    )


class _no_change:
    def __init__(self, device):
        pass

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def duality_table(images: np.ndarray) -> None:
    settings = [
        ("1x1 (plain)", 1, False),
        ("2x2", 2, False),
        ("3x3", 3, False),
        ("4x4", 4, False),
        ("1x1+2x2 extrapolated (default)", 2, True),
        ("2x2+4x4 extrapolated", 4, True),
    ]
    rows = []
    for contrast in (10.0, 100.0):
        s1, s2 = 1.0, contrast
        for label, r, ex in settings:
            kw = {"refinement": r, "extrapolate": ex}
            a = conductivity_tensor(images, conductivities=(s1, s2), **kw)
            b = conductivity_tensor(images, conductivities=(s2, s1), **kw)
            product = a @ (R90.T @ b @ R90) / (s1 * s2)
            err = np.abs(np.stack([product[:, 0, 0], product[:, 1, 1]], 1) - 1)
            scalar = a[:, 0, 0] * b[:, 1, 1] / (s1 * s2) - 1
            t = median_time(
                lambda k=kw, c=(s1, s2): effective_conductivity(images[:4], conductivities=c, **k),
                repeat=3,
            )
            rows.append(
                {
                    "contrast": int(contrast),
                    "scheme": label,
                    "duality_err_mean_%": 100 * err.mean(),
                    "duality_err_max_%": 100 * err.max(),
                    "diag_product_err_mean_%": 100 * scalar.mean(),
                    "ms_per_image": 1e3 * t / 4,
                }
            )
    report(
        "evaluators_duality",
        rows,
        title=(
            f"Keller duality on {len(images)} 128x128 blob images: |[sigma(s1,s2) R^T "
            "sigma(s2,s1) R]_ii / (s1 s2) - 1| (tensor form), and the issue's diagonal product "
            "sigma_xx(s1,s2) sigma_yy(s2,s1) / (s1 s2) - 1"
        ),
    )


def mirror(img: np.ndarray) -> np.ndarray:
    """The 2H x 2W mirror extension: periodic, with the original's faces as symmetry planes."""
    top = np.concatenate([img, img[:, ::-1]], axis=1)
    return np.concatenate([top, top[::-1]], axis=0)


def _taufactor(img: np.ndarray) -> tuple[float, float]:
    """TauFactor's effective diffusivity of phase 1 along axis 0, and the seconds it took."""
    import taufactor as tau

    t = time.perf_counter()
    solver = tau.Solver(img.astype(np.float32), device="cpu")
    solver.solve(verbose=False, conv_crit=1e-3)
    return float(np.asarray(solver.D_eff).ravel()[0]), time.perf_counter() - t


def taufactor_agreement(images: np.ndarray) -> None:
    rows = []
    t_tau, t_same, t_default = [], [], []
    for img in images:
        # TauFactor: flow along its first axis (our y, the rows); 1 conducts, 0 insulates
        d_tau, secs = _taufactor(img)
        t_tau.append(secs)
        # the same on 2x2-subdivided pixels, extrapolated as mdesign's default does
        d_tau2, _ = _taufactor(img.repeat(2, 0).repeat(2, 1))
        d_tau_ex = 2 * d_tau2 - d_tau
        m = mirror(img)
        t = time.perf_counter()
        same = effective_conductivity(
            m, conductivities=(0.0, 1.0), direction="y", refinement=1, extrapolate=False
        )[0]
        t_same.append(time.perf_counter() - t)
        t = time.perf_counter()
        default = effective_conductivity(m, conductivities=(0.0, 1.0), direction="y")[0]
        t_default.append(time.perf_counter() - t)
        percolates = d_tau > 1e-3
        rows.append(
            {
                "phase1": float(img.mean()),
                "tau_1x1": d_tau,
                "mdesign_1x1": same,
                "diff_1x1_%": 100 * (same / d_tau - 1) if percolates else "no path",
                "tau_1x1+2x2_extrap": d_tau_ex,
                "mdesign_default": default,
                "diff_default_%": 100 * (default / d_tau_ex - 1) if percolates else "no path",
                "mdesign_default_vs_tau_1x1_%": 100 * (default / d_tau - 1)
                if percolates
                else "no path",
            }
        )
    rows.append(
        {
            "phase1": "median s/image",
            "tau_1x1": statistics.median(t_tau),
            "mdesign_1x1": statistics.median(t_same),
            "diff_1x1_%": None,
            "tau_1x1+2x2_extrap": None,
            "mdesign_default": statistics.median(t_default),
            "diff_default_%": None,
            "mdesign_default_vs_tau_1x1_%": None,
        }
    )
    report(
        "evaluators_taufactor",
        rows,
        title=(
            "effective diffusivity of phase 1 (phase 0 insulating) along the rows, 128x128: "
            "TauFactor Solver (SOR, conv_crit 1e-3) on the image and on its 2x2-subdivided "
            "pixels, vs mdesign on the mirror-extended image (same boundary-value problem)"
        ),
    )


# the evaluator's setting before issue 31 (its low fidelity), which this table has measured
# since; bench_optics.py measures the new defaults and the error of each setting
OLD_SETTING = {"wavelengths": 15, "spectral_rule": "trapezoid"}


def optics(images: np.ndarray, orders: tuple[int, ...], grids: tuple[int, ...]) -> None:
    rows = []
    ref_order = max(orders)
    values = {}
    for order in orders:
        t = time.perf_counter()
        values[order] = optical_absorption(images, order=order, grid=64, **OLD_SETTING)
        secs = (time.perf_counter() - t) / len(images)
        rows.append(
            {
                "order": order,
                "harmonics": (2 * order + 1) ** 2,
                "grid": 64,
                "absorption_mean": float(values[order].mean()),
                "values": " ".join(f"{v:.4f}" for v in values[order]),
                "s_per_image": secs,
            }
        )
    for r in rows:
        diff = np.abs(values[r["order"]] - values[ref_order])
        r[f"max_abs_diff_vs_order_{ref_order}"] = float(diff.max())
    for grid in grids:
        t = time.perf_counter()
        v = optical_absorption(images, grid=grid, **OLD_SETTING)
        secs = (time.perf_counter() - t) / len(images)
        rows.append(
            {
                "order": 5,
                "harmonics": 121,
                "grid": grid,
                "absorption_mean": float(v.mean()),
                "values": " ".join(f"{x:.4f}" for x in v),
                "s_per_image": secs,
                f"max_abs_diff_vs_order_{ref_order}": None,
            }
        )
    report(
        "evaluators_optics",
        rows,
        title=(
            f"optical_absorption of {len(images)} 128x128 images (100 nm Si pattern in air on "
            "glass, 600 nm period, 400-1100 nm x 15, AM1.5G photons): value and cost against "
            "the truncation order and the raster grid (the setting before issue 31: order 5, "
            "grid 64, trapezoidal rule)"
        ),
    )


def tensor_3d(volume: np.ndarray, *, conductivities, **accuracy) -> np.ndarray:
    """The ``3 x 3`` effective tensor of one periodic ``H x W x D`` volume (x, y, z = axes 1, 0,
    2): :func:`mdesign.evaluators.conductivity_tensor` with its keywords (``refinement``,
    ``extrapolate``, ``tolerance``, ...)."""
    return conductivity_tensor(volume[None], conductivities=conductivities, **accuracy)[0]


def mirror_dirichlet(vol: np.ndarray) -> np.ndarray:
    """A periodic volume whose y (axis 0) problem is TauFactor's multi-phase boundary problem.

    TauFactor's ``MultiPhaseSolver`` holds the potential on nodes one voxel beyond the first and
    last layers along its first axis, joined to them by the end voxel's own conductance, and
    lets nothing through the four other faces. Axes 1 and 2 are mirrored about the faces
    (``2W x 2D``: symmetry planes carry no flux). Axis 0 is mirrored about ghost layers, copies
    of the end layers: ``v, v[-1], v reversed, v[0]`` (``2H + 2``); the periodic field is odd
    about each ghost layer, so the layer sits at one potential, one voxel from its neighbours,
    joined by the harmonic mean of two equal conductivities: the end voxel's. The periodic
    sigma_yy is then the flux times ``(H + 1)`` over the drop, TauFactor's ``D_eff``.
    """
    a = np.concatenate([vol, vol[-1:], vol[::-1], vol[:1]], axis=0)
    a = np.concatenate([a, a[:, ::-1]], axis=1)
    return np.concatenate([a, a[:, :, ::-1]], axis=2)


def _taufactor_multiphase(vol: np.ndarray, contrast: float) -> tuple[float, bool, int]:
    """TauFactor's D_eff along axis 0: phase 0 conducts 1, phase 1 ``contrast`` (its labels
    1 and 2; its label 0 would be insulating), converged flag and SOR iterations."""
    import taufactor as tau

    solver = tau.MultiPhaseSolver(
        vol.astype(np.float32) + 1, cond={1: 1.0, 2: float(contrast)}, device="cpu"
    )
    solver.solve(verbose=False, conv_crit=1e-3, iter_limit=100_000)
    return float(np.asarray(solver.D_eff).ravel()[0]), bool(solver.converged), int(solver.iter)


def _cg_iterations(vol: np.ndarray, cond: tuple[float, float], tolerance: float) -> list[int]:
    """Conjugate-gradient iterations of the three loads on one cell per voxel."""
    sigma = torch.tensor(cond, dtype=torch.float64)[torch.as_tensor(vol.astype(np.int64))]
    with single_thread("cpu"):
        _, _, its = _pcg_solve(
            sigma[None],
            torch.eye(3, dtype=torch.float64),
            tolerance=tolerance,
            max_iterations=10_000,
        )
    return [int(i) for i in its[0]]


def _timed(fn, repeat: int) -> tuple[float, object]:
    """Median wall time of ``fn()`` over ``repeat`` runs (no warm-up), and its last result."""
    out = []
    t = median_time(lambda: out.append(fn()), repeat=repeat, warmup=0)
    return t, out[-1]


def taufactor_agreement_3d(vols: np.ndarray, contrasts: tuple[float, ...], repeat: int) -> None:
    rows = []
    plain = {"refinement": 1, "extrapolate": False}
    with single_thread("cpu"):  # TauFactor on one torch thread too, as mdesign's solver runs
        for contrast in contrasts:
            cond = (1.0, float(contrast))
            for i, vol in enumerate(vols):
                t_tau, (d_tau, converged, sor_iters) = _timed(
                    partial(_taufactor_multiphase, vol, contrast), repeat
                )
                t_same, same = _timed(
                    partial(
                        effective_conductivity, mirror_dirichlet(vol)[None],
                        conductivities=cond, direction="y", **plain,
                    ),
                    repeat,
                )  # fmt: skip
                # the user's case: the periodic volume itself, one load (8x fewer cells)
                t_periodic, _ = _timed(
                    partial(
                        effective_conductivity, vol[None], conductivities=cond, direction="y",
                        **plain,
                    ),
                    repeat,
                )  # fmt: skip
                same = float(same[0])
                rows.append(
                    {
                        "contrast": int(contrast),
                        "volume": i,
                        "phase1": float(vol.mean()),
                        "tau_D_eff": d_tau,
                        "tau_converged": converged,
                        "tau_sor_iterations": sor_iters,
                        "mdesign_same": same,
                        "diff_%": 100 * (same / d_tau - 1),
                        "tau_s": t_tau,
                        "mdesign_s": t_same,
                        "mdesign_over_tau": t_same / t_tau,
                        "mdesign_periodic_s": t_periodic,
                        "periodic_over_tau": t_periodic / t_tau,
                    }
                )
    report(
        "evaluators_taufactor_3d",
        rows,
        title=(
            f"3D: effective conductivity along axis 0 of {len(vols)} {vols.shape[1]}^3 two-phase "
            "GRF volumes (phase 0: 1, phase 1: contrast), TauFactor 1.2 MultiPhaseSolver (SOR, "
            "float32, conv_crit 1e-3) vs mdesign (1 cell per voxel, tolerance 1e-4) on the "
            f"{2 * vols.shape[1] + 2}x{2 * vols.shape[1]}x{2 * vols.shape[1]} mirror-extended "
            "volume (the same boundary-value problem and discretisation); median wall time of "
            f"{repeat}, one torch thread each; mdesign_periodic_s: mdesign's own periodic "
            "problem on the volume itself, one cell per voxel"
        ),
    )


def tensor_cost_3d(vols: np.ndarray, contrasts: tuple[float, ...], repeat: int) -> None:
    rows = []
    for contrast in contrasts:
        cond = (1.0, float(contrast))
        for label, kw in (
            ("1 cell/voxel", {"refinement": 1, "extrapolate": False}),
            ("default (2^3 cells, extrapolated from 1)", {}),
        ):
            t, tensor = _timed(partial(tensor_3d, vols[0], conductivities=cond, **kw), repeat)
            rows.append(
                {
                    "contrast": int(contrast),
                    "accuracy": label,
                    "sigma_xx": float(tensor[0, 0]),
                    "sigma_yy": float(tensor[1, 1]),
                    "sigma_zz": float(tensor[2, 2]),
                    "max_offdiag": float(np.abs(tensor - np.diag(np.diag(tensor))).max()),
                    "s_per_tensor": t,
                    "cg_iterations_x_y_z": "",
                }
            )
        for n in (16, 32, 64):
            its = _cg_iterations(vols[0][:n, :n, :n], cond, tolerance=1e-4)
            rows.append(
                {
                    "contrast": int(contrast),
                    "accuracy": f"CG iterations, 1 cell/voxel, {n}^3 corner",
                    "sigma_xx": None,
                    "sigma_yy": None,
                    "sigma_zz": None,
                    "max_offdiag": None,
                    "s_per_tensor": None,
                    "cg_iterations_x_y_z": " ".join(map(str, its)),
                }
            )
    report(
        "evaluators_conductivity_3d",
        rows,
        title=(
            f"3D: mdesign's periodic 3x3 tensor of one {vols.shape[1]}^3 volume, one torch "
            f"thread, median of {repeat}; CG iterations (tolerance 1e-4) against the size"
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and orders")
    parser.add_argument("--part", choices=("all", "2d", "3d"), default="all")
    args = parser.parse_args()
    if args.part in ("all", "2d"):
        images = blobs(4 if args.quick else 16, seed=0)
        conductivity_speed(images)
        duality_table(images[:4] if args.quick else images[:8])
        tau_images = grf_microstructures(
            3 if args.quick else 6, (128, 128), volume_fraction=0.6, correlation_length=6, seed=2
        ).images
        taufactor_agreement(tau_images)
        opt_images = blobs(2, seed=4)
        orders = (1, 3, 5) if args.quick else (1, 3, 5, 7, 9)
        optics(opt_images, orders, grids=() if args.quick else (32, 128))
    if args.part in ("all", "3d"):
        side = 32 if args.quick else 64
        vols = grf_microstructures(
            3, (side, side, side), volume_fraction=0.4, correlation_length=4, seed=5
        ).images
        repeat = 1 if args.quick else 3
        taufactor_agreement_3d(vols, (10.0, 100.0), repeat=repeat)
        tensor_cost_3d(vols, (10.0, 100.0), repeat=repeat)


if __name__ == "__main__":
    main()
