"""Regressors from microstructure images to a property on a discriminator's trunk.

An :class:`ImageRegressor` is a :class:`~mdesign.gan.DiscriminatorTrunk` (stride-2 convolutions
and a spatial mean, ``N x 1 x H x W -> N x F``) followed by a :class:`RegressionHead` (a fixed
standardisation of the features, then ``F -> hidden -> ReLU -> 1``). The same module serves the
three network models of the study: the GAN discriminator's trunk frozen or fine-tuned (the
transferability claim of Yang et al. 2018), and the same architecture trained from scratch.

References
----------
Yang, Z. et al. "Microstructural materials design via deep adversarial learning methodology",
J. Mech. Des. 140(11), 111416 (2018).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mdesign.config import SURROGATE_DEFAULTS, DiscriminatorConfig
from mdesign.errors import InputError
from mdesign.gan.networks import Discriminator, DiscriminatorTrunk, init_weights

__all__ = [
    "ImageRegressor",
    "RegressionHead",
    "augment",
    "build_trunk",
    "feature_count",
    "init_linear",
    "trunk_architecture",
    "trunk_features",
]


class RegressionHead(nn.Module):
    """Standardised features to one value: ``(f - shift) / scale -> hidden -> ReLU -> 1``.

    ``shift`` and ``scale`` are buffers set from the training features
    (:meth:`set_standardization`), so a frozen trunk's features of very different magnitudes
    reach the MLP on one scale; they are saved with the weights.

    Parameters
    ----------
    in_features : int
        ``F``, the trunk's feature count.
    hidden : int
        Width of the hidden layer.
    """

    def __init__(self, in_features: int, hidden: int):
        super().__init__()
        self.register_buffer("shift", torch.zeros(in_features))
        self.register_buffer("scale", torch.ones(in_features))
        self.hidden = nn.Linear(in_features, hidden)
        self.out = nn.Linear(hidden, 1)

    def set_standardization(self, features: torch.Tensor) -> None:
        """Centre and scale by the mean and standard deviation of ``features`` (``n x F``)."""
        with torch.no_grad():
            self.shift.copy_(features.mean(0))
            # a feature that is constant on the training images is passed through unscaled
            self.scale.copy_(features.std(0, unbiased=False).clamp_min(1e-6))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.hidden((features - self.shift) / self.scale))
        return self.out(h).squeeze(-1)


def trunk_features(trunk: DiscriminatorTrunk, x: torch.Tensor, *, pool: str) -> torch.Tensor:
    """Spatially averaged features of a trunk: ``N x 1 x H x W -> N x F``.

    ``pool="last"``: the mean of the last block's output (``F`` = its width, the trunk's own
    ``forward``). ``pool="all"``: the means of every block's output, concatenated (``F`` = the
    sum of the widths, 240 for the default): multi-scale features, from pixel-scale texture
    to the last block's receptive field.
    """
    if pool == "last":
        return trunk(x)
    h, w = x.shape[-2:]
    if x.ndim != 4 or x.shape[1] != 1 or h % trunk.stride or w % trunk.stride:
        raise InputError(
            f"expected images N x 1 x H x W with sides multiples of {trunk.stride}, "
            f"got {tuple(x.shape)}"
        )
    out = []
    for block in trunk.features:
        x = block(x)
        out.append(x.mean((-2, -1)))
    return torch.cat(out, dim=1)


def feature_count(trunk: DiscriminatorTrunk, *, pool: str) -> int:
    """``F`` of :func:`trunk_features`."""
    if pool == "last":
        return trunk.out_features
    return sum(int(b.conv.out_channels) for b in trunk.features)


class ImageRegressor(nn.Module):
    """A trunk and a head: ``N x 1 x H x W`` (phase 1 at +1) to ``N`` standardised values."""

    def __init__(
        self,
        trunk: DiscriminatorTrunk,
        head: RegressionHead,
        *,
        pool: str = SURROGATE_DEFAULTS.network.pool,
    ):
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.pool = pool

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return trunk_features(self.trunk, x, pool=self.pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_trunk(architecture: DiscriminatorConfig) -> DiscriminatorTrunk:
    """A trunk of the discriminator described by ``architecture`` (untrained weights)."""
    disc = Discriminator(
        architecture.widths, norm=architecture.norm, leaky_slope=architecture.leaky_slope
    )
    return DiscriminatorTrunk(disc.features, out_features=disc.out_features, stride=disc.stride)


def trunk_architecture(trunk: DiscriminatorTrunk) -> DiscriminatorConfig:
    """The :class:`DiscriminatorConfig` that rebuilds ``trunk`` (read from its layers)."""
    blocks = list(trunk.features)
    widths = tuple(int(b.conv.out_channels) for b in blocks)
    norms = {type(b.norm).__name__ for b in blocks[1:]}
    norm = "none"
    if "BatchNorm2d" in norms:
        norm = "batch"
    elif "InstanceNorm2d" in norms:
        norm = "instance"
    return DiscriminatorConfig(widths=widths, norm=norm, leaky_slope=float(blocks[0].slope))


def init_linear(layer: nn.Linear, *, generator: torch.Generator) -> nn.Linear:
    """PyTorch's default ``nn.Linear`` initialisation, drawn from ``generator``.

    Weights and bias uniform in ``+-1/sqrt(fan_in)`` (the bound ``kaiming_uniform_(a=sqrt(5))``
    gives), so a seeded model does not depend on the global random state.
    """
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound)
        layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * bound)
    return layer


def new_head(in_features: int, hidden: int, *, generator: torch.Generator) -> RegressionHead:
    """A seeded :class:`RegressionHead`."""
    head = RegressionHead(in_features, hidden)
    init_linear(head.hidden, generator=generator)
    init_linear(head.out, generator=generator)
    return head


def scratch_trunk(architecture: DiscriminatorConfig, *, seed: int) -> DiscriminatorTrunk:
    """A trunk at the DCGAN initialisation (Radford et al. 2016), seeded."""
    return init_weights(build_trunk(architecture), seed=seed)


def augment(x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Random property-preserving symmetries of a batch ``N x 1 x H x W``.

    Each image is flipped along x and along y with probability 1/2 each and shifted
    periodically by a uniform random offset. These keep the effective conductivity along x (a
    mirror maps the periodic medium to one with the same ``sigma_xx``; a shift is the same
    medium) and the normal-incidence absorption; a transpose would swap x and y and is not used.
    """
    n, _, h, w = x.shape
    # random numbers from the (CPU) generator, moved to the images' device
    dev = x.device
    flip_x = (torch.rand(n, generator=generator) < 0.5).to(dev)
    flip_y = (torch.rand(n, generator=generator) < 0.5).to(dev)
    x = torch.where(flip_x[:, None, None, None], x.flip(-1), x)
    x = torch.where(flip_y[:, None, None, None], x.flip(-2), x)
    dy = torch.randint(0, h, (n,), generator=generator).to(dev)
    dx = torch.randint(0, w, (n,), generator=generator).to(dev)
    rows = (torch.arange(h, device=dev)[None, :] - dy[:, None]) % h  # n x h
    cols = (torch.arange(w, device=dev)[None, :] - dx[:, None]) % w  # n x w
    idx = torch.arange(n, device=dev)[:, None, None]
    return x[:, 0][idx, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def flip_views(x: torch.Tensor) -> torch.Tensor:
    """The four mirror images of a batch (identity, x, y, both): ``4N x 1 x H x W``."""
    return torch.cat([x, x.flip(-1), x.flip(-2), x.flip(-2, -1)])
