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
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mdesign.errors import InputError

__all__ = [
    "GRF_DEFAULTS",
    "Config",
    "GRFConfig",
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
