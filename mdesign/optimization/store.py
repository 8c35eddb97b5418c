"""A durable record of a campaign's evaluations: SQLite through the standard library.

Every design is written as ``pending`` when it is proposed, before it is evaluated, and updated
to ``ok`` or ``failed`` in its own transaction the moment its evaluation completes
(``synchronous=FULL``: on disk before the call returns). A campaign killed at any point therefore
loses no completed evaluation, and on resume it evaluates the pending designs of the interrupted
batch instead of proposing new ones, so nothing is evaluated twice and the proposals are the ones
an uninterrupted run would have made.

Completed rows are mirrored to ``evaluations.csv`` (the contract's columns first), rewritten
atomically after each completion.

A failure of the disk under the store (full, read-only, an I/O error) is raised as the
:class:`OSError` it is, naming the database, not as :class:`sqlite3.OperationalError`: the CLI
then reports it as one line about the file, and a rerun resumes.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdesign.errors import InputError
from mdesign.io import atomic_path

__all__ = ["CSV_COLUMNS", "EvaluationRecord", "EvaluationStore"]

CSV_COLUMNS = (
    "id",
    "method",
    "batch",
    "latent",
    "value",
    "status",
    "error",
    "seconds",
    "outcomes",
    "feasible",
    "design",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY,
    method TEXT NOT NULL,
    batch INTEGER NOT NULL,
    design TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    outcomes TEXT,
    error TEXT,
    seconds REAL
);
CREATE INDEX IF NOT EXISTS by_method ON evaluations (method, status);
"""
# the confirm stage's values (a campaign's ``confirm`` evaluator), one row per design and
# confirming evaluator; stores written before it existed gain the table when opened
_CONFIRMATIONS = """
CREATE TABLE IF NOT EXISTS confirmations (
    id INTEGER NOT NULL REFERENCES evaluations (id),
    spec TEXT NOT NULL,
    value REAL,
    error TEXT,
    seconds REAL,
    PRIMARY KEY (id, spec)
);
"""
_COLUMNS = {"id", "method", "batch", "design", "status", "outcomes", "error", "seconds"}


@dataclass(frozen=True)
class EvaluationRecord:
    """One row: a design and, once evaluated, its outcomes.

    Attributes
    ----------
    id : int
        Unique, in proposal order.
    method : str
        ``bo``, ``random`` or ``grf``.
    batch : int
        The batch (proposal round) of ``method`` the design belongs to.
    design : dict
        ``{"latent": [...]}`` for latent designs, ``{"grf_seed": s}`` for GRF baselines.
    status : str
        ``pending``, ``ok`` or ``failed``.
    outcomes : list of float or None
        One value per campaign outcome (objectives, then constraints) when ``ok``.
    error : str or None
        Why the evaluation failed.
    seconds : float or None
        Wall time of the evaluation.
    """

    id: int
    method: str
    batch: int
    design: dict[str, Any]
    status: str
    outcomes: list[float] | None
    error: str | None
    seconds: float | None

    @property
    def latent(self) -> list[float]:
        return list(self.design.get("latent", []))


class EvaluationStore:
    """The campaign's evaluations in ``DIR/evaluations.sqlite``, mirrored to a CSV file.

    Parameters
    ----------
    path : path-like
        The SQLite file; created if missing (schema first, then renamed into place, so the
        file never exists without its tables).
    csv_path : path-like, optional
        Where to mirror completed rows; ``evaluations.csv`` beside ``path`` by default.
    feasible : callable, optional
        Maps an ``ok`` record to whether it meets the campaign's constraints (the CSV's
        ``feasible`` column).

    Raises
    ------
    InputError
        When ``path`` exists but is empty, damaged or not an evaluation store; the message says
        how to recover.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        csv_path: str | Path | None = None,
        feasible: Callable[[EvaluationRecord], bool] | None = None,
    ) -> None:
        self.path = Path(path)
        self.feasible = feasible
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.csv_path = Path(csv_path) if csv_path else self.path.with_name("evaluations.csv")
        with disk_errors(self.path):
            if not self.path.exists():
                _create(self.path)
            self._db = _Connection(_open(self.path), self.path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EvaluationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- campaign identity -------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )

    # -- rows ----------------------------------------------------------------------------------

    def add_pending(self, method: str, batch: int, designs: Sequence[dict[str, Any]]) -> list[int]:
        """Record a proposed batch in one transaction; returns the new ids in order."""
        ids = []
        with self._transaction():
            for design in designs:
                cur = self._db.execute(
                    "INSERT INTO evaluations (method, batch, design) VALUES (?, ?, ?)",
                    (method, batch, json.dumps(design)),
                )
                ids.append(int(cur.lastrowid))
        return ids

    def complete(
        self,
        id: int,
        *,
        outcomes: Sequence[float] | None,
        error: str | None,
        seconds: float,
    ) -> None:
        """Record an evaluation's result durably, then refresh the CSV mirror.

        ``outcomes`` None (or ``error`` set) marks the row ``failed``.
        """
        status = "ok" if outcomes is not None and error is None else "failed"
        with self._transaction():
            cur = self._db.execute(
                "UPDATE evaluations SET status = ?, outcomes = ?, error = ?, seconds = ? "
                "WHERE id = ? AND status = 'pending'",
                (
                    status,
                    json.dumps(list(map(float, outcomes))) if status == "ok" else None,
                    error,
                    float(seconds),
                    int(id),
                ),
            )
            if cur.rowcount != 1:
                raise KeyError(f"evaluation {id} is not pending")
        self.write_csv()

    def records(
        self, method: str | None = None, *, status: str | None = None
    ) -> list[EvaluationRecord]:
        """Rows in id order, optionally of one method and/or status."""
        query = (
            "SELECT id, method, batch, design, status, outcomes, error, seconds FROM evaluations"
        )
        clauses, args = [], []
        if method is not None:
            clauses.append("method = ?")
            args.append(method)
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [
            EvaluationRecord(
                id=r[0],
                method=r[1],
                batch=r[2],
                design=json.loads(r[3]),
                status=r[4],
                outcomes=json.loads(r[5]) if r[5] is not None else None,
                error=r[6],
                seconds=r[7],
            )
            for r in rows
        ]

    def count(self, method: str, *, done: bool) -> int:
        op = "!=" if done else "="
        return int(
            self._db.execute(
                f"SELECT COUNT(*) FROM evaluations WHERE method = ? AND status {op} 'pending'",
                (method,),
            ).fetchone()[0]
        )

    def confirmations(self, spec: str) -> dict[int, tuple[float, str, float]]:
        """Confirmed values under one confirming evaluator: ``{id: (value, error, seconds)}``.

        ``spec`` identifies the evaluator and its parameters (a JSON string); a failed
        confirmation has value NaN and its error message.
        """
        rows = self._db.execute(
            "SELECT id, value, error, seconds FROM confirmations WHERE spec = ?", (spec,)
        )
        return {
            int(i): (math.nan if v is None else float(v), e or "", float(t or 0.0))
            for i, v, e, t in rows
        }

    def add_confirmation(
        self, id: int, spec: str, *, value: float | None, error: str | None, seconds: float
    ) -> None:
        """Record the confirmed value of design ``id`` (None and ``error`` if it failed), on
        disk before returning."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO confirmations (id, spec, value, error, seconds) "
                "VALUES (?, ?, ?, ?, ?)",
                (int(id), spec, value, error, float(seconds)),
            )

    def next_batch(self, method: str) -> int:
        row = self._db.execute(
            "SELECT MAX(batch) FROM evaluations WHERE method = ?", (method,)
        ).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    # -- CSV mirror ------------------------------------------------------------------------------

    def write_csv(self) -> Path:
        """Rewrite ``evaluations.csv`` from the completed rows (atomically)."""
        feasible = self.feasible
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for rec in self.records():
            if rec.status == "pending":
                continue
            outcomes = rec.outcomes or []
            writer.writerow(
                [
                    rec.id,
                    rec.method,
                    rec.batch,
                    json.dumps(rec.latent),
                    repr(outcomes[0]) if rec.status == "ok" and outcomes else "",
                    rec.status,
                    rec.error or "",
                    f"{rec.seconds:.4f}" if rec.seconds is not None else "",
                    json.dumps(outcomes) if rec.status == "ok" else "",
                    ""
                    if feasible is None or rec.status != "ok"
                    else str(bool(feasible(rec))).lower(),
                    json.dumps(rec.design),
                ]
            )
        with atomic_path(self.csv_path) as tmp:
            tmp.write_text(buf.getvalue())
        return self.csv_path

    def _transaction(self):
        return _Transaction(self._db)


# SQLite's primary result codes of a disk that fails under the store, and the errno they are
_DISK_ERRORS = {13: errno.ENOSPC, 10: errno.EIO, 8: errno.EROFS}  # FULL, IOERR, READONLY


@contextlib.contextmanager
def disk_errors(path: Path):
    """Raise SQLite's errors of the disk (full, I/O, read-only) as :class:`OSError` on ``path``."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        code = _DISK_ERRORS.get(getattr(exc, "sqlite_errorcode", -1) & 0xFF)
        if code is None and "disk is full" in str(exc):
            code = errno.ENOSPC
        if code is None:
            raise
        raise OSError(code, f"{os.strerror(code)} ({exc})", str(path)) from exc


class _Connection:
    """A SQLite connection whose statements raise disk failures as :class:`OSError`."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db, self._path = db, path

    def execute(self, *args: Any) -> sqlite3.Cursor:
        with disk_errors(self._path):
            return self._db.execute(*args)

    def executescript(self, script: str) -> sqlite3.Cursor:
        with disk_errors(self._path):
            return self._db.executescript(script)

    def close(self) -> None:
        self._db.close()


def _create(path: Path) -> None:
    """Write an empty store with its schema to a temporary file and rename it into place, so a
    store on disk always has its tables: a 0-byte ``evaluations.sqlite`` is never ours."""
    with atomic_path(path) as tmp:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.executescript(_SCHEMA + _CONFIRMATIONS)
        finally:
            db.close()


def _open(path: Path) -> sqlite3.Connection:
    """Connect to an existing store, checked: a cut-short, overwritten or foreign file is an
    :class:`InputError` that says how to recover, not a crash halfway through a campaign."""
    if path.stat().st_size == 0:
        raise _corrupt(path, "it is empty (0 bytes)")
    db = sqlite3.connect(path, isolation_level=None, timeout=60)
    try:  # read-only checks first: a refused file is left exactly as it was
        problems = [r[0] for r in db.execute("PRAGMA quick_check(3)").fetchall()]
        if problems != ["ok"]:
            raise _corrupt(path, f"it is damaged ({'; '.join(problems)})")
        columns = {
            table: {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
            for table in ("meta", "evaluations")
        }
    except sqlite3.DatabaseError as exc:
        db.close()
        raise _corrupt(path, f"it is not a readable SQLite database ({exc})") from None
    except InputError:
        db.close()
        raise
    if not (columns["meta"] >= {"key", "value"} and columns["evaluations"] >= _COLUMNS):
        db.close()
        raise _corrupt(path, "it is an SQLite database but not a campaign's evaluation store")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(_CONFIRMATIONS)
    return db


def _corrupt(path: Path, why: str) -> InputError:
    return InputError(
        f"{path}: cannot resume from this evaluation store: {why}. evaluations.csv beside it, "
        f"if present, lists the completed evaluations. To start the campaign again from "
        f"scratch, move {path.name} (and any {path.name}-wal and -shm) out of the folder, or "
        "use another folder"
    )


class _Transaction:
    """``BEGIN IMMEDIATE ... COMMIT`` (rollback on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
