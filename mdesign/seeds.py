"""Seeds: an integer ``0 <= seed < 2**32``, a :class:`numpy.random.Generator` or a
:class:`numpy.random.SeedSequence` (as in scikit-image's SPEC 7).

The integer rule suits every generator the project seeds: numpy's ``SeedSequence`` (which
refuses negatives), legacy ``RandomState`` (which refuses ``2**32`` and above),
``torch.manual_seed``, and a seed derived through ``SeedSequence.generate_state`` (32-bit
words) stays in the range. The CLI checks ``--seed`` against it when it parses the command line,
the configs check their ``seed`` fields, and seeded library entry points call
:func:`check_seed` (ints only) or :func:`seed_int` / :func:`as_seed_sequence` (any seed).

Independent child streams come from :meth:`~numpy.random.SeedSequence.spawn`
(:func:`child_seeds`). An integer seed keeps the derivation each function has always used
(``seed``, ``seed + 1``, ...) so that results pinned by tests and shipped artifacts stay the
same bytes; a ``Generator`` or ``SeedSequence`` gets spawned children.
"""

from __future__ import annotations

from numbers import Integral
from typing import Union

import numpy as np

from mdesign.errors import InputError

__all__ = ["SEED_LIMIT", "SeedLike", "as_seed_sequence", "check_seed", "child_seeds", "seed_int"]

SEED_LIMIT = 2**32

SeedLike = Union[int, np.integer, np.random.Generator, np.random.SeedSequence]  # noqa: UP007
"""What a ``seed`` parameter takes."""


def check_seed(seed, *, param: str = "seed") -> int:
    """``seed`` as an int if it is an integer ``0 <= seed < 2**32``, else an :class:`InputError`."""
    if isinstance(seed, bool) or int(seed) != seed or not 0 <= int(seed) < SEED_LIMIT:
        raise InputError(f"expected an integer 0 <= seed < 2**32, got {seed!r}", param=param)
    return int(seed)


def _is_int(seed) -> bool:
    return not isinstance(seed, (np.random.Generator, np.random.SeedSequence))


def as_seed_sequence(seed: SeedLike, *, param: str = "seed") -> np.random.SeedSequence:
    """A :class:`~numpy.random.SeedSequence` for any seed.

    An int ``s`` gives ``SeedSequence(s)`` (checked against the rule); a ``SeedSequence`` is
    returned as is; a ``Generator`` gives a sequence from four 32-bit words drawn from it (so
    the generator advances, as when it is used directly).
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, SEED_LIMIT, size=4, dtype=np.uint64))
    if not isinstance(seed, (Integral, float)) or isinstance(seed, bool):
        raise InputError(
            f"expected an integer, a numpy Generator or a SeedSequence, got {seed!r}", param=param
        )
    return np.random.SeedSequence(check_seed(seed, param=param))


def seed_int(seed: SeedLike, *, param: str = "seed") -> int:
    """An integer seed in ``[0, 2**32)`` for generators that take one (``torch.manual_seed``).

    An int is checked and returned unchanged; a ``SeedSequence`` gives its first 32-bit word
    (:meth:`~numpy.random.SeedSequence.generate_state`); a ``Generator`` draws one (advancing).
    """
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, SEED_LIMIT))
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.generate_state(1, dtype=np.uint32)[0])
    return int(as_seed_sequence(seed, param=param).entropy)


def child_seeds(seed: SeedLike, n: int, *, param: str = "seed") -> list[int]:
    """``n`` integer seeds for the independent streams a function derives from ``seed``.

    An int gives ``[seed, seed + 1, ..., seed + n - 1]``: the derivation the project used before
    seeds took generators, kept for ints so that pinned results do not change. A ``Generator``
    or ``SeedSequence`` gives one word from each of ``n`` children of
    :meth:`~numpy.random.SeedSequence.spawn`.
    """
    if _is_int(seed):
        s = check_seed(seed, param=param)
        return [s + i for i in range(int(n))]
    return [seed_int(c) for c in as_seed_sequence(seed, param=param).spawn(int(n))]
