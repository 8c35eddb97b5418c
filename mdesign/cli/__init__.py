"""The ``mdesign`` command line (also ``python -m mdesign``).

The CLI only parses, builds the stage's config, calls the library and turns known errors into one
``error: ...`` line with exit code 2 (see ``CONTRACT.md``). One module per command; each has
``add_parser(subparsers)``, which registers its options and sets ``run(args) -> int``. Heavy
imports (torch, botorch, prefect) happen inside ``run`` so ``mdesign --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mdesign import __version__
from mdesign.errors import InputError

__all__ = ["build_parser", "main"]

# Command modules under mdesign.cli, in the order `mdesign --help` lists them.
COMMANDS = (
    "grf",
    "characterize",
    "train",
    "sample",
    "reconstruct",
    "weights",
    "evaluate",
    "evaluators",
    "surrogate_train",
    "surrogate_screen",
    "surrogate_study",
    "optimize",
)


class _Parser(argparse.ArgumentParser):
    """argparse with the contract's usage errors: one ``error:`` line, exit code 2."""

    def error(self, message: str):
        sys.stderr.write(f"error: {self.prog}: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command registered."""
    parser = _Parser(prog="mdesign", description="Generative microstructure design.")
    parser.add_argument("--version", action="version", version=f"mdesign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"mdesign.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 success, 2 bad input, 1 internal)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        name = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        sys.stderr.write(f"error: {name}{exc.strerror or exc}\n")
        return 2
    except BrokenPipeError:
        # the reader of our stdout went away (e.g. `| head`): not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
