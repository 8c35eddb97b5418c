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
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping

from mdesign import __version__
from mdesign.errors import InputError

__all__ = ["build_parser", "exit_on_signal", "guarded", "main", "one_line"]

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
        sys.stderr.write(f"error: {one_line(f'{self.prog}: {message}')}\n")
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
    failure; ``130`` interrupted (SIGINT or SIGTERM). Each failure is one ``error: ...`` line on
    stderr (with ``MDESIGN_TRACEBACK=1`` an internal failure also prints its traceback).
    """
    parser, commands = _build()
    args = parser.parse_args(argv)
    return guarded(lambda: args.run(args), flags=lambda: flag_names(commands[args.command], args))


def one_line(text: str) -> str:
    """``text`` with its control characters escaped (a newline in a path becomes ``\\n``), so
    an error message stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def guarded(run: Callable[[], int | None], *, flags: Callable[[], Mapping[str, str]]) -> int:
    """Run a command under the contract: its exit code, or one ``error:`` line and 2, 1 or 130.

    The shared error handling of every command and of ``python -m mdesign_flows``: SIGTERM is
    handled like SIGINT (a :class:`KeyboardInterrupt`, exit code 130), warnings of the libraries
    are logged (logger ``py.warnings``, silent unless configured) rather than printed, and the
    error line is escaped to one line and starts on a line of its own.

    Parameters
    ----------
    run : callable
        The command; returns its exit code (None: 0).
    flags : callable
        Python parameter name -> the command's flag, for :meth:`InputError.render`.
    """
    stderr = _LineTracker(sys.stderr)
    with _interrupts(), _quiet_warnings(), contextlib.redirect_stderr(stderr):
        try:
            return int(run() or 0)
        except InputError as exc:
            stderr.error(exc.render(flags()))
            return 2
        except BrokenPipeError:
            # the reader of our stdout went away (e.g. `| head`): not an error of ours
            stderr.close()
            return 0
        except OSError as exc:
            stderr.error(_os_error(exc))
            return 2
        except KeyboardInterrupt:
            stderr.error("interrupted")
            return 130
        except MemoryError:
            stderr.error(
                "out of memory; ask for smaller sizes, or see MDESIGN_MEMORY_LIMIT in the docs"
            )
            return 1
        except Exception as exc:
            if os.environ.get("MDESIGN_TRACEBACK"):
                traceback.print_exc()
            text = " ".join(str(exc).split())
            stderr.error(
                f"internal failure: {type(exc).__name__}: {text} "
                "(MDESIGN_TRACEBACK=1 shows the traceback)"
            )
            return 1


class _LineTracker:
    """stderr, remembering whether its last write ended a line (a progress bar or a log record
    may leave one open), so the error line starts on a line of its own."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._open = False

    def write(self, text: str) -> int:
        if text:
            self._open = not text.endswith("\n")
        return self._stream.write(text)

    def error(self, message: str) -> None:
        start = "\n" if self._open else ""
        with contextlib.suppress(Exception):
            self._stream.write(f"{start}error: {one_line(message)}\n")
            self._stream.flush()
        self._open = False

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, as SIGINT does (in the main thread only: elsewhere
    signal handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _quiet_warnings() -> Iterator[None]:
    """Warnings of the libraries (torch on a legacy pickle, PIL on a large image, ...) go to the
    ``py.warnings`` logger, not to stderr as extra lines."""
    logger = logging.getLogger("py.warnings")

    def log(message, category, filename, lineno, file=None, line=None):
        logger.debug("%s:%s: %s: %s", filename, lineno, category.__name__, message)

    with warnings.catch_warnings():
        warnings.showwarning = log
        yield


def exit_on_signal() -> None:
    """From now on, SIGINT or SIGTERM end the process at once with the contract's line and exit
    code 130: for the end of a command, after its outputs are written (the interpreter's
    shutdown, which may wait on threads, would otherwise show a traceback or no line)."""

    def handler(signum, frame):
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            os.write(2, b"error: interrupted\n")
        os._exit(130)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
