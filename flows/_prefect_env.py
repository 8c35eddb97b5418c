"""Environment for quiet, offline Prefect runs; applied before prefect is imported."""

from __future__ import annotations

import os
from pathlib import Path


def configure_prefect(home: str | Path, *, quiet: bool = False) -> None:
    """Analytics off, and ``PREFECT_HOME`` inside ``home`` unless a server is configured.

    With ``PREFECT_API_URL`` set (``prefect server start`` or Prefect Cloud), flows report there
    unchanged; otherwise Prefect runs embedded: a temporary local server whose database lives
    in ``home``. Values the user already set in the environment are kept.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_HOME", str(Path(home).resolve()))
    # one line per batch from the flow is enough; a line per task drowns it
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "WARNING")
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
