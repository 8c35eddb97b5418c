"""Typed, validated configuration: one frozen config object per stage.

Every default of the pipeline lives here, once. The CLI and the flows read these objects and never
restate a default; library functions take plain values and default to the fields of the module
level instances below (``GRF_DEFAULTS.covariance``), so changing a default here changes it
everywhere. The files in ``configs/`` are instances of these classes.

A bad value raises :class:`~mdesign.errors.InputError` whose message names the file and the key,
for example ``configs/gan.yaml: train.lr: Input should be greater than 0``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mdesign.errors import InputError
from mdesign.seeds import SEED_LIMIT

__all__ = [
    "BO_DEFAULTS",
    "CONDUCTIVITY_DEFAULTS",
    "DATASET_DEFAULTS",
    "ELASTICITY_DEFAULTS",
    "GAN_DEFAULTS",
    "GRF_DEFAULTS",
    "OPTICAL_ABSORPTION_DEFAULTS",
    "RECONSTRUCTION_DEFAULTS",
    "SEGMENT_DEFAULTS",
    "SURROGATE_DEFAULTS",
    "SURROGATE_EVALUATOR_DEFAULTS",
    "TORTUOSITY_DEFAULTS",
    "AnnealConfig",
    "BOConfig",
    "CampaignConfig",
    "ConductivityConfig",
    "Config",
    "ConstraintConfig",
    "DaskConfig",
    "DatasetConfig",
    "DesignSpaceConfig",
    "DiscriminatorConfig",
    "ElasticityConfig",
    "GANConfig",
    "GANSampleConfig",
    "GANTrainConfig",
    "GANValidationConfig",
    "GRFConfig",
    "GeneratorConfig",
    "ObjectiveConfig",
    "OpticalAbsorptionConfig",
    "OptimiserConfig",
    "OutcomeConfig",
    "ReconstructionConfig",
    "SegmentConfig",
    "SlicesConfig",
    "SurrogateConfig",
    "SurrogateCrossConfig",
    "SurrogateEvaluatorConfig",
    "SurrogateNetworkConfig",
    "SurrogateS2Config",
    "SurrogateScreenConfig",
    "SurrogateShipConfig",
    "SurrogateStudyConfig",
    "SurrogateTaskConfig",
    "TextureConfig",
    "TortuosityConfig",
    "config_from_dict",
    "dump_config",
    "load_config",
    "override",
    "read_yaml",
]

C = TypeVar("C", bound="Config")


FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32: the computations run in float32, so a larger setting overflows."""


class Config(BaseModel):
    """Base of all stage configs: immutable, unknown keys are errors (a typo is not ignored),
    and every number is finite.

    Every float anywhere in a config, typed fields and free mappings (an evaluator's
    ``params``) alike, must be finite and at most :data:`FLOAT32_MAX` in magnitude: NaN and
    infinity (YAML ``.nan``, ``.inf``) are refused with the key that holds them, and so is a
    value that overflows the float32 arithmetic (``1e308``). Subclasses inherit this; a field
    that must accept a non-finite value would have to say so itself (none does).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        where = _non_finite(value)
        if where is not None:
            path, bad = where
            raise ValueError(
                f"{path}{': ' if path else ''}must be a finite number of magnitude at most "
                f"{FLOAT32_MAX:.3g}, got {bad!r}"
            )
        return value


def _non_finite(value: Any, path: str = "") -> tuple[str, float] | None:
    """The first float in ``value`` (nested lists, tuples and mappings; configs are checked by
    their own validator) that is not finite or beyond float32, with its dotted path."""
    if isinstance(value, float):
        return None if math.isfinite(value) and abs(value) <= FLOAT32_MAX else (path, value)
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _problem(exc: ValidationError) -> tuple[str, str]:
    """The first offending key (dotted) and what is wrong with it, e.g. ``("train.lr", "must be
    > 0")``, with a count of any further problems."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return key, f"{msg}{tail}"


def _describe(exc: ValidationError, source: str) -> str:
    """One line naming the first offending key, e.g. ``gan.yaml: train.lr: must be > 0``."""
    key, msg = _problem(exc)
    return f"{source}: {key}: {msg}" if key else f"{source}: {msg}"


def config_from_dict(cls: type[C], data: dict[str, Any] | None, *, source: str = "config") -> C:
    """Validate a mapping into ``cls``; errors become one :class:`InputError` naming the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(
            f"{source}: expected a mapping of keys to values, got {type(data).__name__}"
        )
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InputError(_describe(exc, source)) from None


def load_config(cls: type[C], path: str | Path | None = None, **overrides: Any) -> C:
    """Read a YAML file into ``cls``, then apply the given top-level ``overrides``.

    Overrides whose value is ``None`` are ignored, so CLI options that the user did not give leave
    the file's (or the class's) value in place. A bad override is an :class:`InputError` whose
    ``param`` is its keyword (the CLI shows its flag); a bad value of the file names the file and
    the key.
    """
    data = read_yaml(path) if path is not None else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    data = {**data, **given}
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        key, msg = _problem(exc)
        if key in given:
            # an override is a keyword of the caller (a CLI option): name it as the parameter
            raise InputError(msg, param=key) from None
        raise InputError(_describe(exc, str(path) if path is not None else "config")) from None


def override(config: C, overrides: dict[str, Any]) -> C:
    """``config`` with the values at dotted keys (``"optimiser.iterations"``) replaced.

    Values that are ``None`` are ignored (a CLI option not given). ``overrides`` maps each dotted
    key to ``(value, param)``; a bad value is an :class:`InputError` whose ``param`` is that
    keyword (the CLI shows its flag).
    """
    data = config.model_dump()
    given = {k: v for k, v in overrides.items() if v[0] is not None}
    for key, (value, _) in given.items():
        *path, leaf = key.split(".")
        node = data
        for part in path:
            node = node[part]
        node[leaf] = value
    try:
        return type(config).model_validate(data)
    except ValidationError as exc:
        key, msg = _problem(exc)
        param = given[key][1] if key in given else None
        raise InputError(msg if param else _describe(exc, "config"), param=param) from None


# A config is a few kilobytes of YAML; a larger file is a wrong path (a stack, a checkpoint).
MAX_CONFIG_BYTES = 1 << 20


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file (empty for an empty file); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such config file")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise InputError(
            f"{path}: {size} bytes is not a config file (at most {MAX_CONFIG_BYTES} bytes of YAML)"
        )
    raw = path.read_bytes()
    if b"\0" in raw:
        raise InputError(f"{path}: a binary file, expected a YAML config (UTF-8 text)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text (byte {exc.start}), expected a YAML config"
        ) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InputError(f"{path}: expected a mapping of keys to values")
    return loaded


def dump_config(config: Config) -> str:
    """The config as YAML text that :func:`load_config` reads back to an equal object."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


Covariance = Literal["gaussian", "exponential", "matern"]
Width = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT, strict=True)]
"""A seed: an integer ``0 <= seed < 2**32`` (:mod:`mdesign.seeds`)."""


class GRFConfig(Config):
    """Level-cut Gaussian random fields (:mod:`mdesign.grf`).

    The run-specific values (number of images, size, phase fractions, correlation length, seed)
    are arguments of :func:`mdesign.grf.grf_microstructures`; these are the model's settings.
    """

    covariance: Covariance = "gaussian"
    """Covariance of the underlying Gaussian field; see :func:`mdesign.grf.covariance`."""
    matern_nu: Literal[0.5, 1.5, 2.5] = 1.5
    """Smoothness of the Matérn covariance (closed forms for 1/2, 3/2, 5/2)."""
    anisotropy: float = Field(1.0, gt=0)
    """Ratio of the correlation length along ``angle`` to the one across it."""
    angle: float = 0.0
    """Direction of the long correlation axis, degrees counter-clockwise from x (the columns)."""
    phases: int = Field(2, ge=2, le=8)
    """Number of phases k (k - 1 thresholds on one field)."""
    periodic: bool = True
    """Periodic (tileable) fields by spectral synthesis on the torus; else circulant embedding."""
    chunk_size: int = Field(256, ge=1)
    """Images generated per vectorised chunk: bounds peak memory, and fixes the random stream."""


GRF_DEFAULTS = GRFConfig()


def _unit(unit: str) -> dict[str, str]:
    """Field metadata read by :mod:`mdesign.evaluators` to show a parameter's unit."""
    return {"unit": unit}


class ConductivityConfig(Config):
    """Effective conductivity (:func:`mdesign.evaluators.effective_conductivity`).

    The fields are the evaluator's parameters (``mdesign evaluate --param KEY=VALUE``); their
    defaults are the library's defaults. The default accuracy (pixels subdivided 2x2 and the
    1x1 and 2x2 solutions extrapolated) is where ``bench/bench_evaluators.py``'s table of error
    against cost (the evaluators guide) puts the best accuracy for its cost.
    """

    conductivities: tuple[float, ...] | None = Field(
        None,
        description="conductivity of each phase, phase 0 first (e.g. 1,10); required",
        json_schema_extra={"unit": "any (the value has the same unit)", "required": True},
    )
    direction: Literal["x", "y", "z"] = Field(
        "x",
        description="direction of the applied field: x = along the columns (axis 1), "
        "y = along the rows (axis 0), z = along the depth (axis 2; volumes N x H x W x D only)",
        json_schema_extra=_unit(""),
    )
    refinement: int = Field(
        2,
        ge=1,
        le=8,
        description="each pixel is split into refinement x refinement cells for the finest solve",
        json_schema_extra=_unit("cells per pixel side"),
    )
    extrapolate: bool = Field(
        True,
        description="Richardson-extrapolate from refinement//2 and refinement (first order in "
        "the cell size); ignored when refinement is 1",
        json_schema_extra=_unit(""),
    )
    tolerance: float = Field(
        1e-4,
        gt=0,
        lt=1,
        description="relative residual (preconditioned norm) at which conjugate gradients stop",
        json_schema_extra=_unit(""),
    )
    max_iterations: int = Field(
        10_000,
        ge=1,
        description="iteration limit of conjugate gradients; an image that has not converged "
        "by then fails",
        json_schema_extra=_unit(""),
    )


CONDUCTIVITY_DEFAULTS = ConductivityConfig()


class ElasticityConfig(Config):
    """Effective elastic stiffness (:func:`mdesign.evaluators.elastic_stiffness`).

    The phases are isotropic: Young's moduli with Poisson's ratios, or bulk and shear moduli
    (3D values; a pore has modulus 0). The fields are the evaluator's parameters (``mdesign
    evaluate --param KEY=VALUE``); their defaults are the library's defaults.
    """

    youngs_moduli: tuple[float, ...] | None = Field(
        None,
        description="Young's modulus of each phase, phase 0 first (e.g. 1,10; 0 = pore); "
        "required unless bulk_moduli and shear_moduli are given",
        json_schema_extra={"unit": "any (the value has the same unit)"},
    )
    poissons_ratios: tuple[float, ...] | None = Field(
        (0.3,),
        description="Poisson's ratio, one for all phases or one per phase (with youngs_moduli)",
        json_schema_extra=_unit(""),
    )
    bulk_moduli: tuple[float, ...] | None = Field(
        None,
        description="3D bulk modulus of each phase, instead of youngs_moduli (with shear_moduli)",
        json_schema_extra={"unit": "any (the value has the same unit)"},
    )
    shear_moduli: tuple[float, ...] | None = Field(
        None,
        description="shear modulus of each phase, instead of youngs_moduli (with bulk_moduli)",
        json_schema_extra={"unit": "any (the value has the same unit)"},
    )
    output: Literal[
        "E_x", "E_y", "E_z", "bulk", "shear", "young", "anisotropy", "C_xx", "C_yy", "C_zz"
    ] = Field(
        "E_x",
        description="the value: E_x|E_y|E_z directional Young's modulus (1/S_ii; x = axis 1, "
        "y = axis 0, z = axis 2, volumes only); bulk|shear|young Voigt-Reuss-Hill isotropic "
        "projection (2D: in-plane moduli); anisotropy universal index (0 = isotropic); C_xx|"
        "C_yy|C_zz Mandel entries",
        json_schema_extra={"unit": "unit of the moduli (anisotropy: none)"},
    )
    plane: Literal["strain", "stress"] = Field(
        "strain",
        description="2D images: plane strain or plane stress (ignored for volumes)",
        json_schema_extra=_unit(""),
    )
    refinement: int = Field(
        1,
        ge=1,
        le=4,
        description="each pixel (voxel) is split into refinement cells per side (elements) for "
        "the finest solve",
        json_schema_extra=_unit("elements per pixel side"),
    )
    tolerance: float = Field(
        1e-4,
        gt=0,
        lt=1,
        description="relative residual (preconditioned norm) at which conjugate gradients stop; "
        "the tensor errs by about its square",
        json_schema_extra=_unit(""),
    )
    max_iterations: int = Field(
        5_000,
        ge=1,
        description="iteration limit of conjugate gradients; an image that has not converged "
        "by then fails",
        json_schema_extra=_unit(""),
    )


ELASTICITY_DEFAULTS = ElasticityConfig()


class TortuosityConfig(Config):
    """Tortuosity factor of one conducting phase (:func:`mdesign.evaluators.tortuosity`)."""

    phase: int = Field(
        1,
        ge=0,
        le=7,
        description="label of the conducting phase (every other phase insulates)",
        json_schema_extra=_unit(""),
    )
    direction: Literal["x", "y", "z"] = Field(
        "x",
        description="transport direction: x = columns (axis 1), y = rows (axis 0), "
        "z = depth (axis 2; volumes only)",
        json_schema_extra=_unit(""),
    )
    refinement: int = Field(
        1,
        ge=1,
        le=8,
        description="finite-volume cells per voxel side (1 is TauFactor's discretisation)",
        json_schema_extra=_unit("cells per voxel side"),
    )
    extrapolate: bool = Field(
        False,
        description="Richardson-extrapolate from refinement//2 and refinement",
        json_schema_extra=_unit(""),
    )
    tolerance: float = Field(
        1e-6,
        gt=0,
        lt=1,
        description="relative residual (preconditioned norm) at which conjugate gradients stop",
        json_schema_extra=_unit(""),
    )
    max_iterations: int = Field(
        10_000,
        ge=1,
        description="iteration limit of conjugate gradients",
        json_schema_extra=_unit(""),
    )


TORTUOSITY_DEFAULTS = TortuosityConfig()


class OpticalAbsorptionConfig(Config):
    """Optical absorption of a patterned thin film (:func:`mdesign.evaluators.optical_absorption`).

    The image is the in-plane pattern of one film (phase p made of ``materials[p]``), repeated
    periodically with the given ``period``, on a semi-infinite ``substrate``, lit from air at
    normal incidence; unpolarised (the mean of two orthogonal polarisations). Materials are
    names of the tabulated refractive indices in ``mdesign/evaluators/data`` or a constant
    complex index such as ``1.5`` or ``3.5+0.01j`` (n + ik).
    """

    materials: tuple[str, ...] = Field(
        ("air", "Si"),
        description="material of each phase, phase 0 first",
        json_schema_extra=_unit(""),
    )
    substrate: str = Field(
        "SiO2", description="material below the film (semi-infinite)", json_schema_extra=_unit("")
    )
    thickness: float = Field(
        100.0, gt=0, description="film thickness", json_schema_extra=_unit("nm")
    )
    period: float = Field(
        600.0,
        gt=0,
        description="side of the square unit cell the image fills",
        json_schema_extra=_unit("nm"),
    )
    wavelength_min: float = Field(
        400.0, gt=0, description="shortest vacuum wavelength", json_schema_extra=_unit("nm")
    )
    wavelength_max: float = Field(
        1100.0, gt=0, description="longest vacuum wavelength", json_schema_extra=_unit("nm")
    )
    wavelengths: int = Field(
        36,
        ge=1,
        le=2000,
        description="number of equally spaced wavelengths the absorption is solved at (adaptive: "
        "the starting grid, whose midpoints are solved too)",
        json_schema_extra=_unit(""),
    )
    weighting: Literal["none", "am15g"] = Field(
        "am15g",
        description="spectral weight of the average: none (flat in wavelength) or am15g "
        "(photon flux of the ASTM G173-03 AM1.5 global spectrum)",
        json_schema_extra=_unit(""),
    )
    spectral_rule: Literal["adaptive", "product", "trapezoid"] = Field(
        "adaptive",
        description="product: the absorption interpolated linearly between the wavelengths and "
        "integrated against the tabulated weight; adaptive: the same, with intervals halved "
        "where the interpolant misses; trapezoid: the weight sampled at the wavelengths only",
        json_schema_extra=_unit(""),
    )
    spectral_tolerance: float = Field(
        1e-4,
        gt=0,
        description="adaptive: relative photon-weighted miss allowed per interval",
        json_schema_extra=_unit(""),
    )
    wavelength_step_min: float = Field(
        2.5,
        gt=0,
        description="adaptive: finest spacing of the wavelengths solved",
        json_schema_extra=_unit("nm"),
    )
    order: int = Field(
        5,
        ge=0,
        le=30,
        description="Fourier truncation order: harmonics -order..order along each axis",
        json_schema_extra=_unit(""),
    )
    grid: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="null: the image's pixels are the raster; a number: the pattern is "
        "area-averaged onto grid x grid cells first",
        json_schema_extra=_unit("cells"),
    )
    precision: Literal["complex64", "complex128"] = Field(
        "complex64",
        description="arithmetic of the RCWA after Li's matrices (the fluxes are complex128)",
        json_schema_extra=_unit(""),
    )
    workers: int = Field(
        1,
        ge=1,
        le=256,
        description="processes the wavelengths and images are spread over (one thread each)",
        json_schema_extra=_unit(""),
    )

    @model_validator(mode="after")
    def _check_range(self) -> OpticalAbsorptionConfig:
        if self.wavelength_max < self.wavelength_min:
            raise ValueError("wavelength_max must not be below wavelength_min")
        return self


OPTICAL_ABSORPTION_DEFAULTS = OpticalAbsorptionConfig()


class SegmentConfig(Config):
    """Segmentation of a grayscale micrograph into phases (:mod:`mdesign.segment`).

    Crop, then denoise, then correct the background, then Otsu's threshold (two phases) or
    multi-Otsu (more), or the minimum-error thresholds, then a Potts-prior relabelling and one
    under a prior learned from the labels; every choice is stated in the output's ``meta``.
    """

    phases: int = Field(2, ge=2, le=8)
    """Number of phases: Otsu's threshold for 2, multi-Otsu (Liao et al. 2001) above."""
    crop: tuple[int | None, int | None, int | None, int | None] | None = None
    """``[y0, y1, x0, x1]``: keep ``image[y0:y1, x0:x1]`` (Python slices: ``null`` is the
    edge, negative counts from the end; ``[0, -60, null, null]`` drops a 60-row data bar at the
    bottom). Null: the whole image."""
    check_bars: bool = True
    """Refuse an image holding a scale bar or data bar: a rectangle of identical pixel values
    (no noise) at least ``bar_min_length`` of the width long, which would be segmented as
    material. Crop it away (``crop``), or turn this off for images without noise."""
    bar_min_length: float = Field(0.1, gt=0, le=1)
    """Shortest bar looked for, as a fraction of the image width."""
    denoise: Literal["none", "median", "bilateral", "nl_means"] = "none"
    """``median``: the median over a disk of ``median_radius``; ``bilateral``: an edge-preserving
    bilateral filter (Tomasi & Manduchi 1998); ``nl_means``: non-local means (Buades et al. 2005)
    with the noise level estimated from the image (Donoho's wavelet estimator,
    :func:`mdesign.segment.noise_sigma`). The filters are scikit-image's."""
    median_radius: int = Field(2, ge=1)
    """Radius in pixels of the median filter's disk."""
    bilateral_sigma: float = Field(0.1, gt=0)
    """Range scale of the bilateral filter, in units of the image's gray-level range."""
    bilateral_spatial: float = Field(2.0, gt=0)
    """Spatial scale (Gaussian sigma, pixels) of the bilateral filter."""
    nl_means_h: float = Field(0.8, gt=0)
    """Non-local means' filter strength in units of the estimated noise sigma."""
    nl_means_patch: int = Field(5, ge=3)
    """Side of the patches non-local means compares."""
    nl_means_distance: int = Field(6, ge=1)
    """Search radius of non-local means, pixels."""
    background: Literal["none", "polynomial", "gaussian"] = "polynomial"
    """The uneven illumination removed before thresholding: a smooth background ``B`` with
    ``image ~ m[phase] * B`` (``mode: divide``, flat-field) or ``m[phase] + B`` (``subtract``),
    fitted by alternating with the segmentation (the phases' levels ``m`` are refitted each
    round, so the microstructure does not leak into ``B``). ``polynomial``: ``B`` is a
    polynomial in x and y of degree ``background_order``; ``gaussian``: a Gaussian-weighted
    local fit of width ``background_sigma``; ``none``: one global threshold."""
    background_mode: Literal["divide", "subtract"] = "divide"
    """``divide``: illumination multiplies the signal (flat-field correction); ``subtract``:
    an additive offset."""
    background_order: int = Field(2, ge=0, le=6)
    """Degree of the polynomial background."""
    background_sigma: float = Field(0.15, gt=0)
    """Width of the Gaussian background, as a fraction of the image's smaller side."""
    background_iterations: int = Field(3, ge=1)
    """Rounds of (fit the background, segment, refit the phases' levels)."""
    threshold: Literal["otsu", "min_error"] = "otsu"
    """``otsu``: Otsu's threshold (two phases) or multi-Otsu (more); ``min_error``: Kittler &
    Illingworth's (1986) minimum-error thresholds (a Gaussian per phase, of its own spread and
    share; :func:`mdesign.segment.min_error_thresholds`)."""
    regularize: Literal["none", "potts", "learned"] = "learned"
    """After the thresholds: ``potts`` relabels each pixel by the most probable phase given its
    gray level (Gaussian noise about its phase's level, the noise's sigma refitted from the
    residuals) and its 8 neighbours' phases (a Potts prior, ``potts_beta`` per agreeing edge
    neighbour, ``potts_diagonal`` times that per corner one), by iterated conditional modes
    (Besag 1986) from the thresholds' labels. ``learned`` then relabels again with the prior
    learned from the labelling instead of the fixed ``beta``: the probability of each phase
    given its 8 neighbours' configuration, counted in the current labels and re-estimated every
    sweep (a nonparametric Markov random field, in the spirit of Paget & Longstaff 1998), so
    thin features that the material has throughout are kept. Unlike a denoising filter both
    keep one-pixel features whose gray level is clear (figures in
    ``docs/guide/own-material.md``)."""
    potts_beta: float = Field(1.0, ge=0)
    """Weight of an agreeing edge neighbour, in units of the log-likelihood."""
    potts_diagonal: float = Field(0.5, ge=0)
    """Weight of a corner neighbour relative to an edge neighbour."""
    potts_iterations: int = Field(8, ge=1)
    """Sweeps of iterated conditional modes (each updates the two checkerboard halves in
    turn)."""
    learned_alpha: float = Field(1.0, gt=0)
    """``learned``: pseudo-count added to every (neighbour configuration, phase) pair."""
    learned_iterations: int = Field(8, ge=1)
    """``learned``: sweeps, each re-estimating the statistics and the noise from the labels."""


SEGMENT_DEFAULTS = SegmentConfig()


class DatasetConfig(Config):
    """A GAN training set of tiles cut from labelled images (:mod:`mdesign.dataset`)."""

    tile: int = Field(128, ge=32, multiple_of=32)
    """Side of the square tiles, a multiple of the generator's 32."""
    n_tiles: int = Field(1024, ge=1)
    """Training tiles drawn (before augmentation), at random positions outside the held-out
    region."""
    augment: bool = False
    """Add the 8 dihedral transforms (rotations by 90 degrees and mirrors) of every tile: only
    for an isotropic material (a rolled, layered or directionally solidified one is not)."""
    holdout: float = Field(0.2, ge=0, lt=1)
    """Share of each image's area kept out of training: a band at its right edge (full height;
    of the width), from which the held-out tiles are cut. No training tile overlaps it."""
    holdout_tiles: int = Field(64, ge=0)
    """Held-out tiles cut at random in the held-out bands (0: none)."""
    min_independent: float = Field(64.0, gt=0)
    """Warn when the training region holds fewer than this many non-overlapping tiles: too
    little independent data for a GAN (it can memorise it)."""
    seed: Seed = 0
    """Seed of the tile positions."""


DATASET_DEFAULTS = DatasetConfig()


Pooling = Literal["avg", "max"]


class TextureConfig(Config):
    """The texture loss of a reconstruction, 2D and 3D: VGG19 Gram matrices and ``S2``
    (:mod:`mdesign.reconstruction.loss`)."""

    weights: str = "normalized"
    """VGG19 weights: ``normalized`` (the normalised VGG19 of Gatys et al. that Li et al. used,
    from the local cache that ``mdesign weights`` fills once), ``imagenet`` (torchvision's,
    downloaded once), ``random`` or the path of a state dict."""
    layers: tuple[str, ...] = ("relu1_1", "pool1", "pool2", "pool3", "pool4")
    """VGG19 layers of the Gram loss; Gatys et al.'s texture layers (their conv1_1 is relu1_1)."""
    fine_layers: tuple[str, ...] | None = None
    """The Gram layers of an image's full-size stage after its half-size stage
    (``optimiser.coarse_to_fine``), where the half-size stage has set the large scales (None:
    ``layers``). The network stops at the deepest of them: without ``pool4`` a pass skips
    VGG19's fourth block (its cost: docs/performance.md)."""
    pooling: Pooling = "avg"
    """Average pooling in place of max pooling (Gatys et al. 2015)."""
    precision: Literal["float32", "bfloat16"] = "float32"
    """Arithmetic of the VGG19 passes: ``bfloat16`` runs the convolutions in bfloat16 (autocast;
    features, Gram matrices and the gradient's accumulation stay float32): faster on CPUs with
    bfloat16 instructions and on GPUs, at slightly different results (docs/performance.md)."""
    s2_weight: float = Field(1.0, ge=0)
    """Weight of the differentiable ``S2`` term (0: Gram loss only)."""
    s2_max_lag: int = Field(32, ge=1)
    """Largest lag of the ``S2`` window of the loss, pixels (capped at a quarter of the smaller
    side)."""
    temperature: float = Field(0.1, gt=0)
    """Softness of the phase indicators of the ``S2`` term."""
    anisotropy_weight: float = Field(0.0, ge=0)
    """Weight of the anisotropy term of an image's loss: the anisotropic part of the ``S2``
    window (rows against columns, one diagonal against the other) against the exemplar's, on
    the ``S2`` term's scale (0: off)."""
    s2_local_means: bool = False
    """A non-periodic exemplar's ``S2`` target (of the ``S2`` and anisotropy terms) with the
    pairs' own means, ``S2(r) - m(r) m'(r) + phi^2``: one structure for every phase, where the
    plain pair mean carries the crop's edge strips (``loss.s2_window_local_means``)."""
    tv_weight: float = Field(1.0, ge=0)
    """Weight of the variation term: penalises pixel variation above the exemplar's (noise that
    decodes to speckle); 0: off."""
    s2_minority: float = Field(0.25, ge=0, le=0.5)
    """Two phases: an image's ``S2`` term (and uniformity term) on the exemplar's phase of the
    smaller fraction instead of phase 1 when that fraction is below this (0: phase 1 always;
    0.5: the minority always). A periodic output has one covariance for both phases, a crop's
    plain ``S2`` estimate one per phase (its edge strips); the phase of the smaller ``phi^2``
    is the one whose directional ratio is the most sensitive to it (the Li alloy's boundaries,
    0.127: docs/performance.md). A volume's slice loss keeps phase 1."""
    uniformity_weight: float = Field(0.0, ge=0)
    """Weight of an image's uniformity term: the variance over blocks (sides ``R / 2``, ``R`` and
    ``2 R`` of the ``S2`` window) of each tracked phase's block fraction, penalised above the
    exemplar's, so particles do not bunch on one side (``loss.block_variance``; 0: off)."""


class OptimiserConfig(Config):
    """L-BFGS on the pixels of a 2D reconstruction (:mod:`mdesign.reconstruction.optimize`)."""

    init: Literal["noise", "grf"] = "grf"
    """Start of the pixels: seeded uniform noise (Gatys et al.), or the colours of a level-cut
    GRF fitted to the exemplar's ``S2`` (:func:`~mdesign.reconstruction.baseline.fit_grf`, as a
    volume's ``slices.init``) with a little noise; with ``coarse_to_fine`` its half-size
    average."""
    iterations: int = Field(20, ge=1)
    """L-BFGS iterations at the output size (after the half-size stage: a refinement)."""
    coarse_to_fine: bool = True
    """Optimise at half size first (against the exemplar at half size), upsample, refine; an
    image or exemplar with a side below 64 px skips the half-size stage."""
    coarse_iterations: int = Field(30, ge=1)
    """L-BFGS iterations at half size when ``coarse_to_fine``."""
    history_size: int = Field(50, ge=1)
    """L-BFGS memory."""
    stall_iterations: int = Field(10, ge=1)
    """Iterations after which the loss must have fallen by ``stall_decrease``."""
    stall_decrease: float = Field(0.1, gt=0, lt=1)
    """Relative fall of the loss that counts as progress."""
    adam_warmup: int = Field(50, ge=0)
    """Adam steps that restart a stalled run (0: no restart)."""
    adam_lr: float = Field(0.02, gt=0)
    """Adam's step size, in pixel values."""
    convergence_ratio: float = Field(0.1, gt=0, lt=1)
    """A run has converged when its loss ends at or below this fraction of its start."""


class SlicesConfig(Config):
    """Adam on the voxels of a volume against the Gram loss of slices drawn along each axis
    (``--size H W D``; :mod:`mdesign.reconstruction.volume_loss`)."""

    init: Literal["grf", "noise", "shell", "lamellae"] = "grf"
    """Start of a 2D-to-3D reconstruction (``--size H W D``): a level-cut Gaussian random field
    fitted to the exemplar's ``S2`` (its slices already have about the exemplar's ``S2``, so the
    steps go to the Gram loss), uniform noise as in 2D, or ``shell``: lamellae, a field whose
    spectrum is a thin shell at the exemplar's dominant wavenumber cut at its fractions
    (:func:`~mdesign.reconstruction.baseline.fit_shell`), or ``lamellae``: a field whose slices
    in every orientation have a ring spectrum at that wavenumber, ordered into lamellar domains
    (for striped exemplars such as the Li et al. copolymer: docs/guide/reconstruction.md)."""
    iterations: int = Field(150, ge=1)
    """Adam steps of a 2D-to-3D reconstruction, each on freshly drawn slices."""
    slices: int = Field(4, ge=1)
    """Slices drawn along each axis per step (their mean Gram loss is the step's estimate)."""
    chunk: int = Field(8, ge=1)
    """Slices through VGG19 at once: bounds the activations held (memory)."""
    lr: float = Field(0.05, gt=0)
    """Adam's step size in voxel values, decayed to 5% of it by a cosine schedule."""
    coarse_to_fine: bool = False
    """Run Adam first on a half-size volume against the exemplars shrunk by 2 (the images'
    ``optimiser.coarse_to_fine`` in 3D: slices of a quarter of the pixels, so the large
    structures form at low cost), upsample it (trilinear, on the torus when periodic), then
    ``iterations`` steps at full size. Off by default (measured on the Li et al. crops at 64^3:
    docs/performance.md)."""
    coarse_iterations: int = Field(150, ge=1)
    """Adam steps of the half-size volume when ``coarse_to_fine``."""


class AnnealConfig(Config):
    """The annealing to exact fractions, one chain for images and volumes
    (:mod:`mdesign.reconstruction.annealing`).

    ``sweeps``, ``batch``, ``neighbour_weight``, ``cleanup``, ``keep_clusters`` and ``surface``
    are an image's; the ``volume_`` keys of the same names (and ``volume_walk``) a volume's, the
    same stages. ``max_lag``, ``initial_acceptance``, ``final_temperature``, ``radial``,
    ``dense_lag`` and ``sectors`` serve both (the report's ``annealing.stages`` lists what ran;
    docs/guide/reconstruction.md)."""

    sweeps: float = Field(1.0, ge=0)
    """Swap proposals of the annealing, per pixel."""
    first_sweeps: float | None = Field(None, ge=0)
    """Swap proposals per pixel of an image's first annealing, the one before the ``cleanup``
    (whose result the cleanup changes and anneals again with ``sweeps``); None: ``sweeps``."""
    volume_sweeps: float = Field(3.0, ge=0)
    """Swap proposals of the 3D annealing, per voxel (on the Li et al. copolymer at 64^3, the
    slices' ``S2`` RMSE was 0.0080 after 0.5 sweeps, 0.0050 after 2, 0.0031 after 3.5)."""
    max_lag: int = Field(32, ge=1)
    """Largest lag of the ``S2`` window of the annealing energy, pixels (capped likewise); a move
    costs the number of lags tracked: ``(2 R + 1)^2``, or with ``anneal_radial`` those within
    ``R``, on the even lattice beyond ``anneal_dense_lag``. 32 (the reach of the bench's
    ``S2`` error at 128 x 128) against 16: carbonate's ``S2`` RMSE 0.0001 instead of 0.0024,
    which at 16 fell below the exemplar's beyond the window."""
    initial_acceptance: float = Field(0.05, gt=0, lt=1)
    """Probability that a median uphill swap is accepted at the start of the annealing."""
    batch: int = Field(64, ge=1)
    """Proposals evaluated at once."""
    volume_batch: int = Field(256, ge=1)
    """Proposals of the 3D annealing evaluated at once."""
    final_temperature: float = Field(1e-3, gt=0, le=1)
    """Last temperature of the annealing over the first."""
    neighbour_weight: float = Field(3.0, ge=0)
    """Weight of the neighbourhood-class histogram in the swap energy (local shape: lone pixels,
    thin lines, rough interfaces), relative to the ``S2`` term; 0: ``S2`` alone."""
    radial: bool = True
    """Compare radial averages of ``S2`` in the annealing energy instead of the whole lag window,
    so one crop's particular anisotropy is not imprinted on the output."""
    cleanup: bool = True
    """After the annealing, join the fragments of a network phase (a thin phase of one cluster in
    the exemplar: grain boundaries) by bridges, dissolve the small clusters beyond the exemplar's
    count of clusters that small, and anneal again."""
    dense_lag: int = Field(16, ge=1)
    """With ``anneal_radial``, the lags of the annealing window farther than this are tracked on
    the even lattice only (a quarter of them: each distance's radial average is still over
    many lags, and a move costs the number of lags)."""
    sectors: int = Field(1, ge=1)
    """With ``anneal_radial``, split each distance's average into this many direction sectors
    (angle modulo pi; 2: along the rows and along the columns), so the exemplar's directional
    ``S2`` is the target and the annealing neither invents nor erases a rows / columns
    anisotropy; 1: one average per distance."""
    s2_local_means: bool = False
    """A non-periodic exemplar's ``S2`` target of the annealing with the pairs' own means
    (``loss.s2_window_local_means``, as ``texture.s2_local_means`` for the loss); false: the
    plain pair estimate."""
    close_ends: bool = True
    """In an image's cleanup, after the network joining and the small clusters' removal, close
    the open ends of a thin network phase (grain boundaries: a network in the exemplar, under half
    of it): each dead end of its skeleton extended along its direction until it meets the
    network, or retracted, until no more are open per area than in the exemplar; the second
    annealing then runs within the cluster guard on every phase, and the ends its swaps reopen
    are closed once more before a last fraction and surface stage
    (:func:`~mdesign.reconstruction.ends.close_network_ends`; 2D only; other images unchanged;
    measured on the docs' performance page)."""
    shape_particles: bool = True
    """In an image's cleanup, at its end, where the exemplar has a particle phase (isolated,
    convex clusters in a matrix: :func:`~mdesign.reconstruction.particles.particle_phases`),
    split merged particles along watershed lines, give them the exemplar's cluster sizes and
    replace each by an ellipse (overlapping disks where it would be thicker than the exemplar's
    particles) (:func:`~mdesign.reconstruction.particles.shape_particles`), then a fraction stage
    and ``particle_sweeps`` of swaps within the cluster guard on every phase (``S2`` back), the
    particles rounded again at their areas, and a last fraction and surface stage; images
    without a particle phase are unchanged (measured on the docs' performance page)."""
    particle_sweeps: float = Field(0.5, ge=0)
    """Sweeps of the guarded swaps between ``shape_particles``' shaping and its second rounding
    (0: the shaping, then the last fraction and surface stage only)."""
    uniformity_weight: float = Field(1.0, ge=0)
    """Weight of the uniformity term of the swap energy, images and volumes (relative to the
    ``S2`` term's scale; 0: off): the variance of each tracked phase's block fractions (block
    sides ``R / 2``, ``R``, ``2 R`` of ``max_lag``) above the exemplar's, so swaps that carry a
    phase's pixels from one particle to another far away do not gather it on one side."""
    uniformity_below: float = Field(0.1, gt=0, le=1)
    """The uniformity term covers the tracked phases whose exemplar fraction is below this (1:
    every tracked phase; 0.1: sparse particles such as the Li pmma's, not a matrix or pores)."""
    directional_weight: float = Field(100.0, ge=0)
    """Weight of the directional term of an image's annealing energy (relative to the ``S2``
    term's scale; 0: off; volumes leave it out): per phase, the mean ``S2`` along the rows less
    the mean down the columns at lags 4-16 px against the exemplar's, on the phase's own scale
    (over the exemplar's mean down the columns), so the swaps neither invent nor erase a rows /
    columns anisotropy, also of sparse particles (``annealing.directional_target``)."""
    directional_tolerance: float = Field(0.05, ge=0)
    """The directional term counts each phase's ratio error (``S2`` along the rows over down the
    columns, less the exemplar's) beyond this only, so an output already that close to the
    exemplar's ratio is annealed as without the term."""
    keep_clusters: bool = True
    """Refuse annealing moves that would add a cluster (split one, or start one) to a phase that
    has at least the exemplar's count of clusters when the annealing starts (a local test on the
    3 x 3 neighbourhood of each flipped pixel), so the swaps do not undo the cleanup's
    dissolution of the surplus small clusters."""
    surface: bool = True
    """End the last annealing with a surface stage: while the interface is longer than the
    exemplar's (per unit area), swap pairs of pixels that shorten it (a tip or protrusion of one
    phase with a pixel of the other that the flip does not roughen), the pair of least energy
    rise first, within the cluster guard. Fractions and guarded cluster counts stay; it removes
    the surplus surface of the network bridges and ragged blobs (measured on the Li et al.
    alloy: the docs' performance page)."""
    volume_surface: bool = False
    """End a volume's annealing with the same surface stage, on the voxels' 6 faces (within the
    cluster guard when ``volume_keep_clusters``). Off by default: on the Li et al. alloy at 64^3
    it brought the surface to the exemplar's but merged the grains and took minutes of CPU
    (docs/guide/reconstruction.md, docs/performance.md)."""
    walk: bool = False
    """An image's swap stage walks past an accepted swap (as ``volume_walk``); off: the rest of
    the batch is discarded after an accepted swap (the images' results since issue 11)."""
    volume_walk: bool = True
    """A volume's swap stage walks past an accepted swap (the later proposals near it evaluated
    again) and draws the interface from a pool kept up to date; an image's discards the rest of
    the batch and recomputes the interface (its results pinned since). Both work in both."""
    volume_neighbour_weight: float = Field(0.0, ge=0)
    """A volume's neighbourhood term: each slice plane's neighbourhood-class histogram against
    the exemplar's for that orientation (0: off, the default; measured in docs/performance.md)."""
    volume_keep_clusters: bool = False
    """A volume's cluster guard: the image's test (Yokoi's number) in each of the three slices
    through a voxel, for the phases whose slices have at least the exemplar's clusters per area
    (so no slice's count of a guarded phase rises)."""
    volume_cleanup: bool = False
    """A volume's cleanup: join a network phase's fragments by 3D bridges, dissolve the 3D
    clusters of a phase with surplus slice clusters that are smaller than the exemplars' median
    cluster area to the power 3/2 (never the largest), and anneal again."""
    volume_matrix: bool = True
    """A volume whose exemplars are all matrix materials (one phase at least half of the image
    with 95% of it in one cluster, every other phase at least 10% of the image: porous rocks,
    not sparse particles) takes the image's annealing stages (``keep_clusters``,
    ``neighbour_weight``, ``surface``, ``cleanup``) in place of the ``volume_`` ones; other
    volumes are unchanged (measured on the Li et al. crops: docs/performance.md)."""
    volume_sheets: bool = True
    """Before a volume's annealing, rebuild a thin network phase (grain boundaries: a network in
    every exemplar, under half of each) as closed sheets between power-diagram grains seeded at the
    decoded grains' thickest points and fitted to the exemplars' ``S2`` (``sheets_fit_steps``),
    then anneal within the cluster guard on every phase
    (:func:`~mdesign.reconstruction.cells.network_sheets`); other volumes are unchanged
    (measured on the Li et al. alloy: docs/performance.md)."""
    image_sheets: bool = True
    """The same network sheets before an image's annealing (``volume_sheets``' sibling): a thin
    network phase of the exemplar (grain boundaries) rebuilt as the closed boundaries of a fitted
    power diagram, then the annealing and the cleanup within the cluster guard on every phase;
    images without a thin network phase are unchanged, byte for byte (measured on the grain network
    and the Li et al. alloy: docs/performance.md)."""
    volume_lamellae: bool = False
    """Before a volume's annealing, where every exemplar is lamellar (stripes of one period: a
    block copolymer's fingerprint, :func:`~mdesign.reconstruction.lamellae.is_lamellar`), replace
    the decoded volume by a Swift-Hohenberg pattern fitted to the exemplars' period, slice
    clusters per window and ``S2``, cut at the exact fractions, then anneal within the cluster
    guard (:func:`~mdesign.reconstruction.lamellae.lamellar_start`); other volumes are unchanged.
    Off by default (measured on the Li et al. copolymer: docs/performance.md)."""
    sheets_fit_steps: int = Field(300, ge=0)
    """Proposals of the network sheets' fit to the exemplars' ``S2`` (one seed of the power
    diagram moved or reweighted at a time, kept when the error falls; 0: the unfitted cells)."""
    sheets_shape_weight: float = Field(0.0, ge=0)
    """Weight of a shape term in the network sheets' fit: the grain pixels' inscribed-radius
    quantiles against the exemplars' grains' and the share of the grains in slivers (sections
    longer than the exemplars' interior grains allow); above 0 the fit also starts from weights
    spread like the exemplars' grain radii (:func:`~mdesign.reconstruction.cells.network_sheets`;
    0: ``S2`` alone)."""


# the flat keys of the configs written before the nested sections, and where each now lives
_FLAT_KEYS = {
    **{
        k: ("texture", k)
        for k in (
            "weights",
            "layers",
            "pooling",
            "s2_weight",
            "s2_max_lag",
            "temperature",
            "tv_weight",
        )
    },
    **{
        k: ("optimiser", k)
        for k in (
            "iterations",
            "coarse_to_fine",
            "coarse_iterations",
            "history_size",
            "stall_iterations",
            "stall_decrease",
            "adam_warmup",
            "adam_lr",
            "convergence_ratio",
        )
    },
    **{f"volume_{k}": ("slices", k) for k in ("init", "iterations", "slices", "chunk", "lr")},
    **{
        f"anneal_{k}": ("anneal", k)
        for k in (
            "sweeps",
            "max_lag",
            "initial_acceptance",
            "batch",
            "final_temperature",
            "neighbour_weight",
            "radial",
            "cleanup",
            "dense_lag",
            "sectors",
            "keep_clusters",
            "surface",
        )
    },
    "volume_anneal_sweeps": ("anneal", "volume_sweeps"),
    "volume_anneal_batch": ("anneal", "volume_batch"),
    "volume_anneal_max_lag": ("anneal", "max_lag"),
}


class ReconstructionConfig(Config):
    """Single-exemplar reconstruction, 2D or 3D (:mod:`mdesign.reconstruction`).

    The exemplar(s), the output size (2D or 3D by its length; the exemplar's by default) and the
    output path are arguments of :func:`mdesign.reconstruction.reconstruct` and options of
    ``mdesign reconstruct``; these are the method's settings, in sections: ``texture`` (the
    loss, both), ``optimiser`` (2D), ``slices`` (3D), ``anneal`` (both). See the module
    docstrings of :mod:`mdesign.reconstruction` for what each one does.

    The flat keys of earlier versions (``iterations``, ``anneal_sweeps``, ``volume_lr``, ...) are
    read into their sections (:data:`_FLAT_KEYS`; ``volume_anneal_max_lag`` is ``anneal.max_lag``),
    so old files and dicts still load; a flat key given with its section's key is an error.
    """

    seed: Seed = 0
    """Seed of the random start, random weights, k-means and annealing."""
    periodic: bool = True
    """Periodic output: circular padding in VGG19, ``S2`` and annealing on the torus."""
    exemplar_periodic: bool = False
    """Treat the exemplar as periodic (real micrographs are not)."""
    texture: TextureConfig = TextureConfig()
    optimiser: OptimiserConfig = OptimiserConfig()
    slices: SlicesConfig = SlicesConfig()
    anneal: AnnealConfig = AnnealConfig()

    @model_validator(mode="before")
    @classmethod
    def _map_flat_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not _FLAT_KEYS.keys() & data.keys():
            return data
        data = dict(data)
        for key in [k for k in data if k in _FLAT_KEYS]:
            section, name = _FLAT_KEYS[key]
            sub = data.get(section, {})
            if isinstance(sub, BaseModel):
                sub = sub.model_dump()
            if not isinstance(sub, dict):
                continue  # the section's own error
            if name in sub and sub[name] != data[key]:
                raise ValueError(f"{key} (flat) and {section}.{name} given, with different values")
            data[section] = {**sub, name: data.pop(key)}
        return data


RECONSTRUCTION_DEFAULTS = ReconstructionConfig()


class GeneratorConfig(Config):
    """The DCGAN generator (:class:`mdesign.gan.Generator`; Yang et al. 2018).

    ``len(widths) + 1`` upsampling layers (``upsample``) map a latent map
    ``C x h x w`` to an image of ``(2**depth h) x (2**depth w)``: the default five make 32x
    upsampling, so a 4x4 latent gives 128x128 and an 8x8 latent 256x256.
    """

    latent_channels: int = Field(1, ge=1)
    """``C``, channels of the latent map (design variables per latent cell)."""
    global_channels: int = Field(0, ge=0)
    """``G``, latent channels with one value per image (a global latent): the latent map is
    ``(C + G) x h x w``, its last ``G`` channels constant over the map (the generator uses
    their spatial mean), and the design space gains ``G`` variables (``C h w + G``). Each
    pixel of a purely local latent map depends only on the cells near it; a global channel
    lets an image keep one texture throughout, as a GRF training image keeps one correlation
    length. 0 (the paper's) by default."""
    latent_size: int = Field(4, ge=1)
    """Side ``h = w`` of the training latent map; the training images are ``2**depth * h``."""
    widths: tuple[Width, ...] = Field((128, 64, 32, 16), min_length=1)
    """Channels after each hidden upsampling layer (BatchNorm + ReLU); the last layer
    maps to one channel with tanh."""
    upsample: Literal["transposed", "resize", "blur"] = "transposed"
    """How each layer doubles the sides. ``transposed``: a stride-2 transposed convolution
    (kernel 4), the paper's DCGAN; its uneven overlap leaves a period-2 (checkerboard) pattern
    that shows as single-pixel clusters. ``resize``: nearest-neighbour upsampling and a 3x3
    convolution (Odena et al., Distill 2016), no checkerboard; same reach per latent cell.
    ``blur``: the transposed convolution with a free kernel, then the binomial filter
    ``[1, 2, 1] / 2`` along each axis, which zeroes the period-2 pattern (StyleGAN2's
    upsampling); the transposed convolution's parameters, reach one pixel wider.
    Checkpoints written before this option are ``transposed``."""


class DiscriminatorConfig(Config):
    """The DCGAN discriminator (:class:`mdesign.gan.Discriminator`).

    Stride-2 convolutions (kernel 4, LeakyReLU) then a head that averages the last feature map
    over space, so any input whose sides are divisible by ``2**len(widths)`` is accepted.
    """

    widths: tuple[Width, ...] = Field((16, 32, 64, 128), min_length=1)
    """Channels of the stride-2 convolutions."""
    norm: Literal["batch", "instance", "none"] = "batch"
    """Normalisation after every convolution but the first (DCGAN). WGAN-GP needs a
    per-sample one (``instance`` or ``none``): its penalty is a per-sample gradient."""
    leaky_slope: float = Field(0.2, ge=0, lt=1)
    """Negative slope of the LeakyReLU activations."""
    pool: Literal["mean", "mean_std"] = "mean"
    """What the linear head sees of the last feature map: ``mean``, its spatial mean (the
    paper's; the mean of a patch logit over the image, so the discriminator judges patches one
    at a time); ``mean_std``, the spatial standard deviation of each feature beside its mean,
    so it also sees how the texture varies across the image (a GRF training image has one
    correlation length throughout). Checkpoints written before this option are ``mean``."""


class GANTrainConfig(Config):
    """Training (:func:`mdesign.gan.train`): loss, optimiser, schedule, seed."""

    loss: Literal["bce", "wgan-gp"] = "bce"
    """``bce``: the non-saturating cross-entropy GAN loss (Goodfellow et al. 2014), as in
    Yang et al. 2018; ``wgan-gp``: Wasserstein loss with gradient penalty (Gulrajani et al.
    2017)."""
    lr: float = Field(5e-4, gt=0)
    """Adam learning rate of both networks (until the first of ``lr_steps``)."""
    lr_steps: list[tuple[Annotated[int, Field(ge=2)], Annotated[float, Field(gt=0)]]] = []
    """A piecewise-constant schedule: ``[epoch, lr]`` pairs in increasing epoch order; from
    that epoch on (counted from 1, as in ``metrics.jsonl``) both networks use that learning
    rate. Empty: ``lr`` throughout. A lower rate late in training settles the generator's
    oscillation from epoch to epoch, which otherwise shows as bars and stripes along the pixel
    grid (``artifacts/gan/README.md``)."""
    beta1: float = Field(0.5, ge=0, lt=1)
    """Adam's first-moment decay (0.5, Radford et al. 2016)."""
    beta2: float = Field(0.999, ge=0, lt=1)
    """Adam's second-moment decay."""
    batch_size: int = Field(64, ge=2)
    """Images per step (BatchNorm needs at least 2)."""
    epochs: int = Field(100, ge=1)
    """Passes over the training images (each real image is shown to the discriminator once
    per epoch)."""
    d_steps: int = Field(1, ge=1)
    """Discriminator steps per generator step (the D:G ratio)."""
    ema_decay: float = Field(0.999, ge=0, lt=1)
    """Decay of the exponential moving average of the generator's weights, updated after
    every generator step; the average is the generator that is saved and sampled (Yazici et
    al. 2019), which smooths the oscillations of adversarial training. 0 turns it off: the
    generator being trained is saved. Measured here, the average biases the structure: its
    specific surface came out above the trained generator's (finer features; the figures are in
    the design space guide and ``artifacts/gan/README.md``). The
    average never feeds back into training, and ``checkpoint.pt`` keeps both
    (``generator_train``), so a run can be judged both ways."""
    gp_weight: float = Field(10.0, ge=0)
    """Weight of the gradient penalty (``wgan-gp`` only)."""
    seed: Seed = 0
    """Seeds the initial weights, the batch order and the latents; the same seed and data give
    the same run."""
    grid_size: int = Field(16, ge=1)
    """Images in each epoch's sample grid (from fixed latents, so epochs can be compared)."""
    monitor_size: int = Field(256, ge=0)
    """Generated images compared with as many training images after each epoch (volume
    fraction and S2 distance in ``metrics.jsonl``); 0 turns the monitor off."""

    @model_validator(mode="after")
    def _steps_in_order(self) -> GANTrainConfig:
        epochs = [e for e, _ in self.lr_steps]
        if epochs != sorted(set(epochs)):
            raise ValueError(f"lr_steps: epochs must increase, got {epochs}")
        return self

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (counted from 1)."""
        lr = self.lr
        for start, value in self.lr_steps:
            if epoch >= start:
                lr = value
        return lr


class GANSampleConfig(Config):
    """Decoding latents to microstructures (:func:`mdesign.gan.decode`)."""

    fraction: Literal["training", "free"] = "training"
    """``training``: each random sample is cut at a phase-1 fraction drawn from the training
    images' distribution, exactly (a level cut of the generator's output, as the training images
    were cut); ``free``: the generator's own fraction, cut by ``binarize``. A random latent's own
    fraction spreads 40% less than the training fractions (:mod:`mdesign.gan.sampling`)."""
    binarize: Literal["midpoint", "otsu"] = "midpoint"
    """With ``fraction: free``: ``midpoint``: phase 1 where the tanh output is above 0, the
    middle of the two phases' training values -1 and +1; ``otsu``: Otsu's threshold of each
    image's output."""
    periodic: bool = False
    """Circular padding in every transposed convolution, so the images tile seamlessly."""
    batch_size: int = Field(32, ge=1)
    """Latents decoded per forward pass (bounds memory); on the CPU one batch per torch
    thread, in parallel."""
    precision: Literal["float32", "bfloat16"] = "float32"
    """Arithmetic of decoding: bfloat16 is about twice as fast on CPUs with AVX512-BF16 or AMX
    and flips the rare pixels within rounding of the cut (how many: the docs' performance
    page)."""
    n_images: int = Field(16, ge=1)
    """Images ``mdesign sample`` makes when ``-n`` is not given (and no ``--report``)."""
    seed: Seed = 0
    """Seed of the random latents when ``--seed`` is not given."""


class GANValidationConfig(Config):
    """Statistical validation (:func:`mdesign.gan.validate`): generated vs real descriptors."""

    n_images: int = Field(500, ge=2)
    """Images in each set compared (generated, real, and a second real set for scale)."""
    max_distance: int = Field(32, ge=1)
    """Largest ``r`` of the S2 and lineal-path curves in the distance."""


class GANConfig(Config):
    """The DCGAN design space (Yang et al. 2018): networks, training, sampling, validation."""

    generator: GeneratorConfig = GeneratorConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    train: GANTrainConfig = GANTrainConfig()
    sample: GANSampleConfig = GANSampleConfig()
    validation: GANValidationConfig = GANValidationConfig()

    @model_validator(mode="after")
    def _penalty_needs_per_sample_norm(self) -> GANConfig:
        if self.train.loss == "wgan-gp" and self.discriminator.norm == "batch":
            raise ValueError(
                "train.loss wgan-gp needs discriminator.norm instance or none (the gradient "
                "penalty is per sample; BatchNorm mixes the samples of a batch)"
            )
        return self

    @property
    def scale(self) -> int:
        """Upsampling factor of the generator, ``2**depth`` (32 by default)."""
        return 2 ** (len(self.generator.widths) + 1)


GAN_DEFAULTS = GANConfig()


SurrogateModel = Literal["frozen", "finetune", "scratch", "s2_gp"]


class SurrogateEvaluatorConfig(Config):
    """The ``surrogate`` evaluator (:class:`mdesign.surrogates.SurrogateEvaluator`):
    a trained structure-property model's mean prediction."""

    model: str | None = Field(
        None,
        description="surrogate model file (mdesign surrogate-train / surrogate-study); required",
        json_schema_extra={"unit": "", "required": True},
    )


SURROGATE_EVALUATOR_DEFAULTS = SurrogateEvaluatorConfig()


class SurrogateNetworkConfig(Config):
    """Regressors from images to a property built on a discriminator's trunk
    (:class:`mdesign.surrogates.NetworkSurrogate`).

    The trunk is the GAN discriminator's convolutional stack (or the same architecture at random
    initialisation, or another regressor's trunk); the head is a small MLP on its spatially
    averaged features.
    """

    pool: Literal["last", "all"] = "all"
    """Features the head sees: the spatial mean of the last block's output (``last``, the
    trunk's own output), or of every block's output concatenated (``all``: multi-scale)."""
    head_hidden: int = Field(64, ge=1)
    """Width of the head's hidden layer (features -> hidden -> ReLU -> 1)."""
    batch_size: int = Field(32, ge=2)
    """Images per step when the trunk trains (BatchNorm of a scratch trunk needs at least 2)."""
    lr_head: float = Field(3e-3, gt=0)
    """AdamW learning rate of the head-only stage (full batch, on frozen features)."""
    lr_finetune: float = Field(1e-3, gt=0)
    """AdamW learning rate of trunk and head in the fine-tuning stage (after the head-only
    stage); by default the scratch model's, so fine-tuning is the scratch model's training
    started from the pretrained trunk and the probed head. (Keeping the head-only stage's
    3e-3 for the head, with 1e-4 on the trunk, threw the probed head off in the first steps,
    and most runs never got back below the probe's validation loss.)"""
    finetune_norm: Literal["frozen", "train"] = "train"
    """BatchNorm of a pretrained trunk while fine-tuning: ``train`` normalises by batch
    statistics and updates the running ones, as the scratch model does; ``frozen`` keeps the
    statistics of GAN training (the trunk's weights then drift away from them)."""
    lr_scratch: float = Field(1e-3, gt=0)
    """AdamW learning rate of trunk and head trained from scratch."""
    weight_decay: float = Field(1e-4, ge=0)
    """Decoupled weight decay (AdamW) of every parameter."""
    max_steps: int = Field(1000, ge=1)
    """Optimiser steps of the trunk-training stage at most (fine-tuning, scratch)."""
    patience_steps: int = Field(150, ge=1)
    """Early stopping: the trunk-training stage ends this many steps (or
    ``patience_epochs`` epochs, whichever is longer) after the best validation loss; the best
    weights are kept. The validation loss is computed once per epoch."""
    patience_epochs: int = Field(10, ge=1)
    """Early stopping patience in epochs (matters for large training sets, whose epochs
    have many steps)."""
    head_steps: int = Field(2000, ge=1)
    """Full-batch steps of the head on frozen features at most (frozen model, and the first,
    linear-probing stage of fine-tuning)."""
    head_patience: int = Field(200, ge=1)
    """Early stopping of the head-only stage, in steps."""
    val_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of the labelled images held out for early stopping (never trained on)."""
    min_val: int = Field(5, ge=1)
    """Held-out images at least."""
    augment: bool = True
    """Train on random symmetries that keep the property: flips of either axis and periodic
    shifts (an x-conductivity or a normal-incidence absorption does not change under them)."""
    ensemble_size: int = Field(5, ge=1)
    """Members of the ensemble; the spread of their predictions is the uncertainty
    (Lakshminarayanan et al. 2017). Each member has its own seed and validation split."""
    predict_batch: int = Field(256, ge=1)
    """Images per forward pass at prediction (bounds memory; does not change the result)."""


class SurrogateS2Config(Config):
    """The classical baseline: PCA of the two-point correlation map, then a GP
    (:class:`mdesign.surrogates.S2Surrogate`)."""

    max_distance: int = Field(16, ge=1)
    """The periodic S2 map of phase 1 is kept for displacements ``|dx|, |dy| <= max_distance``
    (a ``(2R + 1) x (2R + 1)`` window, directions included)."""
    n_components: int = Field(10, ge=1)
    """Principal components of the S2 maps that the GP sees (fewer if there are fewer
    training images)."""


class SurrogateTaskConfig(Config):
    """One property of the study: a name for the report, an evaluator and its parameters."""

    name: str = Field(min_length=1)
    evaluator: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


def _default_tasks() -> tuple[SurrogateTaskConfig, ...]:
    return (
        SurrogateTaskConfig(
            name="conductivity_c10",
            evaluator="effective_conductivity",
            params={"conductivities": [1.0, 10.0]},
        ),
        SurrogateTaskConfig(
            name="conductivity_c100",
            evaluator="effective_conductivity",
            params={"conductivities": [1.0, 100.0]},
        ),
        SurrogateTaskConfig(
            name="absorption",
            evaluator="optical_absorption",
            params={"order": 3, "grid": 32, "wavelengths": 8, "spectral_rule": "trapezoid"},
        ),
    )


class SurrogateCrossConfig(Config):
    """Cross-property transfer: a regressor of ``source`` lends its trunk to ``target``."""

    source: str
    target: str


class SurrogateShipConfig(Config):
    """The surrogate the study trains for the ``surrogate`` evaluator."""

    task: str = "conductivity_c10"
    model: Literal["frozen", "finetune", "scratch"] = "finetune"
    size: int = Field(1000, ge=2)
    """Labelled images it is trained on (from the study's pool)."""
    ensemble_size: int = Field(5, ge=1)


class SurrogateStudyConfig(Config):
    """The small-data study (:func:`mdesign.surrogates.run_study`): learning curves of each
    model against the number of labelled images, over seeds, plus cross-property transfer.
    """

    sizes: tuple[Annotated[int, Field(ge=2)], ...] = (50, 100, 200, 500, 1000)
    """Numbers K of labelled images (validation split included)."""
    seeds: int = Field(3, ge=1)
    """Repetitions of every (model, K): seed s draws the K images and initialises the model."""
    n_pool: int = Field(1500, ge=2)
    """Labelled images the K are drawn from (at least max(sizes))."""
    n_test: int = Field(1000, ge=1)
    """Held-out images the models are scored on."""
    n_gan_test: int = Field(500, ge=0)
    """GAN samples scored as well (distribution shift: a campaign evaluates GAN designs)."""
    image_seed: Seed = 1
    """Seed of the GRF images drawn from the GAN's training distribution (pool, then test);
    it must differ from the training set's seed."""
    models: tuple[SurrogateModel, ...] = ("frozen", "finetune", "scratch", "s2_gp")
    tasks: tuple[SurrogateTaskConfig, ...] = Field(default_factory=_default_tasks, min_length=1)
    cross: tuple[SurrogateCrossConfig, ...] = (
        SurrogateCrossConfig(source="conductivity_c10", target="conductivity_c100"),
        SurrogateCrossConfig(source="conductivity_c10", target="absorption"),
    )
    """Source -> target pairs; the source regressor is the fine-tuned model of the source task
    at the largest K with the same seed."""
    ship: SurrogateShipConfig | None = SurrogateShipConfig()
    """The surrogate saved for the evaluator (``None``: none)."""

    @model_validator(mode="after")
    def _check(self) -> SurrogateStudyConfig:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError("tasks: names must be unique")
        for c in self.cross:
            for key in ("source", "target"):
                if getattr(c, key) not in names:
                    raise ValueError(f"cross: {key} {getattr(c, key)!r} is not a task ({names})")
        if self.ship is not None and self.ship.task not in names:
            raise ValueError(f"ship.task {self.ship.task!r} is not a task ({names})")
        if self.n_pool < max(self.sizes):
            raise ValueError(f"n_pool ({self.n_pool}) must be at least max(sizes)")
        if self.ship is not None and self.ship.size > self.n_pool:
            raise ValueError(f"ship.size ({self.ship.size}) must be at most n_pool")
        return self


class SurrogateScreenConfig(Config):
    """Screening candidates with a surrogate, then confirming the best with the true evaluator
    (:func:`mdesign.surrogates.screen`)."""

    top_k: int = Field(10, ge=1)
    """Candidates confirmed by the true evaluator."""
    kappa: float = Field(1.0, ge=0)
    """Candidates are ranked by ``mean + kappa * std`` (maximising; ``mean - kappa * std``
    minimising): an upper confidence bound, which also confirms designs the surrogate is unsure
    of but may be good; 0 ranks by the mean alone."""


class SurrogateConfig(Config):
    """Structure-property surrogates on small data (:mod:`mdesign.surrogates`): transfer from
    the GAN discriminator (Yang et al. 2018), a scratch baseline, PCA(S2) + GP, and the study."""

    network: SurrogateNetworkConfig = SurrogateNetworkConfig()
    s2: SurrogateS2Config = SurrogateS2Config()
    screen: SurrogateScreenConfig = SurrogateScreenConfig()
    study: SurrogateStudyConfig = SurrogateStudyConfig()


SURROGATE_DEFAULTS = SurrogateConfig()
Goal = Literal["maximize", "minimize"]


class OutcomeConfig(Config):
    """One outcome of a design: an evaluator (registered name or ``module:function``) and its
    parameters, or the built-in ``volume_fraction`` of phase 1 computed from the image."""

    evaluator: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    """Name in reports; defaults to the evaluator's name."""

    @property
    def name(self) -> str:
        return self.label or self.evaluator


class ObjectiveConfig(OutcomeConfig):
    goal: Goal = "maximize"


class ConstraintConfig(OutcomeConfig):
    """Feasible designs have ``min <= outcome <= max`` (either bound may be omitted)."""

    min: float | None = None
    max: float | None = None

    def model_post_init(self, _context: Any) -> None:
        if self.min is None and self.max is None:
            raise ValueError("a constraint needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")


class DesignSpaceConfig(Config):
    """The design space: a trained GAN's latent box ``[-1, 1]^(C h w)`` and (``fraction:
    training``) the phase-1 fraction as one more variable."""

    checkpoint: str = "artifacts/gan/checkpoint.pt"
    """Path to a ``mdesign train`` checkpoint; relative paths are taken from the config file's
    folder first, then the working directory."""
    latent_size: int | None = Field(None, ge=1)
    """Side K of the K x K latent map (images of side 32 K); the checkpoint's by default."""
    periodic: bool = False
    """Decode with circular padding (tileable designs)."""
    fraction: Literal["training", "free"] = "training"
    """``training``: the phase-1 fraction is a design variable of its own, the last of
    ``C h w + 1``: its box coordinate ``x`` is the training fractions' quantile at
    ``(x + 1) / 2`` (random points of the box then have the training distribution of
    fractions), and the generator's output is cut exactly there. ``free``: the ``C h w``
    latents only, cut by ``binarize`` (the generator's own fraction)."""
    binarize: Literal["midpoint", "otsu"] = "midpoint"
    """With ``fraction: free``: how the generator's output is cut."""
    data: str | None = None
    """The GAN's training set (the ``.npz`` given to ``mdesign train``) when it is no longer
    where the checkpoint records it; relative paths are taken from the config file's folder
    first, then the working directory. Only the ``training`` baseline reads it (its sha256 is
    checked against the checkpoint's record)."""
    factory: str | None = None
    """Instead of a checkpoint, ``module:function`` returning a design space object (``dim``,
    ``latent_shape``, ``image_shape``, ``decode(X)``, ``grf(seed)``); for your own generator.
    The module is imported and the function run: a campaign config is as trusted as a script."""
    factory_params: dict[str, Any] = Field(default_factory=dict)


class BOConfig(Config):
    """Bayesian optimisation (BoTorch): Sobol start, SingleTaskGP, qLogNEI / qLogNEHVI."""

    budget: int = Field(30, ge=2)
    """Evaluations by BO, its initial design included; each baseline gets the same number."""
    initial: int = Field(10, ge=2)
    """Sobol initial design size (capped at the budget)."""
    batch_size: int = Field(4, ge=1)
    """q: designs proposed, and evaluated in parallel, per BO iteration."""
    num_restarts: int = Field(8, ge=1)
    raw_samples: int = Field(256, ge=8)
    mc_samples: int = Field(128, ge=16)
    warm_iterations: int = Field(30, ge=1)
    """Each proposal's GP fit starts from the previous proposal's hyperparameters (kept in the
    campaign's store) and runs at most this many L-BFGS iterations; a fit without a previous
    one (the first, or a store from before) runs to BoTorch's convergence."""
    pool_size: int = Field(1024, ge=0)
    """The batch is chosen by the acquisition among the gradient-optimised candidates, this many
    Sobol points and as many perturbations of the best designs (0: gradient candidates only);
    candidates that break a volume-fraction constraint (known by decoding, ~1 ms) are dropped."""
    fraction_input: bool = True
    """Give the GP each design's phase-1 volume fraction (known by decoding, ~1 ms) as a 17th
    input: properties that depend mostly on the fraction are then learnt from a few dozen
    designs, which a GP on the 16 latents alone cannot do. The acquisition is then maximised
    over the candidate pool. Not needed (and not added) when the fraction is a design variable
    (``generator.fraction: training``)."""
    inputs: Literal["design", "descriptors"] = "design"
    """What the GP sees. ``design``: the design variables (the latents, and the fraction: see
    ``fraction_input``), the paper's latent-space BO. ``descriptors``: two descriptors of each
    decoded design only, its phase-1 volume fraction and interface crossing rate (the specific
    surface, :func:`mdesign.descriptors.specific_surface`, over its largest value ``pi / 2``
    (images; 2 for volumes): about the inverse feature size). The latents then only generate
    the candidate pool, and the acquisition chooses among it. Properties that follow the
    fraction and the feature size (optical absorption does) are learnt far better from the two
    than from 17 latents: on the optical campaign's designs a GP on 60 of them ranks the others
    at Spearman 0.82 against 0.69 (0.49 against 0.21 at fractions above 0.57). Needs
    ``pool_size > 0``; costs a decode of the pool per batch (~1 ms a design)."""
    ref_point: list[float] | None = None
    """Multi-objective reference point in the objectives' own units and goals; inferred from the
    initial design when omitted."""

    @model_validator(mode="after")
    def _descriptors_need_a_pool(self) -> BOConfig:
        if self.inputs == "descriptors" and self.pool_size == 0:
            raise ValueError(
                "inputs: descriptors chooses from the candidate pool: set pool_size > 0"
            )
        return self


class DaskConfig(Config):
    workers: int | None = Field(None, ge=1)
    """Start a local Dask cluster with this many single-threaded workers."""
    address: str | None = None
    """Or use the running Dask scheduler at this address (``tcp://host:8786``)."""


class FidelityConfig(Config):
    """Multi-fidelity BO: one evaluator parameter is the fidelity, a cheap ``low`` value and the
    ``target`` the campaign is about (``SingleTaskMultiFidelityGP`` and the threshold rule of
    MF-GP-UCB, Kandasamy et al. 2016; :mod:`mdesign.optimization.bo`)."""

    parameter: str
    """The evaluator parameter that is the fidelity, e.g. ``refinement`` of
    ``effective_conductivity`` or ``order`` of ``optical_absorption``."""
    low: int | float
    """Its cheap value: most BO evaluations use it."""
    target: int | float
    """Its value the campaign is about: the baselines, the paired initial designs and the
    confirmation (top ``top_k`` BO designs by the model's target-fidelity mean) use it."""
    evaluator: str | None = None
    """The evaluator whose parameter it is (every objective and constraint of that evaluator
    gets it); the first objective's by default."""
    cost_low: float | None = Field(None, gt=0)
    """Seconds per evaluation at ``low``; measured (the mean over the store) when omitted."""
    cost_target: float | None = Field(None, gt=0)
    """Seconds per evaluation at ``target``; measured when omitted."""
    initial_target: int = Field(2, ge=1)
    """Of BO's Sobol designs (all evaluated at ``low``), the first this many are also evaluated
    at ``target``: the model learns how the fidelities differ from these pairs."""
    threshold_scale: float = Field(1.0, gt=0)
    """A BO candidate is evaluated at ``low`` while ``sigma_low(x) >= threshold_scale * gamma``,
    ``gamma = sqrt(cost_low / cost_target) * xi`` (``xi`` the largest observed difference of the
    objective between the fidelities on the paired designs, ``sigma_low`` the model's posterior
    standard deviation at ``low``); at ``target`` otherwise, and for the batch's first candidate
    after ``cost_target / cost_low`` low evaluations in a row."""
    pool_only: bool = False
    """Choose each batch from the candidate pool only (``bo.pool_size``), without the gradient
    ascent of the acquisition: through the multi-fidelity kernel that ascent is most of a
    proposal's CPU, and on conductivity its candidates never beat the pool's (figures in
    ``docs/performance.md``)."""
    screen: int = Field(0, ge=0)
    """With ``pool_only``: the batch's designs after the first are chosen among this many of the
    pool, those with the best acquisition value of their own (0: the whole pool). The greedy
    batch then costs about one evaluation of the acquisition over the pool instead of ``q``."""

    @model_validator(mode="after")
    def _two_fidelities(self) -> FidelityConfig:
        if self.low == self.target:
            raise ValueError(f"low and target are both {self.low!r}: give two fidelities")
        return self


class CampaignConfig(Config):
    """A design campaign (``mdesign optimize``): maximise or minimise property objectives over
    the GAN latent, subject to outcome constraints, against random baselines."""

    name: str = "campaign"
    generator: DesignSpaceConfig = Field(default_factory=DesignSpaceConfig)
    objectives: list[ObjectiveConfig] = Field(min_length=1)
    constraints: list[ConstraintConfig] = Field(default_factory=list)
    bo: BOConfig = Field(default_factory=BOConfig)
    baselines: list[Literal["random", "grf", "training", "auto"]] = Field(
        default_factory=lambda: ["random", "auto"]
    )
    """With BO's budget and seed: ``random``, random latent samples (the paper's GAN-sampled
    designs); ``grf``, random GRF images matched to the GAN's training distribution (a GAN
    trained on ``mdesign grf`` images); ``training``, random images of the GAN's training set
    (any GAN; the set is found where the checkpoint records it, or at ``generator.data``);
    ``auto``, ``grf`` for a GAN trained on GRF images and ``training`` for any other."""
    baseline_batch_size: int = Field(8, ge=1)
    """Baseline designs evaluated in parallel per batch."""
    seed: Seed = 0
    """Every proposal derives from ``(seed, method, batch)``."""
    retries: int = Field(2, ge=0)
    """Prefect task retries for an evaluation whose worker failed (not for designs that fail)."""
    dask: DaskConfig = Field(default_factory=DaskConfig)
    top_k: int = Field(4, ge=1)
    """Best BO designs kept in best.npz and shown in the report."""
    confirm: OutcomeConfig | None = None
    """Confirm the best BO designs (``top_k``, or the Pareto set) with this evaluator at the
    end, e.g. the true ``effective_conductivity`` of a campaign that optimised a ``surrogate``
    of it: screening with the cheap model, confirming with the expensive one. The confirmed
    values go into best.npz (``confirmed``) and report.md; a failing design gets NaN."""
    fidelity: FidelityConfig | None = None
    """Multi-fidelity BO (:class:`FidelityConfig`): BO evaluates mostly at the low fidelity, the
    baselines at the target; without ``confirm``, BO's best designs are confirmed by the first
    objective at the target fidelity."""

    @model_validator(mode="after")
    def _one_reference_per_objective(self) -> CampaignConfig:
        ref = self.bo.ref_point
        if ref is not None and len(ref) != len(self.objectives):
            raise ValueError(
                f"bo.ref_point: {len(ref)} values for {len(self.objectives)} objectives; give "
                "one per objective, or omit it to infer it from the initial design"
            )
        if self.fidelity is not None and len(self.objectives) != 1:
            raise ValueError("fidelity: multi-fidelity BO takes one objective")
        if self.fidelity is not None and self.fidelity.pool_only and self.bo.pool_size == 0:
            raise ValueError(
                "fidelity.pool_only chooses from the candidate pool: set pool_size > 0"
            )
        return self

    @property
    def fidelity_evaluator(self) -> str | None:
        """The evaluator whose parameter is the fidelity (None without ``fidelity``)."""
        f = self.fidelity
        return None if f is None else (f.evaluator or self.objectives[0].evaluator)


BO_DEFAULTS = BOConfig()
DESIGN_SPACE_DEFAULTS = DesignSpaceConfig()
