"""Typed, validated configuration: one frozen config object per stage.

Every default of the pipeline lives here, once. The CLI and the flows read these objects and never
restate a default; library functions take plain values and default to the fields of the module
level instances below (``GRF_DEFAULTS.covariance``), so changing a default here changes it
everywhere. The files in ``configs/`` are instances of these classes.

A bad value raises :class:`~mdesign.errors.InputError` whose message names the file and the key,
for example ``configs/gan.yaml: train.lr: Input should be greater than 0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mdesign.errors import InputError

__all__ = [
    "BO_DEFAULTS",
    "CONDUCTIVITY_DEFAULTS",
    "GRF_DEFAULTS",
    "OPTICAL_ABSORPTION_DEFAULTS",
    "BOConfig",
    "CampaignConfig",
    "ConductivityConfig",
    "Config",
    "ConstraintConfig",
    "DaskConfig",
    "DesignSpaceConfig",
    "GRFConfig",
    "ObjectiveConfig",
    "OpticalAbsorptionConfig",
    "OutcomeConfig",
    "config_from_dict",
    "dump_config",
    "load_config",
]

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    """Base of all stage configs: immutable, and unknown keys are errors (a typo is not ignored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _describe(exc: ValidationError, source: str) -> str:
    """One line naming the first offending key, e.g. ``gan.yaml: train.lr: must be > 0``."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "<root>"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    more = len(exc.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {key}: {msg}{tail}"


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
    the file's (or the class's) value in place.
    """
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise InputError(f"{path}: no such config file")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if loaded is not None:
            if not isinstance(loaded, dict):
                raise InputError(f"{path}: expected a mapping of keys to values")
            data = loaded
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    return config_from_dict(cls, data, source=source)


def dump_config(config: Config) -> str:
    """The config as YAML text that :func:`load_config` reads back to an equal object."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


Covariance = Literal["gaussian", "exponential", "matern"]


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
    1x1 and 2x2 solutions extrapolated) keeps Keller's duality within about 1% at contrast 10;
    ``bench/bench_evaluators.py`` tabulates error against cost.
    """

    conductivities: tuple[float, ...] | None = Field(
        None,
        description="conductivity of each phase, phase 0 first (e.g. 1,10); required",
        json_schema_extra={"unit": "any (the value has the same unit)", "required": True},
    )
    direction: Literal["x", "y"] = Field(
        "x",
        description="direction of the applied field: x = along the columns (axis 1), "
        "y = along the rows (axis 0)",
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
        15,
        ge=1,
        le=1000,
        description="number of equally spaced wavelengths (trapezoidal rule)",
        json_schema_extra=_unit(""),
    )
    weighting: Literal["none", "am15g"] = Field(
        "am15g",
        description="spectral weight of the average: none (flat in wavelength) or am15g "
        "(photon flux of the ASTM G173-03 AM1.5 global spectrum)",
        json_schema_extra=_unit(""),
    )
    order: int = Field(
        5,
        ge=0,
        le=30,
        description="Fourier truncation order: harmonics -order..order along each axis",
        json_schema_extra=_unit(""),
    )
    grid: int = Field(
        64,
        ge=1,
        le=1024,
        description="the pattern is area-averaged onto grid x grid cells before the Fourier "
        "transform",
        json_schema_extra=_unit("cells"),
    )

    @model_validator(mode="after")
    def _check_range(self) -> OpticalAbsorptionConfig:
        if self.wavelength_max < self.wavelength_min:
            raise ValueError("wavelength_max must not be below wavelength_min")
        return self


OPTICAL_ABSORPTION_DEFAULTS = OpticalAbsorptionConfig()

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
    """The design space: a trained GAN's latent box ``[-1, 1]^(C h w)``."""

    checkpoint: str = "artifacts/gan/checkpoint.pt"
    """Path to a ``mdesign train`` checkpoint; relative paths are taken from the config file's
    folder first, then the working directory."""
    latent_size: int | None = Field(None, ge=1)
    """Side K of the K x K latent map (images of side 32 K); the checkpoint's by default."""
    periodic: bool = False
    """Decode with circular padding (tileable designs)."""
    binarize: Literal["midpoint", "otsu"] = "midpoint"
    factory: str | None = None
    """Instead of a checkpoint, ``module:function`` returning a design space object (``dim``,
    ``latent_shape``, ``image_shape``, ``decode(X)``, ``grf(seed)``); for your own generator."""
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
    ref_point: list[float] | None = None
    """Multi-objective reference point in the objectives' own units and goals; inferred from the
    initial design when omitted."""


class DaskConfig(Config):
    workers: int | None = Field(None, ge=1)
    """Start a local Dask cluster with this many single-threaded workers."""
    address: str | None = None
    """Or use the running Dask scheduler at this address (``tcp://host:8786``)."""


class CampaignConfig(Config):
    """A design campaign (``mdesign optimize``): maximise or minimise property objectives over
    the GAN latent, subject to outcome constraints, against random baselines."""

    name: str = "campaign"
    generator: DesignSpaceConfig = Field(default_factory=DesignSpaceConfig)
    objectives: list[ObjectiveConfig] = Field(min_length=1)
    constraints: list[ConstraintConfig] = Field(default_factory=list)
    bo: BOConfig = Field(default_factory=BOConfig)
    baselines: list[Literal["random", "grf"]] = Field(default_factory=lambda: ["random", "grf"])
    """Random latent samples (the paper's GAN-sampled designs) and random GRF images matched to
    the GAN's training distribution, with BO's budget and seed."""
    baseline_batch_size: int = Field(8, ge=1)
    """Baseline designs evaluated in parallel per batch."""
    seed: int = 0
    retries: int = Field(2, ge=0)
    """Prefect task retries for an evaluation whose worker failed (not for designs that fail)."""
    dask: DaskConfig = Field(default_factory=DaskConfig)
    top_k: int = Field(4, ge=1)
    """Best BO designs kept in best.npz and shown in the report."""


BO_DEFAULTS = BOConfig()
