"""Optical absorption of a thin film patterned by the microstructure (Yang et al. 2018).

The image is the in-plane pattern of one film: phase ``p`` is made of ``materials[p]``, the pattern
repeats with period ``period`` in x and y, the film (``thickness``) sits on a semi-infinite
transparent ``substrate`` and is lit from air at normal incidence. Its absorption ``A = 1 - R - T``
(all diffraction orders, unpolarised: the mean of two polarisations) is averaged over vacuum
wavelengths in ``[wavelength_min, wavelength_max]``, flat or weighted by the photon flux of the
AM1.5 global solar spectrum (ASTM G173-03, :func:`solar_photon_flux`), the fraction of incident
solar photons absorbed. :func:`optical_absorption` gives that average (``spectral_rule``, adaptive
by default, :func:`adaptive_average`; or a fixed grid by :func:`spectral_weights`),
:func:`absorption_spectra` the spectra.

The electromagnetic solve is mdesign's own rigorous coupled-wave analysis
(:mod:`mdesign.evaluators.rcwa`) with ``(2 order + 1)^2`` harmonics, on the image's pixels or a
``grid x grid`` area-averaged raster; meent (Kim et al. 2024) stays as the independent check
(:func:`meent_spectra`), and :func:`thin_film_absorption` is Airy's formula for a uniform film.
Refractive indices are tabulated in ``mdesign/evaluators/data/nk_*.csv`` with their sources (Green
2008 for silicon, Malitson 1965 for fused silica, Luke et al. 2015 for silicon nitride, Johnson &
Christy 1972 for silver), interpolated linearly in wavelength (:func:`refractive_index`); ``air`` is
1, and a number such as ``1.5`` or ``3.5+0.01j`` is a constant index n + ik.

References
----------
Yang Z., Li X., Brinson L. C., Choudhary A. N., Chen W., Agrawal A. (2018) Microstructural
materials design via deep adversarial learning methodology. J. Mech. Des. 140, 111416.
Moharam M. G. et al. (1995) J. Opt. Soc. Am. A 12, 1068-1076; Li L. (1997) J. Opt. Soc. Am. A
14, 2758-2767 (full titles in :mod:`mdesign.evaluators.rcwa`).
Kim Y., Jung S., Jin H., et al. (2024) Meent: differentiable electromagnetic simulator for
machine learning. arXiv:2406.12904.
Born M., Wolf E. Principles of Optics, sec. 1.6 (the thin-film, or Airy, formulae).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np

from mdesign.config import (
    OPTICAL_ABSORPTION_DEFAULTS,
    OpticalAbsorptionConfig,
    config_from_dict,
)
from mdesign.errors import InputError
from mdesign.evaluators.base import Parameter, parameters_from_config, parse_params

__all__ = [
    "MATERIALS",
    "OpticalAbsorption",
    "absorption_spectra",
    "adaptive_average",
    "meent_spectra",
    "optical_absorption",
    "refractive_index",
    "solar_photon_flux",
    "spectral_weights",
    "thin_film_absorption",
]

_D = OPTICAL_ABSORPTION_DEFAULTS

MATERIALS = ("air", "Ag", "Si", "Si3N4", "SiO2")
"""Names of the tabulated materials (``data/nk_NAME.csv``; ``air`` is 1)."""


@functools.cache
def _table(name: str) -> np.ndarray:
    """Rows (wavelength nm, n, k) of a tabulated material, or (wavelength nm, value)."""
    text = resources.files("mdesign.evaluators").joinpath("data", name).read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    return np.loadtxt(lines[1:], delimiter=",", ndmin=2)


def refractive_index(material: str | complex, wavelengths: np.ndarray) -> np.ndarray:
    """Complex refractive index ``n + ik`` of a material at vacuum wavelengths in nm.

    Parameters
    ----------
    material : str or number
        A name of :data:`MATERIALS` (case-insensitive), or a constant index given as a number
        or a string such as ``"1.5"`` or ``"3.5+0.01j"``.
    wavelengths : array of float, ``L``
        Vacuum wavelengths in nm, inside the table's range (no extrapolation).

    Returns
    -------
    ndarray of complex128, ``L``
    """
    lam = np.atleast_1d(np.asarray(wavelengths, dtype=np.float64))
    if not isinstance(material, str):
        return np.full(lam.shape, complex(material))
    key = {m.lower(): m for m in MATERIALS}.get(material.strip().lower())
    if key is None:
        try:
            value = complex(material.strip().replace(" ", ""))
        except ValueError:
            raise InputError(
                f"unknown material {material!r} (tabulated: {', '.join(MATERIALS)}; or a "
                "constant index such as 1.5 or 3.5+0.01j)"
            ) from None
        if value.real <= 0 or value.imag < 0:
            raise InputError(f"material {material!r}: need n > 0 and k >= 0 (n + ik)")
        return np.full(lam.shape, value)
    if key == "air":
        return np.ones(lam.shape, dtype=np.complex128)
    t = _table(f"nk_{key}.csv")
    lo, hi = t[0, 0], t[-1, 0]
    if lam.min() < lo or lam.max() > hi:
        raise InputError(
            f"material {key}: tabulated for {lo:g}-{hi:g} nm, asked for "
            f"{lam.min():g}-{lam.max():g} nm"
        )
    return np.interp(lam, t[:, 0], t[:, 1]) + 1j * np.interp(lam, t[:, 0], t[:, 2])


def solar_photon_flux(wavelengths: np.ndarray) -> np.ndarray:
    """Photon flux of the AM1.5 global spectrum (ASTM G173-03), photons m^-2 s^-1 nm^-1.

    Linear interpolation of the tabulated irradiance ``E`` (280-4000 nm), times ``lambda / hc``.
    """
    lam = np.asarray(wavelengths, dtype=np.float64)
    t = _table("am15g.csv")
    if lam.min() < t[0, 0] or lam.max() > t[-1, 0]:
        raise InputError(
            f"the AM1.5G spectrum is tabulated for {t[0, 0]:g}-{t[-1, 0]:g} nm, asked for "
            f"{lam.min():g}-{lam.max():g} nm"
        )
    h, c = 6.62607015e-34, 299792458.0
    return np.interp(lam, t[:, 0], t[:, 1]) * lam * 1e-9 / (h * c)


def spectral_weights(
    wavelengths: np.ndarray, weighting: str, *, rule: str = "trapezoid"
) -> np.ndarray:
    """Weights (summing to 1) of the spectral average of values at ``wavelengths``.

    Parameters
    ----------
    wavelengths : array of float, ``L``
        Increasing vacuum wavelengths, nm.
    weighting : {"none", "am15g"}
        Flat in wavelength, or weighted by the AM1.5G photon flux (:func:`solar_photon_flux`).
    rule : {"trapezoid", "product"}
        ``trapezoid``: the trapezoidal rule on ``value x weight`` sampled at ``wavelengths``
        (the spectrum is seen only there: at 50 nm steps it samples 950 nm inside a water
        band). ``product``: product integration, the values interpolated linearly between the
        wavelengths and integrated exactly against the weight interpolated linearly in its
        table (ASTM G173-03 at 0.5-1 nm), so only the absorption is sampled.

    Returns
    -------
    ndarray, ``L``
    """
    lam = np.asarray(wavelengths, dtype=np.float64)
    if weighting not in ("none", "am15g"):
        raise InputError(f"weighting: expected none or am15g, got {weighting!r}")
    if rule not in ("trapezoid", "product", "adaptive"):
        raise InputError(f"spectral_rule: expected adaptive, product or trapezoid, got {rule!r}")
    if lam.size == 1:
        return np.ones(1)
    if rule == "trapezoid" or weighting == "none":  # (adaptive: product on its points)
        # for a flat weight the two rules are the same
        w = np.zeros(lam.size)
        dl = np.diff(lam)
        w[:-1] += dl / 2
        w[1:] += dl / 2
        if weighting == "am15g":
            w = w * solar_photon_flux(lam)
        return w / w.sum()
    # the hat functions of the wavelengths and the flux are both linear between the nodes of
    # the union of the two grids: Simpson's rule on each piece is exact for their product
    t = _table("am15g.csv")[:, 0]
    nodes = np.union1d(lam, t[(t > lam[0]) & (t < lam[-1])])
    a, b = nodes[:-1], nodes[1:]
    i = np.clip(np.searchsorted(lam, a, side="right") - 1, 0, lam.size - 2)  # piece's interval
    width = lam[i + 1] - lam[i]
    w = np.zeros(lam.size)
    for x, s in ((a, 1.0), (0.5 * (a + b), 4.0), (b, 1.0)):
        up = (x - lam[i]) / width  # hat of lam[i + 1]; 1 - up is the hat of lam[i]
        g = s * solar_photon_flux(x) * (b - a) / 6
        w += np.bincount(i, g * (1 - up), minlength=lam.size)
        w += np.bincount(i + 1, g * up, minlength=lam.size)
    return w / w.sum()


def thin_film_absorption(
    n_film: np.ndarray,
    n_substrate: np.ndarray,
    thickness: float,
    wavelengths: np.ndarray,
    *,
    n_ambient: float = 1.0,
) -> np.ndarray:
    """Absorption of a uniform film at normal incidence (Airy's formulae), per wavelength.

    Parameters
    ----------
    n_film, n_substrate : array of complex, ``L``
        Indices ``n + ik`` of the film and the (transparent) substrate.
    thickness : float
        Film thickness, same unit as ``wavelengths``.
    wavelengths : array of float, ``L``
        Vacuum wavelengths.

    Returns
    -------
    ndarray, ``L``
        ``1 - R - T`` with ``R = |r|^2``, ``T = Re(n_s) / n_0 |t|^2``.

    References
    ----------
    Born & Wolf, Principles of Optics, sec. 1.6.
    """
    n0 = n_ambient
    n1 = np.asarray(n_film, dtype=np.complex128)
    n2 = np.asarray(n_substrate, dtype=np.complex128)
    r01, r12 = (n0 - n1) / (n0 + n1), (n1 - n2) / (n1 + n2)
    t01, t12 = 2 * n0 / (n0 + n1), 2 * n1 / (n1 + n2)
    phase = np.exp(2j * np.pi * n1 * thickness / np.asarray(wavelengths))
    den = 1 + r01 * r12 * phase**2
    r = (r01 + r12 * phase**2) / den
    t = t01 * t12 * phase / den
    return 1 - np.abs(r) ** 2 - n2.real / n0 * np.abs(t) ** 2


def _as_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.dtype.kind not in "biu":
        raise InputError(f"expected integer labels N x H x W, got {images.dtype} {images.shape}")
    return images


def _fractions(image: np.ndarray, phases: int, grid: int | None) -> np.ndarray:
    """Area fraction of each phase in each raster cell: ``k x g x g`` (``grid``), or the
    image's own pixels, ``k x H x W`` (``grid=None``)."""
    import torch

    onehot = torch.nn.functional.one_hot(
        torch.as_tensor(image.astype(np.int64)), num_classes=phases
    )  # H x W x k
    x = onehot.permute(2, 0, 1).to(torch.float64).unsqueeze(0)
    if grid is None:
        return x[0].numpy()
    return torch.nn.functional.adaptive_avg_pool2d(x, grid)[0].numpy()


def _convolution_matrices(eps: np.ndarray, order: int) -> tuple[np.ndarray, ...]:
    """Fourier factorisation of a rasterised layer for meent, symmetric in x and y.

    The independent check of :func:`mdesign.evaluators.rcwa.convolution_matrices` (tests and
    ``bench/bench_optics.py``). ``eps`` (``g x g``, rows along y) is in meent's ``n - ik``
    convention. The matrices are meent's own (``dfs2d``: Li's inverse rule across the
    interfaces normal to a field component, Laurent's rule along them) for ``E_x``, and the same
    construction on the transposed raster, with the harmonics transposed back, for ``E_y``.
    meent's default builds ``E_y``'s matrix with the other nesting of the two rules, which makes
    the absorption of a pattern and of its transpose differ at finite order (by 10% at order 2
    on a silicon pattern); with this choice unpolarised absorption is exactly invariant under
    turning the pattern by 90 degrees, as it must be.
    """
    from meent.on_numpy.emsolver.fourier_analysis import dfs2d

    g = eps.shape[0]
    if g < 4 * order + 1:
        # enough raster cells for the harmonics up to 2 * order without aliasing
        reps = -(-(4 * order + 1) // g)
        eps = np.repeat(np.repeat(eps, reps, axis=0), reps, axis=1)
    ff = 2 * order + 1
    # meent orders harmonics y-major: index iy * ff + ix; this swaps the two
    swap = np.arange(ff * ff).reshape(ff, ff).T.ravel()
    eps_x = dfs2d(eps, 0, 1, order, order)
    eps_y = dfs2d(np.ascontiguousarray(eps.T), 0, 1, order, order)[np.ix_(swap, swap)]
    eps_z_inv = np.linalg.inv(dfs2d(eps, 1, 1, order, order))
    return eps_x[None], eps_y[None], eps_z_inv[None]


def _meent_one(solver: Any, eps_cell: np.ndarray, n_sub: float, lam: float, order: int) -> float:
    """Unpolarised absorption ``1 - R - T`` of one layer at one wavelength (meent)."""
    eps_meent = np.conj(eps_cell)  # meent's time convention makes absorbing media n - ik
    solver.ucell = np.sqrt(eps_meent)[None]  # meent reads the grating type from its shape
    solver.n_bot = n_sub
    for attempt in range(2):
        # a diffraction order grazing exactly (a Rayleigh anomaly, e.g. wavelength = period in
        # a uniform air layer) makes the mode matrix singular; 1e-7 nm away it is regular
        wl = lam + 1e-7 * attempt
        try:
            res = solver.solve_for_conv(wl, *_convolution_matrices(eps_meent, order))
        except np.linalg.LinAlgError:
            if attempt:
                raise
            continue
        a = [
            1 - float(np.sum(r.de_ri)) - float(np.sum(r.de_ti))
            for r in (res.res_te_inc, res.res_tm_inc)
        ]
        return 0.5 * (a[0] + a[1])
    raise AssertionError("unreachable")


def meent_spectra(
    images: np.ndarray,
    wavelengths: Sequence[float],
    *,
    materials: Sequence[str] = _D.materials,
    substrate: str = _D.substrate,
    thickness: float = _D.thickness,
    period: float = _D.period,
    order: int = _D.order,
    grid: int | None = _D.grid,
) -> np.ndarray:
    """:func:`absorption_spectra` computed by meent (Kim et al. 2024) instead: the independent
    check of :mod:`mdesign.evaluators.rcwa` (the evaluator before it; slower, see the performance
    page)."""
    import meent
    from threadpoolctl import threadpool_limits

    images, lam, eps, n_sub = _check_spectra_inputs(
        images, wavelengths, materials, substrate, order, grid, thickness, period
    )
    out = np.empty((len(images), lam.size))
    with threadpool_limits(limits=1):
        for n, image in enumerate(images):
            frac = _fractions(image, len(materials), grid)  # k x g x g
            if frac.shape[1] != frac.shape[2]:
                raise InputError("meent_spectra: square images only")
            solver = meent.call_mee(
                backend=0,
                n_top=1.0,
                n_bot=1.0,
                theta=0.0,
                phi=0.0,
                fto=(order, order),
                period=(float(period), float(period)),
                wavelength=1.0,
                thickness=[float(thickness)],
                type_complex=np.complex128,
            )
            for i in range(lam.size):
                eps_cell = np.tensordot(eps[:, i], frac, axes=1)  # g x g
                out[n, i] = _meent_one(solver, eps_cell, float(n_sub[i].real), lam[i], order)
    return _checked(out)


def _check_spectra_inputs(
    images, wavelengths, materials, substrate, order, grid, thickness, period
):
    images = _as_images(images)
    lam = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    if lam.size == 0 or not np.all(np.isfinite(lam)) or lam.min() <= 0:
        raise InputError("wavelengths: need positive wavelengths")
    if len(materials) < 2:
        raise InputError(f"materials: need one per phase (at least 2), got {len(materials)}")
    if images.size and int(images.max()) >= len(materials):
        raise InputError(
            f"materials: {len(materials)} given, but the images have phase {int(images.max())}"
        )
    if order < 0 or (grid is not None and grid < 1) or thickness <= 0 or period <= 0:
        raise InputError("order >= 0, grid >= 1, thickness > 0 and period > 0 are required")
    eps = np.stack([refractive_index(m, lam) ** 2 for m in materials])  # k x L
    n_sub = refractive_index(substrate, lam)
    if np.any(n_sub.imag > 0):
        raise InputError(f"substrate {substrate}: must be transparent (k = 0) at all wavelengths")
    return images, lam, eps, n_sub


def _checked(out: np.ndarray) -> np.ndarray:
    if np.any(out < -1e-6) or np.any(out > 1 + 1e-6) or not np.all(np.isfinite(out)):
        raise RuntimeError(
            "RCWA energy balance violated (absorption outside [0, 1]); try another order or grid"
        )
    return np.clip(out, 0.0, 1.0)


# Matrices of 2N x 2N complex128 alive at once in one solve (Omega, W, V, their sums, M, ...):
# wavelengths are solved in chunks that keep them under _CHUNK_BYTES.
_LIVE_MATRICES = 12
# A complex64 value this far outside [0, 1] is clipped, not solved again: below the complex64
# error bound the tests state (2e-4), so the clipped value is within that bound too.
_SLACK_64 = 1e-4
_CHUNK_BYTES = 256 * 2**20
# On the CPU, chunks small enough for the cache: fewer wavelengths at once are faster there.
_CHUNK_BYTES_CPU = 64 * 2**20


def _solve_image(
    frac: np.ndarray,
    eps: np.ndarray,
    eps_sub: np.ndarray,
    lam: np.ndarray,
    *,
    thickness: float,
    period: float,
    order: int,
    precision: str,
    device: Any,
) -> np.ndarray:
    """Absorption spectrum of one raster (``frac``: ``k x H x W``) at wavelengths ``lam``."""
    import torch

    from mdesign.device import single_thread
    from mdesign.evaluators.rcwa import grazing, laurent_parts, layer_absorption

    dev = torch.device(device)
    n2 = 2 * (2 * order + 1) ** 2
    budget = _CHUNK_BYTES_CPU if dev.type == "cpu" else _CHUNK_BYTES
    chunk = max(1, budget // (_LIVE_MATRICES * 16 * n2 * n2))
    parts = laurent_parts(torch.as_tensor(frac, device=dev, dtype=torch.float64), order)
    out = np.empty(lam.size)
    with single_thread(dev):
        for s in range(0, lam.size, chunk):
            sl = slice(s, s + chunk)
            e = torch.as_tensor(eps[:, sl].T, device=dev)  # l x k
            wl = lam[sl].copy()
            # a diffraction order grazing exactly (a Rayleigh anomaly, wavelength = period / m
            # in air or in the substrate) has no admittance: 1e-7 nm away it has one
            es = torch.as_tensor(eps_sub[sl], device=dev)
            near = grazing(torch.as_tensor(wl, device=dev), es, period=period, order=order)
            near = near.cpu().numpy()
            wl[near] += 1e-7
            a = np.full(wl.size, np.nan)
            # complex64 boundary solves are not accurate enough there (admittances ~1e5): those
            # wavelengths start at the second pass
            todo = np.flatnonzero(~near) if precision == "complex64" else np.arange(wl.size)
            # a value outside [0, 1] by more than the precision's error (complex64: within
            # _SLACK_64 it is clipped, closer to the complex128 value than it was) or not finite
            # is solved again in complex128, then 1e-7 nm away (a grazing order the test above
            # missed)
            passes = [(precision, precision, 0.0), ("complex128", "complex128", 0.0)]
            if precision == "complex64":  # the grazing ones: the boundary in complex128 first
                passes.insert(1, ("complex64", "complex128", 0.0))
            for prec, bound, nudge in (*passes, ("complex128", "complex128", 1e-7)):
                if not todo.size:  # (complex64: every wavelength grazing)
                    todo = np.flatnonzero(np.isnan(a))
                    continue
                a[todo] = (
                    layer_absorption(
                        parts,
                        e[todo],
                        torch.as_tensor(eps_sub[sl][todo], device=dev),
                        torch.as_tensor(wl[todo] + nudge, device=dev),
                        thickness=thickness,
                        period=period,
                        order=order,
                        precision=prec,
                        boundary=bound,
                    )
                    .cpu()
                    .numpy()
                )
                slack = _SLACK_64 if prec == "complex64" else 1e-6
                ok = np.isfinite(a) & (a > -slack) & (a < 1 + slack)
                a[ok] = np.clip(a[ok], 0.0, 1.0)
                todo = np.flatnonzero(~ok)
                if not todo.size:
                    break
            out[sl] = a
    return out


def _solve_task(args: tuple) -> np.ndarray:
    """One image's spectrum in a worker process (one BLAS and torch thread)."""
    from threadpoolctl import threadpool_limits

    frac, eps, eps_sub, lam, kw = args
    with threadpool_limits(limits=1):
        return _solve_image(frac, eps, eps_sub, lam, **kw)


def absorption_spectra(
    images: np.ndarray,
    wavelengths: Sequence[float],
    *,
    materials: Sequence[str] = _D.materials,
    substrate: str = _D.substrate,
    thickness: float = _D.thickness,
    period: float = _D.period,
    order: int = _D.order,
    grid: int | None = _D.grid,
    precision: str = _D.precision,
    workers: int = _D.workers,
    device: Any = None,
    pool: Any = None,
) -> np.ndarray:
    """Absorption of the patterned film at each wavelength, by RCWA (:mod:`.rcwa`).

    Parameters
    ----------
    images : ndarray of int, ``N x H x W`` (or one ``H x W`` image)
        Phase labels ``0..k-1``: the in-plane pattern of the film over one period.
    wavelengths : sequence of float, ``L``
        Vacuum wavelengths in nm.
    materials : sequence of str
        Material of each phase (:func:`refractive_index`), phase 0 first.
    substrate : str
        Transparent material below the film.
    thickness, period : float
        Film thickness and lateral period (side of the square cell the image fills), nm.
    order : int
        Fourier truncation order: harmonics ``-order..order`` along x and y.
    grid : int or None
        None: the image's own pixels are the raster. An int: the image is area-averaged onto a
        ``grid x grid`` raster first (a cell's permittivity is the area-weighted mean of its
        phases').
    precision : {"complex64", "complex128"}
        Arithmetic of the solve after Li's matrices, the fluxes in complex128
        (:func:`mdesign.evaluators.rcwa.layer_absorption`).
    workers : int
        Processes the wavelengths and images are spread over, each on one thread (CPU only;
        1: in this process).
    device : torch.device or str, optional
        Where the solves run: CUDA when present (then in this process, wavelengths batched).
    pool : concurrent.futures.Executor, optional
        With ``workers > 1``, run in this pool of processes (kept across calls, as the adaptive
        spectral rule does) instead of starting one.

    Returns
    -------
    ndarray of float64, ``N x L``
        ``1 - R - T`` for unpolarised light at normal incidence, in [0, 1].

    Raises
    ------
    InputError
        Unknown materials, wavelengths outside a table, an absorbing substrate, or a label
        without a material.
    RuntimeError
        If the energy balance of a solve is off by more than 1e-6 (numerical breakdown).
    """
    from mdesign.device import default_device

    images, lam, eps, n_sub = _check_spectra_inputs(
        images, wavelengths, materials, substrate, order, grid, thickness, period
    )
    if precision not in ("complex64", "complex128"):
        raise InputError(f"precision: expected complex64 or complex128, got {precision!r}")
    if int(workers) < 1:
        raise InputError(f"workers: need at least 1, got {workers}")
    dev = default_device(device)
    kw = {
        "thickness": float(thickness),
        "period": float(period),
        "order": int(order),
        "precision": precision,
        "device": str(dev),
    }
    eps_sub = n_sub**2
    out = np.empty((len(images), lam.size))
    if dev.type != "cpu" or int(workers) == 1:
        from threadpoolctl import threadpool_limits

        # The dense eigenproblems are not worth BLAS threads, and oversubscribed threads slow
        # them down by orders of magnitude on shared cores: parallelise over processes.
        with threadpool_limits(limits=1):
            for n, image in enumerate(images):
                frac = _fractions(image, len(materials), grid)
                out[n] = _solve_image(frac, eps, eps_sub, lam, **kw)
        return _checked(out)
    from concurrent.futures import ProcessPoolExecutor

    # tasks: each image's wavelengths in contiguous parts, about 2 per worker in all
    parts = max(1, -(-2 * int(workers) // len(images)))
    splits = np.array_split(np.arange(lam.size), min(parts, lam.size))
    tasks, where = [], []
    for n, image in enumerate(images):
        frac = _fractions(image, len(materials), grid)
        for idx in splits:
            tasks.append((frac, eps[:, idx], eps_sub[idx], lam[idx], kw))
            where.append((n, idx))
    if pool is not None:
        for (n, idx), a in zip(where, pool.map(_solve_task, tasks), strict=True):
            out[n, idx] = a
        return _checked(out)
    with ProcessPoolExecutor(max_workers=int(workers), mp_context=_spawn()) as new:
        for (n, idx), a in zip(where, new.map(_solve_task, tasks), strict=True):
            out[n, idx] = a
    return _checked(out)


def _spawn():
    import multiprocessing

    return multiprocessing.get_context("spawn")


def adaptive_average(
    solve: Callable[[np.ndarray], np.ndarray],
    wavelengths: np.ndarray,
    weighting: str,
    *,
    tolerance: float,
    step_min: float,
) -> tuple[float, np.ndarray]:
    """Spectral average of one spectrum, refined where its linear interpolant misses.

    Every interval of ``wavelengths`` and its midpoint are solved first. An interval whose
    midpoint value differs from the mean of its ends by more than ``tolerance`` times the
    current average, in photon-weighted terms (``|A(m) - (A(l) + A(r)) / 2| * w(m) * (r - l) / 2
    / integral of w``), is split in two and both halves' midpoints are solved, down to points
    ``step_min`` apart; the average is then :func:`spectral_weights`' product rule on every
    point solved. Sub-nanometre guided resonances of a patterned film are found this way at a
    fraction of a uniform grid's points (``docs/guide/evaluators.md``).

    Parameters
    ----------
    solve : callable
        Absorption at an array of wavelengths.
    wavelengths : array of float, ``L``
        The starting grid, increasing.
    weighting : {"none", "am15g"}
    tolerance : float
        Relative error allowed per interval.
    step_min : float
        Finest spacing of solved wavelengths, nm.

    Returns
    -------
    value : float
    points : ndarray, ``P x 2``
        The wavelengths solved and their absorption, sorted.
    """
    lam = np.asarray(wavelengths, dtype=np.float64)
    if lam.size < 2:
        return float(solve(lam)[0]), np.stack([lam, solve(lam)], axis=1)
    mids = 0.5 * (lam[1:] + lam[:-1])
    first = np.concatenate([lam, mids])
    pts = dict(zip(first.tolist(), solve(first).tolist(), strict=True))
    active = list(zip(lam[:-1].tolist(), lam[1:].tolist(), strict=True))

    def weight(x: np.ndarray) -> np.ndarray:
        return solar_photon_flux(x) if weighting == "am15g" else np.ones_like(x)

    grid = np.linspace(lam[0], lam[-1], 4001)
    norm = np.trapezoid(weight(grid), grid)
    while True:
        xs = np.array(sorted(pts))
        ys = np.array([pts[x] for x in xs])
        total = float(ys @ spectral_weights(xs, weighting, rule="product"))
        split = []
        for lo, hi in active:
            m = 0.5 * (lo + hi)
            miss = abs(pts[m] - 0.5 * (pts[lo] + pts[hi]))
            est = miss * float(weight(np.array([m]))[0]) * (hi - lo) / 2 / norm
            if est > tolerance * total and (m - lo) >= 2 * step_min * (1 - 1e-9):
                split += [(lo, m), (m, hi)]
        if not split:
            return total, np.stack([xs, ys], axis=1)
        new = np.array([0.5 * (lo + hi) for lo, hi in split])
        pts.update(zip(new.tolist(), solve(new).tolist(), strict=True))
        active = split


def optical_absorption(
    images: np.ndarray,
    *,
    materials: Sequence[str] = _D.materials,
    substrate: str = _D.substrate,
    thickness: float = _D.thickness,
    period: float = _D.period,
    wavelength_min: float = _D.wavelength_min,
    wavelength_max: float = _D.wavelength_max,
    wavelengths: int = _D.wavelengths,
    weighting: str = _D.weighting,
    spectral_rule: str = _D.spectral_rule,
    spectral_tolerance: float = _D.spectral_tolerance,
    wavelength_step_min: float = _D.wavelength_step_min,
    order: int = _D.order,
    grid: int | None = _D.grid,
    precision: str = _D.precision,
    workers: int = _D.workers,
    device: Any = None,
) -> np.ndarray:
    """Spectrally averaged absorption of a thin film patterned by each image (Yang et al. 2018).

    Parameters
    ----------
    images : ndarray of int, ``N x H x W`` (or one ``H x W`` image)
        Phase labels: the pattern of the film over one period.
    materials, substrate, thickness, period, order, grid, precision, workers, device
        As in :func:`absorption_spectra`.
    wavelength_min, wavelength_max : float
        Range of vacuum wavelengths, nm.
    wavelengths : int
        Number of equally spaced wavelengths (``numpy.linspace``) the absorption is solved at
        (``adaptive``: the starting grid; its midpoints are solved too).
    weighting : {"none", "am15g"}
        Flat average, or weighted by the AM1.5G photon flux (the absorbed fraction of incident
        solar photons in the range).
    spectral_rule : {"adaptive", "product", "trapezoid"}
        How the spectrum is integrated: :func:`spectral_weights` on the grid, or refined where
        the spectrum needs it (:func:`adaptive_average`, with ``spectral_tolerance`` and
        ``wavelength_step_min``).

    Returns
    -------
    ndarray of float64, ``N``
        Averaged absorption of each image, in [0, 1].

    References
    ----------
    Yang et al. (2018), J. Mech. Des. 140, 111416; Li (1997), J. Opt. Soc. Am. A 14, 2758.
    """
    if wavelength_max < wavelength_min:
        raise InputError("wavelength_max must not be below wavelength_min")
    lam = np.linspace(wavelength_min, wavelength_max, int(wavelengths))
    kw = {
        "materials": materials,
        "substrate": substrate,
        "thickness": thickness,
        "period": period,
        "order": order,
        "grid": grid,
        "precision": precision,
        "workers": workers,
        "device": device,
    }
    if spectral_rule == "adaptive":
        import contextlib
        from concurrent.futures import ProcessPoolExecutor

        from mdesign.device import default_device

        images = _as_images(images)
        parallel = int(workers) > 1 and default_device(device).type == "cpu"
        with (
            ProcessPoolExecutor(max_workers=int(workers), mp_context=_spawn())
            if parallel
            else contextlib.nullcontext()
        ) as pool:  # one pool for every refinement round (a spawn costs seconds)
            return np.array(
                [
                    adaptive_average(
                        lambda x, img=img: absorption_spectra(img, x, pool=pool, **kw)[0],
                        lam,
                        weighting,
                        tolerance=spectral_tolerance,
                        step_min=wavelength_step_min,
                    )[0]
                    for img in images
                ]
            )
    w = spectral_weights(lam, weighting, rule=spectral_rule)
    return absorption_spectra(images, lam, **kw) @ w


class OpticalAbsorption:
    """Solar absorption of a thin film patterned by the image (RCWA; Yang et al. 2018).

    Built by ``get_evaluator("optical_absorption", ...)``; the values are
    :func:`optical_absorption` of each image, a fraction in [0, 1].
    """

    name = "optical_absorption"
    parameters: Mapping[str, Parameter] = parameters_from_config(OpticalAbsorptionConfig)
    phases_parameter = "materials"
    batch_size = 1
    """One image per call: each costs seconds, so progress is reported per image."""

    def __init__(self, **params: Any):
        self.params = parse_params(self.parameters, params, evaluator=self.name)
        self.config = config_from_dict(OpticalAbsorptionConfig, self.params, source=self.name)
        c = self.config
        lam = np.linspace(c.wavelength_min, c.wavelength_max, c.wavelengths)
        # fail now, not on the first image: unknown materials, ranges outside the tables
        for key, material in [*(("materials", m) for m in c.materials), ("substrate", c.substrate)]:
            try:
                n = refractive_index(material, lam)
            except InputError as exc:
                raise InputError(f"evaluator {self.name}: parameter {key}: {exc}") from None
            if key == "substrate" and np.any(n.imag > 0):
                raise InputError(
                    f"evaluator {self.name}: parameter substrate: {material} absorbs in "
                    f"{c.wavelength_min:g}-{c.wavelength_max:g} nm; the substrate must be "
                    "transparent"
                )
        if len(c.materials) < 2:
            raise InputError(
                f"evaluator {self.name}: parameter materials needs one per phase (at least 2)"
            )
        try:
            spectral_weights(lam, c.weighting, rule=c.spectral_rule)
        except InputError as exc:
            raise InputError(f"evaluator {self.name}: parameter weighting: {exc}") from None

    @property
    def phases(self) -> int:
        """Number of phases the parameters describe."""
        return len(self.config.materials)

    def check_images(self, images: np.ndarray) -> None:
        """Refuse volumes before any work: the film's pattern is a 2D image (the thickness is
        the ``thickness`` parameter), so ``N x H x W x D`` is an :class:`InputError`."""
        shape = np.shape(images)
        if len(shape) == 4:
            raise InputError(
                f"evaluator {self.name}: takes 2D patterns N x H x W (the film's thickness is "
                f"the thickness parameter), got volumes of shape {tuple(shape)}"
            )

    def __call__(self, images: np.ndarray) -> np.ndarray:
        c = self.config
        return optical_absorption(
            images,
            materials=c.materials,
            substrate=c.substrate,
            thickness=c.thickness,
            period=c.period,
            wavelength_min=c.wavelength_min,
            wavelength_max=c.wavelength_max,
            wavelengths=c.wavelengths,
            weighting=c.weighting,
            spectral_rule=c.spectral_rule,
            spectral_tolerance=c.spectral_tolerance,
            wavelength_step_min=c.wavelength_step_min,
            order=c.order,
            grid=c.grid,
            precision=c.precision,
            workers=c.workers,
        )

    def __repr__(self) -> str:
        return f"OpticalAbsorption({self.params})"
