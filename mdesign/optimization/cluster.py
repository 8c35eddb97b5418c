"""Where a campaign's evaluations run: checks on a Dask scheduler address.

Light on purpose (standard library only): the CLI checks an address before it loads anything.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from mdesign.errors import InputError

__all__ = ["check_dask_address"]

DASK_SCHEMES = ("tcp", "tls", "ws", "wss")


def check_dask_address(address: str, *, timeout: float = 3.0, name: str = "dask.address") -> str:
    """Check that a Dask scheduler address is well formed and accepts connections.

    Dask itself retries an unreachable or misspelt address for its whole connect timeout
    (23-53 s measured) before failing with a traceback; this fails in at most ``timeout``
    seconds, with one message.

    Parameters
    ----------
    address : str
        ``tcp://HOST:PORT`` (also ``tls://``, ``ws://``, ``wss://``; a bare ``HOST:PORT`` is TCP).
    timeout : float
        Seconds to wait for the TCP connection.
    name : str
        How messages name the address.

    Returns
    -------
    str
        ``address`` unchanged.
    """
    scheme, sep, _ = address.partition("://")
    scheme = scheme.lower() if sep else "tcp"
    try:
        parts = urlsplit(address if sep else f"tcp://{address}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if scheme not in DASK_SCHEMES or not host or port is None:
        raise InputError(
            f"{name}: expected a Dask scheduler address tcp://HOST:PORT, got {address!r}"
        )
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise InputError(
            f"{name}: cannot connect to {address} ({why}); is a Dask scheduler running there?"
        ) from None
    return address
