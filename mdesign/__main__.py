"""``python -m mdesign`` and the ``mdesign`` console script: :func:`mdesign.cli.main`, after
choosing a passive OpenMP pool and the Agg backend, and making the current directory importable.

OpenMP threads that spin between parallel regions (the default) take the cores the working
threads need when the machine is shared (``bench/bench_threads.py``; figures in
``docs/performance.md``). The policy is read once, when torch loads its OpenMP runtime, so it
is set here, before any command imports torch, and only when the user has not chosen one.
The figures are drawn without pyplot and written as PNG (Agg); ``MPLBACKEND=Agg`` (unless set)
keeps any pyplot import in a plugin off the display.

A ``module:function`` evaluator or design-space factory in the current directory is found by
both entry points: ``python -m`` puts the directory first on the import path, and the console
script appends it (last, so a local ``numpy.py`` does not shadow the installed one). Such a
module is imported and run: a config naming one is as trusted as a Python script.
"""

from __future__ import annotations

import os
import sys


def _add_cwd_to_path() -> None:
    """Append the current directory to ``sys.path`` unless it is there or ``-P`` is set."""
    if getattr(sys.flags, "safe_path", False):  # python -P / PYTHONSAFEPATH: none implied
        return
    cwd = os.getcwd()
    if not any(os.path.abspath(p or os.curdir) == cwd for p in sys.path):
        sys.path.append(cwd)


def main() -> int:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` and ``MPLBACKEND=Agg`` unless set, then run the CLI."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("MPLBACKEND", "Agg")
    _add_cwd_to_path()
    from mdesign.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
