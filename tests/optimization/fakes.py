"""A small analytic design space for campaign tests (no GAN training needed).

A latent ``z`` (``1 x 2 x 2``) sets the amplitudes of four smooth periodic modes added to a fixed
seeded field; the image is the field's positive part (64x64). Its phase-1 fraction rises with
``sum(z)``, so BO has a real signal to find. Used through the ``factory`` key of a space spec.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from mdesign.grf import gaussian_random_field, grf_microstructures


class FakeSpace:
    latent_shape = (1, 2, 2)
    image_shape = (64, 64)
    dim = 4

    def __init__(
        self,
        seed: int = 0,
        fail_above: float | None = None,
        delay: float = 0.0,
        pid_dir: str | None = None,
    ) -> None:
        self.base = (
            gaussian_random_field(1, self.image_shape, correlation_length=4, seeds=[seed])[0] * 0.5
        )
        y, x = np.mgrid[:64, :64] * (2 * np.pi / 64)
        self.modes = np.stack([np.cos(x) + 1, np.cos(y) + 1, np.cos(x + y) + 1, np.ones_like(x)])
        self.fail_above = fail_above
        self.delay = delay
        self.pid_dir = pid_dir

    def decode(self, X):
        X = np.asarray(X, dtype=np.float64).reshape(-1, self.dim)
        if self.delay:
            time.sleep(self.delay)
        if self.pid_dir:  # which process decoded (the Dask test checks the workers did)
            Path(self.pid_dir, str(os.getpid())).touch()
        if self.fail_above is not None and (X[:, 0] > self.fail_above).any():
            raise RuntimeError("decoder failure (test)")
        fields = self.base[None] + 0.4 * np.einsum("nk,khw->nhw", X, self.modes)
        return (fields > 0).astype(np.uint8)

    def grf(self, seed: int):
        return grf_microstructures(
            1, self.image_shape, volume_fraction=(0.3, 0.6), correlation_length=4, seed=int(seed)
        ).images


def make_space(**kwargs) -> FakeSpace:
    return FakeSpace(**kwargs)


def flaky_fraction(images: np.ndarray, *, nan_above: float = 0.6) -> np.ndarray:
    """An evaluator (``module:function``) that returns NaN for designs above a phase-1 fraction."""
    vf = (images == 1).reshape(images.shape[0], -1).mean(1)
    return np.where(vf > nan_above, np.nan, vf)


def not_a_space(**kwargs) -> dict:
    """A factory that returns the wrong type of object."""
    return {"dim": 4, **kwargs}


class FloatSpace(FakeSpace):
    """Decodes to the field itself, not to labels."""

    def decode(self, X):
        X = np.asarray(X, dtype=np.float64).reshape(-1, self.dim)
        return self.base[None] + 0.4 * np.einsum("nk,khw->nhw", X, self.modes)


def capped_fraction(images: np.ndarray, *, cap: float = 0.5) -> np.ndarray:
    """An evaluator whose best designs are not the phase-1 fraction's: the fraction, less twice
    its excess over ``cap`` (a "true" property that a fraction screening overshoots)."""
    vf = (images == 1).reshape(images.shape[0], -1).mean(1)
    return vf - 2 * np.maximum(vf - cap, 0)
