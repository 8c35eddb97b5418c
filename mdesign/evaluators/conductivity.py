"""Effective conductivity of periodic k-phase images (2D) and volumes (3D) by homogenisation.

Each pixel (voxel) is a square (cube) of its phase's conductivity; the image is one period of an
infinite periodic medium. For a macroscopic field ``E`` the periodic potential fluctuation ``phi``
solves ``div(sigma (E + grad phi)) = 0`` and the effective tensor maps ``E`` to the mean current,
``sigma_eff E = <sigma (E + grad phi)>``. Images ``N x H x W`` give ``2 x 2`` tensors, volumes ``N x
H x W x D`` ``3 x 3`` tensors (:func:`conductivity_tensor`; :func:`effective_conductivity` one
direction), with x the column axis (axis 1), y the row axis (axis 0) and z the depth axis (axis 2).

Discretisation: cell-centred finite volumes on the pixel grid, each pixel optionally split into
``refinement`` cells per side, with the harmonic mean of two cells as a face's conductance (the
two-point flux scheme: exact for laminates both ways, first order in the cell size); with
``extrapolate`` the ``refinement // 2`` and ``refinement`` solutions are combined by Richardson
extrapolation at first order. Solver: conjugate gradients preconditioned by the FFT-inverted
constant-coefficient periodic Laplacian (Moulinec & Suquet 1998; Zeman et al. 2010; on the
finite-volume operator as in Schneider et al. 2016), whose iteration count is bounded by the
contrast, not the grid size; batched over images in torch, float64, on
:func:`mdesign.device.default_device`.

The checks (bounds, Keller's duality, TauFactor) and their references: the evaluators guide
(``docs/guide/evaluators.md``); accuracy and cost: the performance page.

References
----------
Moulinec H., Suquet P. (1998) A numerical method for computing the overall response of nonlinear
composites with complex microstructure. Comput. Methods Appl. Mech. Eng. 157, 69-94.
Zeman J., Vondrejc J., Novak J., Marek I. (2010) Accelerating a FFT-based solver for numerical
homogenization of periodic media by conjugate gradients. J. Comput. Phys. 229, 8065-8071.
Schneider M., Ospald F., Kabel M. (2016) Computational homogenization of elasticity on a
staggered grid. Int. J. Numer. Methods Eng. 105, 693-720.
"""

from __future__ import annotations

import math
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
_AXES = {2: (1, 0), 3: (1, 0, 2)}
"""Image axis of each tensor index (x, y[, z]) by image dimension: x is the column axis (1),
y the row axis (0), z the depth axis (2) of a volume, so a 2D tensor is the x-y block of 3D."""
_DIRECTIONS = ("x", "y", "z")


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
    if images.ndim not in (3, 4):
        raise InputError(
            f"expected images N x H x W or volumes N x H x W x D, got shape {images.shape}"
        )
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
    loads_per_solve: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Effective tensor in the basis of ``loads`` on the cell grid ``sigma``.

    Parameters
    ----------
    sigma : Tensor, ``B x H x W`` or ``B x H x W x D``
        Cell conductivities.
    loads : Tensor, ``L x d``
        Macroscopic fields per cell length, components in the tensor order (x, y[, z]) of
        ``_AXES``; every image is solved for every load.
    x0 : Tensor, ``B x L x H x W [x D]``, optional
        Initial potential fluctuation.
    loads_per_solve : int, optional
        Loads iterated together (all by default); fewer bound the memory of one large image.
        The loads' systems are independent, so this changes the cost, not the values.

    Returns
    -------
    T : Tensor, ``B x L x L``
        ``T[n, l, m] = <(E_l + grad phi_l) . sigma (E_m + grad phi_m)>``: the energy form,
        which errs by the square of the field error (the mean current errs linearly).
    phi : Tensor, ``B x L x H x W [x D]``
        The potential fluctuation (for warm starts on finer grids).
    iterations : Tensor of int64, ``B x L``
        Conjugate-gradient iterations each system took to reach ``tolerance``.
    """
    B, *grid = sigma.shape
    nd = len(grid)
    L = loads.shape[0]
    axes = _AXES[nd]
    space = tuple(range(2, 2 + nd))  # the grid's dims in B x L x grid arrays
    ones = [1] * nd
    # per tensor index k (x, y[, z]): conductance of the face between a cell and its next
    # neighbour along image axis axes[k] (g), the same face seen from that neighbour (g_back),
    # and the load's component (e); g, g_back: B x 1 x grid, e: 1 x L x 1...
    g, g_back, e = [], [], []
    for k, a in enumerate(axes):
        gk = _harmonic(sigma, torch.roll(sigma, -1, a + 1)).unsqueeze(1)
        g.append(gk)
        g_back.append(torch.roll(gk, 1, a + 2))
        e.append(loads[:, k].view(1, L, *ones))
    diag = g[0] + g_back[0]
    for k in range(1, nd):
        diag = diag + g[k] + g_back[k]

    def apply(p: torch.Tensor) -> torch.Tensor:
        # A = D^T G D: the net current out of each cell for potential p
        out = diag * p
        for k, a in enumerate(axes):
            out = out - g[k] * torch.roll(p, -1, a + 2) - g_back[k] * torch.roll(p, 1, a + 2)
        return out

    # eigenvalues of the unit-conductance periodic Laplacian on the rfftn grid (the last
    # image axis halved), summed over the image axes in order: H x (W//2+1) [or H x W x (D//2+1)]
    lam = None
    for i, n in enumerate(grid):
        freq = torch.fft.rfftfreq if i == nd - 1 else torch.fft.fftfreq
        k = freq(n, dtype=sigma.dtype, device=sigma.device)
        shape = [1] * nd
        shape[i] = -1
        li = 2 - 2 * torch.cos(2 * np.pi * k.view(shape))
        lam = li if lam is None else lam + li
    # the mean of the potential is free: the zero mode of the preconditioner is dropped
    inv_lam = torch.where(lam > 0, 1 / torch.where(lam > 0, lam, 1), torch.zeros_like(lam))
    scale = g[0].mean(dim=space, keepdim=True)
    for k in range(1, nd):
        scale = scale + g[k].mean(dim=space, keepdim=True)
    scale = scale / nd
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    inv_lam = inv_lam / scale

    def precondition(r: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfftn(torch.fft.rfftn(r, dim=space) * inv_lam, s=grid, dim=space)

    def dot(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return (a * c).sum(dim=space, keepdim=True)

    def cg(lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        # right-hand side: minus the divergence of the current the macroscopic field drives
        ek = [v[:, lo:hi] for v in e]
        b = g[0] * ek[0] - g_back[0] * ek[0]
        for k in range(1, nd):
            b = b + (g[k] * ek[k] - g_back[k] * ek[k])
        b = b.expand(B, hi - lo, *grid).contiguous()
        if x0 is None:
            x = torch.zeros_like(b)
            r = b.clone()
        else:
            x = x0[:, lo:hi].clone()
            r = b - apply(x)
        z = precondition(r)
        p = z.clone()
        rz = dot(r, z)
        target = (tolerance**2) * dot(b, precondition(b))
        del b
        active = rz > target
        counts = torch.zeros_like(active, dtype=torch.int64)
        it = 0
        while bool(active.any()):
            if it >= max_iterations:
                bad = sorted({int(i) for i in torch.nonzero(active.view(B, hi - lo))[:, 0]})
                raise RuntimeError(
                    f"conjugate gradients did not converge in {max_iterations} iterations "
                    f"(images {bad})"
                )
            counts += active
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
        return x, counts.view(B, hi - lo)

    step = L if loads_per_solve is None else max(1, int(loads_per_solve))
    if step >= L:
        x, iterations = cg(0, L)
    else:
        parts = [cg(lo, min(lo + step, L)) for lo in range(0, L, step)]
        x = torch.cat([px for px, _ in parts], dim=1)
        iterations = torch.cat([pc for _, pc in parts], dim=1)
    # total potential drop across each face (field + fluctuation), per load: B x L x grid
    spec = "blhw,bmhw->blm" if nd == 2 else "blhwd,bmhwd->blm"
    t = None
    for k, a in enumerate(axes):
        dk = e[k] + torch.roll(x, -1, a + 2) - x
        tk = torch.einsum(spec, g[k] * dk, dk)
        t = tk if t is None else t + tk
        del dk
    return t / math.prod(grid), x, iterations


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
    """Effective tensor ``N x L x L`` in the basis of the loads ``L x d`` (extrapolated)."""
    from mdesign.memory import check_memory

    # the least that is solved at once: one load of one image's fine grid, about 12 arrays of
    # float64 (see _solve_levels), and the image as int64
    shape = images.shape[1:]
    fine = math.prod(shape) * refinement ** len(shape)
    check_memory(
        12 * 8 * fine + 8 * math.prod(shape),
        what=f"the conductivity of a {' x '.join(map(str, shape))} image",
        param="images",
    )
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
    # bound memory: about 12 arrays of the fine grid per image and load are alive at once. A
    # volume whose loads together exceed the budget is solved one group of loads at a time
    # (images keep their loads together: batching changes a value's last bits, and 2D values
    # stay bit-identical to the 2D-only solver's). One load of one grid above the budget is
    # solved as it is: 64^3 voxels refined 2x take about 0.2 GB, 128^3 about 1.6 GB.
    n, *shape = images.shape
    nd = len(shape)
    fine = math.prod(shape) * refinement**nd
    L = loads.shape[0]
    per_chunk = max(1, _CELLS_PER_CHUNK // (fine * L))
    loads_per_solve = None
    if nd == 3 and fine * L > _CELLS_PER_CHUNK:
        loads_per_solve = max(1, _CELLS_PER_CHUNK // fine)
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
    sigma = table[labels]  # N x H x W [x D]
    loads = loads.to(device=dev, dtype=torch.float64)
    levels = [refinement]
    if extrapolate and refinement >= 2:
        levels = [refinement // 2, refinement]
    tensors = []
    phi = None
    prev = None
    for s in levels:
        cells = sigma
        if s > 1:
            for dim in range(1, 1 + nd):
                cells = cells.repeat_interleave(s, dim)
        x0 = None
        if phi is not None and s % prev == 0:
            # the coarse solution, in fine-cell units, starts the fine solve
            r = s // prev
            x0 = phi
            for dim in range(2, 2 + nd):
                x0 = x0.repeat_interleave(r, dim)
            x0 = x0 * r
        phi = None
        t, phi, _ = _pcg_solve(
            cells,
            loads,
            tolerance=tolerance,
            max_iterations=max_iterations,
            x0=x0,
            loads_per_solve=loads_per_solve,
        )
        tensors.append(t)
        prev = s
    if len(levels) == 2:
        c, f = levels
        t = (f * tensors[1] - c * tensors[0]) / (f - c)
    else:
        t = tensors[0]
    return t.cpu().numpy()


def _check_direction(direction: str, images: np.ndarray) -> int:
    """Tensor index of ``direction`` for these images (z only for volumes)."""
    if direction not in _DIRECTIONS:
        raise InputError(f"direction: expected x, y or z, got {direction!r}")
    if direction == "z" and images.ndim != 4:
        raise InputError(
            f"direction: z needs volumes N x H x W x D, got images of shape {images.shape}"
        )
    return _DIRECTIONS.index(direction)


def _accuracy(source: str, **values: Any) -> ConductivityConfig:
    return config_from_dict(ConductivityConfig, values, source=source)


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
    """Effective conductivity tensor of periodic k-phase images or volumes.

    Parameters
    ----------
    images : ndarray of int, ``N x H x W`` (or one ``H x W`` image), or ``N x H x W x D``
        Phase labels ``0..k-1``; each image (volume) is one period of the medium. A 3D array
        is a stack of images; pass one volume as ``volume[None]``.
    conductivities : sequence of float
        Conductivity of each phase (``k`` values, >= 0, phase 0 first).
    refinement : int
        Each pixel (voxel) is split into ``refinement`` cells per side (``refinement**3`` cells
        per voxel: the cost of a volume grows as its cube).
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
    ndarray of float64, ``N x 2 x 2`` (images) or ``N x 3 x 3`` (volumes)
        ``T[n, a, b]``: mean current along ``a`` for a unit field along ``b``, with index 0 = x
        (the column axis, axis 1 of the image), 1 = y (the row axis, axis 0) and, for volumes,
        2 = z (the depth axis, axis 2). A volume made of one image repeated along its depth has
        that image's 2D tensor as its x-y block. Symmetric up to the solver tolerance.

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
    cfg = _accuracy(
        "conductivity_tensor",
        refinement=refinement,
        extrapolate=extrapolate,
        tolerance=tolerance,
        max_iterations=max_iterations,
    )
    loads = torch.eye(images.ndim - 1, dtype=torch.float64)
    return _solve(
        images,
        cond,
        loads,
        refinement=cfg.refinement,
        extrapolate=cfg.extrapolate,
        tolerance=cfg.tolerance,
        max_iterations=cfg.max_iterations,
        device=device,
    )


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
    """Effective conductivity of periodic k-phase images (volumes) along x, y (or z).

    One solve per image (the field along ``direction``); :func:`conductivity_tensor` gives the
    full tensor with two (three for volumes).

    Parameters
    ----------
    images : ndarray of int, ``N x H x W`` (or one ``H x W`` image), or ``N x H x W x D``
        Phase labels ``0..k-1``.
    conductivities : sequence of float
        Conductivity of each phase, phase 0 first; the result has their unit.
    direction : {"x", "y", "z"}
        ``x``: field and current along the columns (axis 1); ``y``: along the rows (axis 0);
        ``z``: along the depth (axis 2), volumes only.
    refinement, extrapolate, tolerance, max_iterations, device
        As in :func:`conductivity_tensor`.

    Returns
    -------
    ndarray of float64, ``N``
        ``sigma_xx``, ``sigma_yy`` or ``sigma_zz`` of each image.

    Raises
    ------
    InputError
        Bad labels or conductivities, an unknown direction, or ``z`` for 2D images.

    References
    ----------
    Zeman et al. (2010), J. Comput. Phys. 229, 8065 (FFT-preconditioned conjugate gradients).
    """
    images = _as_images(images)
    axis = _check_direction(direction, images)
    cond = _check_conductivities(conductivities, images)
    cfg = _accuracy(
        "effective_conductivity",
        refinement=refinement,
        extrapolate=extrapolate,
        tolerance=tolerance,
        max_iterations=max_iterations,
    )
    loads = torch.zeros(1, images.ndim - 1, dtype=torch.float64)
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
    """Effective conductivity of the periodic image (volume) along x, y or z (FV, FFT-CG).

    Built by ``get_evaluator("effective_conductivity", conductivities=..., ...)``; the values
    are :func:`effective_conductivity` of each image, in the unit of the conductivities. Takes
    images ``N x H x W`` or volumes ``N x H x W x D``; ``direction=z`` only volumes.
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

    def check_images(self, images: np.ndarray) -> None:
        """Refuse a stack these parameters cannot evaluate (``direction=z`` on 2D images)
        before any work: :class:`~mdesign.errors.InputError` naming the parameter."""
        try:
            _check_direction(self.config.direction, _as_images(images))
        except InputError as exc:
            raise InputError(f"evaluator {self.name}: parameter {exc}") from None

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
