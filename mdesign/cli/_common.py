"""Option parsing and checks shared by the commands.

Every command checks its whole input before any work: options at parse time (:func:`seed_type`),
then every output with :func:`check_outputs` (writable, supported suffix, not a directory, not
one of the inputs), then the inputs; it writes its outputs only at the end, together
(:func:`mdesign.io.atomic_paths`), so a failure anywhere writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mdesign import __version__
from mdesign.errors import InputError
from mdesign.io import check_outputs
from mdesign.seeds import SEED_LIMIT

__all__ = [
    "SEED_HELP",
    "SEED_LIMIT",
    "add_phases",
    "add_quiet",
    "apply_threads",
    "check_outputs",
    "note",
    "parse_device",
    "parse_params",
    "parse_range",
    "parse_ranges",
    "run_meta",
    "seed_type",
]

# One seed rule for every command (mdesign.seeds): an integer 0 <= S < 2**32.
SEED_HELP = f"an integer 0 <= S < 2**32 ({SEED_LIMIT})"


def seed_type(text: str) -> int:
    """argparse ``type=`` of every ``--seed``: an integer ``0 <= S < 2**32``, checked at parse
    time, before anything is created."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {SEED_HELP}, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected {SEED_HELP}, got {text}")
    return value


def parse_params(items: list[str], *, option: str = "--param") -> dict[str, str]:
    """Repeated ``KEY=VALUE`` options to a dict (values stripped, keys unique)."""
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"{option}: expected KEY=VALUE, got {item!r}")
        if key in params:
            raise InputError(f"{option}: {key} given twice")
        params[key] = value.strip()
    return params


def apply_threads(threads: int | None) -> None:
    """``--threads``: the number of torch threads of this process (None: torch's choice)."""
    if threads is None:
        return
    if threads < 1:
        raise InputError(f"--threads: must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def add_phases(parser: argparse.ArgumentParser) -> None:
    """``--phases K`` of the commands that read an image that may need segmenting."""
    parser.add_argument(
        "--phases",
        type=int,
        default=2,
        metavar="K",
        help="phases to segment a grayscale image into (default 2; labels are kept)",
    )


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
