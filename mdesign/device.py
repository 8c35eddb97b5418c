"""Where computations run: CUDA when present, else the CPU, with no code change."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["default_device", "single_thread"]


def default_device(device: torch.device | str | None = None) -> torch.device:
    """``device`` if given, else ``cuda`` when available, else ``cpu``."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def single_thread(device: torch.device | str | None = None) -> Iterator[None]:
    """Run torch's CPU ops on one thread inside the block, then restore the thread count.

    For work made of many small kernels (a GP fit on a few hundred points, a 128x128
    conductivity solve), intra-op threads gain little, and on shared cores OpenMP's
    spin-waiting costs a great deal (figures in the docs' performance page). Nothing changes
    when ``device`` is not the CPU.
    """
    if (device is not None and torch.device(device).type != "cpu") or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
