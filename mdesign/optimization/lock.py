"""One campaign per folder: an advisory lock on ``DIR/.lock``.

Two campaigns writing one folder would evaluate the same batches twice and report from partial
data. :func:`campaign_lock` takes an exclusive ``flock`` on a lock file in the folder, without
waiting: a second campaign on a folder in use is refused at once. The kernel releases a
``flock`` when the last descriptor of its holder closes, so a killed campaign (even by SIGKILL)
leaves no stale lock behind, unlike a PID file.

The holder removes the lock file when it releases the lock (and a process that locked a file
removed meanwhile tries again), so a folder at rest holds no lock file. Re-entrant within one
process (the CLI takes the lock before the flow starts, and the flow's
:func:`~mdesign.optimization.campaign.run_campaign` takes it again). POSIX only: on a system
without :mod:`fcntl` the folder is not locked.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from mdesign.errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK_NAME", "campaign_lock"]

LOCK_NAME = ".lock"

# folder (resolved) -> [descriptor, depth]: the locks this process holds
_held: dict[Path, list[int]] = {}
_guard = threading.Lock()


@contextlib.contextmanager
def campaign_lock(folder: str | Path, *, name: str = "out_dir") -> Iterator[Path]:
    """Hold the campaign folder ``folder`` exclusively for the duration of the block.

    Parameters
    ----------
    folder : path-like
        The campaign folder; created if missing.
    name : str
        How error messages name the folder (a parameter, config key or option).

    Yields
    ------
    Path
        The lock file, ``folder/.lock``. It holds the holder's PID, for the message a second
        campaign gets; the lock itself is the ``flock``, not the file.

    Raises
    ------
    InputError
        When another process holds the folder.
    """
    key = Path(folder).resolve()
    path = key / LOCK_NAME
    with _guard:
        if key in _held:
            _held[key][1] += 1
            acquired = None
        else:
            key.mkdir(parents=True, exist_ok=True)
            acquired = _acquire(path, name=name, folder=folder)
            _held[key] = [acquired, 1]
    try:
        yield path
    finally:
        with _guard:
            _held[key][1] -= 1
            if _held[key][1] == 0:
                fd = _held.pop(key)[0]
                with contextlib.suppress(OSError):
                    path.unlink()  # while still held: a folder at rest has no lock file
                os.close(fd)  # closing the descriptor releases the flock


def _acquire(path: Path, *, name: str, folder: str | Path) -> int:
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
                f"{folder}: in use by another running campaign{who}; wait for it to "
                "finish or stop it, or use another folder",
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
