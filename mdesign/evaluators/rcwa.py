"""Rigorous coupled-wave analysis of one patterned layer at normal incidence, at dense algebra.

The layer (permittivity ``eps(x, y)`` on a raster, period ``period`` in x and y, thickness ``d``)
lies between air above and a transparent substrate below and is lit from air at normal incidence.
The fields are expanded in the ``N = (2 order + 1)^2`` harmonics of the period (Moharam et al.
1995); the in-plane permittivity enters through Li's factorisation rules (Li 1997): for ``E_x``
Laurent's rule along y then the inverse rule along x, for ``E_y`` the same with x and y exchanged,
for ``E_z`` Laurent's rule in both (:func:`convolution_matrices`). Laurent's matrices are linear
in ``eps``: each phase's are computed once per raster (:func:`laurent_parts`) and combined per
wavelength (:func:`li_matrices`), which leaves Li's inverses as the only per-wavelength set-up.

Per wavelength the cost is one eigenproblem of size ``2N`` (``Omega = P Q``: the layer's modes ``W``
and ``q^2``) plus work of lower order: diagonal blocks as broadcasts, the magnetic modes as ``V = Q
W / q``, and the boundary conditions by two ``2N`` solves, the second with one right-hand side per
polarisation (:func:`layer_absorption`; the algebra in the evaluators guide).

With ``precision="complex64"`` everything after Li's matrices (``Omega``, its eigendecomposition,
``V`` and the boundary solves) runs in complex64 and the fluxes in complex128; the error this
leaves in the absorption is measured in ``docs/guide/evaluators.md`` and bounded in the tests. A
diffraction order grazing exactly (:func:`grazing`) is found before the solve.

References
----------
Moharam M. G., Grann E. B., Pommet D. A., Gaylord T. K. (1995) Formulation for stable and
efficient implementation of the rigorous coupled-wave analysis of binary gratings. J. Opt. Soc.
Am. A 12, 1068-1076.
Li L. (1997) New formulation of the Fourier modal method for crossed surface-relief gratings.
J. Opt. Soc. Am. A 14, 2758-2767.
Liu V., Fan S. (2012) S4: a free electromagnetic solver for layered periodic structures. Comput.
Phys. Commun. 183, 2233-2244 (the ``P``, ``Q`` notation).
"""

from __future__ import annotations

import torch

__all__ = [
    "convolution_matrices",
    "grazing",
    "laurent_parts",
    "layer_absorption",
    "li_matrices",
]

_PRECISIONS = {"complex64": torch.complex64, "complex128": torch.complex128}


def _toeplitz(coef: torch.Tensor, order: int) -> torch.Tensor:
    """Toeplitz matrices ``T[..., i, j] = coef[..., (i - j) mod n]`` of harmonics ``-order..order``.

    ``coef`` holds discrete Fourier coefficients along its last axis (length ``n >= 2 order +
    1``, numpy's FFT order).
    """
    h = torch.arange(-order, order + 1, device=coef.device)
    idx = (h[:, None] - h[None, :]) % coef.shape[-1]
    return coef[..., idx]


def _laurent_1d(cells: torch.Tensor, order: int) -> torch.Tensor:
    """Laurent (Toeplitz) matrices along the last axis: ``... x n`` to ``... x f x f``."""
    return _toeplitz(torch.fft.fft(cells, dim=-1, norm="forward"), order)


def laurent_parts(
    cells: torch.Tensor, order: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Laurent matrices Li's matrices are made of, each linear in ``cells``.

    A layer of phases with fractions ``f_k`` (``k x H x W``) and permittivities ``eps_k`` has
    the parts ``sum_k eps_k parts(f_k)``: computed once per raster, combined per wavelength
    (:func:`li_matrices`).

    Parameters
    ----------
    cells : Tensor, ``... x H x W``
        Values on the raster (rows along y); one with fewer than ``4 order + 1`` cells along an
        axis is repeated cell by cell up to that (the same function, finer cells), so the
        harmonics up to ``2 order`` are not aliased.

    Returns
    -------
    along_y : Tensor of complex128, ``... x W' x f x f``
        Laurent's matrix along y of each column (``f = 2 order + 1``).
    along_x : Tensor of complex128, ``... x H' x f x f``
        Laurent's matrix along x of each row.
    both : Tensor of complex128, ``... x N x N``
        Laurent's rule in both, harmonics as in :func:`convolution_matrices`.
    """
    rows, cols = cells.shape[-2:]
    need = 4 * order + 1
    if rows < need:
        cells = cells.repeat_interleave(-(-need // rows), dim=-2)
    if cols < need:
        cells = cells.repeat_interleave(-(-need // cols), dim=-1)
    rows, cols = cells.shape[-2:]
    f = 2 * order + 1
    h = torch.arange(-order, order + 1, device=cells.device)
    dr, dc = ((h[:, None] - h[None, :]) % n for n in (rows, cols))
    coef = torch.fft.fft2(cells, norm="forward")
    both = coef[..., dr[:, None, :, None], dc[None, :, None, :]]  # (n, m) x (n', m')
    return (
        _laurent_1d(cells.transpose(-1, -2), order),
        _laurent_1d(cells, order),
        both.reshape(*both.shape[:-4], f * f, f * f),
    )


def _inverse_rule(inner: torch.Tensor, order: int, *, outer_x: bool) -> torch.Tensor:
    """Li's inverse rule across the outer axis of inner Laurent matrices (``... x P x f x f``,
    ``P`` positions along the outer axis): the inverse of the Laurent matrix, along the outer
    axis, of the inverses; harmonics y-major (``outer_x``: the outer axis is x)."""
    f = 2 * order + 1
    inv = torch.linalg.inv(inner)
    p = inv.shape[-3]
    coef = torch.fft.fft(inv, dim=-3, norm="forward")
    h = torch.arange(-order, order + 1, device=inner.device)
    d = (h[:, None] - h[None, :]) % p
    i = torch.arange(f, device=inner.device)
    if outer_x:  # [(n, m), (n', m')] = coef[m - m', n, n']
        mat = coef[..., d[None, :, None, :], i[:, None, None, None], i[None, None, :, None]]
    else:  # [(n, m), (n', m')] = coef[n - n', m, m']
        mat = coef[..., d[:, None, :, None], i[None, :, None, None], i[None, None, None, :]]
    return torch.linalg.inv(mat.reshape(*mat.shape[:-4], f * f, f * f))


def li_matrices(
    parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    order: int,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Li's matrices ``eps_x``, ``eps_y`` and Laurent's ``eps_z`` from :func:`laurent_parts`.

    Parameters
    ----------
    parts : tuple of Tensor
        :func:`laurent_parts` of the layer (``weights`` None), or of each phase's fractions
        (leading axis ``k``).
    weights : Tensor of complex128, ``L x k``, optional
        Each phase's permittivity at each of ``L`` wavelengths.

    Returns
    -------
    eps_x, eps_y, eps_z : Tensor of complex128, ``... x N x N`` (``L x N x N`` with weights)
    """
    if weights is not None:
        parts = tuple(torch.einsum("lk,k...->l...", weights, p.to(weights.dtype)) for p in parts)
    along_y, along_x, both = parts
    # E_x: Laurent along y (continuous), inverse rule across x; E_y: the same, x and y exchanged
    return (
        _inverse_rule(along_y, order, outer_x=True),
        _inverse_rule(along_x, order, outer_x=False),
        both,
    )


def convolution_matrices(
    eps: torch.Tensor, order: int, *, invert_z: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Li's convolution matrices of a rasterised layer for ``E_x``, ``E_y`` and ``1 / eps_z``.

    Parameters
    ----------
    eps : Tensor of complex, ``... x H x W``
        Permittivity on the raster (rows along y, columns along x), one period.
    order : int
        Harmonics ``-order..order`` per axis. A raster with fewer than ``4 order + 1`` cells
        along an axis is repeated cell by cell up to that (the same function, finer cells),
        so the harmonics up to ``2 order`` are not aliased.
    invert_z : bool
        Return ``eps_z_inv``, or Laurent's matrix itself (to solve with instead).

    Returns
    -------
    eps_x, eps_y, eps_z_inv : Tensor, ``... x N x N``, ``N = (2 order + 1)^2``
        Harmonic ``(m, n)`` (``m`` along x, ``n`` along y, each ``-order..order``) at index
        ``(n + order) (2 order + 1) + m + order``. ``eps_x`` is the inverse rule along x of
        Laurent's rule along y (the field ``E_x`` is continuous along y and its ``D_x`` across
        x); ``eps_y`` the same with x and y exchanged; ``eps_z_inv`` the inverse of Laurent's
        rule in both. Unpolarised absorption is then exactly invariant under turning the
        pattern by 90 degrees.
    """
    eps_x, eps_y, eps_z = li_matrices(laurent_parts(eps, order), order)
    return eps_x, eps_y, torch.linalg.inv(eps_z) if invert_z else eps_z


def grazing(
    wavelengths: torch.Tensor,
    eps_substrate: torch.Tensor,
    *,
    period: float,
    order: int,
    tolerance: float = 1e-12,
) -> torch.Tensor:
    """Where a diffraction order grazes (a Rayleigh anomaly): ``kx^2 + ky^2 = eps`` in air or in
    the substrate for some harmonic, to ``tolerance`` relative.

    There the order has no admittance (``kz = 0``) and the boundary solve breaks down; the
    absorption is continuous, so the solver takes it a hair away (``_solve_image`` in
    :mod:`mdesign.evaluators.optics`), without a failed solve first.

    Parameters
    ----------
    wavelengths, eps_substrate : Tensor, ``L``
        Vacuum wavelengths (the unit of ``period``) and the substrate's permittivity.

    Returns
    -------
    Tensor of bool, ``L``
    """
    h = torch.arange(-order, order + 1, dtype=torch.float64, device=wavelengths.device)
    m2 = torch.unique(h[:, None] ** 2 + h[None, :] ** 2)  # m^2 + n^2 over the harmonics
    k2 = (wavelengths.to(torch.float64)[:, None] / period) ** 2 * m2  # L x distinct
    out = torch.zeros(wavelengths.shape[0], dtype=torch.bool, device=wavelengths.device)
    for eps in (torch.ones_like(k2[:, 0]), eps_substrate.real.to(torch.float64)):
        out |= ((k2 - eps[:, None]).abs() <= tolerance * eps[:, None]).any(-1)
    return out


def _kz(eps: torch.Tensor, k2: torch.Tensor) -> torch.Tensor:
    """``sqrt(eps - kx^2 - ky^2)`` with the branch of outgoing or decaying waves (Im >= 0)."""
    kz = torch.sqrt(eps[..., None] - k2 + 0j)
    return torch.where(kz.imag < 0, -kz, kz)


def _admittance(eps: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor) -> tuple:
    """Diagonals ``(yxx, yxy, yyx, yyy)`` of a homogeneous medium's forward-wave admittance:
    ``[hx; hy] = [[yxx, yxy], [yyx, yyy]] [ex; ey]`` per harmonic (``Q / kz``)."""
    kz = _kz(eps, kx * kx + ky * ky)
    e = eps[..., None]
    return (-kx * ky / kz, (kx * kx - e) / kz, (e - ky * ky) / kz, kx * ky / kz)


def _apply(y: tuple, a: torch.Tensor) -> torch.Tensor:
    """``Y a`` for a block-diagonal admittance ``y`` and ``a`` of shape ``... x 2N x k``."""
    n = a.shape[-2] // 2
    a1, a2 = a[..., :n, :], a[..., n:, :]
    yxx, yxy, yyx, yyy = (t[..., None] for t in y)
    return torch.cat([yxx * a1 + yxy * a2, yyx * a1 + yyy * a2], dim=-2)


def _flux(y: tuple, e: torch.Tensor) -> torch.Tensor:
    """Power along z carried by waves ``e`` (``... x 2N x k``) of admittance ``y``, per column."""
    n = e.shape[-2] // 2
    h = _apply(y, e)
    s = e[..., :n, :] * h[..., n:, :].conj() - e[..., n:, :] * h[..., :n, :].conj()
    return s.real.sum(-2)


def layer_absorption(
    parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    eps_phases: torch.Tensor,
    eps_substrate: torch.Tensor,
    wavelengths: torch.Tensor,
    *,
    thickness: float,
    period: float,
    order: int,
    precision: str = "complex64",
    boundary: str | None = None,
) -> torch.Tensor:
    """Absorption ``1 - R - T`` of one patterned layer for unpolarised light at normal incidence.

    Parameters
    ----------
    parts : tuple of Tensor
        :func:`laurent_parts` of the fractions of each of ``k`` phases on the layer's raster
        (``k x H x W``, rows along y), at ``order``.
    eps_phases : Tensor of complex128, ``L x k``
        Each phase's permittivity (``n + ik`` squared) at each wavelength.
    eps_substrate : Tensor, ``L``
        Permittivity of the transparent substrate (real part used).
    wavelengths : Tensor of float64, ``L``
        Vacuum wavelengths, same unit as ``thickness`` and ``period``.
    thickness, period : float
        Layer thickness and the side of the square unit cell.
    order : int
        Harmonics ``-order..order`` along each axis.
    precision : {"complex64", "complex128"}
        Arithmetic of everything after Li's matrices but the fluxes (complex128).
    boundary : {"complex64", "complex128"}, optional
        Arithmetic of everything but the eigendecomposition, if not ``precision`` (a grazing
        order's admittance is ~1e5 a hair away from the anomaly: complex128 there).

    Returns
    -------
    Tensor of float64, ``L``
        The mean of the TM (``E`` along x) and TE (``E`` along y) absorptions; NaN where the
        solve broke down (a diffraction order exactly grazing: retry a hair away).
    """
    dev = parts[0].device
    lam = wavelengths.to(device=dev, dtype=torch.float64)
    # Li's matrices in complex128, everything after them in cd, the eigendecomposition in ce
    cd, ce = _PRECISIONS[boundary or precision], _PRECISIONS[precision]
    weights = eps_phases.to(device=dev, dtype=torch.complex128)
    ex, ey, eps_z = (a.to(cd) for a in li_matrices(parts, order, weights))
    n = ex.shape[-1]
    h = torch.arange(-order, order + 1, device=dev, dtype=torch.float64)
    # harmonic (m, n) at index (n + order) f + m + order: m along x
    mx = h.repeat(2 * order + 1)
    my = h.repeat_interleave(2 * order + 1)
    kx = (lam[:, None] / period) * mx  # normalised by k0 = 2 pi / lambda
    ky = (lam[:, None] / period) * my
    kxc, kyc = kx.to(cd), ky.to(cd)

    def diagonal(m: torch.Tensor) -> torch.Tensor:
        return m.diagonal(dim1=-2, dim2=-1)

    # Q = [[-Kx Ky, Kx^2 - Ey], [Ex - Ky^2, Ky Kx]] (Maxwell's curl H; mu = 1): the diagonal
    # blocks stay vectors, the dense ones are Ey and Ex with their diagonals shifted in place
    q12 = ey.neg_()
    diagonal(q12).add_(kxc * kxc)
    q21 = ex
    diagonal(q21).sub_(kyc * kyc)
    kxy = kxc * kyc
    # Omega = P Q with P = [Kx; Ky] Ez^-1 [Ky, -Kx] + [[0, I], [-I, 0]]
    s = torch.empty(*q12.shape[:-2], n, 2 * n, dtype=q12.dtype, device=dev)
    torch.mul(q21, -kxc[..., None], out=s[..., :n])
    diagonal(s[..., :n]).sub_(kxy * kyc)
    torch.mul(q12, kyc[..., None], out=s[..., n:])
    diagonal(s[..., n:]).sub_(kxy * kxc)
    t = torch.linalg.solve(eps_z, s)  # Ez^-1 [Ky, -Kx] Q, N x 2N
    omega = torch.empty(*q12.shape[:-2], 2 * n, 2 * n, dtype=q12.dtype, device=dev)
    torch.mul(t, kxc[..., None], out=omega[..., :n, :])
    torch.mul(t, kyc[..., None], out=omega[..., n:, :])
    omega[..., :n, :n] += q21
    diagonal(omega[..., :n, n:]).add_(kxy)
    diagonal(omega[..., n:, :n]).add_(kxy)
    omega[..., n:, n:] -= q12
    q2, w = (a.to(cd) for a in torch.linalg.eig(omega.to(ce)))
    del omega, t, s
    q = torch.sqrt(q2)
    q = torch.where(q.imag < 0, -q, q)  # forward modes: decaying or propagating along +z
    w1, w2 = w[..., :n, :], w[..., n:, :]
    # V = Q W / q: the diagonal blocks as broadcasts, the dense ones as two N x N x 2N products
    v = torch.empty_like(w)
    torch.matmul(q12, w2, out=v[..., :n, :])
    v[..., :n, :] -= kxy[..., None] * w1
    torch.matmul(q21, w1, out=v[..., n:, :])
    v[..., n:, :] += kxy[..., None] * w2
    v *= q.reciprocal()[..., None, :]
    one = torch.ones_like(lam).to(cd)
    y_top = _admittance(one, kxc, kyc)
    eps_s = eps_substrate.to(device=dev).real.to(torch.float64)
    y_sub = _admittance(eps_s.to(cd), kxc, kyc)
    x = torch.exp(1j * q * (2 * torch.pi * thickness / lam).to(q.real.dtype)[:, None])
    # bottom: outgoing waves only, h = Y_s e  =>  c- = (V + Y_s W)^-1 (V - Y_s W) X c+
    # top: h + Y_a e = 2 Y_a e_inc  =>  (V + Y_a W - (V - Y_a W) X M) c+ = 2 Y_a e_inc
    a = torch.empty_like(w)
    b = torch.empty_like(w)
    yw = torch.empty_like(w[..., :n, :])  # half of Y W: Y's blocks are diagonal

    def face(y: tuple) -> None:  # a = V + Y W, b = (V - Y W) X, in place
        for half in (0, 1):
            rows = slice(half * n, (half + 1) * n)
            torch.mul(w[..., :n, :], y[2 * half][..., None], out=yw)
            yw.addcmul_(w[..., n:, :], y[2 * half + 1][..., None])
            torch.add(v[..., rows, :], yw, out=a[..., rows, :])
            torch.sub(v[..., rows, :], yw, out=b[..., rows, :]).mul_(x[..., None, :])

    face(y_sub)
    m = torch.linalg.solve(a, b)
    face(y_top)
    a.baddbmm_(b, m, alpha=-1)
    e_inc = torch.zeros(lam.shape[0], 2 * n, 2, dtype=cd, device=dev)
    z0 = (2 * order + 1) * order + order  # the zeroth harmonic
    e_inc[:, z0, 0] = 1  # TM: E along x
    e_inc[:, n + z0, 1] = 1  # TE: E along y
    c_fwd = torch.linalg.solve(a, 2 * _apply(y_top, e_inc))
    c_bwd = m @ c_fwd
    # the fields at the two faces, and the fluxes, in complex128
    e_top = (w @ (c_fwd + x[..., None] * c_bwd)).to(torch.complex128)
    e_bot = (w @ (x[..., None] * c_fwd + c_bwd)).to(torch.complex128)
    e_inc = e_inc.to(torch.complex128)
    kxc, kyc = kx.to(torch.complex128), ky.to(torch.complex128)
    y_top = _admittance(torch.ones_like(lam).to(torch.complex128), kxc, kyc)
    y_sub = _admittance(eps_s + 0j, kxc, kyc)
    incident = _flux(y_top, e_inc)
    reflected = _flux(y_top, e_top - e_inc)
    transmitted = _flux(y_sub, e_bot)
    absorbed = 1 - (reflected + transmitted) / incident
    return absorbed.mean(-1)
