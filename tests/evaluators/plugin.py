"""Third-party style evaluators for the registry tests (loaded by module:function path)."""

from __future__ import annotations

import numpy as np


def phase_fraction(images: np.ndarray, *, phase: int = 1, scale: float = 1.0) -> np.ndarray:
    """Fraction of ``phase`` in each image, times ``scale``."""
    return scale * (images == phase).mean(axis=(1, 2))


def needs_threshold(images: np.ndarray, *, threshold: float) -> np.ndarray:
    """An evaluator with a required parameter."""
    return (images.mean(axis=(1, 2)) > threshold).astype(float)


class Flaky:
    """Fails on images whose first pixel is 7 (raises), 6 (NaN) or 5 (inf); else the mean."""

    name = "flaky"
    parameters: dict = {}  # noqa: RUF012

    def __call__(self, images: np.ndarray) -> np.ndarray:
        first = images[:, 0, 0]
        if np.any(first == 7):
            raise ValueError("pixel 7 is not allowed")
        out = images.mean(axis=(1, 2)).astype(float)
        out[first == 6] = np.nan
        out[first == 5] = np.inf
        return out
