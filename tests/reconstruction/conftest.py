"""Fixtures of the reconstruction tests: small exemplars and a VGG19 state-dict file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mdesign.data import LI2018_DIR as LI2018
from mdesign.grf import grf_microstructures
from mdesign.reconstruction.vgg import _expected_shapes


@pytest.fixture(autouse=True, scope="package")
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two threads oversubscribe the cores and
    small VGG passes run several times slower (timings belong to bench/, not to tests).

    Package scope, so it is set before any module-scoped fixture runs: a function-scoped one came
    after them, and ``test_volume``'s module fixture then ran on two threads and its
    same-seed check on one, which differ in the last bits of a float32 loss."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def vgg_state() -> dict[str, torch.Tensor]:
    """A full VGG19 ``features`` state dict (keys ``N.weight``) of seeded random tensors."""
    gen = torch.Generator().manual_seed(3)
    return {
        k: torch.randn(shape, generator=gen) * (0.05 if k.endswith("weight") else 0.1)
        for k, shape in _expected_shapes().items()
    }


@pytest.fixture(scope="session")
def vgg_file(tmp_path_factory, vgg_state) -> Path:
    """``vgg_state`` saved as torchvision's full model would be: ``features.`` prefix and a
    classifier, which the loader must drop."""
    path = tmp_path_factory.mktemp("weights") / "vgg19.pth"
    full = {f"features.{k}": v for k, v in vgg_state.items()}
    full["classifier.0.weight"] = torch.zeros(4, 2)
    full["classifier.0.bias"] = torch.zeros(4)
    torch.save(full, path)
    return path


@pytest.fixture(scope="session")
def two_phase() -> np.ndarray:
    """A 48x48 periodic two-phase GRF (fraction 0.35, correlation length 3)."""
    return grf_microstructures(
        1, (48, 48), volume_fraction=0.35, correlation_length=3, seed=11
    ).images[0]


@pytest.fixture(scope="session")
def three_phase() -> np.ndarray:
    """A 40x40 periodic three-phase GRF (fractions 0.45, 0.3, 0.25)."""
    return grf_microstructures(
        1, (40, 40), volume_fraction=[0.3, 0.25], correlation_length=3, phases=3, seed=12
    ).images[0]


@pytest.fixture(scope="session")
def ceramics_crop() -> np.ndarray:
    """The central 32x32 of the Li et al. (2018) ceramics exemplar at 64x64 (a real image)."""
    return np.load(LI2018 / "ceramics_64.npy")[16:48, 16:48]
