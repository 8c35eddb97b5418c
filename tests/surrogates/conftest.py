"""Tiny seeded fixtures for the surrogates: 32x32 GRF images, narrow trunks, short fits."""

from __future__ import annotations

import numpy as np
import pytest

from mdesign.config import (
    GRF_DEFAULTS,
    DiscriminatorConfig,
    SurrogateConfig,
    SurrogateNetworkConfig,
    SurrogateS2Config,
    config_from_dict,
)
from mdesign.evaluators import effective_conductivity
from mdesign.grf import grf_microstructures

ARCH = DiscriminatorConfig(widths=(8, 16))
"""A narrow two-block trunk (stride 4, 24 multi-scale features)."""

NET = SurrogateNetworkConfig(
    head_hidden=16,
    batch_size=16,
    max_steps=60,
    patience_steps=30,
    head_steps=300,
    head_patience=50,
    min_val=4,
    ensemble_size=2,
)
S2 = SurrogateS2Config(max_distance=4, n_components=4)

GRF_META = {
    "command": "grf",
    "seed": 0,
    "shape": [32, 32],
    "volume_fraction": "0.3:0.6",
    "correlation_length": "2:3",
    "anisotropy": None,
    "angle": None,
    "config": GRF_DEFAULTS.model_dump(mode="json"),
}
"""The ``meta`` of an ``mdesign grf`` run, as a tiny GAN's ``data_meta`` records it."""


def tiny_surrogate_config(**study) -> SurrogateConfig:
    raw = {
        "network": NET.model_dump(),
        "s2": S2.model_dump(),
        "screen": {"top_k": 3, "kappa": 1.0},
        "study": {
            "sizes": [8, 12],
            "seeds": 2,
            "n_pool": 16,
            "n_test": 12,
            "n_gan_test": 8,
            "models": ["frozen", "finetune", "scratch", "s2_gp"],
            "tasks": [
                {
                    "name": "c10",
                    "evaluator": "effective_conductivity",
                    "params": {"conductivities": [1, 10], "refinement": 1},
                },
                {
                    "name": "c3",
                    "evaluator": "effective_conductivity",
                    "params": {"conductivities": [1, 3], "refinement": 1},
                },
            ],
            "cross": [{"source": "c10", "target": "c3"}],
            "ship": {"task": "c10", "model": "frozen", "size": 12, "ensemble_size": 3},
            **study,
        },
    }
    return config_from_dict(SurrogateConfig, raw, source="tiny")


@pytest.fixture(scope="session")
def images() -> np.ndarray:
    """240 periodic 32x32 two-phase images, fractions 0.3-0.6, correlation lengths 2-3."""
    return grf_microstructures(
        240, (32, 32), volume_fraction=(0.3, 0.6), correlation_length=(2, 3), seed=5
    ).images


@pytest.fixture(scope="session")
def c10(images) -> np.ndarray:
    """Effective conductivity along x at contrast 10 (one cell per pixel: fast)."""
    return effective_conductivity(images, conductivities=(1, 10), refinement=1)


@pytest.fixture(scope="session")
def tiny_gan_path(tmp_path_factory):
    """A tiny (untrained, seeded) GAN checkpoint whose data_meta describes 32x32 GRF images."""
    from mdesign.config import GANConfig
    from mdesign.gan.checkpoint import save_checkpoint
    from mdesign.gan.networks import Discriminator, Generator, init_weights

    config = config_from_dict(
        GANConfig,
        {
            "generator": {"latent_channels": 1, "latent_size": 1, "widths": [16, 8, 8, 4]},
            "discriminator": ARCH.model_dump(),
        },
    )
    g = init_weights(Generator.from_config(config), seed=0).eval()
    d = init_weights(Discriminator.from_config(config), seed=1).eval()
    path = tmp_path_factory.mktemp("gan") / "checkpoint.pt"
    meta = {"n_images": 100, "shape": [32, 32], "sha256": "0" * 64, "grf": GRF_META}
    save_checkpoint(path, generator=g, discriminator=d, config=config, epoch=1, data_meta=meta)
    return path


@pytest.fixture(scope="session")
def tiny_gan(tiny_gan_path):
    from mdesign.gan import load_checkpoint

    return load_checkpoint(tiny_gan_path, device="cpu")


@pytest.fixture(autouse=True, scope="package")
def one_torch_thread():
    """Tiny networks run fastest on one thread (and the CI machine's cores are shared)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
