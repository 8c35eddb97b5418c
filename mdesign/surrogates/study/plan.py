"""The study's plan: every run it makes, and the journal ``runs.jsonl`` that makes it resumable.

A run is one (task, model, source, K, seed); its row in ``runs.jsonl`` is the run's fields
followed by its scores, one JSON object per line, appended and fsynced as each run completes. A
rerun reads the journal and skips the runs it holds (a line cut by a kill is rerun).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdesign.config import SurrogateConfig

__all__ = [
    "CROSS_MODELS",
    "Run",
    "append_row",
    "json_safe",
    "plan_runs",
    "read_rows",
    "row_key",
    "subset",
    "valid_indices",
]

CROSS_MODELS = ("cross_frozen", "cross_finetune")
"""Cross-property transfer: a source task's fine-tuned trunk, frozen or fine-tuned again."""


@dataclass(frozen=True)
class Run:
    """One run of the study: ``model`` trained on ``size`` labels of ``task`` with ``seed``.

    ``source`` is the task lending its trunk for the cross-property models (``None``
    otherwise). The fields, in this order, begin the run's row in ``runs.jsonl``.
    """

    task: str
    model: str
    source: str | None
    size: int
    seed: int

    @property
    def key(self) -> tuple:
        return (self.task, self.model, self.source, int(self.size), int(self.seed))

    @property
    def is_cross(self) -> bool:
        return self.model in CROSS_MODELS

    def row(self) -> dict[str, Any]:
        """The start of the run's journal row (its fields)."""
        return asdict(self)


def row_key(row: dict) -> tuple:
    """The :attr:`Run.key` of a journal row."""
    return (row["task"], row["model"], row.get("source"), int(row["size"]), int(row["seed"]))


def plan_runs(config: SurrogateConfig) -> list[Run]:
    """Every run the study makes, in order: for each task, seed, K and model; then for each
    cross pair, seed, K and cross model (their sources are the tasks' fine-tuned runs)."""
    st = config.study
    runs = [
        Run(task.name, model, None, size, seed)
        for task in st.tasks
        for seed in range(st.seeds)
        for size in st.sizes
        for model in st.models
    ]
    runs += [
        Run(pair.target, model, pair.source, size, seed)
        for pair in st.cross
        for seed in range(st.seeds)
        for size in st.sizes
        for model in CROSS_MODELS
    ]
    return runs


def read_rows(path: Path) -> dict[tuple, dict]:
    """The journal's rows by :func:`row_key` (a missing journal is empty)."""
    rows: dict[tuple, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: rerun it
                    continue
                rows[row_key(row)] = row
    return rows


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python numbers and NaN or infinities as None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def append_row(path: Path, row: dict) -> None:
    """Append one row to the journal, durably (flushed and fsynced)."""
    with open(path, "a") as fh:
        fh.write(json.dumps(json_safe(row)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def valid_indices(values: np.ndarray) -> np.ndarray:
    """Indices of the finite values (images whose label did not fail)."""
    return np.flatnonzero(np.isfinite(values))


def subset(valid: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The first ``size`` of a seeded permutation of the valid pool indices (nested in size)."""
    return valid[np.random.default_rng(seed).permutation(len(valid))[:size]]
