"""Where a campaign's evaluations run: checks on a Dask scheduler address.

Light on purpose (standard library only): the CLI checks an address before it loads anything.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from mdesign.errors import InputError

__all__ = ["check_dask_address"]

DASK_SCHEMES = ("tcp", "tls", "ws", "wss")


def check_dask_address(address: str, *, timeout: float = 3.0, name: str = "dask.address") -> str:
    """Check that a Dask scheduler address is well formed and accepts connections.

    Dask itself retries an unreachable or misspelt address for its whole connect timeout (tens
    of seconds; the docs' performance page) before failing with a traceback; this fails in at
    most ``timeout`` seconds, with one message.

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
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise InputError(
            f"{name}: cannot connect to {address} ({why}); is a Dask scheduler running there?"
        ) from None
    with sock:
        if scheme == "tcp" and not _sends_dask_handshake(sock, deadline):
            raise InputError(
                f"{name}: {address} accepts connections but is not a Dask scheduler (no Dask "
                f"handshake within {timeout:g} s); check the host and port"
            )
    return address


def _sends_dask_handshake(sock: socket.socket, deadline: float) -> bool:
    """Whether the peer starts with a Dask TCP message: a Dask server writes its handshake as
    soon as a connection is accepted, prefixed by its length (8 bytes, little-endian); an HTTP
    or SSH server sends nothing or text."""
    head = b""
    try:
        while len(head) < 8:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = sock.recv(8 - len(head))
            if not chunk:
                return False
            head += chunk
    except OSError:  # timed out, or reset
        return False
    return 0 < int.from_bytes(head, "little") < 1 << 24
