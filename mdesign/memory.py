"""A memory budget: refuse work the machine cannot hold, before allocating it.

Each stage estimates its peak memory from the shapes it is asked for (no allocation) and calls
:func:`check_memory`, which raises :class:`~mdesign.errors.InputError` when the estimate exceeds
the budget. The budget is half of the memory available now (``MemAvailable`` of
``/proc/meminfo``, else ``os.sysconf``), leaving room for the rest of the machine, or the limit
set in the environment variable ``MDESIGN_MEMORY_LIMIT`` (bytes, or with a suffix ``K``, ``M``,
``G``, ``T``: ``MDESIGN_MEMORY_LIMIT=2G``). Estimates are rough upper bounds of the arrays a
stage holds at once; they keep a typo (``--size 100000``) from becoming a ``MemoryError`` or a
machine swapping, they do not promise that a run just under the budget succeeds.
"""

from __future__ import annotations

import os
import re

from mdesign.errors import InputError

__all__ = ["ENV_LIMIT", "available_memory", "check_memory", "format_bytes", "memory_budget"]

ENV_LIMIT = "MDESIGN_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def available_memory() -> int | None:
    """Bytes of memory available to new allocations now, or None where this cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def memory_budget() -> int | None:
    """The budget in bytes: ``MDESIGN_MEMORY_LIMIT`` when set, else half the available memory.

    Returns None (no limit) where neither is known.
    """
    text = os.environ.get(ENV_LIMIT, "").strip()
    if text:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", text, flags=re.IGNORECASE)
        if m is None:
            raise InputError(
                f"{ENV_LIMIT}: expected bytes, optionally with K, M, G or T (e.g. 2G), got {text!r}"
            )
        return int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    avail = available_memory()
    return None if avail is None else avail // 2


def format_bytes(n: float) -> str:
    """``1.5 GB``-style text (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(nbytes: float, *, what: str, param: str | None = None) -> None:
    """Raise :class:`InputError` when ``nbytes`` exceeds :func:`memory_budget`.

    Parameters
    ----------
    nbytes : float
        Estimated peak memory of the work.
    what : str
        The work, for the message (``"4 images of 100000 x 100000"``).
    param : str, optional
        The parameter that sets the size (``"shape"``, ``"n"``), named by the error.
    """
    budget = memory_budget()
    if budget is not None and nbytes > budget:
        raise InputError(
            f"{what} needs about {format_bytes(nbytes)} of memory, more than the "
            f"{format_bytes(budget)} budget (half the available memory, or {ENV_LIMIT})",
            param=param,
        )
