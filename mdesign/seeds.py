"""The one seed rule: an integer ``0 <= seed < 2**32``.

Every generator the project seeds takes such a seed: numpy's :class:`~numpy.random.SeedSequence`
(which refuses negatives) and legacy ``RandomState`` (which refuses ``2**32`` and above),
``torch.manual_seed``, and a seed derived from one through ``SeedSequence.generate_state``
(32-bit words) stays in the range. The CLI checks ``--seed`` against it when it parses the
command line, the configs check their ``seed`` fields, and seeded library entry points call
:func:`check_seed`.
"""

from __future__ import annotations

from mdesign.errors import InputError

__all__ = ["SEED_LIMIT", "check_seed"]

SEED_LIMIT = 2**32


def check_seed(seed, *, param: str = "seed") -> int:
    """``seed`` as an int if it is an integer ``0 <= seed < 2**32``, else an :class:`InputError`."""
    if isinstance(seed, bool) or int(seed) != seed or not 0 <= int(seed) < SEED_LIMIT:
        raise InputError(f"expected an integer 0 <= seed < 2**32, got {seed!r}", param=param)
    return int(seed)
