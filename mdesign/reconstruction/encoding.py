"""Phase labels as VGG input, and back: the colour encoding of k-phase microstructures.

VGG19 expects RGB images. A k-phase label image becomes one by giving each phase a colour:

* two phases: gray levels, phase 0 black ``(0, 0, 0)`` and phase 1 white ``(1, 1, 1)``, the
  way a micrograph looks (Li et al. 2018 fed their two-phase images to VGG19 as gray);
* three phases: one indicator per channel, phase ``j`` the unit vector ``e_j`` (phase 0 red,
  1 green, 2 blue), so every pair of phases is equally far apart;
* four to eight phases: the fixed palette of the PNG output (:data:`mdesign.io.PALETTE` / 255).

The optimiser works on "pixels" in this colour space (values near [0, 1]). For two phases the
three channels are tied, so the pixels are one gray channel (``C = 1``) that is repeated to RGB;
otherwise they are the three channels (``C = 3``). :func:`to_vgg_input` makes them RGB in
``[0, 1]``; the extractor (:class:`~mdesign.reconstruction.vgg.VGG19Features`) then applies its
network's :class:`InputConvention` (:func:`normalise_input`), because each set of weights was
trained on its own input scale:

* torchvision's ImageNet weights (and the random ones): RGB in ``[0, 1]``, minus ImageNet's mean
  and divided by its standard deviation per channel (:data:`IMAGENET_INPUT`);
* the normalised VGG19 of Gatys et al. (converted from Caffe): BGR in ``0..255`` minus Caffe's
  per-channel means, no division (:data:`CAFFE_INPUT`).

:func:`soft_indicators` turns pixels into per-phase probabilities (a softmax over the negative
squared distances to the phase colours), the differentiable link to the ``S2`` term of the loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch

from mdesign.errors import InputError
from mdesign.io import PALETTE

__all__ = [
    "CAFFE_INPUT",
    "CAFFE_MEAN_BGR",
    "IMAGENET_INPUT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "InputConvention",
    "encoding_colours",
    "labels_to_pixels",
    "normalise_input",
    "pixel_channels",
    "soft_indicators",
    "to_vgg_input",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
"""Caffe's VGG means, blue, green, red, on the ``0..255`` scale (Simonyan & Zisserman 2015)."""


@dataclass(frozen=True)
class InputConvention:
    """How a VGG19 expects its input: ``(scale * image[channels] - mean) / std`` per channel.

    Parameters
    ----------
    channel_order : {"RGB", "BGR"}
        Order of the colour channels the first convolution expects.
    scale : float
        Factor from RGB in ``[0, 1]`` to the network's range (1 or 255).
    mean, std : tuple of 3 floats
        Per-channel mean and standard deviation, in ``channel_order`` and on the scaled range.
    """

    channel_order: Literal["RGB", "BGR"]
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for a state-dict file or a report)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str) -> InputConvention:
        """The inverse of :meth:`to_dict`; an :class:`InputError` naming ``source`` if invalid."""
        try:
            conv = cls(
                channel_order=str(d["channel_order"]),
                scale=float(d["scale"]),
                mean=tuple(float(v) for v in d["mean"]),
                std=tuple(float(v) for v in d["std"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source}: invalid input convention ({exc})") from None
        if conv.channel_order not in ("RGB", "BGR") or len(conv.mean) != 3 or len(conv.std) != 3:
            raise InputError(f"{source}: invalid input convention {d!r}")
        if not all(math.isfinite(v) for v in (conv.scale, *conv.mean, *conv.std)):
            raise InputError(f"{source}: input convention needs finite scale, mean and std")
        if not (conv.scale > 0 and all(s > 0 for s in conv.std)):
            raise InputError(f"{source}: input convention needs scale > 0 and std > 0")
        return conv


IMAGENET_INPUT = InputConvention(
    channel_order="RGB", scale=1.0, mean=IMAGENET_MEAN, std=IMAGENET_STD
)
"""torchvision's: RGB in ``[0, 1]``, ImageNet mean and standard deviation."""

CAFFE_INPUT = InputConvention(
    channel_order="BGR", scale=255.0, mean=CAFFE_MEAN_BGR, std=(1.0, 1.0, 1.0)
)
"""Caffe's (VGG19 of Simonyan & Zisserman, Gatys et al.): BGR in ``0..255`` minus the means."""


def pixel_channels(phases: int) -> int:
    """Channels ``C`` of the optimised pixels: 1 (gray) for two phases, else 3 (RGB)."""
    return 1 if phases == 2 else 3


def encoding_colours(phases: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Colour of each phase in pixel space.

    Parameters
    ----------
    phases : int
        k, 2 to 8.

    Returns
    -------
    Tensor, ``k x C``
        ``[[0], [1]]`` for two phases, the 3x3 identity for three, palette colours above.
    """
    if phases == 2:
        colours = np.array([[0.0], [1.0]])
    elif phases == 3:
        colours = np.eye(3)
    else:
        colours = PALETTE[:phases] / 255.0
    return torch.as_tensor(colours, dtype=dtype, device=device)


def labels_to_pixels(
    labels: np.ndarray | torch.Tensor, phases: int, *, device=None
) -> torch.Tensor:
    """Labels to their encoding colours.

    Parameters
    ----------
    labels : ndarray or Tensor, ``H x W`` or ``batch x H x W``
        Phase labels ``0..k-1``.
    phases : int
        k.

    Returns
    -------
    Tensor, ``batch x C x H x W`` (float32)
    """
    lab = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=device)
    if lab.ndim == 2:
        lab = lab[None]
    colours = encoding_colours(phases, device=lab.device)
    return colours[lab].permute(0, 3, 1, 2).contiguous()


def to_vgg_input(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels to the extractor's input: RGB, nominally in ``[0, 1]``.

    The network's own normalisation (:func:`normalise_input`) is applied by the extractor, which
    knows its weights' :class:`InputConvention`.

    Parameters
    ----------
    pixels : Tensor, ``batch x C x H x W``
        ``C = 1`` (gray, repeated to three channels) or ``C = 3``.

    Returns
    -------
    Tensor, ``batch x 3 x H x W``
    """
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


def normalise_input(rgb: torch.Tensor, convention: InputConvention) -> torch.Tensor:
    """RGB in ``[0, 1]`` to a network's input.

    Parameters
    ----------
    rgb : Tensor, ``batch x 3 x H x W``
        From :func:`to_vgg_input`.
    convention : InputConvention
        :data:`IMAGENET_INPUT`, :data:`CAFFE_INPUT` or another.

    Returns
    -------
    Tensor, ``batch x 3 x H x W``
        ``(scale * rgb[order] - mean) / std`` per channel; for :data:`CAFFE_INPUT` exactly
        ``255 * bgr - mean`` (no division).
    """
    x = rgb.flip(1) if convention.channel_order == "BGR" else rgb
    if convention.scale != 1.0:
        x = x * convention.scale
    mean = torch.tensor(convention.mean, dtype=rgb.dtype, device=rgb.device)[:, None, None]
    x = x - mean
    if any(s != 1.0 for s in convention.std):
        std = torch.tensor(convention.std, dtype=rgb.dtype, device=rgb.device)[:, None, None]
        x = x / std
    return x


def soft_indicators(
    pixels: torch.Tensor, colours: torch.Tensor, *, temperature: float
) -> torch.Tensor:
    """Differentiable phase probabilities of pixels.

    ``p_j = softmax_j(-|x - c_j|^2 / temperature)``: a pixel on colour ``c_j`` is phase ``j``
    with probability near 1 when ``temperature`` is small against the squared distance between
    colours (1 for gray and for the indicator colours).

    Parameters
    ----------
    pixels : Tensor, ``batch x C x H x W``
    colours : Tensor, ``k x C``
        From :func:`encoding_colours`.
    temperature : float
        Softness, > 0.

    Returns
    -------
    Tensor, ``batch x k x H x W``
        Non-negative, summing to 1 over the phases.
    """
    diff = pixels[:, None] - colours[None, :, :, None, None]  # batch x k x C x H x W
    return torch.softmax(-(diff**2).sum(2) / temperature, dim=1)
