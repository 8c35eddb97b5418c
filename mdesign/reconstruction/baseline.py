"""The GRF baseline: a level-cut Gaussian random field fitted to the exemplar's ``S2``.

This is the Gaussian-random-field comparison of Li et al. (2018): a stationary Gaussian field, cut
at the exemplar's phase fractions (:func:`mdesign.grf.grf_microstructures`, exact to one pixel),
whose covariance family and correlation length are chosen so that the radial ``S2`` of the cut
images matches the exemplar's. :func:`fit_grf` searches each family (gaussian, exponential, Matérn
3/2; with three phases, each order of the phases along the field) for the correlation length of
least ``S2`` RMSE, on images drawn from fixed seeds (common random numbers); :func:`grf_baseline`
draws the fitted images. With ``sheets=True`` (two phases) the minority phase is fitted as the
two-sided cut ``{|Y| < t}`` instead (Berk 1987; Roberts & Teubner 1995): a web of lines in 2D and of
sheets in 3D, the start of the 2D-to-3D reconstruction when the exemplar's thin phase is a network.
:func:`fit_shell` fits a field whose spectrum is a thin shell at the exemplar's dominant wavenumber
(Berk 1987's random waves), cut at the fractions: lamellae of one period (``slices.init="shell"``;
``"lamellae"``: every slice's ring at that period, ordered into domains).

The fit in detail: the reconstruction guide ("How each stage works",
``docs/guide/reconstruction.md``).

References
----------
Berk, N. F. "Scattering properties of a model bicontinuous structure with a well defined length
scale", Phys. Rev. Lett. 58, 2718 (1987).
Swift, J. & Hohenberg, P. C. "Hydrodynamic fluctuations at the convective instability",
Phys. Rev. A 15, 319 (1977).
Roberts, A. P. & Teubner, M. "Transport properties of heterogeneous materials derived from
Gaussian random fields: bounds and simulation", Phys. Rev. E 51, 4141 (1995).
Li, X. et al. "A transfer learning approach for microstructure reconstruction and
structure-property predictions", Sci. Rep. 8, 13461 (2018).
Torquato, S. *Random Heterogeneous Materials*, Springer (2002), sec. 8.2 (level-cut fields).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from mdesign.config import RECONSTRUCTION_DEFAULTS
from mdesign.descriptors import two_point_correlation_radial
from mdesign.grf import gaussian_random_field, grf_microstructures, level_cut
from mdesign.seeds import SeedLike, child_seeds

__all__ = [
    "GRFFit",
    "ShellFit",
    "dominant_wavenumber",
    "fit_grf",
    "fit_shell",
    "grf_baseline",
    "shell_field",
]

FAMILIES = ("gaussian", "exponential", "matern")


@dataclass(frozen=True)
class GRFFit:
    """A level-cut GRF fitted to an exemplar.

    Attributes
    ----------
    covariance : str
        Covariance family (Matérn with ``nu = 3/2``).
    correlation_length : float
        In pixels (:mod:`mdesign.grf`).
    order : tuple of int
        ``order[g]`` is the exemplar phase that the generator's phase ``g`` (``g``-th from the
        lowest field values) becomes.
    fractions : ndarray, ``k``
        The exemplar's phase fractions.
    s2_rmse : float
        Fit residual: RMSE of the mean ``S2`` of the fitting images against the exemplar's.
    sheet_phase : int or None
        Two phases only: this phase is the two-sided cut ``{|Y| < t}`` (module docstring)
        instead of one side of a level cut.
    """

    covariance: str
    correlation_length: float
    order: tuple[int, ...]
    fractions: np.ndarray
    s2_rmse: float
    sheet_phase: int | None = None

    def sample(self, n: int, shape: tuple[int, ...], *, seed: int) -> np.ndarray:
        """``n x H x W`` (or ``n x H x W x D``) periodic labels from the fitted model."""
        if self.sheet_phase is not None:
            seeds = np.random.default_rng(seed).integers(0, 2**62, size=n)
            fields = gaussian_random_field(
                n,
                shape,
                correlation_length=self.correlation_length,
                covariance=self.covariance,
                seeds=seeds,
                device="cpu",
            )
            f = float(self.fractions[self.sheet_phase])
            inside = level_cut(-np.abs(fields), np.array([[1 - f, f]] * n))  # 1: |Y| < t
            return np.where(inside == 1, self.sheet_phase, 1 - self.sheet_phase).astype(np.uint8)
        frac = self.fractions[list(self.order)]
        vf = float(frac[1]) if frac.size == 2 else [float(f) for f in frac[1:]]
        images = grf_microstructures(
            n,
            shape,
            volume_fraction=vf,
            correlation_length=self.correlation_length,
            covariance=self.covariance,
            phases=frac.size,
            seed=seed,
        ).images
        return np.asarray(self.order, dtype=np.uint8)[images]


def _radial_s2(images: np.ndarray, phases: int, r_max: int, periodic: bool) -> np.ndarray:
    """Mean radial ``S2`` of phase 1 (two phases) or of every phase: ``J x (R + 1)``."""
    return np.stack(
        [
            two_point_correlation_radial(
                images, phase=j, max_distance=r_max, periodic=periodic
            ).mean(0)
            for j in ((1,) if phases == 2 else range(phases))
        ]
    )


def fit_grf(
    exemplar: np.ndarray,
    *,
    shape: tuple[int, int] | None = None,
    phases: int,
    seed: int,
    n_fit: int = 4,
    exemplar_periodic: bool = RECONSTRUCTION_DEFAULTS.exemplar_periodic,
    max_distance: int | None = None,
    sheets: bool = False,
) -> GRFFit:
    """Fit a level-cut GRF's covariance family and correlation length to the exemplar's ``S2``.

    Parameters
    ----------
    exemplar : ndarray, ``H x W``
        Phase labels.
    shape : tuple, optional
        Size of the fitting images (the exemplar's by default).
    phases : int
        k.
    seed : int
        Seed of the fitting images.
    n_fit : int
        Images per evaluation of the objective.
    exemplar_periodic : bool
        Measure the exemplar's ``S2`` on the torus (real micrographs are not periodic).
    max_distance : int, optional
        ``R``; a quarter of the smaller side of the smaller image by default.
    sheets : bool
        Two phases: fit the minority phase as a two-sided cut (module docstring).

    Returns
    -------
    GRFFit
    """
    shape = tuple(exemplar.shape) if shape is None else tuple(shape)
    r_max = max(1, min(*exemplar.shape, *shape) // 4) if max_distance is None else max_distance
    target = _radial_s2(exemplar[None], phases, r_max, exemplar_periodic)
    fractions = np.array([(exemplar == j).mean() for j in range(phases)])
    if phases == 3:
        orders = [(0, 1, 2), (1, 0, 2), (0, 2, 1)]  # the middle phase is 1, 0 or 2
    else:
        orders = [tuple(range(phases))]
    if sheets and phases == 2:
        minority = int(np.argmin(fractions))
        candidates = [
            GRFFit(f, 1.0, (0, 1), fractions, np.inf, sheet_phase=minority) for f in FAMILIES
        ]
    else:
        candidates = [
            GRFFit(f, 1.0, order, fractions, np.inf) for order in orders for f in FAMILIES
        ]
    best: GRFFit | None = None
    for fit in candidates:

        def objective(log_l, fit=fit):
            trial = GRFFit(
                fit.covariance,
                float(np.exp(log_l)),
                fit.order,
                fractions,
                0,
                sheet_phase=fit.sheet_phase,
            )
            imgs = trial.sample(n_fit, shape, seed=seed)
            s2 = _radial_s2(imgs, phases, r_max, True)
            return float(np.sqrt(((s2 - target) ** 2).mean()))

        res = minimize_scalar(
            objective,
            bounds=(np.log(0.3), np.log(min(shape) / 2)),
            method="bounded",
            options={"xatol": 0.02},
        )
        if best is None or res.fun < best.s2_rmse:
            best = GRFFit(
                fit.covariance,
                float(np.exp(res.x)),
                fit.order,
                fractions,
                float(res.fun),
                sheet_phase=fit.sheet_phase,
            )
    assert best is not None
    return best


def grf_baseline(
    exemplar: np.ndarray,
    shape: tuple[int, int],
    *,
    phases: int,
    seed: SeedLike,
    exemplar_periodic: bool = RECONSTRUCTION_DEFAULTS.exemplar_periodic,
) -> tuple[np.ndarray, GRFFit]:
    """One periodic GRF image of ``shape`` fitted to the exemplar, and the fit.

    The fit uses images from ``seed + 1``, the returned image ``seed``, so it is not one of the
    images the length was tuned on (a ``Generator`` or ``SeedSequence`` seed: two spawned
    children, :func:`mdesign.seeds.child_seeds`).

    Returns
    -------
    labels : ndarray of uint8, ``H x W``
    fit : GRFFit
    """
    seed, fit_seed = child_seeds(seed, 2)
    fit = fit_grf(
        exemplar, shape=shape, phases=phases, seed=fit_seed, exemplar_periodic=exemplar_periodic
    )
    return fit.sample(1, shape, seed=seed)[0], fit


def dominant_wavenumber(exemplar: np.ndarray, *, min_cycles: int = 3) -> float:
    """The peak of the radially averaged power spectrum of an image's phase indicators.

    Parameters
    ----------
    exemplar : ndarray, ``H x W``
        Phase labels.
    min_cycles : int
        Wavenumbers below ``min_cycles`` cycles across the smaller side are skipped (the
        large-scale leakage of a non-periodic crop).

    Returns
    -------
    float
        Cycles per pixel (the period is its inverse).
    """
    ex = np.asarray(exemplar)
    power = np.zeros(ex.shape)
    for j in np.unique(ex):
        ind = (ex == j).astype(np.float64)
        power += np.abs(np.fft.fft2(ind - ind.mean())) ** 2
    n = min(ex.shape)
    k = np.hypot(*np.meshgrid(*(np.fft.fftfreq(s) for s in ex.shape), indexing="ij"))
    bins = np.rint(k * n).astype(np.int64).ravel()
    radial = np.bincount(bins, power.ravel()) / np.maximum(np.bincount(bins), 1)
    radial[: min(min_cycles, radial.size - 1)] = -1.0
    radial[n // 2 + 1 :] = -1.0  # beyond Nyquist along the axes: only the corners' diagonals
    return float(np.argmax(radial) / n)


def shell_field(
    n: int,
    shape: tuple[int, ...],
    *,
    wavenumber: float,
    width: float,
    seed: int,
    projected: bool = False,
    iterations: int = 0,
    fraction: float = 0.5,
) -> np.ndarray:
    """Periodic fields whose power spectrum is a shell ``|k| ~ wavenumber``.

    White noise filtered by ``exp(-(|k| - k0)^2 / (2 w^2))`` (``k`` in cycles per pixel):
    random waves of one period ``1 / k0`` in every direction (Berk 1987), lamellae when cut.
    With ``projected`` (3D), the filter is instead the product over the three slice planes of
    the ring filter of the in-plane wavevector, so that every slice, in each orientation, has the
    period ``1 / k0`` (it keeps the wavevectors near the cube's diagonals: a slice of an
    isotropic shell cuts most lamellae obliquely, at a longer period). ``iterations`` times, the
    field is then pushed to two levels (``tanh`` about the quantile ``fraction``, then filtered
    again): waves of one direction win locally, as lamellar domains (a Swift-Hohenberg-like
    ordering, Swift & Hohenberg 1977).

    Returns
    -------
    ndarray, ``n x *shape``
    """
    freqs = np.meshgrid(*(np.fft.fftfreq(s) for s in shape), indexing="ij", sparse=True)
    if projected and len(shape) == 3:
        amp = np.ones(())
        for a, b in ((0, 1), (1, 2), (0, 2)):
            ring = np.sqrt(freqs[a] ** 2 + freqs[b] ** 2)
            amp = amp * np.exp(-0.5 * ((ring - wavenumber) / width) ** 2)
    else:
        k = np.sqrt(sum(f**2 for f in freqs))
        amp = np.exp(-0.5 * ((k - wavenumber) / width) ** 2)
    rng = np.random.default_rng(seed)
    axes = tuple(range(-len(shape), 0))

    def one() -> np.ndarray:
        u = np.fft.ifftn(np.fft.fftn(rng.standard_normal(shape), axes=axes) * amp, axes=axes).real
        for _ in range(iterations):
            u = np.tanh(2.0 * (u - np.quantile(u, fraction)) / u.std())
            u = np.fft.ifftn(np.fft.fftn(u, axes=axes) * amp, axes=axes).real
        return u

    return np.stack([one() for _ in range(n)])


@dataclass(frozen=True)
class ShellFit:
    """A shell-spectrum field (:func:`shell_field`) cut at an exemplar's fractions.

    Attributes
    ----------
    wavenumber, width : float
        Of the shell, cycles per pixel.
    fractions : ndarray, ``k``
        The exemplar's phase fractions (phase 0 the lowest field values).
    s2_rmse : float
        Fit residual: RMSE of the radial ``S2`` of the fitting sample's slices (or image)
        against the exemplar's.
    projected, iterations : bool, int
        Of :func:`shell_field` (``slices.init="lamellae"``: the slices' rings, ordered).
    """

    wavenumber: float
    width: float
    fractions: np.ndarray
    s2_rmse: float
    projected: bool = False
    iterations: int = 0
    covariance: str = "shell"
    sheet_phase: int | None = None

    @property
    def correlation_length(self) -> float:
        """The period ``1 / wavenumber``, pixels (the report's ``grf_correlation_length``)."""
        return 1.0 / self.wavenumber

    def sample(self, n: int, shape: tuple[int, ...], *, seed: int) -> np.ndarray:
        """``n x *shape`` periodic labels with exact fractions
        (:func:`mdesign.grf.level_cut`)."""
        fields = shell_field(
            n,
            shape,
            wavenumber=self.wavenumber,
            width=self.width,
            seed=seed,
            projected=self.projected,
            iterations=self.iterations,
            fraction=float(self.fractions[0]),
        )
        return level_cut(fields, np.tile(self.fractions, (n, 1)))


def fit_shell(
    exemplar: np.ndarray,
    *,
    shape: tuple[int, ...],
    phases: int,
    seed: int,
    exemplar_periodic: bool = RECONSTRUCTION_DEFAULTS.exemplar_periodic,
    factors: tuple[float, ...] = (1.0, 1.05, 1.1, 1.15, 1.2),
    widths: tuple[float, ...] = (0.05, 0.1, 0.2),
    lamellae: bool = False,
) -> ShellFit:
    """Fit a shell field's wavenumber and width to the exemplar's ``S2``.

    The candidates are the exemplar's :func:`dominant_wavenumber` times each of ``factors``
    (a volume's slices cut the shell obliquely, so their periods are longer than the field's)
    with a width of each of ``widths`` times it; the one whose sample of ``shape`` (its slices
    normal to the first axis when 3D) has the radial ``S2`` closest to the exemplar's wins.
    With ``lamellae``, the one candidate is the slices' ring at the dominant wavenumber itself,
    20% wide, ``projected`` and ordered by 30 iterations (:func:`shell_field`).

    Returns
    -------
    ShellFit
    """
    fractions = np.array([(exemplar == j).mean() for j in range(phases)])
    k0 = dominant_wavenumber(exemplar)
    r_max = max(1, min(*exemplar.shape, *shape) // 4)
    target = _radial_s2(exemplar[None], phases, r_max, exemplar_periodic)
    if lamellae:
        factors, widths = (1.0,), (0.2,)
    best: ShellFit | None = None
    for factor in factors:
        for width in widths:
            trial = ShellFit(
                k0 * factor,
                k0 * factor * width,
                fractions,
                0.0,
                projected=lamellae,
                iterations=30 if lamellae else 0,
            )
            sample = trial.sample(1, tuple(shape), seed=seed)[0]
            images = sample if sample.ndim == 3 else sample[None]
            s2 = _radial_s2(images, phases, r_max, True)
            rmse = float(np.sqrt(((s2 - target) ** 2).mean()))
            if best is None or rmse < best.s2_rmse:
                best = dataclasses.replace(trial, s2_rmse=rmse)
    assert best is not None
    return best
