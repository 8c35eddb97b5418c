"""Phase labels as VGG input, and back: the colour encoding of k-phase microstructures.

VGG19 expects RGB images. A k-phase label image becomes one by giving each phase a colour:

* two phases: gray levels, phase 0 black ``(0, 0, 0)`` and phase 1 white ``(1, 1, 1)``, the
  way a micrograph looks (Li et al. 2018 fed their two-phase images to VGG19 as gray);
* three phases: one indicator per channel, phase ``j`` the unit vector ``e_j`` (phase 0 red,
  1 green, 2 blue), so every pair of phases is equally far apart;
* four to eight phases: the fixed palette of the PNG output (:data:`mdesign.io.PALETTE` / 255).

The optimiser works on "pixels" in this colour space (values near [0, 1]). For two phases the
three channels are tied, so the pixels are one gray channel (``C = 1``) that is repeated to RGB;
otherwise they are the three channels (``C = 3``). :func:`to_vgg_input` then applies ImageNet's
mean/std normalisation, which torchvision's VGG19 weights were trained with.

:func:`soft_indicators` turns pixels into per-phase probabilities (a softmax over the negative
squared distances to the phase colours), the differentiable link to the ``S2`` term of the loss.
"""

from __future__ import annotations

import numpy as np
import torch

from mdesign.io import PALETTE

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "encoding_colours",
    "labels_to_pixels",
    "pixel_channels",
    "soft_indicators",
    "to_vgg_input",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
    """Pixels to ImageNet-normalised RGB.

    Parameters
    ----------
    pixels : Tensor, ``batch x C x H x W``
        ``C = 1`` (gray, repeated to three channels) or ``C = 3``.

    Returns
    -------
    Tensor, ``batch x 3 x H x W``
        ``(rgb - mean) / std`` per channel.
    """
    rgb = pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels
    mean = torch.tensor(IMAGENET_MEAN, dtype=pixels.dtype, device=pixels.device)
    std = torch.tensor(IMAGENET_STD, dtype=pixels.dtype, device=pixels.device)
    return (rgb - mean[:, None, None]) / std[:, None, None]


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
