"""``python -m mdesign`` and the ``mdesign`` console script: :func:`mdesign.cli.main`, after
choosing a passive OpenMP pool.

OpenMP threads that spin between parallel regions (the default) take the cores the working
threads need when the machine is shared: measured with ``bench/bench_threads.py`` on the 2
shared cores of the dev machine (median of 6 fresh processes, load 4-7), a GAN sampling call
took 134 ms against 27 ms with ``OMP_WAIT_POLICY=PASSIVE``, and a DCGAN training step 2.6 s
against 0.27 s; set by the process itself before torch loads, as here, 42 ms and 0.36 s. On a
free machine the policy costs nothing measurable. The policy is read once, when torch loads
its OpenMP runtime, so it is set here, before any command imports torch, and only when the
user has not chosen one.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless it is set, then run the command line."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import mdesign.cli

    try:
        return mdesign.cli.main()
    finally:
        mdesign.cli.exit_on_signal()  # an interrupt during the shutdown: 130 and its line


if __name__ == "__main__":
    sys.exit(main())
