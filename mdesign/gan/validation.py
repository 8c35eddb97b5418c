"""Statistical validation of a trained generator against its training distribution.

:func:`validate` compares generated images with fresh images from the distribution the GAN was
trained on (a new draw of the same ``mdesign grf`` parameters, :func:`grf_reference`; for a GAN
trained on a ``mdesign dataset`` set, its held-out tiles, :func:`reference_sets`) through the
descriptors of :mod:`mdesign.descriptors`. Every figure is given twice: generated vs real, and a
second real set vs the real set (``real_b``, of the same size), the scale of sampling noise. The
:class:`ValidationReport` holds:

* the **S2 distance** (:func:`s2_distance`, the mean absolute difference of the mean radial S2
  curves for ``r = 0..32``) beside the real-vs-real distance (``s2_ratio``), and the same for the
  lineal path;
* the volume fractions of phase 1: the two-sample KS statistic and the ratio of standard deviations
  (``volume_fraction_std_ratio``), which shows mode collapse;
* morphology, with in-image estimators for every set: the specific surface of phase 1 (Crofton; mean
  and spread), the cluster counts of each phase (4-connectivity), and the anisotropy of ``S2``
  between the axes and the diagonals (:func:`anisotropy`, ``anisotropy_ratio``);
* ``goals`` (:data:`GOALS`, :meth:`ValidationReport.summary`): fractions KS <= 0.1, std ratio within
  10%, ``s2_ratio <= 2``, specific surface and clusters within 10%, anisotropy ratio <= 1.2.

Why each figure and estimator: the design space guide (``docs/guide/gan.md``, "How the validation
measures").

References
----------
Yang, Z. et al. "Microstructural materials design via deep adversarial learning methodology",
J. Mech. Des. 140(11), 111416 (2018), sec. 3 (validation by S2 and volume fraction).
Torquato, S. *Random Heterogeneous Materials*, Springer (2002), ch. 2 (``S2`` and lineal path
2.2-2.4, specific surface 2.2), ch. 9 (connectedness, clusters).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from mdesign.config import GAN_DEFAULTS, GRFConfig, config_from_dict
from mdesign.descriptors import (
    lineal_path,
    specific_surface,
    two_point_correlation_directional,
    two_point_correlation_radial,
)
from mdesign.errors import InputError

__all__ = [
    "GOALS",
    "ValidationReport",
    "anisotropy",
    "curve_distance",
    "grf_reference",
    "plot_validation",
    "reference_seeds",
    "reference_sets",
    "s2_distance",
    "validate",
]

_V = GAN_DEFAULTS.validation

GOALS: dict[str, float] = {
    "volume_fraction_ks": 0.1,
    "volume_fraction_std_ratio": 0.1,
    "s2_ratio": 2.0,
    "specific_surface": 0.1,
    "clusters": 0.1,
    "anisotropy": 1.2,
}
"""Goal thresholds of :meth:`ValidationReport.summary`: the KS statistic at most 0.1, the std
ratio within 10% of 1, the S2 ratio at most 2, the specific surface and the cluster count of
each phase within 10% of the real set's, the mean anisotropy at most 1.2 times the real set's."""


def _ratio(a: float, b: float) -> float:
    """``a / b``, with ``0 / 0 = 1`` (two sets that agree on a zero) and ``b`` floored at 1e-12."""
    return 1.0 if a == b else float(a / max(b, 1e-12))


def curve_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of the mean curves of two sets (``N x (R + 1)`` each)."""
    return float(np.abs(np.mean(a, 0) - np.mean(b, 0)).mean())


def s2_distance(
    images_a: np.ndarray, images_b: np.ndarray, *, max_distance: int = _V.max_distance
) -> float:
    """Mean absolute difference between the mean radial S2 curves of two stacks.

    ``mean_r |mean_i S2_a,i(r) - mean_j S2_b,j(r)|`` over ``r = 0..max_distance``, with the
    periodic radial S2 of phase 1 (:func:`mdesign.descriptors.two_point_correlation_radial`).

    Parameters
    ----------
    images_a, images_b : ndarray, ``N x H x W`` and ``M x H' x W'``
        Two-phase labels; the sizes may differ.
    max_distance : int
        ``R``, at most half the smaller side.

    Returns
    -------
    float
    """
    sa = two_point_correlation_radial(images_a, max_distance=max_distance)
    sb = two_point_correlation_radial(images_b, max_distance=max_distance)
    return curve_distance(sa, sb)


def _spec(value: Any, default: Any, *, key: str) -> Any:
    """A ``mdesign grf`` option as recorded in ``meta`` ("0.3", "0.3:0.6", "0.2,0.1:0.3")."""
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return (float(value[0]), float(value[1]))
    parts = []
    try:
        for item in str(value).split(","):
            nums = [float(p) for p in item.split(":")]
            parts.append(nums[0] if len(nums) == 1 else (nums[0], nums[1]))
    except (ValueError, IndexError):
        raise InputError(f"data_meta: cannot read grf {key} {value!r}") from None
    return parts if len(parts) > 1 else parts[0]


def grf_training_parameters(data_meta: dict[str, Any]) -> dict[str, Any]:
    """Keywords of :func:`mdesign.grf.grf_microstructures` that reproduce a GAN's training
    distribution (all but ``n``, ``shape`` and ``seed``).

    Parameters
    ----------
    data_meta : dict
        A checkpoint's ``data_meta`` (:attr:`mdesign.gan.GANCheckpoint.data_meta`) whose
        ``grf`` record is the ``meta`` of the ``mdesign grf`` run that made the training set.

    Raises
    ------
    InputError
        The training data did not come from ``mdesign grf`` (no ``grf`` record).
    """
    grf = (data_meta or {}).get("grf")
    if not isinstance(grf, dict):
        raise InputError(
            "the checkpoint's training data did not come from `mdesign grf` (no grf record "
            "in data_meta); give reference images instead"
        )
    cfg = config_from_dict(GRFConfig, grf.get("config") or {}, source="data_meta: grf.config")
    vf = _spec(grf.get("volume_fraction"), None, key="volume_fraction")
    if vf is None:
        raise InputError("data_meta: the grf record has no volume_fraction")
    length = _spec(grf.get("correlation_length"), None, key="correlation_length")
    if length is None:
        raise InputError("data_meta: the grf record has no correlation_length")
    return {
        "volume_fraction": vf,
        "correlation_length": length,
        "anisotropy": _spec(grf.get("anisotropy"), cfg.anisotropy, key="anisotropy"),
        "angle": _spec(grf.get("angle"), cfg.angle, key="angle"),
        "covariance": cfg.covariance,
        "nu": cfg.matern_nu,
        "phases": cfg.phases,
        "periodic": cfg.periodic,
        "chunk_size": cfg.chunk_size,
    }


def grf_reference(data_meta: dict[str, Any], n: int, *, seed: int, progress: bool = False):
    """Fresh level-cut GRF images from the distribution a GAN was trained on.

    Parameters
    ----------
    data_meta : dict
        A checkpoint's ``data_meta`` (see :func:`grf_training_parameters`).
    n : int
        Number of images.
    seed : int, numpy.random.Generator or numpy.random.SeedSequence
        Seed of the new draw; it must differ from the training set's (nor be
        ``SeedSequence(training seed)``), or the "fresh" images would be the training images.

    Returns
    -------
    mdesign.grf.GRFResult
        Images of the training shape and their drawn parameters.

    Raises
    ------
    InputError
        The training data did not come from ``mdesign grf`` (no ``grf`` record), or ``seed``
        is the training set's.
    """
    from mdesign.grf import grf_microstructures
    from mdesign.seeds import as_seed_sequence

    params = grf_training_parameters(data_meta)
    grf = data_meta["grf"]
    # an int s draws exactly as SeedSequence(s): compare the sequences
    seq = as_seed_sequence(seed)
    if grf.get("seed") is not None and seq.entropy == int(grf["seed"]) and not seq.spawn_key:
        raise InputError(
            f"seed {seed} is the training set's seed: the reference would repeat the training "
            "images; use another seed"
        )
    shape = tuple(int(s) for s in grf.get("shape") or data_meta["shape"])
    return grf_microstructures(int(n), shape, seed=seq, progress=progress, **params)


def reference_seeds(seed: int) -> tuple[int, int]:
    """Seeds of the two fresh real sets that a validation with ``seed`` compares against.

    Derived from ``seed`` through :class:`numpy.random.SeedSequence` with a fixed spawn word, so
    they differ from the latents' seed and, being 32-bit hashes, from a training set's seed
    (a small integer) except by a 2**-32 chance, which :func:`grf_reference` refuses.
    """
    s_a, s_b = np.random.SeedSequence([int(seed), 0x6A1]).generate_state(2, dtype=np.uint32)
    return int(s_a), int(s_b)


def reference_sets(
    data_meta: dict[str, Any],
    n: int,
    *,
    seed: int,
    progress: bool = False,
    data: str | os.PathLike | None = None,
    near: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Two independent real sets from a GAN's training distribution.

    The reference of :func:`validate` and the second set that gives its distance a scale. For a
    GAN trained on ``mdesign grf`` images, two fresh draws of ``n`` images
    (:func:`grf_reference`, seeded by :func:`reference_seeds`); for any other, the held-out
    tiles of its training set (``mdesign dataset``; found by
    :func:`mdesign.dataset.find_training_data`, at ``data`` when it has moved), split in two
    halves.

    Returns
    -------
    real, real_b : ndarray of uint8, ``n x H x W`` (held-out tiles: ``M // 2`` each)
    source : str
        How they were made (the seeds, or the file), for the report.

    Raises
    ------
    InputError
        Neither a GRF record nor a training set with at least 6 held-out tiles.
    """
    if not isinstance((data_meta or {}).get("grf"), dict):
        from mdesign.dataset import find_training_data

        found = find_training_data(data_meta, data=data, near=near)
        m = found.holdout.shape[0] // 2
        if m < 3:
            raise InputError(
                f"{found.path} holds {found.holdout.shape[0]} held-out tiles; validating needs "
                "at least 6 (make the training set with `mdesign dataset`), or give reference "
                "images"
            )
        return (
            found.holdout[:m],
            found.holdout[m : 2 * m],
            f"held-out tiles of {found.path} ({m} and {m})",
        )
    s_a, s_b = reference_seeds(seed)
    real = grf_reference(data_meta, n, seed=s_a, progress=progress).images
    real_b = grf_reference(data_meta, n, seed=s_b, progress=progress).images
    return real, real_b, f"mdesign grf with the training parameters, seeds {s_a} and {s_b}"


@dataclass(frozen=True)
class ValidationReport:
    """Descriptors of generated and real images, and the distances between them.

    Attributes
    ----------
    s2_generated, s2_real, s2_real_b : ndarray, ``N x (R + 1)``
        Radial S2 of phase 1 of the generated set, the real set, and a second real set.
    lineal_path_generated, lineal_path_real, lineal_path_real_b : ndarray, ``N x (R + 1)``
        Lineal path of phase 1.
    volume_fraction_generated, volume_fraction_real, volume_fraction_real_b : ndarray, ``N``
        Fraction of phase 1 of each image.
    specific_surface_generated, specific_surface_real, specific_surface_real_b : ndarray, ``N``
        Specific surface of phase 1 of each image, in-image estimator, 1/pixel.
    clusters_generated, clusters_real, clusters_real_b : ndarray of int, ``N x 2``
        Clusters of phases 0 and 1 of each image (4-connectivity, in-image).
    anisotropy_generated, anisotropy_real, anisotropy_real_b : ndarray, ``N``
        Anisotropy of each image (:func:`anisotropy`).
    """

    s2_generated: np.ndarray
    s2_real: np.ndarray
    s2_real_b: np.ndarray
    lineal_path_generated: np.ndarray
    lineal_path_real: np.ndarray
    lineal_path_real_b: np.ndarray
    volume_fraction_generated: np.ndarray
    volume_fraction_real: np.ndarray
    volume_fraction_real_b: np.ndarray
    specific_surface_generated: np.ndarray
    specific_surface_real: np.ndarray
    specific_surface_real_b: np.ndarray
    clusters_generated: np.ndarray
    clusters_real: np.ndarray
    clusters_real_b: np.ndarray
    anisotropy_generated: np.ndarray
    anisotropy_real: np.ndarray
    anisotropy_real_b: np.ndarray

    @property
    def s2_distance_generated(self) -> float:
        """S2 distance, generated vs real."""
        return curve_distance(self.s2_generated, self.s2_real)

    @property
    def s2_distance_real(self) -> float:
        """S2 distance, real vs the second real set: the scale of sampling noise."""
        return curve_distance(self.s2_real_b, self.s2_real)

    @property
    def s2_ratio(self) -> float:
        """``s2_distance_generated / s2_distance_real``; the goal is at most 2."""
        return self.s2_distance_generated / max(self.s2_distance_real, 1e-12)

    def summary(self) -> dict[str, Any]:
        """The JSON report: distances, their ratio, the mean curves, morphology and goals.

        Returns
        -------
        dict
            Besides the S2, lineal-path and volume-fraction entries:
            ``volume_fraction_std_ratio`` (generated vs real) and ``_real`` (real_b vs real);
            ``specific_surface_mean`` ``{generated, real, real_b}``, ``specific_surface_error``
            (``mean_gen / mean_real - 1``) and ``_real``; ``specific_surface_std``
            ``{generated, real, real_b}``, ``specific_surface_std_ratio`` and ``_real``,
            ``specific_surface_ks_generated`` and ``_real``; ``clusters_mean``
            ``{generated, real, real_b}`` each ``[phase 0, phase 1]``, ``clusters_error`` and
            ``_real`` per phase; ``goals``, booleans (:data:`GOALS`) and ``all``.
        """
        from scipy.stats import ks_2samp

        vf = {
            "generated": self.volume_fraction_generated,
            "real": self.volume_fraction_real,
            "real_b": self.volume_fraction_real_b,
        }
        surfaces = {
            "generated": self.specific_surface_generated,
            "real": self.specific_surface_real,
            "real_b": self.specific_surface_real_b,
        }
        ss = {k: float(v.mean()) for k, v in surfaces.items()}
        ss_std = {k: float(v.std()) for k, v in surfaces.items()}
        cl = {
            "generated": self.clusters_generated.mean(0),
            "real": self.clusters_real.mean(0),
            "real_b": self.clusters_real_b.mean(0),
        }
        lp_gen = curve_distance(self.lineal_path_generated, self.lineal_path_real)
        lp_real = curve_distance(self.lineal_path_real_b, self.lineal_path_real)
        ks_gen = float(ks_2samp(vf["generated"], vf["real"]).statistic)
        std_ratio = _ratio(vf["generated"].std(), vf["real"].std())
        ss_error = _ratio(ss["generated"], ss["real"]) - 1
        cl_error = [_ratio(g, r) - 1 for g, r in zip(cl["generated"], cl["real"], strict=True)]
        an = {
            "generated": float(self.anisotropy_generated.mean()),
            "real": float(self.anisotropy_real.mean()),
            "real_b": float(self.anisotropy_real_b.mean()),
        }
        an_ratio = _ratio(an["generated"], an["real"])
        goals = {
            "volume_fraction_ks": ks_gen <= GOALS["volume_fraction_ks"],
            "volume_fraction_std_ratio": abs(std_ratio - 1) <= GOALS["volume_fraction_std_ratio"],
            "s2_ratio": self.s2_ratio <= GOALS["s2_ratio"],
            "specific_surface": abs(ss_error) <= GOALS["specific_surface"],
            **{f"clusters_phase_{j}": abs(e) <= GOALS["clusters"] for j, e in enumerate(cl_error)},
            "anisotropy": an_ratio <= GOALS["anisotropy"],
        }
        goals = {k: bool(v) for k, v in goals.items()}
        goals["all"] = all(goals.values())
        return {
            "n_images": int(self.s2_generated.shape[0]),
            "max_distance": int(self.s2_generated.shape[1] - 1),
            "s2_distance_generated": self.s2_distance_generated,
            "s2_distance_real": self.s2_distance_real,
            "s2_ratio": self.s2_ratio,
            "s2_goal_met": bool(self.s2_ratio <= GOALS["s2_ratio"]),
            "lineal_path_distance_generated": lp_gen,
            "lineal_path_distance_real": lp_real,
            "lineal_path_ratio": lp_gen / max(lp_real, 1e-12),
            "volume_fraction_mean": {k: float(v.mean()) for k, v in vf.items()},
            "volume_fraction_std": {k: float(v.std()) for k, v in vf.items()},
            "volume_fraction_ks_generated": ks_gen,
            "volume_fraction_ks_real": float(ks_2samp(vf["real_b"], vf["real"]).statistic),
            "volume_fraction_std_ratio": std_ratio,
            "volume_fraction_std_ratio_real": _ratio(vf["real_b"].std(), vf["real"].std()),
            "specific_surface_mean": ss,
            "specific_surface_error": ss_error,
            "specific_surface_error_real": _ratio(ss["real_b"], ss["real"]) - 1,
            "specific_surface_std": ss_std,
            "specific_surface_std_ratio": _ratio(ss_std["generated"], ss_std["real"]),
            "specific_surface_std_ratio_real": _ratio(ss_std["real_b"], ss_std["real"]),
            "specific_surface_ks_generated": float(
                ks_2samp(surfaces["generated"], surfaces["real"]).statistic
            ),
            "specific_surface_ks_real": float(
                ks_2samp(surfaces["real_b"], surfaces["real"]).statistic
            ),
            "clusters_mean": {k: [float(c) for c in v] for k, v in cl.items()},
            "clusters_error": cl_error,
            "clusters_error_real": [
                _ratio(b, r) - 1 for b, r in zip(cl["real_b"], cl["real"], strict=True)
            ],
            "anisotropy_mean": an,
            "anisotropy_ratio": an_ratio,
            "anisotropy_ratio_real": _ratio(an["real_b"], an["real"]),
            "goals": goals,
            "goal_thresholds": dict(GOALS),
            "s2_mean": {
                "generated": self.s2_generated.mean(0).tolist(),
                "real": self.s2_real.mean(0).tolist(),
                "real_b": self.s2_real_b.mean(0).tolist(),
            },
            "lineal_path_mean": {
                "generated": self.lineal_path_generated.mean(0).tolist(),
                "real": self.lineal_path_real.mean(0).tolist(),
                "real_b": self.lineal_path_real_b.mean(0).tolist(),
            },
        }


def validate(
    generated: np.ndarray,
    real: np.ndarray,
    real_b: np.ndarray,
    *,
    max_distance: int = _V.max_distance,
) -> ValidationReport:
    """Compare generated images with real ones, against the scale of two real sets.

    Parameters
    ----------
    generated : ndarray, ``N x H x W``
        Decoded images (e.g. :func:`mdesign.gan.decode` of :func:`mdesign.gan.sample_latents`).
    real, real_b : ndarray, ``N x H x W``
        Two independent sets from the training distribution (:func:`grf_reference` twice with
        different seeds), neither of them training images.
    max_distance : int
        ``R`` of the curves (32: the issue's ``r <= 32``).

    Returns
    -------
    ValidationReport
        Per-image descriptors of the three sets; specific surface and clusters with in-image
        estimators (module docstring).
    """
    from mdesign.reconstruction.metrics import cluster_counts

    sets = (generated, real, real_b)
    for name, arr in zip(("generated", "real", "real_b"), sets, strict=True):
        if np.asarray(arr).ndim != 3:
            raise InputError(f"{name}: expected images N x H x W, got shape {np.shape(arr)}")
        if int(np.asarray(arr).max()) > 1:
            raise InputError(f"{name}: validation compares two-phase images (labels 0 and 1)")
    s2 = [two_point_correlation_radial(a, max_distance=max_distance) for a in sets]
    lp = [lineal_path(a, max_distance=max_distance) for a in sets]
    vf = [np.asarray(a, dtype=np.float64).mean((1, 2)) for a in sets]
    ss = [specific_surface(a, phase=1, periodic=False) for a in sets]
    cl = [np.stack([cluster_counts(img, phases=2) for img in np.asarray(a)]) for a in sets]
    an = [anisotropy(a, max_distance=max_distance) for a in sets]
    return ValidationReport(*s2, *lp, *vf, *ss, *cl, *an)


def anisotropy(images: np.ndarray, *, max_distance: int = _V.max_distance) -> np.ndarray:
    """Per image, how much ``S2`` of phase 1 depends on the direction.

    ``mean_{k=1..R} (|S2(k, 0) - S2(0, k)| + |S2(k, k) - S2(k, -k)|) / 2 / (phi - phi^2)``: the
    axes compared with each other and the diagonals with each other (each pair has the same
    lengths), with the in-image estimator
    (:func:`mdesign.descriptors.two_point_correlation_directional`, ``periodic=False``), and
    ``phi`` the image's fraction. ``phi - phi^2`` is the range of ``S2`` (its value at 0 less
    its limit), so the figure is comparable across fractions. 0 for a single-phase image.

    Parameters
    ----------
    images : ndarray, ``N x H x W``
        Phase labels 0 and 1.
    max_distance : int
        ``R``: the largest multiple of each direction (``R sqrt 2`` pixels along a diagonal).

    Returns
    -------
    ndarray, ``N``
    """
    s2 = two_point_correlation_directional(
        images,
        directions=[(1, 0), (0, 1), (1, 1), (1, -1)],
        max_distance=max_distance,
        periodic=False,
    )
    phi = s2[:, 0, 0]
    scale = phi - phi**2
    diff = (np.abs(s2[:, 0, 1:] - s2[:, 1, 1:]) + np.abs(s2[:, 2, 1:] - s2[:, 3, 1:])) / 2
    return np.where(scale > 0, diff.mean(1) / np.where(scale > 0, scale, 1), 0.0)


def _morphology_line(summ: dict[str, Any]) -> str:
    """Two lines: specific surface and clusters, generated vs real (error; real-vs-real error),
    and the goals missed."""
    cl = ", ".join(
        f"phase {j} {summ['clusters_mean']['generated'][j]:.1f} vs "
        f"{summ['clusters_mean']['real'][j]:.1f} ({e:+.1%}; {er:+.1%})"
        for j, (e, er) in enumerate(
            zip(summ["clusters_error"], summ["clusters_error_real"], strict=True)
        )
    )
    missed = [k for k, v in summ["goals"].items() if k != "all" and not v]
    return (
        "generated vs real (error; real-vs-real error):  specific surface "
        f"{summ['specific_surface_mean']['generated']:.4f} vs "
        f"{summ['specific_surface_mean']['real']:.4f} "
        f"({summ['specific_surface_error']:+.1%}; {summ['specific_surface_error_real']:+.1%}), "
        f"its spread over images: std ratio {summ['specific_surface_std_ratio']:.2f} "
        f"({summ['specific_surface_std_ratio_real']:.2f})"
        f"\nclusters {cl}, anisotropy x{summ['anisotropy_ratio']:.2f} "
        f"({summ['anisotropy_ratio_real']:.2f})\n"
        + ("all goals met" if not missed else "goals missed: " + ", ".join(missed))
    )


def plot_validation(
    report: ValidationReport,
    generated: np.ndarray,
    real: np.ndarray,
    path: str | os.PathLike | None = None,
    *,
    fig=None,
    title: str | None = None,
):
    """S2 and lineal path with 5-95% bands, volume-fraction histograms, and sample images.

    The volume-fraction panel states the KS statistic and the std ratio; a line at the bottom
    the specific-surface and cluster-count errors and the goals missed.

    Parameters
    ----------
    report : ValidationReport
        From :func:`validate`.
    generated, real : ndarray, ``N x H x W``
        The image sets compared (three of each are shown).
    path : path-like, optional
        Also write the figure there (PNG, atomically).
    fig : matplotlib Figure or SubFigure, optional
        Draw into it (2 x 6 panels); a new 13 x 6.4 inch Figure by default.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from mdesign.plotting import finish, new_figure, plot_band, show_labels

    summ = report.summary()
    fig = new_figure(fig, figsize=(13, 6.4))
    grid = fig.add_gridspec(2, 6)
    ax = fig.add_subplot(grid[0, 0:2])
    plot_band(ax, report.s2_real, label="real", color="C0")
    plot_band(ax, report.s2_generated, label="generated", color="C3")
    ax.set(
        xlabel="r (pixels)",
        ylabel="$S_2(r)$ of phase 1",
        title=(
            f"S2 distance: generated {summ['s2_distance_generated']:.4f}, "
            f"real-vs-real {summ['s2_distance_real']:.4f} (x{summ['s2_ratio']:.2f})"
        ),
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[0, 2:4])
    plot_band(ax, report.lineal_path_real, label="real", color="C0")
    plot_band(ax, report.lineal_path_generated, label="generated", color="C3")
    ax.set(
        xlabel="r (pixels)",
        ylabel="$L(r)$ of phase 1",
        title=(
            f"lineal path distance: generated {summ['lineal_path_distance_generated']:.4f}, "
            f"real-vs-real {summ['lineal_path_distance_real']:.4f}"
        ),
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[0, 4:6])
    bins = np.linspace(0, 1, 41)
    ax.hist(report.volume_fraction_real, bins=bins, alpha=0.5, color="C0", label="real")
    ax.hist(report.volume_fraction_generated, bins=bins, alpha=0.5, color="C3", label="generated")
    lo = min(report.volume_fraction_real.min(), report.volume_fraction_generated.min())
    hi = max(report.volume_fraction_real.max(), report.volume_fraction_generated.max())
    ax.set_xlim(max(0, lo - 0.05), min(1, hi + 0.05))
    ax.set(
        xlabel="volume fraction of phase 1",
        ylabel="images",
        title=f"volume fractions: KS {summ['volume_fraction_ks_generated']:.3f} "
        f"(real-vs-real {summ['volume_fraction_ks_real']:.3f})\n"
        f"std ratio {summ['volume_fraction_std_ratio']:.2f} "
        f"(real-vs-real {summ['volume_fraction_std_ratio_real']:.2f})",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    for i in range(3):
        show_labels(fig.add_subplot(grid[1, i]), real[i], k=2, title=f"real {i}")
        show_labels(fig.add_subplot(grid[1, 3 + i]), generated[i], k=2, title=f"generated {i}")
    fig.supxlabel(_morphology_line(summ), fontsize=9)
    fig.suptitle((title or "GAN validation") + f" ({summ['n_images']} images per set)", fontsize=10)
    return finish(fig, path)
