"""Run folders that resume: refuse one that holds a run of another configuration.

A training run (``mdesign train``), a surrogate study and a design campaign each write into a
folder and resume when rerun on it. Mixing the results of two configurations in one folder
would be silent and wrong, so each records what identifies its run (the config, the inputs'
digests) and a rerun compares: the same identity resumes, another is refused by
:func:`refuse_other_run` with the keys that differ. :func:`claim_run_folder` keeps the identity
in a JSON file of the folder; a run that keeps it elsewhere (a checkpoint, a database) passes it
to :func:`refuse_other_run` directly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mdesign.errors import InputError
from mdesign.io import atomic_path

__all__ = ["claim_run_folder", "config_differences", "refuse_other_run"]


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
