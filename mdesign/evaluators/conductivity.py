"""Effective conductivity of periodic 2D k-phase images (homogenisation).

Each pixel is a square of its phase's conductivity; the image is one period of an infinite
periodic medium. For a macroscopic field ``E`` the periodic potential fluctuation ``phi`` solves
``div(sigma (E + grad phi)) = 0`` and the effective tensor maps ``E`` to the mean current,
``sigma_eff E = <sigma (E + grad phi)>``.

Discretisation: cell-centred finite volumes on the pixel grid, each pixel optionally split into
``refinement x refinement`` cells, with the harmonic mean of the two cells as the conductance of
a face (two half-cells in series). This is the classical two-point flux scheme; it is exact for
laminates in both directions (series and parallel resistors) and converges to the continuum
answer as the cells shrink. With ``extrapolate`` the solutions on ``refinement // 2`` and
``refinement`` cells per pixel are combined by Richardson extrapolation at first order in the
cell size, which cancels most of the discretisation error at the cost of one coarser solve.

Solver: conjugate gradients preconditioned by the inverse of the constant-coefficient periodic
Laplacian, applied with FFTs (Moulinec & Suquet 1998; the conjugate-gradient form of Zeman et
al. 2010, here on the finite-volume operator as in the staggered-grid scheme of Schneider et al.
2016). The preconditioned operator's spectrum is bounded by the conductivity contrast, not the
grid size, so the iteration count does not grow with the image (about 15 iterations at contrast
10 and 40 at contrast 100 for the default tolerance). Everything is batched over images in
torch, float64, on :func:`mdesign.device.default_device`.

Keller's duality (Keller 1964; Mendelson 1975 for anisotropic media) is exact in the continuum
for any 2D two-phase image: with ``R`` the rotation by 90 degrees,
``sigma_eff(s2, s1) = s1 s2 R sigma_eff(s1, s2)^-1 R^T``; for a tensor without off-diagonal terms
this is ``sigma_xx(s1, s2) sigma_yy(s2, s1) = s1 s2``. How far a discrete solution misses it
measures its accuracy (``bench/bench_evaluators.py``).

References
----------
Moulinec H., Suquet P. (1998) A numerical method for computing the overall response of nonlinear
composites with complex microstructure. Comput. Methods Appl. Mech. Eng. 157, 69-94.
Zeman J., Vondrejc J., Novak J., Marek I. (2010) Accelerating a FFT-based solver for numerical
homogenization of periodic media by conjugate gradients. J. Comput. Phys. 229, 8065-8071.
Schneider M., Ospald F., Kabel M. (2016) Computational homogenization of elasticity on a
staggered grid. Int. J. Numer. Methods Eng. 105, 693-720.
Keller J. B. (1964) A theorem on the conductivity of a composite medium. J. Math. Phys. 5, 548.
Torquato S. (2002) Random Heterogeneous Materials, ch. 19-21 (bounds, duality). Springer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mdesign.config import CONDUCTIVITY_DEFAULTS, ConductivityConfig, config_from_dict
from mdesign.device import default_device, single_thread
from mdesign.errors import InputError
from mdesign.evaluators.base import Parameter, parameters_from_config, parse_params

__all__ = [
    "EffectiveConductivity",
    "conductivity_tensor",
    "effective_conductivity",
]

_D = CONDUCTIVITY_DEFAULTS
_CELLS_PER_CHUNK = 2**21
"""Fine-grid cells (times loads) solved together: about 200 MB of float64 work arrays."""


def _check_conductivities(conductivities: Sequence[float] | None, images: np.ndarray) -> tuple:
    if conductivities is None:
        raise InputError("conductivities: required, one per phase (e.g. 1,10)")
    cond = tuple(float(c) for c in conductivities)
    if len(cond) < 2:
        raise InputError(f"conductivities: need one per phase (at least 2), got {len(cond)}")
    if not all(np.isfinite(c) and c >= 0 for c in cond):
        raise InputError(f"conductivities: must be finite and >= 0, got {list(cond)}")
    if max(cond) <= 0:
        raise InputError("conductivities: at least one must be positive")
    if images.size and int(images.max()) >= len(cond):
        raise InputError(
            f"conductivities: {len(cond)} given, but the images have phase {int(images.max())} "
            f"(labels 0..{int(images.max())})"
        )
    return cond


def _as_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise InputError(f"expected images N x H x W, got shape {images.shape}")
    if images.dtype.kind not in "biu":
        raise InputError(f"expected integer labels, got dtype {images.dtype}")
    if images.size and images.min() < 0:
        raise InputError("labels must be >= 0")
    return images


def _harmonic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Conductance of two half-cells in series (0 when either is insulating)."""
    s = a + b
    return torch.where(s > 0, 2 * a * b / torch.where(s > 0, s, 1), torch.zeros_like(s))


def _pcg_solve(
    sigma: torch.Tensor,
    loads: torch.Tensor,
    *,
    tolerance: float,
    max_iterations: int,
    x0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Effective tensor in the basis of ``loads`` on the cell grid ``sigma``.

    Parameters
    ----------
    sigma : Tensor, ``B x H x W``
        Cell conductivities.
    loads : Tensor, ``L x 2``
        Macroscopic fields (Ex, Ey) per cell length; every image is solved for every load.
    x0 : Tensor, ``B x L x H x W``, optional
        Initial potential fluctuation.

    Returns
    -------
    T : Tensor, ``B x L x L``
        ``T[n, l, m] = <(E_l + grad phi_l) . sigma (E_m + grad phi_m)>``: the energy form,
        which errs by the square of the field error (the mean current errs linearly).
    phi : Tensor, ``B x L x H x W``
        The potential fluctuation (for warm starts on finer grids).
    """
    B, H, W = sigma.shape
    L = loads.shape[0]
    # conductance of the face between cell (i, j) and (i, j+1) (gx) and (i+1, j) (gy)
    gx = _harmonic(sigma, torch.roll(sigma, -1, 2)).unsqueeze(1)  # B x 1 x H x W
    gy = _harmonic(sigma, torch.roll(sigma, -1, 1)).unsqueeze(1)
    gx_left = torch.roll(gx, 1, 3)
    gy_up = torch.roll(gy, 1, 2)
    diag = gx + gx_left + gy + gy_up
    ex = loads[:, 0].view(1, L, 1, 1)
    ey = loads[:, 1].view(1, L, 1, 1)

    def apply(p: torch.Tensor) -> torch.Tensor:
        # A = D^T G D: the net current out of each cell for potential p
        return (
            diag * p
            - gx * torch.roll(p, -1, 3)
            - gx_left * torch.roll(p, 1, 3)
            - gy * torch.roll(p, -1, 2)
            - gy_up * torch.roll(p, 1, 2)
        )

    # right-hand side: minus the divergence of the current the macroscopic field drives
    b = (gx * ex - gx_left * ex) + (gy * ey - gy_up * ey)
    b = b.expand(B, L, H, W).contiguous()
    ky = torch.fft.fftfreq(H, dtype=sigma.dtype, device=sigma.device).view(H, 1)
    kx = torch.fft.rfftfreq(W, dtype=sigma.dtype, device=sigma.device).view(1, -1)
    lam = (2 - 2 * torch.cos(2 * np.pi * ky)) + (2 - 2 * torch.cos(2 * np.pi * kx))
    # the mean of the potential is free: the zero mode of the preconditioner is dropped
    inv_lam = torch.where(lam > 0, 1 / torch.where(lam > 0, lam, 1), torch.zeros_like(lam))
    scale = (gx.mean(dim=(2, 3), keepdim=True) + gy.mean(dim=(2, 3), keepdim=True)) / 2
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    inv_lam = inv_lam / scale  # B x 1 x H x (W//2+1)

    def precondition(r: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(r) * inv_lam, s=(H, W))

    def dot(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return (a * c).sum(dim=(2, 3), keepdim=True)

    if x0 is None:
        x = torch.zeros_like(b)
        r = b.clone()
    else:
        x = x0.clone()
        r = b - apply(x)
    z = precondition(r)
    p = z.clone()
    rz = dot(r, z)
    target = (tolerance**2) * dot(b, precondition(b))
    active = rz > target
    it = 0
    while bool(active.any()):
        if it >= max_iterations:
            bad = sorted({int(i) for i in torch.nonzero(active.view(B, L))[:, 0]})
            raise RuntimeError(
                f"conjugate gradients did not converge in {max_iterations} iterations "
                f"(images {bad})"
            )
        ap = apply(p)
        pap = dot(p, ap)
        # converged systems are frozen, so a value does not depend on its batch companions
        alpha = torch.where(active & (pap > 0), rz / torch.where(pap > 0, pap, 1), 0)
        x = x + alpha * p
        r = r - alpha * ap
        z = precondition(r)
        rz_new = dot(r, z)
        active = active & (rz_new > target) & (pap > 0)
        beta = torch.where(active, rz_new / torch.where(rz > 0, rz, 1), 0)
        p = z + beta * p
        rz = rz_new
        it += 1
    # total potential drop across each face (field + fluctuation), per load: B x L x H x W
    dx = ex + torch.roll(x, -1, 3) - x
    dy = ey + torch.roll(x, -1, 2) - x
    t = torch.einsum("blhw,bmhw->blm", gx * dx, dx) + torch.einsum("blhw,bmhw->blm", gy * dy, dy)
    return t / (H * W), x


def _solve(
    images: np.ndarray,
    cond: tuple,
    loads: torch.Tensor,
    *,
    refinement: int,
    extrapolate: bool,
    tolerance: float,
    max_iterations: int,
    device: torch.device | str | None,
) -> np.ndarray:
    """Effective tensor ``N x L x L`` in the basis of the loads ``L x 2`` (extrapolated)."""
    dev = default_device(device)
    with single_thread(dev):
        return _solve_levels(
            images,
            cond,
            loads,
            refinement=refinement,
            extrapolate=extrapolate,
            tolerance=tolerance,
            max_iterations=max_iterations,
            device=dev,
        )


def _solve_levels(
    images: np.ndarray,
    cond: tuple,
    loads: torch.Tensor,
    *,
    refinement: int,
    extrapolate: bool,
    tolerance: float,
    max_iterations: int,
    device: torch.device,
) -> np.ndarray:
    # bound memory: about 12 arrays of the fine grid per image and load are alive at once
    n, h, w = images.shape
    per_chunk = max(1, _CELLS_PER_CHUNK // (h * w * refinement**2 * loads.shape[0]))
    if n > per_chunk:
        return np.concatenate(
            [
                _solve_levels(
                    images[i : i + per_chunk],
                    cond,
                    loads,
                    refinement=refinement,
                    extrapolate=extrapolate,
                    tolerance=tolerance,
                    max_iterations=max_iterations,
                    device=device,
                )
                for i in range(0, n, per_chunk)
            ]
        )
    dev = device
    table = torch.tensor(cond, dtype=torch.float64, device=dev)
    labels = torch.as_tensor(images.astype(np.int64), device=dev)
    sigma = table[labels]  # N x H x W
    loads = loads.to(device=dev, dtype=torch.float64)
    levels = [refinement]
    if extrapolate and refinement >= 2:
        levels = [refinement // 2, refinement]
    tensors = []
    phi = None
    prev = None
    for s in levels:
        cells = sigma.repeat_interleave(s, 1).repeat_interleave(s, 2) if s > 1 else sigma
        x0 = None
        if phi is not None and s % prev == 0:
            # the coarse solution, in fine-cell units, starts the fine solve
            r = s // prev
            x0 = phi.repeat_interleave(r, 2).repeat_interleave(r, 3) * r
        t, phi = _pcg_solve(cells, loads, tolerance=tolerance, max_iterations=max_iterations, x0=x0)
        tensors.append(t)
        prev = s
    if len(levels) == 2:
        c, f = levels
        t = (f * tensors[1] - c * tensors[0]) / (f - c)
    else:
        t = tensors[0]
    return t.cpu().numpy()


def conductivity_tensor(
    images: np.ndarray,
    *,
    conductivities: Sequence[float],
    refinement: int = _D.refinement,
    extrapolate: bool = _D.extrapolate,
    tolerance: float = _D.tolerance,
    max_iterations: int = _D.max_iterations,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Effective conductivity tensor of periodic k-phase images.

    Parameters
    ----------
    images : ndarray of int, ``N x H x W`` (or one ``H x W`` image)
        Phase labels ``0..k-1``; each image is one period of the medium.
    conductivities : sequence of float
        Conductivity of each phase (``k`` values, >= 0, phase 0 first).
    refinement : int
        Each pixel is split into ``refinement x refinement`` finite-volume cells.
    extrapolate : bool
        Richardson-extrapolate from ``refinement // 2`` and ``refinement`` cells per pixel
        (first order in the cell size); ignored when ``refinement`` is 1.
    tolerance : float
        Relative residual (preconditioned norm) at which conjugate gradients stop; the value
        errs by roughly its square.
    max_iterations : int
        Iteration limit; reaching it raises :class:`RuntimeError`.
    device : torch device, optional
        Where to solve; :func:`mdesign.device.default_device` by default.

    Returns
    -------
    ndarray of float64, ``N x 2 x 2``
        ``T[n, a, b]``: mean current along ``a`` for a unit field along ``b``, with index 0 = x
        (the column axis, axis 1 of the image) and 1 = y (the row axis, axis 0). Symmetric up to
        the solver tolerance.

    Notes
    -----
    See the module docstring for the discretisation and the solver. The tensor is exact for
    laminates at any refinement: the arithmetic mean along the layers, the harmonic mean across.

    References
    ----------
    Zeman et al. (2010), J. Comput. Phys. 229, 8065; Torquato (2002), Random Heterogeneous
    Materials, ch. 17.
    """
    images = _as_images(images)
    cond = _check_conductivities(conductivities, images)
    cfg = config_from_dict(
        ConductivityConfig,
        {
            "refinement": refinement,
            "extrapolate": extrapolate,
            "tolerance": tolerance,
            "max_iterations": max_iterations,
        },
        source="conductivity_tensor",
    )
    loads = torch.eye(2, dtype=torch.float64)
    t = _solve(
        images,
        cond,
        loads,
        refinement=cfg.refinement,
        extrapolate=cfg.extrapolate,
        tolerance=cfg.tolerance,
        max_iterations=cfg.max_iterations,
        device=device,
    )
    return t


def effective_conductivity(
    images: np.ndarray,
    *,
    conductivities: Sequence[float],
    direction: str = _D.direction,
    refinement: int = _D.refinement,
    extrapolate: bool = _D.extrapolate,
    tolerance: float = _D.tolerance,
    max_iterations: int = _D.max_iterations,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Effective conductivity of periodic k-phase images along x or y.

    One solve per image (the field along ``direction``); :func:`conductivity_tensor` gives the
    full tensor with two.

    Parameters
    ----------
    images : ndarray of int, ``N x H x W`` (or one ``H x W`` image)
        Phase labels ``0..k-1``.
    conductivities : sequence of float
        Conductivity of each phase, phase 0 first; the result has their unit.
    direction : {"x", "y"}
        ``x``: field and current along the columns (axis 1); ``y``: along the rows (axis 0).
    refinement, extrapolate, tolerance, max_iterations, device
        As in :func:`conductivity_tensor`.

    Returns
    -------
    ndarray of float64, ``N``
        ``sigma_xx`` or ``sigma_yy`` of each image.

    References
    ----------
    Zeman et al. (2010), J. Comput. Phys. 229, 8065 (FFT-preconditioned conjugate gradients).
    """
    if direction not in ("x", "y"):
        raise InputError(f"direction: expected x or y, got {direction!r}")
    images = _as_images(images)
    cond = _check_conductivities(conductivities, images)
    cfg = config_from_dict(
        ConductivityConfig,
        {
            "refinement": refinement,
            "extrapolate": extrapolate,
            "tolerance": tolerance,
            "max_iterations": max_iterations,
        },
        source="effective_conductivity",
    )
    axis = 0 if direction == "x" else 1
    loads = torch.zeros(1, 2, dtype=torch.float64)
    loads[0, axis] = 1.0
    t = _solve(
        images,
        cond,
        loads,
        refinement=cfg.refinement,
        extrapolate=cfg.extrapolate,
        tolerance=cfg.tolerance,
        max_iterations=cfg.max_iterations,
        device=device,
    )
    return t[:, 0, 0]


class EffectiveConductivity:
    """Effective conductivity of the periodic image along x or y (finite volumes, FFT-CG).

    Built by ``get_evaluator("effective_conductivity", conductivities=..., ...)``; the values
    are :func:`effective_conductivity` of each image, in the unit of the conductivities.
    """

    name = "effective_conductivity"
    parameters: Mapping[str, Parameter] = parameters_from_config(ConductivityConfig)
    phases_parameter = "conductivities"
    batch_size = 64
    """Images per call of :func:`effective_conductivity` (progress is reported per call)."""

    def __init__(self, **params: Any):
        self.params = parse_params(self.parameters, params, evaluator=self.name)
        self.config = config_from_dict(ConductivityConfig, self.params, source=self.name)
        try:
            _check_conductivities(self.config.conductivities, np.zeros((0, 0, 0), np.uint8))
        except InputError as exc:
            raise InputError(f"evaluator {self.name}: parameter {exc}") from None

    @property
    def phases(self) -> int:
        """Number of phases the parameters describe."""
        return len(self.config.conductivities)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        c = self.config
        return effective_conductivity(
            images,
            conductivities=c.conductivities,
            direction=c.direction,
            refinement=c.refinement,
            extrapolate=c.extrapolate,
            tolerance=c.tolerance,
            max_iterations=c.max_iterations,
        )

    def __repr__(self) -> str:
        return f"EffectiveConductivity({self.params})"
