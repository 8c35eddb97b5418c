"""Run folders that resume: refuse one that holds a run of another configuration.

A training run (``mdesign train``), a surrogate study and a design campaign each write into a
folder and resume when rerun on it. Mixing the results of two configurations in one folder
would be silent and wrong, so each records what identifies its run (the config, the inputs'
digests) and a rerun compares: the same identity resumes, another is refused by
:func:`refuse_other_run` with the keys that differ. :func:`claim_run_folder` keeps the identity
in a JSON file of the folder; a run that keeps it elsewhere (a checkpoint, a database) passes it
to :func:`refuse_other_run` directly.

One run per folder: :func:`run_lock` takes an exclusive ``flock`` on ``DIR/.lock`` without
waiting, so a second run on a folder in use is refused at once. The kernel releases a ``flock``
when the last descriptor of its holder closes, so a killed run (even by SIGKILL) leaves no stale
lock behind, unlike a PID file. The holder removes the lock file when it releases the lock (and a
process that locked a file removed meanwhile tries again), so a folder at rest holds no lock
file; a folder the lock created is removed again if the run left it empty. Re-entrant within one
process (a CLI takes the lock before its checks, and the library function takes it again).
POSIX only: on a system without :mod:`fcntl` the folder is not locked.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mdesign.errors import InputError
from mdesign.io import atomic_path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK_NAME", "claim_run_folder", "config_differences", "refuse_other_run", "run_lock"]

LOCK_NAME = ".lock"

# folder (resolved) -> [descriptor, depth, created]: the locks this process holds
_held: dict[Path, list] = {}
_guard = threading.Lock()


@contextlib.contextmanager
def run_lock(
    folder: str | os.PathLike, *, name: str = "out_dir", what: str = "run"
) -> Iterator[Path]:
    """Hold the run folder ``folder`` exclusively for the duration of the block.

    Parameters
    ----------
    folder : path-like
        The run folder; created if missing (and removed at the end if the run left it empty).
    name : str
        How error messages name the folder (a parameter, config key or option).
    what : str
        What runs there, for the message a second run gets (``"campaign"``).

    Yields
    ------
    Path
        The lock file, ``folder/.lock``. It holds the holder's PID, for the message a second
        run gets; the lock itself is the ``flock``, not the file.

    Raises
    ------
    InputError
        When another process holds the folder, or ``folder`` is a file.
    """
    key = Path(folder).resolve()
    path = key / LOCK_NAME
    with _guard:
        if key in _held:
            _held[key][1] += 1
        else:
            if key.exists() and not key.is_dir():
                raise InputError(f"{folder}: is a file, expected a directory", param=name)
            created = not key.exists()
            key.mkdir(parents=True, exist_ok=True)
            try:
                fd = _acquire(path, name=name, folder=folder, what=what)
            except BaseException:
                if created:
                    with contextlib.suppress(OSError):
                        key.rmdir()
                raise
            _held[key] = [fd, 1, created]
    try:
        yield path
    finally:
        with _guard:
            _held[key][1] -= 1
            if _held[key][1] == 0:
                fd, _, created = _held.pop(key)
                with contextlib.suppress(OSError):
                    path.unlink()  # while still held: a folder at rest has no lock file
                os.close(fd)  # closing the descriptor releases the flock
                if created:
                    with contextlib.suppress(OSError):
                        key.rmdir()  # only if empty: a run refused at its checks leaves nothing


def _acquire(path: Path, *, name: str, folder: str | os.PathLike, what: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:  # pragma: no cover
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            who = f" (process {holder})" if holder.isdigit() else ""
            raise InputError(
                f"{folder}: in use by another running {what}{who}; wait for it to finish or "
                "stop it, or use another folder",
                param=name,
            ) from None
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)  # locked a file its holder removed on release: take the new one
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def config_differences(previous: Any, current: Any, *, prefix: str = "") -> list[str]:
    """Dotted keys at which two JSON-like values differ, sorted.

    Mappings are compared key by key (a key present in one only differs); anything else, lists
    included, differs as a whole. Equal values give ``[]``.
    """
    if isinstance(previous, Mapping) and isinstance(current, Mapping):
        out = []
        for key in sorted(set(previous) | set(current), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in previous or key not in current:
                out.append(name)
            else:
                out += config_differences(previous[key], current[key], prefix=name)
        return out
    return [] if previous == current else [prefix or "(the whole identity)"]


def refuse_other_run(
    where: str | os.PathLike,
    *,
    previous: Any,
    current: Any,
    what: str,
    remedy: str,
) -> None:
    """Raise if ``where`` holds a run whose identity ``previous`` is not ``current``.

    Parameters
    ----------
    where : path-like or str
        The folder (or file) holding the earlier run, named in the message.
    previous : JSON-like or None
        The earlier run's identity; ``None`` when there is no earlier run (nothing to refuse).
    current : JSON-like
        This run's identity.
    what : str
        What the folder holds, e.g. ``"a surrogate study"``.
    remedy : str
        What the user can do instead.

    Raises
    ------
    InputError
        ``{where}: holds {what} of another configuration (differs in: KEYS); {remedy}``.
    """
    if previous is None:
        return
    keys = config_differences(previous, current)
    if keys:
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        raise InputError(
            f"{where}: holds {what} of another configuration (differs in: {shown}); {remedy}"
        )


def claim_run_folder(
    folder: str | os.PathLike,
    identity: Mapping[str, Any],
    *,
    filename: str,
    what: str,
    remedy: str,
) -> Path:
    """Make ``folder`` this run's: create it with ``filename`` holding ``identity``, or check
    that the identity already there is this one.

    Parameters
    ----------
    folder : path-like
        The run folder (created with its parents if missing).
    identity : mapping
        JSON-serialisable; compared as parsed JSON.
    filename : str
        The identity file inside ``folder``, e.g. ``"study.json"``.
    what, remedy : str
        As in :func:`refuse_other_run`.

    Returns
    -------
    Path
        The identity file.

    Raises
    ------
    InputError
        ``folder`` is a file, or holds a run of another identity (an unreadable identity file
        counts as another).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file, expected a directory")
    path = folder / filename
    current = json.loads(json.dumps(dict(identity)))
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = {"unreadable": str(path)}
        refuse_other_run(folder, previous=previous, current=current, what=what, remedy=remedy)
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(current, indent=1) + "\n")
    return path
