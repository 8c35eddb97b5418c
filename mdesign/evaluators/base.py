"""The evaluator protocol, the registry, and the failure-isolating batch evaluation.

An *evaluator* maps a batch of label images ``N x H x W`` (uint8) to ``N`` property values. It is
any object with a ``name``, a mapping of typed :class:`Parameter` s, and ``__call__``; the design
campaign and ``mdesign evaluate`` only ever call it through :func:`evaluate_batch`, which turns an
exception, NaN or infinity for one image into a missing value plus an error entry for that image and
never lets it fail the batch. Volumes ``N x H x W x D`` pass through to the evaluators that take
them; an evaluator whose infinite value means something says what in an attribute
``infinite_means``, which the error entry quotes, and one may define ``check_images(images)``,
raising :class:`~mdesign.errors.InputError` for a stack its parameters cannot evaluate, which
``mdesign evaluate`` calls before any work.

:func:`get_evaluator` looks a name up in the registry (the built-ins, registered by explicit calls
when :mod:`mdesign.evaluators` is imported, and :func:`register_evaluator`), then in the entry-point
group ``mdesign.evaluators`` of installed distributions, then as a ``module:function`` path imported
on the spot. A name points to an evaluator *class* (class attributes ``name`` and ``parameters``) or
a plain *function* ``f(images, *, key=default, ...) -> values`` whose annotated keyword parameters
become the evaluator's parameters. Registering a name twice raises (as BoTorch's registry of
acquisition input constructors does); an unknown name raises an :class:`~mdesign.errors.InputError`
that lists the known names. A plugin's ``pyproject.toml`` entry: the evaluators guide
(``docs/guide/evaluators.md``).
"""

from __future__ import annotations

import importlib
import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, get_args, get_origin, runtime_checkable

import numpy as np
from pydantic import TypeAdapter, ValidationError

from mdesign.config import Config
from mdesign.errors import InputError

__all__ = [
    "ENTRY_POINT_GROUP",
    "EvaluationError",
    "EvaluationResult",
    "Evaluator",
    "EvaluatorInfo",
    "FunctionEvaluator",
    "Parameter",
    "evaluate_batch",
    "evaluator_info",
    "evaluator_params",
    "get_evaluator",
    "list_evaluators",
    "parameters_from_config",
    "parse_params",
    "register_evaluator",
]

ENTRY_POINT_GROUP = "mdesign.evaluators"

BUILT_IN_PHYSICS = (
    # The physics built-ins, named by path and imported on the first lookup of a registered
    # name (or the first registration), so that importing mdesign.evaluators, or evaluating a
    # module:function path, does not import torch.
    EntryPoint(
        "effective_conductivity",
        "mdesign.evaluators.conductivity:EffectiveConductivity",
        ENTRY_POINT_GROUP,
    ),
    EntryPoint(
        "optical_absorption", "mdesign.evaluators.optics:OpticalAbsorption", ENTRY_POINT_GROUP
    ),
    EntryPoint(
        "elastic_stiffness", "mdesign.evaluators.elasticity:ElasticStiffness", ENTRY_POINT_GROUP
    ),
    EntryPoint("tortuosity", "mdesign.evaluators.tortuosity:Tortuosity", ENTRY_POINT_GROUP),
)

BUILT_IN_ENTRY_POINTS = (
    # Built-ins that live in a package which itself uses the evaluators: named by path and
    # imported on first lookup, like an installed entry point, so that this package never
    # imports them (mdesign.surrogates labels and confirms with the evaluators).
    EntryPoint("surrogate", "mdesign.surrogates.evaluator:SurrogateEvaluator", ENTRY_POINT_GROUP),
)


@dataclass(frozen=True)
class Parameter:
    """One parameter of an evaluator.

    Attributes
    ----------
    name : str
        Keyword of the parameter (``--param NAME=VALUE``).
    default : object
        Value used when it is not given; ``None`` for a required parameter without a default.
    unit : str
        Physical unit of the value (``"nm"``), or ``""`` for a dimensionless or textual one.
    description : str
        One line for ``mdesign evaluators``.
    annotation : type
        Type the value is validated against (``float``, ``tuple[float, ...]``,
        ``Literal["x", "y"]``). Strings from the command line are converted to it; sequences are
        written comma-separated (``1,10``).
    required : bool
        Whether the evaluator cannot be built without it.
    """

    name: str
    default: Any
    unit: str = ""
    description: str = ""
    annotation: Any = str
    required: bool = False

    @property
    def type_name(self) -> str:
        """The annotation for humans: ``float``, ``list of float``, ``x|y``."""
        return _type_name(self.annotation)


@runtime_checkable
class Evaluator(Protocol):
    """A property evaluator: a batch ``N x H x W`` of uint8 labels to ``N`` floats.

    Attributes
    ----------
    name : str
        Registered name (or the ``module:function`` path it was loaded from).
    parameters : Mapping[str, Parameter]
        The parameters it accepts, with defaults and units.
    """

    name: str
    parameters: Mapping[str, Parameter]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Values of ``images`` (``N x H x W`` uint8), an array of ``N`` floats."""
        ...


@dataclass(frozen=True)
class EvaluatorInfo:
    """What :func:`list_evaluators` reports about one evaluator without building it."""

    name: str
    summary: str
    parameters: Mapping[str, Parameter]
    source: str
    """``built-in``, ``registered``, ``entry point <dist>`` or ``path``."""


@dataclass(frozen=True)
class EvaluationError:
    """The failure of one image: its index in the batch and what went wrong."""

    index: int
    message: str


@dataclass(frozen=True)
class EvaluationResult:
    """Values of a batch, with the failures isolated.

    Attributes
    ----------
    values : ndarray of float64, ``N``
        One value per image; NaN where the image failed.
    errors : list of EvaluationError
        One entry per failed image, in index order.
    seconds : float
        Wall time of the whole evaluation.
    """

    values: np.ndarray
    errors: list[EvaluationError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask ``N`` of the images that were evaluated."""
        return np.isfinite(self.values)


@dataclass(frozen=True)
class _Entry:
    name: str
    parameters: Mapping[str, Parameter]
    build: Callable[..., Any]
    summary: str
    source: str


_REGISTRY: dict[str, _Entry] = {}
_ENTRY_POINTS_LOADED = False


# ---------------------------------------------------------------------------------------------
# parameters


def parameters_from_config(cls: type[Config]) -> dict[str, Parameter]:
    """The fields of a typed config class as :class:`Parameter` s (defaults, units, text).

    Built-in evaluators keep their defaults in :mod:`mdesign.config`; this derives their
    parameter list from it so a default is stated once.
    """
    params = {}
    for name, info in cls.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        params[name] = Parameter(
            name=name,
            default=info.default,
            unit=str(extra.get("unit", "")),
            description=info.description or "",
            annotation=info.annotation,
            required=bool(extra.get("required", False)),
        )
    return params


def _is_sequence_type(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (tuple, list, Sequence):
        return True
    return any(_is_sequence_type(a) for a in get_args(annotation) if a is not type(None))


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = [a for a in get_args(annotation) if a is not type(None) and a is not Ellipsis]
    if origin is not None and getattr(origin, "__name__", "") == "Literal":
        return "|".join(str(a) for a in get_args(annotation))
    if origin in (tuple, list, Sequence) and args:
        return f"list of {_type_name(args[0])}"
    if args and origin is not None:  # Optional[X] / X | None
        return " or ".join(_type_name(a) for a in args)
    return getattr(annotation, "__name__", str(annotation))


def parse_params(
    parameters: Mapping[str, Parameter], given: Mapping[str, Any], *, evaluator: str
) -> dict[str, Any]:
    """Validate ``given`` against ``parameters``; strings are converted to the parameter's type.

    Returns every parameter with its value (the default where not given). Sequences may be
    given as comma-separated strings (``"1,10"``). An unknown key, a bad value or a missing
    required parameter raises :class:`InputError` naming the evaluator and the parameter.
    """
    unknown = sorted(set(given) - set(parameters))
    if unknown:
        known = ", ".join(parameters) or "none"
        raise InputError(
            f"evaluator {evaluator}: unknown parameter {unknown[0]!r} (parameters: {known})"
        )
    out: dict[str, Any] = {}
    for name, p in parameters.items():
        if name not in given:
            if p.required:
                raise InputError(
                    f"evaluator {evaluator}: parameter {name} is required ({p.description})"
                )
            out[name] = p.default
            continue
        value = given[name]
        if isinstance(value, str) and _is_sequence_type(p.annotation):
            value = [v.strip() for v in value.split(",") if v.strip()]
        try:
            value = TypeAdapter(p.annotation).validate_python(value, strict=False)
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"]
            raise InputError(
                f"evaluator {evaluator}: parameter {name}={given[name]!r}: {msg} "
                f"(expected {p.type_name})"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"evaluator {evaluator}: parameter {name} must be finite")
        out[name] = value
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# evaluators made from plain functions


def _function_parameters(fn: Callable) -> dict[str, Parameter]:
    sig = inspect.signature(fn)
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception:  # an annotation that does not evaluate: fall back to strings
        hints = {}
    params = {}
    items = list(sig.parameters.values())
    if not items or items[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise TypeError(f"{fn.__qualname__}: an evaluator function takes the images first")
    for p in items[1:]:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        required = p.default is inspect.Parameter.empty
        annotation = hints.get(p.name, Any if required else type(p.default))
        params[p.name] = Parameter(
            name=p.name,
            default=None if required else p.default,
            annotation=annotation,
            required=required,
        )
    return params


class FunctionEvaluator:
    """An evaluator made from a function ``f(images, *, key=default, ...) -> values``.

    Parameters
    ----------
    fn : callable
        Takes the ``N x H x W`` uint8 images first, then its parameters as keywords.
    name : str
        Name reported for it (the registered name or ``module:function`` path).
    parameters : mapping of Parameter
        Its parameters (see :func:`_function_parameters`).
    **params
        Values of the parameters, typed or as strings.
    """

    def __init__(self, fn: Callable, name: str, parameters: Mapping[str, Parameter], **params: Any):
        self.fn = fn
        self.name = name
        self.parameters = dict(parameters)
        self.params = parse_params(self.parameters, params, evaluator=name)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(images, **self.params), dtype=np.float64)

    def __repr__(self) -> str:
        return f"FunctionEvaluator({self.name!r}, {self.params})"


def _entry_for(obj: Any, name: str | None, *, source: str) -> _Entry:
    """Registry entry for an evaluator class or a plain function."""
    if inspect.isclass(obj):
        ename = name or getattr(obj, "name", None)
        parameters = getattr(obj, "parameters", None)
        if not isinstance(ename, str) or not isinstance(parameters, Mapping):
            raise TypeError(
                f"{obj.__qualname__}: an evaluator class needs class attributes "
                "`name: str` and `parameters: Mapping[str, Parameter]`"
            )
        if "__call__" not in dir(obj):
            raise TypeError(f"{obj.__qualname__}: evaluator instances must be callable")
        summary = (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ")
        return _Entry(ename, dict(parameters), obj, summary, source)
    if callable(obj):
        ename = name or obj.__name__
        parameters = _function_parameters(obj)
        summary = (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ")

        def build(**params: Any) -> FunctionEvaluator:
            return FunctionEvaluator(obj, ename, parameters, **params)

        return _Entry(ename, parameters, build, summary, source)
    raise TypeError(f"{obj!r} is neither an evaluator class nor a function")


# ---------------------------------------------------------------------------------------------
# registry


def register_evaluator(obj: Any = None, *, name: str | None = None, _source: str = "registered"):
    """Register an evaluator class or function under its name; usable as a decorator.

    Parameters
    ----------
    obj : class or callable
        An evaluator class (class attributes ``name`` and ``parameters``, instances built with
        the parameters as keywords) or a function ``f(images, *, key=default) -> values``.
    name : str, optional
        Name to register under; defaults to the class's ``name`` or the function's
        ``__name__``.

    Returns
    -------
    obj
        Unchanged, so ``@register_evaluator`` leaves the decorated object as it was.

    Raises
    ------
    ValueError
        If the name is already registered (built-in, earlier call or entry point).
    """
    if obj is None:
        return lambda o: register_evaluator(o, name=name, _source=_source)
    _load_built_ins()
    entry = _entry_for(obj, name, source=_source)
    if ":" in entry.name or not entry.name:
        raise ValueError(f"invalid evaluator name {entry.name!r} (':' marks a module path)")
    if entry.name in _REGISTRY:
        raise ValueError(
            f"an evaluator named {entry.name!r} is already registered "
            f"({_REGISTRY[entry.name].source})"
        )
    _REGISTRY[entry.name] = entry
    return obj


def _load_built_ins() -> None:
    """Register :data:`BUILT_IN_PHYSICS` once (each module imported on first need)."""
    for ep in BUILT_IN_PHYSICS:
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = _entry_for(ep.load(), ep.name, source="built-in")


def _load_entry_points() -> None:
    """Register :data:`BUILT_IN_ENTRY_POINTS` and the installed ``mdesign.evaluators`` entry
    points once, all or none.

    A plugin that fails to import, or whose name is taken, is an :class:`InputError` naming the
    entry point and its distribution, raised on every call until it is fixed: import errors are
    not hidden until an evaluation.
    """
    global _ENTRY_POINTS_LOADED
    _load_built_ins()
    if _ENTRY_POINTS_LOADED:
        return
    entries = []
    found = [
        (ep, "mdesign", "built-in")
        for ep in BUILT_IN_ENTRY_POINTS
        if getattr(_REGISTRY.get(ep.name), "source", None) != "built-in"
    ]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
        found.append((ep, dist, f"entry point of {dist}"))
    for ep, dist, source in found:
        where = (
            f"entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP}, distribution {dist})"
        )
        try:
            obj = ep.load()
            entry = _entry_for(obj, ep.name, source=source)
        except Exception as exc:
            raise InputError(f"{where} failed to import: {type(exc).__name__}: {exc}") from exc
        taken = _REGISTRY.get(entry.name) or next((e for e in entries if e.name == ep.name), None)
        if taken is not None:
            raise InputError(
                f"{where}: an evaluator named {ep.name!r} is already registered ({taken.source})"
            )
        entries.append(entry)
    for entry in entries:
        _REGISTRY[entry.name] = entry
    _ENTRY_POINTS_LOADED = True


def _load_path(path: str) -> _Entry:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise InputError(f"evaluator path {path!r}: expected module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"evaluator path {path!r}: cannot import {module_name} ({exc})") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"evaluator path {path!r}: {module_name} has no attribute {attr}")
        obj = getattr(obj, part)
    try:
        return _entry_for(obj, path, source="path")
    except TypeError as exc:
        raise InputError(f"evaluator path {path!r}: {exc}") from None


def _entry(name_or_path: str) -> _Entry:
    if ":" in name_or_path:
        return _load_path(name_or_path)
    _load_entry_points()
    try:
        return _REGISTRY[name_or_path]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise InputError(
            f"unknown evaluator {name_or_path!r} (known: {known}; or give module:function)"
        ) from None


def list_evaluators() -> list[EvaluatorInfo]:
    """The registered evaluators (built-ins and entry points), sorted by name."""
    _load_entry_points()
    return [evaluator_info(name) for name in sorted(_REGISTRY)]


def evaluator_info(name_or_path: str) -> EvaluatorInfo:
    """Name, summary, parameters and origin of one evaluator, without building it."""
    e = _entry(name_or_path)
    return EvaluatorInfo(e.name, e.summary, e.parameters, e.source)


def get_evaluator(name_or_path: str, **params: Any) -> Evaluator:
    """Build the evaluator ``name_or_path`` with the given parameters.

    Parameters
    ----------
    name_or_path : str
        A registered name (``effective_conductivity``), an entry point's name, or a
        ``module:function`` path.
    **params
        Parameter values, typed (``conductivities=(1, 10)``) or as the strings of
        ``--param KEY=VALUE`` (``conductivities="1,10"``).

    Raises
    ------
    InputError
        Unknown name (the message lists the known names), unknown parameter, or a value that
        does not validate (the message names the parameter).
    """
    e = _entry(name_or_path)
    evaluator = e.build(**params)
    if not isinstance(evaluator, Evaluator):
        raise InputError(f"evaluator {name_or_path!r} did not build an evaluator")
    return evaluator


def evaluator_params(evaluator: Evaluator) -> dict[str, Any]:
    """The parameter values of a built evaluator, JSON-ready (``params`` of the report)."""
    params = getattr(evaluator, "params", None)
    if params is None:
        return {}
    return {k: _json_value(v) for k, v in dict(params).items()}


# ---------------------------------------------------------------------------------------------
# evaluation


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim not in (3, 4):
        raise InputError(
            f"expected images N x H x W or volumes N x H x W x D, got shape {images.shape}"
        )
    if images.dtype != np.uint8:
        bad_range = images.size and (images.min() < 0 or images.max() > 7)
        if images.dtype.kind not in "iu" or bad_range:
            raise InputError(f"expected uint8 labels 0..7, got dtype {images.dtype}")
        images = images.astype(np.uint8)
    return images


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _values_of(evaluator: Evaluator, images: np.ndarray) -> np.ndarray:
    values = np.asarray(evaluator(images))
    if values.shape not in ((len(images),), (len(images), 1)):
        raise ValueError(
            f"evaluator {evaluator.name} returned shape {values.shape} for {len(images)} images"
        )
    if values.dtype.kind not in "biuf":
        raise ValueError(f"evaluator {evaluator.name} returned non-numbers ({values.dtype})")
    return values.reshape(len(images)).astype(np.float64)


def evaluate_batch(
    evaluator: Evaluator,
    images: np.ndarray,
    *,
    batch_size: int | None = None,
    progress: bool = False,
) -> EvaluationResult:
    """Evaluate ``images``, isolating the failure of any one image.

    The evaluator is called on chunks of ``batch_size`` images (its own ``batch_size``
    attribute, else all at once). If a chunk call raises or returns a wrong shape, every image of
    the chunk is evaluated alone, so one bad image costs only itself. An image whose call raises,
    or whose value is NaN or infinite, gets NaN and an error entry; the batch carries on.

    Parameters
    ----------
    evaluator : Evaluator
        What to evaluate.
    images : ndarray, ``N x H x W`` uint8 labels (or one ``H x W`` image), or volumes
        ``N x H x W x D`` for an evaluator that takes them (``effective_conductivity``)
    batch_size : int, optional
        Images per call; defaults to ``evaluator.batch_size`` when it has one, else ``N``.
    progress : bool
        Show a tqdm bar over the images on stderr.

    Returns
    -------
    EvaluationResult
        ``values`` (``N``, NaN where failed), ``errors`` (index, message), ``seconds``.
    """
    images = _check_images(images)
    n = len(images)
    if batch_size is None:
        batch_size = getattr(evaluator, "batch_size", None) or max(n, 1)
    batch_size = max(int(batch_size), 1)
    values = np.full(n, np.nan)
    messages: dict[int, str] = {}
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=evaluator.name, unit="image", leave=False)
    try:
        for lo in range(0, n, batch_size):
            chunk = images[lo : lo + batch_size]
            try:
                values[lo : lo + len(chunk)] = _values_of(evaluator, chunk)
            except Exception:
                if len(chunk) == 1:
                    _one(evaluator, chunk, lo, values, messages)
                else:
                    for i in range(len(chunk)):
                        _one(evaluator, chunk[i : i + 1], lo + i, values, messages)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    means = getattr(evaluator, "infinite_means", None)
    for i in np.flatnonzero(~np.isfinite(values)):
        if int(i) not in messages:
            messages[int(i)] = f"value is {values[i]}"
            if means and np.isinf(values[i]):
                messages[int(i)] += f": {means}"
        values[i] = np.nan
    errors = [EvaluationError(i, messages[i]) for i in sorted(messages)]
    return EvaluationResult(values, errors, time.perf_counter() - start)


def _one(
    evaluator: Evaluator, image: np.ndarray, index: int, values: np.ndarray, messages: dict
) -> None:
    try:
        values[index] = _values_of(evaluator, image)[0]
    except Exception as exc:
        values[index] = np.nan
        messages[index] = _describe(exc)
