"""Where computations run: CUDA when present, else the CPU, with no code change."""

from __future__ import annotations

import torch

__all__ = ["default_device"]


def default_device(device: torch.device | str | None = None) -> torch.device:
    """``device`` if given, else ``cuda`` when available, else ``cpu``."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
