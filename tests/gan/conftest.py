"""Tiny seeded GAN fixtures: narrow networks (32x upsampling, so 1x1 latents give 32x32)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from mdesign.config import GANConfig, config_from_dict
from mdesign.gan.networks import Discriminator, Generator, init_weights
from mdesign.grf import grf_microstructures

TINY = {
    "generator": {"latent_channels": 1, "latent_size": 1, "widths": [16, 8, 8, 4]},
    "discriminator": {"widths": [4, 8, 8, 16]},
    "train": {"batch_size": 8, "epochs": 2, "grid_size": 4, "monitor_size": 8, "seed": 3},
    "sample": {"batch_size": 16},
}


def tiny_config(**sections) -> GANConfig:
    """The tiny config, with sections updated (``train={"loss": "wgan-gp"}``)."""
    raw = {k: dict(v) for k, v in TINY.items()}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return config_from_dict(GANConfig, raw, source="tiny")


@pytest.fixture
def tiny() -> GANConfig:
    return tiny_config()


@pytest.fixture
def tiny_yaml(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="session")
def tiny_images() -> np.ndarray:
    """32 periodic 32x32 two-phase GRF images."""
    return grf_microstructures(
        32, (32, 32), volume_fraction=(0.3, 0.5), correlation_length=(2, 3), seed=11
    ).images


def tiny_networks(config: GANConfig, *, seed: int = 0, warm: bool = True):
    """Seeded tiny networks; ``warm`` gives the generator non-trivial BatchNorm statistics."""
    import torch

    g = init_weights(Generator.from_config(config), seed=seed)
    d = init_weights(Discriminator.from_config(config), seed=seed + 1)
    if warm:
        gen = torch.Generator().manual_seed(seed)
        g.train()
        with torch.no_grad():
            for _ in range(5):
                g(torch.rand((8, g.in_channels, 2, 2), generator=gen) * 2 - 1)
            # move the norms off their initial values, so folding them is not an identity
            for m in g.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.mul_(1.3)
                    m.bias.add_(0.1)
    return g.eval(), d.eval()
