"""Effective elastic stiffness of periodic k-phase images (2D) and volumes (3D).

Each pixel (voxel) is a square (cube) of one isotropic phase; the image is one period of an
infinite periodic medium. For a macroscopic strain ``E`` the periodic displacement fluctuation
``u`` solves ``div(C (E + grad_s u)) = 0`` and the effective tensor is the energy form
``E : C_eff : E = <(E + grad_s u) : C (E + grad_s u)>``. Tensors are in Mandel notation:
``(xx, yy, sqrt2 xy)`` for images (plane strain by default, plane stress as an option) and
``(xx, yy, zz, sqrt2 yz, sqrt2 xz, sqrt2 xy)`` for volumes, with x the column axis (axis 1), y
the row axis (axis 0) and z the depth axis (axis 2), as in :mod:`mdesign.evaluators.conductivity`.

Discretisation: conforming Q1 finite elements on the voxel grid (bilinear or trilinear, full
Gauss integration; Schneider, Merkert & Kabel 2017): no Moulinec-Suquet ringing, exact for
laminates along voxel planes, always between the Voigt and Reuss bounds, pores need nothing
special. Solver: conjugate gradients preconditioned by the FFT-inverted Q1 operator of a
homogeneous reference medium (Zeman et al. 2010), batched over images and load cases in torch,
float64, on :func:`mdesign.device.default_device`. Why this scheme, its accuracy and cost:
``docs/guide/mechanics.md``.

References
----------
Moulinec H., Suquet P. (1998) Comput. Methods Appl. Mech. Eng. 157, 69-94.
Zeman J., Vondrejc J., Novak J., Marek I. (2010) J. Comput. Phys. 229, 8065-8071.
Willot F. (2015) Fourier-based schemes for computing the mechanical response of composites with
accurate local fields. C. R. Mecanique 343, 232-245.
Schneider M., Merkert D., Kabel M. (2017) FFT-based homogenization for microstructures discretized
by linear hexahedral elements. Int. J. Numer. Methods Eng. 109, 1461-1489.
Hashin Z., Shtrikman S. (1963) J. Mech. Phys. Solids 11, 127-140 (bounds).
Ranganathan S. I., Ostoja-Starzewski M. (2008) Universal elastic anisotropy index. Phys. Rev.
Lett. 101, 055504.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mdesign.config import ELASTICITY_DEFAULTS, ElasticityConfig, config_from_dict
from mdesign.device import default_device, single_thread
from mdesign.errors import InputError
from mdesign.evaluators.base import Parameter, parameters_from_config, parse_params
from mdesign.evaluators.conductivity import _AXES, _as_images
from mdesign.memory import check_memory

__all__ = [
    "ElasticModuli",
    "ElasticStiffness",
    "elastic_moduli",
    "elastic_stiffness",
    "lame_constants",
    "stiffness_tensor",
]

_D = ELASTICITY_DEFAULTS
_SQRT2 = math.sqrt(2.0)
_ELEMENTS_PER_CHUNK = {"cpu": 2**16, "cuda": 2**21}
"""Elements times loads iterated together, at most (the loads of a larger grid are solved in
groups), by device type: about 60 float64 arrays of this many elements are alive at once. On
a CPU one 128x128 image with its 3 loads (2^15.6): a batch of five 128x128 images took 1.0-2.3x
the time of the same images one by one (cache), on a loaded machine."""


def _chunk(device: torch.device | str | None) -> int:
    return _ELEMENTS_PER_CHUNK.get(default_device(device).type, _ELEMENTS_PER_CHUNK["cpu"])


_WORK_ARRAYS = 60
"""float64 arrays of one element per load alive at once in a solve (the memory estimate)."""
_SINGULAR = 1e-7
"""Kelvin moduli below this fraction of the largest count as zero (a direction without
stiffness): the tensor's relative error at the default tolerance is about 1e-8."""
OUTPUTS = ("E_x", "E_y", "E_z", "bulk", "shear", "young", "anisotropy", "C_xx", "C_yy", "C_zz")


# ---------------------------------------------------------------------------------------------
# phases


def lame_constants(
    *,
    youngs_moduli: Sequence[float] | None = None,
    poissons_ratios: Sequence[float] | float | None = None,
    bulk_moduli: Sequence[float] | None = None,
    shear_moduli: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lame constants ``(lambda, mu)`` of isotropic phases given as (E, nu) or (K, G).

    Parameters
    ----------
    youngs_moduli : sequence of float, optional
        Young's modulus of each phase (>= 0; 0 is a pore).
    poissons_ratios : float or sequence of float, optional
        Poisson's ratio of each phase, or one for all, in (-1, 0.5); 0.3 when not given;
        ignored with ``bulk_moduli`` and ``shear_moduli``.
    bulk_moduli, shear_moduli : sequence of float, optional
        The 3D bulk and shear moduli of each phase instead (>= 0, both 0 for a pore).

    Returns
    -------
    lam, mu : ndarray of float64, ``k``
        The 3D Lame constants, in the unit of the moduli.
    """
    if youngs_moduli is not None and (bulk_moduli is not None or shear_moduli is not None):
        raise InputError("give either youngs_moduli (and poissons_ratios) or bulk and shear moduli")
    if youngs_moduli is not None:
        e = np.asarray(youngs_moduli, dtype=np.float64).ravel()
        nu = np.asarray(0.3 if poissons_ratios is None else poissons_ratios, dtype=np.float64)
        nu = nu.ravel()
        if nu.size == 1:
            nu = np.full(e.size, float(nu[0]))
        if nu.size != e.size:
            raise InputError(
                f"poissons_ratios: one value or one per phase ({e.size}), got {nu.size}"
            )
        if not np.all(np.isfinite(e)) or np.any(e < 0):
            raise InputError(f"youngs_moduli: must be finite and >= 0, got {e.tolist()}")
        if not np.all(np.isfinite(nu)) or np.any(nu <= -1) or np.any(nu >= 0.5):
            raise InputError(f"poissons_ratios: must lie in (-1, 0.5), got {nu.tolist()}")
        lam = e * nu / ((1 + nu) * (1 - 2 * nu))
        mu = e / (2 * (1 + nu))
    elif bulk_moduli is not None and shear_moduli is not None:
        k = np.asarray(bulk_moduli, dtype=np.float64).ravel()
        mu = np.asarray(shear_moduli, dtype=np.float64).ravel()
        if k.size != mu.size:
            raise InputError(
                f"bulk_moduli and shear_moduli: one each per phase, got {k.size} and {mu.size}"
            )
        ok = np.isfinite(k) & np.isfinite(mu) & (k >= 0) & (mu >= 0)
        # a solid needs K > 0 and G > 0 (nu < 0.5); a pore has both 0
        ok &= ((k > 0) & (mu > 0)) | ((k == 0) & (mu == 0))
        if not ok.all():
            raise InputError(
                "bulk_moduli, shear_moduli: each phase needs K > 0 and G > 0, or both 0 for a "
                f"pore; got {k.tolist()} and {mu.tolist()}"
            )
        lam = k - 2 * mu / 3
        if np.any(lam + 2 * mu / 3 < 0):
            raise InputError("bulk_moduli: must be >= 0")
    else:
        raise InputError(
            "elastic phases: give youngs_moduli (and poissons_ratios) or bulk_moduli and "
            "shear_moduli, one per phase (e.g. youngs_moduli=1,10)"
        )
    if lam.size < 2:
        raise InputError(f"elastic phases: need one per phase (at least 2), got {lam.size}")
    if not np.any(mu > 0):
        raise InputError(
            "youngs_moduli / shear_moduli: at least one phase must be solid (a modulus > 0); "
            "all are 0"
        )
    return lam, mu


def _plane(lam: np.ndarray, mu: np.ndarray, *, ndim: int, plane: str) -> np.ndarray:
    """The Lame lambda the 2D problem uses: unchanged (plane strain) or condensed (stress)."""
    if ndim == 2 and plane == "stress":
        s = lam + 2 * mu
        return np.where(s > 0, 2 * lam * mu / np.where(s > 0, s, 1), 0.0)
    return lam


def phase_stiffness(lam: float, mu: float, *, ndim: int) -> np.ndarray:
    """Mandel stiffness ``m x m`` of an isotropic phase (``lam`` already plane-condensed)."""
    m = 3 if ndim == 2 else 6
    c = np.zeros((m, m))
    c[:ndim, :ndim] = lam
    c[range(m), range(m)] += 2 * mu
    return c


# ---------------------------------------------------------------------------------------------
# reference element


@functools.lru_cache(maxsize=2)
def _element(ndim: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Q1 element matrices of the unit square (cube), full 2^d-point Gauss integration.

    Returns ``K_lambda``, ``K_mu`` (``ndof x ndof``, ``ndof = 2^d d``, dofs ordered corner-major,
    components in image-axis order) with ``K_e = lambda K_lambda + mu K_mu``, and the corners
    (offsets along the image axes, binary order).
    """
    corners = tuple(itertools.product((0, 1), repeat=ndim))
    nc = len(corners)
    g = (1 - 1 / math.sqrt(3)) / 2
    points = list(itertools.product((g, 1 - g), repeat=ndim))
    w = 1.0 / len(points)
    ndof = nc * ndim
    k_lam = np.zeros((ndof, ndof))
    k_mu = np.zeros((ndof, ndof))
    for xi in points:
        # dN_c / dx_a at xi
        grad = np.zeros((nc, ndim))
        for i, c in enumerate(corners):
            for a in range(ndim):
                val = 1.0 if c[a] else -1.0
                for b in range(ndim):
                    if b != a:
                        val *= xi[b] if c[b] else 1 - xi[b]
                grad[i, a] = val
        div = np.zeros(ndof)
        for i in range(nc):
            for a in range(ndim):
                div[i * ndim + a] = grad[i, a]
        k_lam += w * np.outer(div, div)
        for a in range(ndim):
            for b in range(ndim):
                eps = np.zeros(ndof)  # eps_ab = (du_b/dx_a + du_a/dx_b) / 2
                for i in range(nc):
                    eps[i * ndim + b] += grad[i, a] / 2
                    eps[i * ndim + a] += grad[i, b] / 2
                k_mu += w * 2 * np.outer(eps, eps)
    return k_lam, k_mu, corners


def _mandel_loads(ndim: int) -> np.ndarray:
    """Macroscopic strains of the Mandel basis, ``m x d x d`` in image-axis coordinates."""
    axes = _AXES[ndim]
    pairs = [(i, i) for i in range(ndim)]
    pairs += [(1, 2), (0, 2), (0, 1)] if ndim == 3 else [(0, 1)]
    out = np.zeros((len(pairs), ndim, ndim))
    for m, (i, j) in enumerate(pairs):
        a, b = axes[i], axes[j]
        if i == j:
            out[m, a, a] = 1.0
        else:
            out[m, a, b] = out[m, b, a] = 1 / _SQRT2
    return out


# ---------------------------------------------------------------------------------------------
# solver


def _memory_bytes(shape: Sequence[int], loads: int) -> float:
    """Rough peak bytes of one solve of ``shape`` (batch first) with ``loads`` loads."""
    n, *grid = shape
    cells = math.prod(grid)
    per = min(n * loads * cells, max(_chunk(None), cells))
    return float(_WORK_ARRAYS * per * 8 * len(grid))


def _check_memory(shape: Sequence[int], loads: int, refinement: int) -> None:
    """Refuse a stack ``shape`` (batch first) whose solve would exceed the memory budget."""
    n, *grid = shape
    check_memory(
        _memory_bytes((n, *(g * refinement for g in grid)), loads),
        what=f"elastic_stiffness of {n} x {'x'.join(map(str, grid))} at refinement {refinement}",
    )


def _roll_into(
    dst: torch.Tensor, src: torch.Tensor, shifts: list[int], dims: tuple, *, add: bool
) -> None:
    """``dst (+)= torch.roll(src, shifts, dims)`` for shifts in {-1, 0, 1}, by slices (no
    temporary: torch.roll concatenates once per dimension)."""
    pieces = [((slice(None), slice(None)),)]
    for s, dim in zip(shifts, dims, strict=True):
        if s == 0:
            continue
        n = src.shape[dim]
        k = s % n  # dst[i] = src[i - k]
        pairs = ((slice(k, n), slice(0, n - k)), (slice(0, k), slice(n - k, n)))
        pieces = [(*p, (dim, pair)) for p in pieces for pair in pairs]
    for p in pieces:
        di = [slice(None)] * src.ndim
        si = [slice(None)] * src.ndim
        for dim, (a, b) in p[1:]:
            di[dim], si[dim] = a, b
        if add:
            dst[tuple(di)] += src[tuple(si)]
        else:
            dst[tuple(di)] = src[tuple(si)]


class _Operators:
    """The matrix-free Q1 operator of one batch: element gather, forces, scatter.

    Arrays are ``d x B x L x grid`` (nodal vectors) or ``ndof x B x L x grid`` (element vectors,
    ``ndof = 2^d d``), the element at index ``i`` having its corners at ``i + corner``.
    """

    def __init__(
        self,
        lam: torch.Tensor,
        mu: torch.Tensor,
        strains: torch.Tensor,
        ratio: float | None = None,
    ):
        B, *grid = lam.shape
        nd = len(grid)
        dev, dt = lam.device, lam.dtype
        k_lam, k_mu, corners = _element(nd)
        self.corners = corners
        self.nd = nd
        self.ndof = k_lam.shape[0]
        self.cells = math.prod(grid)
        # with one lambda / mu ratio c in every element (equal Poisson's ratios, pores
        # included), K_e = mu_e (K_mu + c K_lambda): one matrix product instead of two
        self.ratio = ratio
        stack = [k_mu + ratio * k_lam] if ratio is not None else [k_lam, k_mu]
        self.kstack = torch.as_tensor(np.concatenate(stack), dtype=dt, device=dev)
        self.space = tuple(range(3, 3 + nd))
        self.lam = lam.view(1, B, 1, *grid)
        self.mu = mu.view(1, B, 1, *grid)
        # the element displacement of each macroscopic strain, u_E(corner) = E corner
        c = torch.as_tensor(np.array(corners, dtype=np.float64), dtype=dt, device=dev)
        u = torch.einsum("lab,nb->nal", strains.to(dev, dt), c).reshape(self.ndof, -1)
        self.u_macro = u.view(self.ndof, 1, strains.shape[0], *([1] * nd))
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def gather(self, u: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Nodal values at each element's corners: ``d x ...`` -> ``ndof x ...`` (into
        ``out`` when given). The grid is extended by one periodic layer at its upper end, so
        that each corner is one contiguous window of it."""
        grid = u.shape[3:]
        up = u.new_empty(*u.shape[:3], *(g + 1 for g in grid))
        up[(..., *(slice(0, g) for g in grid))] = u
        for a, g in enumerate(grid):  # wrap one axis at a time (the corners follow)
            head = [slice(None)] * self.nd
            tail = [slice(None)] * self.nd
            head[a], tail[a] = 0, g
            up[(..., *tail)] = up[(..., *head)]
        if out is None:
            out = u.new_empty(len(self.corners), *u.shape)
        out = out.view(len(self.corners), *u.shape)
        for i, cn in enumerate(self.corners):
            out[i] = up[(..., *(slice(c, c + g) for c, g in zip(cn, grid, strict=True)))]
        return out.view(self.ndof, *u.shape[1:])

    def element_forces(self, ue: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``K_e ue`` per element, ``K_e = lambda_e K_lambda + mu_e K_mu`` (into ``out`` when
        given, with one lambda / mu ratio)."""
        if self.ratio is not None:
            flat = ue.reshape(self.ndof, -1)
            f = torch.matmul(self.kstack, flat, out=None if out is None else out.view(flat.shape))
            return f.view(ue.shape).mul_(self.mu)
        f = self.kstack @ ue.reshape(self.ndof, -1)
        f = f.view(2, self.ndof, *ue.shape[1:])
        return self.lam * f[0] + self.mu * f[1]

    def scatter(self, fe: torch.Tensor) -> torch.Tensor:
        """Sum element vectors onto the nodes: ``ndof x ...`` -> ``d x ...``."""
        fe = fe.view(len(self.corners), self.nd, *fe.shape[1:])
        out = fe[0].clone()
        for i, cn in enumerate(self.corners[1:], start=1):
            _roll_into(out, fe[i], list(cn), self.space, add=True)
        return out

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the images ``keep`` of the batch (indices into the current batch)."""
        self.lam = self.lam.index_select(1, keep)
        self.mu = self.mu.index_select(1, keep)

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """The stiffness operator on nodal displacements (two element-vector buffers reused
        between calls: fresh large arrays cost page faults)."""
        shape = (self.ndof, *u.shape[1:])
        if self._buffers is None or self._buffers[0].shape != shape:
            self._buffers = (u.new_empty(shape), u.new_empty(shape))
        ue, fe = self._buffers
        return self.scatter(self.element_forces(self.gather(u, out=ue), out=fe))


def _reference_inverse(lam: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Inverse symbol of the Q1 operator of each image's reference medium (its mean Lame
    constants): ``d x d x B x 1 x grid_r`` (rfft grid), zero at the zero frequency.

    The symbol is ``sum_{c, c'} K[c, c'] exp(i theta . (c' - c))``; the phase factor is a
    product of one-dimensional ones (``c' - c`` has entries in {-1, 0, 1}).
    """
    B, *grid = lam.shape
    nd = len(grid)
    dev, dt = lam.device, lam.dtype
    k_lam, k_mu, corners = _element(nd)
    nc = len(corners)
    ones = [1] * nd
    cn = np.array(corners)
    # expo[c, c', grid_r] = prod_a exp(i theta_a (c'_a - c_a)), one axis at a time
    cdt = torch.complex128 if dt == torch.float64 else torch.complex64
    expo = torch.ones((nc, nc, *ones), dtype=cdt, device=dev)
    for a, n in enumerate(grid):
        freq = torch.fft.rfftfreq if a == nd - 1 else torch.fft.fftfreq
        shape = [1] * nd
        shape[a] = -1
        theta = 2 * np.pi * freq(n, dtype=dt, device=dev).view(shape)
        diff = torch.as_tensor(cn[None, :, a] - cn[:, None, a], dtype=dt, device=dev)
        expo = expo * torch.exp(1j * diff.view(nc, nc, *ones) * theta)
    symbols = []
    for km in (k_lam, k_mu):
        kk = torch.as_tensor(km, dtype=dt, device=dev).view(nc, nd, nc, nd)
        symbols.append(torch.einsum("iajb,ij...->...ab", kk.to(expo.dtype), expo))
    lam0 = lam.mean(dim=tuple(range(1, 1 + nd)))
    mu0 = mu.mean(dim=tuple(range(1, 1 + nd)))
    lam0 = torch.where(lam0 + mu0 > 0, lam0, torch.zeros_like(lam0))
    mu0 = torch.where(mu0 > 0, mu0, torch.ones_like(mu0))
    s0 = lam0.view(B, *ones, 1, 1) * symbols[0] + mu0.view(B, *ones, 1, 1) * symbols[1]
    zero = (slice(None),) + (0,) * nd
    eye = torch.eye(nd, dtype=s0.dtype, device=dev)
    s0[zero] = eye
    s_inv = torch.linalg.inv(s0)
    s_inv[zero] = 0
    # B x grid_r x d x d -> d x d x B x 1 x grid_r, for d x B x L x grid_r vectors
    return s_inv.permute(nd + 1, nd + 2, 0, *range(1, nd + 1)).unsqueeze(3).contiguous()


def _solve(
    lam: torch.Tensor,
    mu: torch.Tensor,
    strains: torch.Tensor,
    *,
    tolerance: float,
    max_iterations: int,
    ratio: float | None = None,
    s_inv: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Displacement fluctuations of the macroscopic ``strains`` on the element grid.

    Parameters
    ----------
    lam, mu : Tensor, ``B x H x W`` or ``B x H x W x D``
        Lame constants of each element (pixel or voxel).
    strains : Tensor, ``L x d x d``
        Macroscopic strains (symmetric, image-axis coordinates); every image gets every load.
    s_inv : Tensor, optional
        The preconditioner of these images, :func:`_reference_inverse` (built when not given).

    Returns
    -------
    x : Tensor, ``d x B x L x grid``
        The periodic displacement fluctuation (:func:`_energy` makes the tensor from it).
    iterations : Tensor of int64, ``B x L``
    """
    ops = _Operators(lam, mu, strains, ratio)
    B, *grid = lam.shape
    nd = len(grid)
    L = strains.shape[0]
    dev = lam.device
    space = ops.space
    apply = ops.apply

    if s_inv is None:
        s_inv = _reference_inverse(lam, mu)

    def precondition(r: torch.Tensor) -> torch.Tensor:
        rh = torch.fft.rfftn(r, dim=space)
        zh = torch.empty_like(rh)
        for i in range(nd):
            zi = s_inv[i, 0] * rh[0]
            for j in range(1, nd):
                zi += s_inv[i, j] * rh[j]
            zh[i] = zi
        return torch.fft.irfftn(zh, s=grid, dim=space)

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum(dim=(0, *space), keepdim=True)

    # right-hand side: minus the nodal forces the macroscopic strain drives
    b = -ops.scatter(ops.element_forces(ops.u_macro.expand(ops.ndof, B, L, *grid)))
    x = torch.zeros_like(b)
    r = b
    z = precondition(r)
    p = z
    rz = dot(r, z)
    target = (tolerance**2) * rz
    active = rz > target
    counts = torch.zeros_like(active, dtype=torch.int64)
    # images whose systems have all converged leave the batch (their x and counts are kept):
    # iteration counts differ by several times between images with pores
    x_out = torch.zeros_like(b)
    counts_out = torch.zeros_like(counts)
    index = torch.arange(B, device=dev)
    it = 0
    while bool(active.any()):
        if it >= max_iterations:
            bad = sorted({int(index[i]) for i in torch.nonzero(active.view(-1, L))[:, 0]})
            raise RuntimeError(
                f"conjugate gradients did not converge in {max_iterations} iterations "
                f"(images {bad})"
            )
        alive = active.view(-1, L).any(1)
        if not bool(alive.all()):
            done = ~alive
            x_out[:, index[done]] = x[:, done]
            counts_out[:, index[done]] = counts[:, done]
            keep = torch.nonzero(alive).squeeze(1)
            index = index[keep]
            x, r, p, rz, target, active, counts = (
                t.index_select(1, keep) for t in (x, r, p, rz, target, active, counts)
            )
            ops.select(keep)
            s_inv = s_inv.index_select(2, keep)
        counts += active
        ap = apply(p)
        pap = dot(p, ap)
        # converged systems are frozen, so a value does not depend on its batch companions
        alpha = torch.where(active & (pap > 0), rz / torch.where(pap > 0, pap, 1), 0)
        x.addcmul_(alpha, p)
        r.addcmul_(alpha, ap, value=-1)
        z = precondition(r)
        rz_new = dot(r, z)
        active = active & (rz_new > target) & (pap > 0)
        beta = torch.where(active, rz_new / torch.where(rz > 0, rz, 1), 0)
        p.mul_(beta).add_(z)
        rz = rz_new
        it += 1
    x_out[:, index] = x
    counts_out[:, index] = counts
    return x_out, counts_out.view(B, L)


def _energy(
    lam: torch.Tensor,
    mu: torch.Tensor,
    strains: torch.Tensor,
    x: torch.Tensor,
    ratio: float | None = None,
) -> torch.Tensor:
    """``T[n, l, m] = <(E_l + grad_s u_l) : C (E_m + grad_s u_m)>``, ``B x L x L``, from the
    fluctuations ``x`` (``d x B x L x grid``) of :func:`_solve`; one load's forces at a time.

    With ``u_l = x_l + u_E_l`` and the element forces ``f_m`` of ``u_m``, ``sum_e u_l . f_m =
    x_l . scatter(f_m) + u_E_l . sum_e f_m`` (the gather is the scatter's transpose): one gather,
    force and scatter per load.
    """
    ops = _Operators(lam, mu, strains, ratio)
    B, L = lam.shape[0], strains.shape[0]
    t = torch.zeros(B, L, L, dtype=lam.dtype, device=lam.device)
    macro = ops.u_macro.reshape(ops.ndof, L)
    for m in range(L):
        fe = ops.element_forces(ops.gather(x[:, :, m : m + 1]) + ops.u_macro[:, :, m : m + 1])
        fsum = fe.sum(dim=(2, *ops.space))  # ndof x B
        nodal = ops.scatter(fe)  # d x B x 1 x grid
        for l_ in range(m + 1):
            xl = (x[:, :, l_ : l_ + 1] * nodal).sum(dim=(0, 2, *ops.space))
            t[:, l_, m] = t[:, m, l_] = xl + macro[:, l_] @ fsum
    return t / ops.cells


def _check_outputs(output: str, images: np.ndarray) -> None:
    if output not in OUTPUTS:
        raise InputError(f"output: expected one of {', '.join(OUTPUTS)}, got {output!r}")
    if output in ("E_z", "C_zz") and images.ndim != 4:
        raise InputError(
            f"output: {output} needs volumes N x H x W x D, got images of shape {images.shape}"
        )


def _phases(cfg: ElasticityConfig, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lam, mu = lame_constants(
        youngs_moduli=cfg.youngs_moduli,
        poissons_ratios=cfg.poissons_ratios,
        bulk_moduli=cfg.bulk_moduli,
        shear_moduli=cfg.shear_moduli,
    )
    if images.size and int(images.max()) >= len(lam):
        raise InputError(
            f"elastic phases: {len(lam)} given, but the images have phase {int(images.max())} "
            f"(labels 0..{int(images.max())})"
        )
    return lam, mu


def _config(source: str, **values: Any) -> ElasticityConfig:
    return config_from_dict(ElasticityConfig, values, source=source)


def stiffness_tensor(
    images: np.ndarray,
    *,
    youngs_moduli: Sequence[float] | None = None,
    poissons_ratios: Sequence[float] | float | None = _D.poissons_ratios,
    bulk_moduli: Sequence[float] | None = None,
    shear_moduli: Sequence[float] | None = None,
    plane: str = _D.plane,
    refinement: int = _D.refinement,
    tolerance: float = _D.tolerance,
    max_iterations: int = _D.max_iterations,
    device: torch.device | str | None = None,
    return_iterations: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Effective stiffness tensor (Mandel notation) of periodic k-phase images or volumes.

    Parameters
    ----------
    images : ndarray of int, ``N x H x W`` (or one ``H x W`` image), or ``N x H x W x D``
        Phase labels ``0..k-1``; each image (volume) is one period of the medium.
    youngs_moduli : sequence of float, optional
        Young's modulus of each phase (``k`` values, >= 0; 0 is a pore), phase 0 first.
    poissons_ratios : float or sequence of float
        Poisson's ratio, one for all phases or one per phase, in (-1, 0.5).
    bulk_moduli, shear_moduli : sequence of float, optional
        The phases by their 3D bulk and shear moduli instead of ``youngs_moduli``.
    plane : {"strain", "stress"}
        The 2D problem: plane strain (the phases' 3D Lame constants) or plane stress (lambda
        condensed to ``2 lambda mu / (lambda + 2 mu)``); ignored for volumes.
    refinement : int
        Each pixel (voxel) is split into ``refinement`` elements per side (``refinement**3``
        per voxel in 3D: the cost grows as its cube). The geometry stays the voxels'; the
        tensor decreases towards its continuum value (nested Galerkin spaces), at about first
        order for staircase interfaces (measured 1.35 on a disc), too irregular for a Richardson
        extrapolation to help.
    tolerance : float
        Relative residual (preconditioned norm) at which conjugate gradients stop; the tensor
        errs by roughly its square.
    max_iterations : int
        Iteration limit; reaching it raises :class:`RuntimeError`.
    device : torch device, optional
        Where to solve; :func:`mdesign.device.default_device` by default.
    return_iterations : bool
        Also return the conjugate-gradient iterations, ``N x m``.

    Returns
    -------
    ndarray of float64, ``N x 3 x 3`` (images) or ``N x 6 x 6`` (volumes)
        The Mandel tensor, components ``(xx, yy, sqrt2 xy)`` or
        ``(xx, yy, zz, sqrt2 yz, sqrt2 xz, sqrt2 xy)``, x = axis 1, y = axis 0, z = axis 2;
        symmetric; in the unit of the moduli.

    Raises
    ------
    InputError
        Bad labels or phases, or work beyond the memory budget (before any solve).

    References
    ----------
    Schneider, Merkert & Kabel (2017), Int. J. Numer. Methods Eng. 109, 1461 (Q1 voxel elements
    with an FFT-preconditioned conjugate-gradient solver).
    """
    images = _as_images(images)
    cfg = _config(
        "stiffness_tensor",
        youngs_moduli=youngs_moduli,
        poissons_ratios=poissons_ratios,
        bulk_moduli=bulk_moduli,
        shear_moduli=shear_moduli,
        plane=plane,
        refinement=refinement,
        tolerance=tolerance,
        max_iterations=max_iterations,
    )
    lam, mu = _phases(cfg, images)
    nd = images.ndim - 1
    lam = _plane(lam, mu, ndim=nd, plane=cfg.plane)
    strains = torch.as_tensor(_mandel_loads(nd))
    _check_memory(images.shape, len(strains), cfg.refinement)
    dev = default_device(device)
    cells = images
    if cfg.refinement > 1:
        for ax in range(1, 1 + nd):
            cells = cells.repeat(cfg.refinement, axis=ax)
    with single_thread(dev):
        out, its = _tensors(cells, lam, mu, strains, cfg, dev)
    if return_iterations:
        return out, its
    return out


def _tensors(
    images: np.ndarray,
    lam: np.ndarray,
    mu: np.ndarray,
    strains: torch.Tensor,
    cfg: ElasticityConfig,
    dev: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Tensors ``N x m x m`` and iterations ``N x m`` of the element grids ``images``."""
    n, *grid = images.shape
    chunk = _chunk(dev)
    per_chunk = max(1, chunk // (math.prod(grid) * len(strains)))
    loads_per_solve = len(strains)
    if math.prod(grid) * len(strains) > chunk:
        loads_per_solve = max(1, chunk // math.prod(grid))
    tensors, iterations = [], []
    solid = mu > 0
    ratios = lam[solid] / mu[solid]
    ratio = None
    if np.all(lam[~solid] == 0) and np.ptp(ratios) <= 1e-14 * max(1.0, abs(ratios[0])):
        ratio = float(ratios[0])
    lam_t = torch.as_tensor(lam, dtype=torch.float64, device=dev)
    mu_t = torch.as_tensor(mu, dtype=torch.float64, device=dev)
    for lo in range(0, n, per_chunk):
        labels = torch.as_tensor(images[lo : lo + per_chunk].astype(np.int64), device=dev)
        le, me = lam_t[labels], mu_t[labels]
        m = len(strains)
        xs, its = [], []
        s_inv = _reference_inverse(le, me)  # once for all the loads
        for a in range(0, m, loads_per_solve):
            x, it = _solve(
                le,
                me,
                strains[a : a + loads_per_solve],
                tolerance=cfg.tolerance,
                max_iterations=cfg.max_iterations,
                ratio=ratio,
                s_inv=s_inv,
            )
            xs.append(x)
            its.append(it)
        t = _energy(le, me, strains, torch.cat(xs, dim=2), ratio).cpu()
        tensors.append(t.numpy())
        iterations.append(torch.cat(its, dim=1).cpu().numpy())
    return np.concatenate(tensors), np.concatenate(iterations)


@dataclass(frozen=True)
class ElasticModuli:
    """Scalar moduli of Mandel stiffness tensors (one value per tensor).

    ``bulk`` and ``shear`` are the Voigt-Reuss-Hill isotropic projection: the mean of the
    projections of the stiffness (Voigt) and of the compliance (Reuss) onto the isotropic
    tensors. In 2D they are the in-plane (2D) bulk modulus ``lambda + mu`` and the shear modulus,
    ``young`` the in-plane Young's modulus ``4 K G / (K + G)``; in 3D ``young = 9 K G /
    (3 K + G)``. ``E_*`` are the directional Young's moduli ``1 / S_ii`` (the compliance
    ``S = C^-1``). ``anisotropy`` is the universal index of Ranganathan & Ostoja-Starzewski
    (2008), ``K_V / K_R + (M - 1) G_V / G_R - M`` with ``M = d (d + 1) / 2`` (3D: the usual
    ``5 G_V / G_R + K_V / K_R - 6``), zero exactly for isotropic tensors.
    """

    E_x: np.ndarray
    E_y: np.ndarray
    E_z: np.ndarray
    bulk: np.ndarray
    shear: np.ndarray
    young: np.ndarray
    anisotropy: np.ndarray
    bulk_voigt: np.ndarray
    bulk_reuss: np.ndarray
    shear_voigt: np.ndarray
    shear_reuss: np.ndarray
    C_xx: np.ndarray
    C_yy: np.ndarray
    C_zz: np.ndarray


def elastic_moduli(tensors: np.ndarray) -> ElasticModuli:
    """Directional and isotropic-projection moduli of Mandel stiffness tensors.

    Parameters
    ----------
    tensors : ndarray, ``N x 3 x 3`` (2D) or ``N x 6 x 6`` (3D), or one tensor
        Symmetric Mandel stiffness tensors.

    Returns
    -------
    ElasticModuli
        Each field an ndarray ``N``. Where the tensor is singular (a Kelvin modulus below
        1e-7 of the largest: the solid does not hold together in some mode), a compliance
        along that mode is infinite: the directional moduli that need it and the Reuss
        projections are 0, and the anisotropy index is infinite. ``E_z`` and ``C_zz`` are NaN
        for 2D tensors.
    """
    c = np.asarray(tensors, dtype=np.float64)
    if c.ndim == 2:
        c = c[None]
    m = c.shape[-1]
    if c.ndim != 3 or c.shape[-2] != m or m not in (3, 6):
        raise InputError(f"expected Mandel tensors N x 3 x 3 or N x 6 x 6, got {c.shape}")
    d = 2 if m == 3 else 3
    n = len(c)
    nan = np.full(n, np.nan)
    normal = c[:, :d, :d]
    bulk_v = normal.sum((1, 2)) / d**2
    dim_k = m - 1
    shear_v = (np.trace(c, axis1=1, axis2=2) - normal.sum((1, 2)) / d) / (2 * dim_k)
    # compliance quadratic forms v^T S v: infinite where v has a part in the null space of C
    # (a direction the solid does not resist: a pore layer across it), else v^T C^+ v
    w, v = np.linalg.eigh(c)
    null = w <= _SINGULAR * np.maximum(np.abs(w[:, -1:]), 1e-300)
    inv_w = np.where(null, 0.0, 1 / np.where(null, 1.0, w))
    s = np.einsum("nij,nj,nkj->nik", v, inv_w, v)

    def compliance(vec: np.ndarray) -> np.ndarray:
        """``vec^T S vec`` per tensor; ``vec``: ``m`` or ``m x q`` (summed over q)."""
        vec = vec.reshape(m, -1)
        leak = np.einsum("nij,iq->njq", v, vec) ** 2  # components on the eigenvectors
        form = (leak * inv_w[:, :, None]).sum((1, 2))
        blocked = (leak * null[:, :, None]).sum((1, 2)) > 1e-12 * (vec**2).sum()
        return np.where(blocked, np.inf, form)

    j = np.zeros(m)
    j[:d] = 1
    snormal = compliance(j)
    strace = compliance(np.eye(m))
    with np.errstate(divide="ignore", invalid="ignore"):
        bulk_r = 1 / snormal
        shear_r = np.where(
            np.isinf(strace),
            0.0,
            dim_k / (2 * (strace - np.where(np.isinf(snormal), 0, snormal) / d)),
        )
        bulk = (bulk_v + bulk_r) / 2
        shear = (shear_v + shear_r) / 2
        if d == 3:
            young = 9 * bulk * shear / (3 * bulk + shear)
        else:
            young = 4 * bulk * shear / (bulk + shear)
        aniso = bulk_v / bulk_r + (m - 1) * shear_v / shear_r - m
        e = np.stack([1 / compliance(np.eye(m)[i]) for i in range(d)], axis=1)
    del s
    return ElasticModuli(
        E_x=e[:, 0],
        E_y=e[:, 1],
        E_z=e[:, 2] if d == 3 else nan,
        bulk=bulk,
        shear=shear,
        young=young,
        anisotropy=aniso,
        bulk_voigt=bulk_v,
        bulk_reuss=bulk_r,
        shear_voigt=shear_v,
        shear_reuss=shear_r,
        C_xx=c[:, 0, 0],
        C_yy=c[:, 1, 1],
        C_zz=c[:, 2, 2] if d == 3 else nan,
    )


def elastic_stiffness(
    images: np.ndarray,
    *,
    youngs_moduli: Sequence[float] | None = None,
    poissons_ratios: Sequence[float] | float | None = _D.poissons_ratios,
    bulk_moduli: Sequence[float] | None = None,
    shear_moduli: Sequence[float] | None = None,
    output: str = _D.output,
    plane: str = _D.plane,
    refinement: int = _D.refinement,
    tolerance: float = _D.tolerance,
    max_iterations: int = _D.max_iterations,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """One scalar modulus of the effective stiffness of each image (volume).

    Parameters
    ----------
    images : ndarray of int, ``N x H x W`` or ``N x H x W x D``
        Phase labels ``0..k-1``.
    output : str
        ``E_x``, ``E_y``, ``E_z`` (directional Young's moduli, ``E_z`` volumes only), ``bulk``,
        ``shear``, ``young`` (the Voigt-Reuss-Hill isotropic projection), ``anisotropy`` (the
        universal index, dimensionless), or ``C_xx``, ``C_yy``, ``C_zz`` (tensor entries).
        See :class:`ElasticModuli`.
    youngs_moduli, poissons_ratios, bulk_moduli, shear_moduli, plane, refinement,
    tolerance, max_iterations, device
        As in :func:`stiffness_tensor`.

    Returns
    -------
    ndarray of float64, ``N``
        The modulus, in the unit of the phases' moduli; NaN for a tensor that is singular (no
        load-bearing solid).
    """
    images = _as_images(images)
    _check_outputs(output, images)
    c = stiffness_tensor(
        images,
        youngs_moduli=youngs_moduli,
        poissons_ratios=poissons_ratios,
        bulk_moduli=bulk_moduli,
        shear_moduli=shear_moduli,
        plane=plane,
        refinement=refinement,
        tolerance=tolerance,
        max_iterations=max_iterations,
        device=device,
    )
    return np.asarray(getattr(elastic_moduli(c), output), dtype=np.float64)


class ElasticStiffness:
    """Effective elastic stiffness of the periodic image (volume): one modulus, in the unit of
    the moduli (Q1 voxel elements, FFT-preconditioned CG).

    Built by ``get_evaluator("elastic_stiffness", youngs_moduli=..., output=...)``; the values
    are :func:`elastic_stiffness` of each image. Takes images ``N x H x W`` (plane strain or
    plane stress) or volumes ``N x H x W x D``; ``output=E_z`` only volumes.
    """

    name = "elastic_stiffness"
    parameters: Mapping[str, Parameter] = parameters_from_config(ElasticityConfig)
    batch_size = 16
    """Images per call (progress is reported per call)."""

    def __init__(self, **params: Any):
        self.params = parse_params(self.parameters, params, evaluator=self.name)
        self.config = config_from_dict(ElasticityConfig, self.params, source=self.name)
        try:
            self._lam, _ = _phases(self.config, np.zeros((0, 0, 0), np.uint8))
        except InputError as exc:
            raise InputError(f"evaluator {self.name}: parameter {exc}") from None

    @property
    def phases(self) -> int:
        """Number of phases the parameters describe."""
        return len(self._lam)

    @property
    def phases_parameter(self) -> str:
        return "youngs_moduli" if self.config.youngs_moduli is not None else "bulk_moduli"

    def check_images(self, images: np.ndarray) -> None:
        """Refuse a stack these parameters cannot evaluate (``output=E_z`` on images, or more
        memory than the budget) before any work."""
        images = _as_images(images)
        try:
            _check_outputs(self.config.output, images)
        except InputError as exc:
            raise InputError(f"evaluator {self.name}: parameter {exc}") from None
        nd = images.ndim - 1
        shape = (min(len(images), self.batch_size), *images.shape[1:])
        _check_memory(shape, 3 if nd == 2 else 6, self.config.refinement)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        c = self.config
        return elastic_stiffness(
            images,
            youngs_moduli=c.youngs_moduli,
            poissons_ratios=c.poissons_ratios,
            bulk_moduli=c.bulk_moduli,
            shear_moduli=c.shear_moduli,
            output=c.output,
            plane=c.plane,
            refinement=c.refinement,
            tolerance=c.tolerance,
            max_iterations=c.max_iterations,
        )

    def __repr__(self) -> str:
        return f"ElasticStiffness({self.params})"
