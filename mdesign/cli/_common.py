"""Option parsing shared by the commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mdesign import __version__
from mdesign.errors import InputError

__all__ = ["add_quiet", "note", "parse_device", "parse_range", "parse_ranges", "run_meta"]


def parse_range(text: str, *, option: str) -> float | tuple[float, float]:
    """``"V"`` to ``V`` and ``"A:B"`` to ``(A, B)``; anything else is an :class:`InputError`."""
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"{option}: expected a number V or a range A:B, got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return (values[0], values[1])
    raise InputError(f"{option}: expected a number V or a range A:B, got {text!r}")


def parse_ranges(text: str, *, option: str) -> list[float | tuple[float, float]]:
    """A comma-separated list of :func:`parse_range` values (``"0.2,0.1:0.3"``)."""
    return [parse_range(t, option=option) for t in text.split(",")]


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes")


def note(args: argparse.Namespace, message: str) -> None:
    """A line for the user on stderr, unless ``--quiet``."""
    if not getattr(args, "quiet", False):
        sys.stderr.write(message + "\n")


def run_meta(command: str, argv: list[str] | None = None, **params: Any) -> dict[str, Any]:
    """The ``meta`` record written beside outputs: what made them, with which parameters."""
    argv = sys.argv[1:] if argv is None else argv
    return {
        "command": command,
        "argv": argv,
        "version": __version__,
        **json.loads(json.dumps(params, default=str)),
    }


def parse_device(text: str | None, *, option: str = "--device"):
    """``--device`` to a :class:`torch.device` (None: CUDA when present), checked to be usable."""
    import torch

    from mdesign.device import default_device

    try:
        dev = default_device(text)
    except RuntimeError:
        raise InputError(f"{option}: unknown device {text!r}; expected cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{option}: {text} requested but CUDA is not available here")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"{option}: unsupported device {text!r}; expected cpu or cuda")
    return dev
