"""One campaign per folder: :func:`mdesign.runs.run_lock` on ``DIR/.lock``.

Two campaigns writing one folder would evaluate the same batches twice and report from partial
data. :func:`campaign_lock` is the lock every long run takes on its folder (training runs,
surrogate studies and the folder flow take the same one), with messages that say "campaign".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from mdesign.runs import LOCK_NAME, run_lock

__all__ = ["CAMPAIGN_FILES", "LOCK_NAME", "campaign_lock"]

CAMPAIGN_FILES = (
    "evaluations.sqlite", "evaluations.sqlite-wal", "evaluations.sqlite-shm",
    "evaluations.sqlite-journal", "evaluations.csv", "best.npz", "report.md", "report.png",
    ".prefect", LOCK_NAME,
)  # fmt: skip
"""What a campaign writes in its folder (no input, its config included, may be one of them)."""


@contextlib.contextmanager
def campaign_lock(folder: str | os.PathLike, *, name: str = "out_dir") -> Iterator[Path]:
    """Hold the campaign folder ``folder`` exclusively for the duration of the block
    (:func:`mdesign.runs.run_lock`); a second campaign on it is refused at once.

    Raises
    ------
    InputError
        When another process holds the folder.
    """
    with run_lock(folder, name=name, what="campaign") as path:
        yield path
