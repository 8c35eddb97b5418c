"""The ``mdesign`` command line (also ``python -m mdesign``).

The CLI only parses, builds the stage's config, calls the library and turns errors into one
``error: ...`` line (see ``CONTRACT.md``): exit code 2 for bad input, a library
:class:`~mdesign.errors.InputError` (its Python parameter shown as the command's flag) or an
operating-system error on a path; 1 for an internal failure; 130 for an interrupt. One module
per command; each has ``add_parser(subparsers)``, which registers its options and sets
``run(args) -> int``. Heavy imports (torch, botorch, prefect) happen inside ``run`` so
``mdesign --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from mdesign import __version__
from mdesign.errors import InputError

__all__ = ["build_parser", "main"]

# Command modules under mdesign.cli, in the order `mdesign --help` lists them.
COMMANDS = (
    "grf",
    "segment",
    "characterize",
    "dataset",
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
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = _Parser(prog="mdesign", description="Generative microstructure design.")
    parser.add_argument("--version", action="version", version=f"mdesign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"mdesign.cli.{name}").add_parser(sub)
    return parser, dict(sub.choices)


def flag_names(command: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """Python parameter name -> the command's flag, to render library errors for CLI users.

    Each option's destination names its flag (``size`` -> ``--size``, ``n`` -> ``-n``); a
    command whose flags differ from the library's parameters adds ``param_flags`` to its
    defaults (``{"shape": "--size"}``).
    """
    # argparse keeps a parser's options in `_actions` (no public accessor)
    names = {
        a.dest: a.option_strings[0]
        for a in command._actions
        if a.option_strings and a.dest not in ("help", argparse.SUPPRESS)
    }
    names.update(getattr(args, "param_flags", {}))
    return names


def _os_error(exc: OSError) -> str:
    path = exc.filename2 if getattr(exc, "filename2", None) else exc.filename
    name = f"{path}: " if path else ""
    return f"{name}{exc.strerror or exc}"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    ``0`` success; ``2`` bad input or usage, including an operating-system error on a path (a
    missing file, a read-only filesystem, a full disk, a denied permission); ``1`` an internal
    failure; ``130`` interrupted. Each failure is one ``error: ...`` line on stderr (with
    ``MDESIGN_TRACEBACK=1`` an internal failure also prints its traceback).
    """
    parser, commands = _build()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except InputError as exc:
        sys.stderr.write(f"error: {exc.render(flag_names(commands[args.command], args))}\n")
        return 2
    except BrokenPipeError:
        # the reader of our stdout went away (e.g. `| head`): not an error of ours
        sys.stderr.close()
        return 0
    except OSError as exc:
        sys.stderr.write(f"error: {_os_error(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except MemoryError:
        sys.stderr.write(
            "error: out of memory; ask for smaller sizes, or see MDESIGN_MEMORY_LIMIT in the "
            "README\n"
        )
        return 1
    except Exception as exc:
        if os.environ.get("MDESIGN_TRACEBACK"):
            traceback.print_exc()
        text = " ".join(str(exc).split())
        sys.stderr.write(
            f"error: internal failure: {type(exc).__name__}: {text} "
            "(MDESIGN_TRACEBACK=1 shows the traceback)\n"
        )
        return 1
