"""The DCGAN networks of the latent design space (Yang et al. 2018).

* :class:`Generator`: a fully convolutional stack of upsampling layers (BatchNorm + ReLU, tanh out)
  mapping a latent map ``N x C x h x w`` to an image ``N x 1 x (s h) x (s w)``, ``s = 2**depth`` (32
  by default: a 4x4 latent gives 128x128). Each layer doubles the sides by a stride-2 transposed
  convolution (kernel 4; the paper's DCGAN), a resize-convolution (nearest-neighbour upsampling,
  then a 3x3 convolution; Odena et al. 2016) or the transposed convolution followed by a binomial
  filter (``blur``); the last two leave no checkerboard. ``periodic=True`` pads circularly, so the
  output tiles seamlessly.
* :class:`Discriminator`: stride-2 convolutions with LeakyReLU, then a head that averages the last
  feature map over space (optionally with its standard deviation) into one logit, so any input whose
  sides are divisible by ``2**len(widths)`` is accepted.
* :class:`DiscriminatorTrunk`: its convolutional trunk with global average pooling, a feature
  extractor ``N x 1 x H x W -> N x F`` for structure-property models.
* :class:`FusedGenerator`: the generator for inference, BatchNorm folded into the convolutions,
  channels-last; the same images as the generator in eval mode.

Images enter and leave the networks as floats with phase 0 at -1 and phase 1 at +1
(:func:`labels_to_signed`).

References
----------
Yang, Z., Li, X., Brinson, L. C., Choudhary, A. N., Chen, W. & Agrawal, A. "Microstructural
materials design via deep adversarial learning methodology", J. Mech. Des. 140(11), 111416 (2018).
Radford, A., Metz, L. & Chintala, S. "Unsupervised representation learning with deep
convolutional generative adversarial networks", ICLR (2016).
Odena, A., Dumoulin, V. & Olah, C. "Deconvolution and checkerboard artifacts", Distill (2016).
Karras, T., Laine, S., Aittala, M., Hellsten, J., Lehtinen, J. & Aila, T. "Analyzing and
improving the image quality of StyleGAN", CVPR (2020).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mdesign.config import GAN_DEFAULTS, GANConfig
from mdesign.errors import InputError

__all__ = [
    "Discriminator",
    "DiscriminatorTrunk",
    "FusedGenerator",
    "Generator",
    "broadcast_global",
    "discriminator_trunk",
    "init_weights",
    "labels_to_signed",
]

_G = GAN_DEFAULTS.generator
_D = GAN_DEFAULTS.discriminator
_POOLS = {"mean": 1, "mean_std": 2}
"""Discriminator poolings and the features per channel each gives the head."""


def labels_to_signed(labels: np.ndarray | torch.Tensor, *, device=None) -> torch.Tensor:
    """Two-phase labels ``N x H x W`` to the networks' input ``N x 1 x H x W``, phase 1 at +1.

    Phase 0 maps to -1 and phase 1 to +1, the range of the generator's tanh.
    """
    x = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if x.ndim == 2:
        x = x[None]
    return (x.to(device=device, dtype=torch.float32) * 2 - 1).unsqueeze(1)


def up_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, periodic: bool
) -> torch.Tensor:
    """Stride-2, kernel-4 transposed convolution doubling each side, optionally periodic.

    Parameters
    ----------
    x : Tensor, ``N x C_in x h x w``
    weight : Tensor, ``C_in x C_out x 4 x 4``
    bias : Tensor, ``C_out``, or None
    periodic : bool
        False: zero padding (``padding=1``, PyTorch's ``ConvTranspose2d``). True: the input is
        read on the torus, so the output, ``N x C_out x 2h x 2w``, is the periodic transposed
        convolution: output ``o`` gathers inputs ``i`` with ``o = 2 i - 1 + k (mod 2h)``.

    Notes
    -----
    The periodic form pads the input circularly by one cell, which brings in the inputs
    ``i = -1`` and ``i = h`` that reach across the border, and crops three output pixels from
    each side (``padding=3``): with the input shifted by one cell, output ``o`` sits at
    ``o + 2 + 1``.
    """
    if periodic:
        x = F.pad(x, (1, 1, 1, 1), mode="circular")
        return F.conv_transpose2d(x, weight, bias, stride=2, padding=3)
    return F.conv_transpose2d(x, weight, bias, stride=2, padding=1)


def resize_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, periodic: bool
) -> torch.Tensor:
    """Resize-convolution doubling each side: nearest-neighbour upsampling, then a 3x3 convolution.

    Parameters
    ----------
    x : Tensor, ``N x C_in x h x w``
    weight : Tensor, ``C_out x C_in x 3 x 3``
    bias : Tensor, ``C_out``, or None
    periodic : bool
        False: zero padding of one pixel. True: circular padding, so the output,
        ``N x C_out x 2h x 2w``, is the convolution on the torus.

    Notes
    -----
    Every output pixel gathers the same number of weights, so unlike a stride-2 transposed
    convolution with a free kernel of 4 it cannot leave a pattern of period 2 in its output
    (Odena et al. 2016). The reach is the transposed convolution's: input cells ``a..b`` affect
    outputs ``2a - 1 .. 2b + 2``.

    It is computed as that transposed convolution (:func:`up_conv`) with the tied kernel the
    resize implies, which saves building the upsampled copy (faster on a CPU). Along
    each axis, with the 3 taps ``(a, b, c)`` the even outputs gather ``a x[i-1] + (b + c) x[i]``
    and the odd ones ``(a + b) x[i] + c x[i+1]``: the 4-tap kernel ``(c, b + c, a + b, a)``.
    """
    kernel = torch.einsum(
        "ka,oiab,lb->iokl", _RESIZE_TAPS.to(weight), weight, _RESIZE_TAPS.to(weight)
    )
    return up_conv(x, kernel, bias, periodic=periodic)


# row k: which of the 3x3 convolution's taps reach tap k of the equivalent 4x4 transposed kernel
_RESIZE_TAPS = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def blur_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, periodic: bool
) -> torch.Tensor:
    """Stride-2 transposed convolution (kernel 4), then the binomial filter ``[1, 2, 1] / 2``.

    Parameters
    ----------
    x : Tensor, ``N x C_in x h x w``
    weight : Tensor, ``C_in x C_out x 4 x 4``, a free transposed-convolution kernel
    bias : Tensor, ``C_out``, or None; added after the filter
    periodic : bool
        False: the filter is applied to the uncropped transposed convolution (the ``2h + 2``
        outputs of ``padding=0``) and keeps the ``2h`` whose taps lie inside it: the same as one
        transposed convolution with the 6x6 kernel ``weight`` convolved with the filter
        (``padding=2``). True: on the torus, so the output, ``N x C_out x 2h x 2w``, tiles.

    Notes
    -----
    The filter's response vanishes at the period 2 (``1 - 2 + 1 = 0``), so the four sub-lattices
    of the output see the same total weight whatever the kernel: a constant input gives a
    constant output, and the layer cannot leave the checkerboard a free transposed convolution
    does (Odena et al. 2016). Unlike a resize-convolution the kernel stays free, with the
    transposed convolution's parameters. This is the upsampling of StyleGAN2 (Karras et al.
    2020: a stride-2 transposed convolution, then a low-pass with the gain ``2**2``) with the
    shortest such filter. The gain matters at the tanh output: with a filter of unit gain the
    images of a training run stayed grey (far more pixels below 0.9 in magnitude than with the
    paper's layer; the performance page), which the discriminator exploited.
    """
    if periodic:
        x = F.pad(x, (1, 1, 1, 1), mode="circular")
        y = F.conv_transpose2d(x, weight, None, stride=2, padding=2)
    else:
        y = F.conv_transpose2d(x, weight, None, stride=2, padding=0)
    y = (y[..., :-2, :] + 2 * y[..., 1:-1, :] + y[..., 2:, :]) * 0.5
    y = (y[..., :-2] + 2 * y[..., 1:-1] + y[..., 2:]) * 0.5
    return y if bias is None else y + bias[:, None, None]


_UPSAMPLERS = {"transposed": up_conv, "resize": resize_conv, "blur": blur_conv}

# the binomial filter [1, 2, 1] / 2 along each axis, as one 3x3 kernel
_BLUR_TAPS = torch.tensor([1.0, 2.0, 1.0])
_BLUR_KERNEL = torch.outer(_BLUR_TAPS, _BLUR_TAPS) / 4


def _blur_depthwise(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, periodic: bool
) -> torch.Tensor:
    """:func:`blur_conv` with its filter as a depthwise 3x3 convolution (and the bias in it).

    The same map to float rounding; on a CPU about 3x faster on channels-last activations than
    the filter's shifted sums, which copy strided slices.
    """
    if periodic:
        x = F.pad(x, (1, 1, 1, 1), mode="circular")
    y = F.conv_transpose2d(x, weight, None, stride=2, padding=2 if periodic else 0)
    c = y.shape[1]
    k = _BLUR_KERNEL.to(y).expand(c, 1, 3, 3).contiguous(memory_format=torch.channels_last)
    return F.conv2d(y, k, bias, groups=c)


def _subpixel_kernel(weight: torch.Tensor) -> torch.Tensor:
    """The kernel ``4 C_out x C_in x 3 x 3`` of :func:`blur_conv` as a sub-pixel convolution.

    :func:`blur_conv` is one transposed convolution (stride 2, ``padding=2``) with the 6x6
    kernel ``K`` = ``weight`` convolved with the filter. Output pixel ``(2m + r, 2n + s)``
    gathers ``x[m - 1 + t, n - 1 + u] K[4 - 2t + r, 4 - 2u + s]``, ``t, u`` in ``0..2``: a 3x3
    convolution (``padding=1``) to the four phases ``(r, s)``, interleaved by
    :func:`torch.nn.functional.pixel_shuffle` (channel ``4 o + 2 r + s``).
    """
    c_in, c_out = weight.shape[:2]
    w = weight.detach().to(torch.float32).contiguous().reshape(c_in * c_out, 1, 4, 4)
    k6 = F.conv2d(w, _BLUR_KERNEL[None, None], padding=2).reshape(c_in, c_out, 6, 6)
    idx = torch.tensor([[4 - 2 * t + r for t in range(3)] for r in range(2)])  # r x t
    phases = k6[:, :, idx[:, :, None, None], idx[None, None]]  # C_in C_out r t s u
    return phases.permute(1, 2, 4, 0, 3, 5).reshape(4 * c_out, c_in, 3, 3).contiguous()


def _blur_subpixel(
    x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, *, periodic: bool
) -> torch.Tensor:
    """:func:`blur_conv` by its sub-pixel kernel (:func:`_subpixel_kernel`): one 3x3 convolution
    to ``4 C_out`` channels and a pixel shuffle; for few output channels (the generator's last
    layer) several times faster on a CPU than the transposed convolution and the filter."""
    b = None if bias is None else bias.repeat_interleave(4)
    if periodic:
        y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), kernel, b)
    else:
        y = F.conv2d(x, kernel, b, padding=1)
    if not y.is_contiguous(memory_format=torch.channels_last):
        return F.pixel_shuffle(y, 2)
    # channels-last: the shuffle as one copy of the pixels' (o, r, s) channels to their places
    # (pixel_shuffle's own copy of a channels-last tensor is several times slower)
    n, c4, h, w = y.shape
    y = y.permute(0, 2, 3, 1).reshape(n, h, w, c4 // 4, 2, 2)
    return y.permute(0, 3, 1, 4, 2, 5).reshape(n, c4 // 4, 2 * h, 2 * w)


def _upsample_layer(in_channels: int, out_channels: int, *, upsample: str, bias: bool):
    if upsample in ("transposed", "blur"):
        return nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=bias)
    if upsample == "resize":
        return nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=bias)
    raise InputError(f"upsample must be 'transposed', 'resize' or 'blur', got {upsample!r}")


def broadcast_global(z: torch.Tensor, global_channels: int) -> torch.Tensor:
    """The latent map ``N x (C + G) x h x w`` with its last ``G`` channels replaced by their
    spatial mean: one value per image and channel, broadcast over the map (unchanged if
    ``G = 0``)."""
    if not global_channels:
        return z
    c = z.shape[1] - int(global_channels)
    # the mean in double precision is exact for a constant channel (the prior's), so the map
    # passes through unchanged
    g = z[:, c:].double().mean((-2, -1), keepdim=True).to(z.dtype)
    g = g.expand(-1, -1, *z.shape[-2:])
    return torch.cat([z[:, :c], g], dim=1)


def init_weights(module: nn.Module, *, seed: int) -> nn.Module:
    """DCGAN initialisation (Radford et al. 2016), seeded: weights ``N(0, 0.02)``, norms ``N(1,
    0.02)``, biases 0. Returns ``module``, changed in place."""
    gen = torch.Generator().manual_seed(int(seed))
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.02)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.affine:
            with torch.no_grad():
                m.weight.copy_(1 + torch.randn(m.weight.shape, generator=gen) * 0.02)
                m.bias.zero_()
    return module


class UpBlock(nn.Module):
    """Upsampling layer (no bias), BatchNorm, ReLU: doubles each side.

    ``upsample="transposed"``: a stride-2 transposed convolution with a kernel of 4;
    ``"resize"``: nearest-neighbour upsampling and a 3x3 convolution (:func:`resize_conv`);
    ``"blur"``: the transposed convolution, then a binomial filter (:func:`blur_conv`).
    """

    def __init__(self, in_channels: int, out_channels: int, *, upsample: str = "transposed"):
        super().__init__()
        self.conv = _upsample_layer(in_channels, out_channels, upsample=upsample, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.upsample = upsample

    def forward(self, x: torch.Tensor, *, periodic: bool = False) -> torch.Tensor:
        up = _UPSAMPLERS[self.upsample]
        return F.relu(self.norm(up(x, self.conv.weight, None, periodic=periodic)))


class Generator(nn.Module):
    """Fully convolutional DCGAN generator: latent map to a two-phase image (tanh).

    Parameters
    ----------
    latent_channels : int
        ``C``, the local channels of the latent map ``N x (C + G) x h x w``.
    widths : sequence of int
        Channels of the hidden layers; the default ``(128, 64, 32, 16)`` is the paper's, with a
        last transposed convolution to one channel: five stride-2 layers, 32x upsampling,
        ~175k parameters.
    upsample : {"transposed", "resize", "blur"}
        How each layer doubles the sides: the paper's stride-2 transposed convolution (kernel 4),
        a resize-convolution (nearest-neighbour upsampling and a 3x3 convolution, ~99k
        parameters with the default widths), or the transposed convolution followed by the
        filter ``[1, 2, 1] / 2`` along each axis (the same parameters as the paper's). The last
        two leave no checkerboard pattern in the images (Odena et al. 2016).
    global_channels : int
        ``G``, the global channels: the last ``G`` channels of the latent map enter through
        their spatial mean, one value per image broadcast over the map (0, the paper's, by
        default).

    Notes
    -----
    ``forward(z, periodic=False)`` returns ``N x 1 x (s h) x (s w)`` in ``(-1, 1)`` with
    ``s = 2**(len(widths) + 1)``; phase 1 is the positive side. A latent of any size works (the
    paper's scalability); in eval mode each output pixel depends only on the local latent cells
    within its receptive field (and on the global channels), and with ``periodic=True`` the
    image of a tiled latent is the tiled image.
    """

    def __init__(
        self,
        latent_channels: int = _G.latent_channels,
        widths: Sequence[int] = _G.widths,
        *,
        upsample: str = _G.upsample,
        global_channels: int = _G.global_channels,
    ):
        super().__init__()
        self.latent_channels = int(latent_channels)
        self.global_channels = int(global_channels)
        self.widths = tuple(int(w) for w in widths)
        self.upsample = str(upsample)
        chans = (self.in_channels, *self.widths)
        # state size after block i: widths[i] x (2**(i+1) h) x (2**(i+1) w)
        self.blocks = nn.ModuleList(UpBlock(a, b, upsample=upsample) for a, b in pairwise(chans))
        self.out = _upsample_layer(self.widths[-1], 1, upsample=upsample, bias=True)

    @classmethod
    def from_config(cls, config: GANConfig) -> Generator:
        """The generator that ``config.generator`` describes."""
        g = config.generator
        return cls(
            g.latent_channels, g.widths, upsample=g.upsample, global_channels=g.global_channels
        )

    @property
    def scale(self) -> int:
        """Side of the image per latent cell, ``2**depth``."""
        return 2 ** (len(self.blocks) + 1)

    @property
    def in_channels(self) -> int:
        """Channels of the latent map, ``C + G``."""
        return self.latent_channels + self.global_channels

    def forward(self, z: torch.Tensor, *, periodic: bool = False) -> torch.Tensor:
        x = broadcast_global(z, self.global_channels)
        for block in self.blocks:
            x = block(x, periodic=periodic)
        up = _UPSAMPLERS[self.upsample]
        return torch.tanh(up(x, self.out.weight, self.out.bias, periodic=periodic))


class DownBlock(nn.Module):
    """Convolution (4, stride 2), optional normalisation, LeakyReLU: halves each side."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: str, slope: float):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 4, 2, 1, bias=norm == "none")
        if norm == "batch":
            self.norm = nn.BatchNorm2d(out_channels)
        elif norm == "instance":
            self.norm = nn.InstanceNorm2d(out_channels, affine=True)
        else:
            self.norm = nn.Identity()
        self.slope = float(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), self.slope)


class Discriminator(nn.Module):
    """DCGAN discriminator: stride-2 convolutions, then a size-agnostic linear head.

    Parameters
    ----------
    widths : sequence of int
        Channels of the stride-2 convolutions, ``(16, 32, 64, 128)`` by default (the mirror of
        the generator).
    norm : {"batch", "instance", "none"}
        Normalisation after every convolution but the first (DCGAN leaves the first one out).
    leaky_slope : float
        Negative slope of the LeakyReLU.
    pool : {"mean", "mean_std"}
        What the linear head sees of the last feature map ``N x F x h x w``: its spatial mean
        (``N x F``; the paper's), or the spatial mean and the spatial (population) standard
        deviation of each feature side by side (``N x 2F``).

    Notes
    -----
    ``forward(x)`` takes ``N x 1 x H x W`` (phase 0 at -1, phase 1 at +1) with ``H`` and ``W``
    divisible by ``2**len(widths)`` and returns ``N`` logits (real is positive). With ``pool=
    "mean"`` the head is linear in the spatial mean of the last feature map, which equals
    averaging a 1x1-conv patch logit over the image: a judgement of patches (about 46 px across
    with the default widths) one at a time, blind to how they differ across the image. The
    standard deviation of ``"mean_std"`` lets it see that spread too.
    """

    def __init__(
        self,
        widths: Sequence[int] = _D.widths,
        *,
        norm: str = _D.norm,
        leaky_slope: float = _D.leaky_slope,
        pool: str = _D.pool,
    ):
        super().__init__()
        if pool not in _POOLS:
            raise InputError(f"pool must be one of {', '.join(map(repr, _POOLS))}, got {pool!r}")
        self.widths = tuple(int(w) for w in widths)
        self.pool = str(pool)
        chans = (1, *self.widths)
        self.features = nn.Sequential(
            *(
                DownBlock(a, b, norm="none" if i == 0 else norm, slope=leaky_slope)
                for i, (a, b) in enumerate(pairwise(chans))
            )
        )
        self.head = nn.Linear(self.widths[-1] * _POOLS[self.pool], 1)

    @classmethod
    def from_config(cls, config: GANConfig) -> Discriminator:
        """The discriminator that ``config.discriminator`` describes."""
        d = config.discriminator
        return cls(d.widths, norm=d.norm, leaky_slope=d.leaky_slope, pool=d.pool)

    @property
    def out_features(self) -> int:
        """``F``, the number of features of the trunk (the last width)."""
        return self.widths[-1]

    @property
    def stride(self) -> int:
        """Total downsampling, ``2**len(widths)``; input sides must be multiples of it."""
        return 2 ** len(self.widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        pooled = f.mean((-2, -1))
        if self.pool == "mean_std":
            # the epsilon keeps the gradient finite where a feature is constant over the map
            spread = (f.var((-2, -1), unbiased=False) + 1e-8).sqrt()
            pooled = torch.cat([pooled, spread], dim=1)
        return self.head(pooled).squeeze(-1)


class DiscriminatorTrunk(nn.Module):
    """A discriminator's convolutional trunk with global average pooling.

    ``forward(x)`` maps ``N x 1 x H x W`` (phase 0 at -1, phase 1 at +1; see
    :func:`labels_to_signed`), ``H`` and ``W`` divisible by :attr:`stride`, to features
    ``N x F`` with ``F =`` :attr:`out_features` (128 for the default discriminator).
    """

    def __init__(self, features: nn.Sequential, *, out_features: int, stride: int):
        super().__init__()
        self.features = features
        self.out_features = int(out_features)
        self.stride = int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise InputError(f"expected images of shape N x 1 x H x W, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.stride or w % self.stride:
            raise InputError(
                f"image sides must be multiples of {self.stride} for the discriminator trunk, "
                f"got {h}x{w}"
            )
        return self.features(x).mean((-2, -1))


def discriminator_trunk(discriminator: Discriminator) -> DiscriminatorTrunk:
    """The trained discriminator's convolutional trunk as a feature extractor.

    The paper's transferability claim (Yang et al. 2018, sec. 4): features the discriminator
    learned to tell real microstructures from fake ones also describe structure-property
    relations. The trunk is a copy in eval mode (BatchNorm uses its running statistics, so an
    image's features do not depend on its batch), with gradients enabled for fine-tuning;
    changing it leaves the discriminator alone.

    Parameters
    ----------
    discriminator : Discriminator

    Returns
    -------
    DiscriminatorTrunk
        Maps ``N x 1 x H x W`` (``H``, ``W`` multiples of ``discriminator.stride``, 16 by
        default) to ``N x F``; ``F`` is ``trunk.out_features`` (= ``discriminator.out_features``).
    """
    trunk = DiscriminatorTrunk(
        copy.deepcopy(discriminator.features),
        out_features=discriminator.out_features,
        stride=discriminator.stride,
    )
    return trunk.eval()


class FusedGenerator(nn.Module):
    """A generator for inference: BatchNorm folded into the convolutions, channels-last.

    Equal (to float rounding) to ``generator.eval()`` but faster: the normalisation costs
    nothing, and the channels-last layout suits oneDNN's convolutions on the CPU. It is a
    snapshot: later changes to the generator's weights are not seen.

    Parameters
    ----------
    generator : Generator
        The trained generator; its BatchNorm running statistics are used.
    dtype : torch.dtype
        ``torch.float32`` (the default, the project's precision for the GAN), or
        ``torch.bfloat16``: about twice as fast on CPUs with AVX512-BF16 or AMX (and on GPUs),
        at the cost of binarised pixels that differ from float32 where the output is within
        bfloat16 rounding of 0, on interfaces (how many: the docs' performance page).
        The weights are folded in float32, then cast.

    Notes
    -----
    BatchNorm after a convolution, ``gamma (y - mu) / sqrt(var + eps) + beta``, is affine in
    ``y`` per output channel, so it folds into the convolution's weight (scaled per output
    channel: dimension 1 of a transposed convolution's ``C_in x C_out x 4 x 4`` weight,
    dimension 0 of a resize-convolution's ``C_out x C_in x 3 x 3``) and a bias (the blur's
    is added after its filter, which is linear and so commutes with the scaling).
    ``forward(z, periodic=False, logits=False)`` returns the pre-tanh output with ``logits``,
    whose sign decides the midpoint binarisation without computing the tanh. For ``blur``
    upsampling the hidden layers filter by a depthwise 3x3 convolution (:func:`_blur_depthwise`)
    and the last layer is one sub-pixel 3x3 convolution with the filter precomposed
    (:func:`_subpixel_kernel`): the same maps, summed in another order (labels that differ: the
    performance page).
    """

    def __init__(self, generator: Generator, *, dtype: torch.dtype = torch.float32):
        super().__init__()
        weights, biases = [], []
        out_dim = 0 if generator.upsample == "resize" else 1
        for block in generator.blocks:
            bn = block.norm
            s = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            shape = [1, 1, 1, 1]
            shape[out_dim] = -1
            weights.append(block.conv.weight.detach() * s.reshape(shape))
            biases.append(bn.bias.detach() - bn.running_mean * s)
        weights.append(generator.out.weight.detach())
        biases.append(generator.out.bias.detach())
        self.weights = nn.ParameterList(
            nn.Parameter(
                w.to(dtype, copy=True).contiguous(memory_format=torch.channels_last), False
            )
            for w in weights
        )
        self.biases = nn.ParameterList(nn.Parameter(b.to(dtype, copy=True), False) for b in biases)
        if generator.upsample == "blur":
            # the last layer as its sub-pixel convolution (the blur precomposed), the others'
            # blur as a depthwise convolution: the same maps, cheaper on oneDNN
            self.weights[-1] = nn.Parameter(
                _subpixel_kernel(weights[-1])
                .to(dtype)
                .contiguous(memory_format=torch.channels_last),
                False,
            )
        self.dtype = dtype
        self.latent_channels = generator.latent_channels
        self.global_channels = generator.global_channels
        self.in_channels = generator.in_channels
        self.scale = generator.scale
        self.upsample = generator.upsample

    def forward(
        self, z: torch.Tensor, *, periodic: bool = False, logits: bool = False
    ) -> torch.Tensor:
        x = broadcast_global(z.to(self.dtype), self.global_channels)
        x = x.contiguous(memory_format=torch.channels_last)
        last = len(self.weights) - 1
        up = _blur_depthwise if self.upsample == "blur" else _UPSAMPLERS[self.upsample]
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if i == last and self.upsample == "blur":
                x = _blur_subpixel(x, w, b, periodic=periodic)
                break
            x = up(x, w, b, periodic=periodic)
            if i < last:
                x = F.relu(x, inplace=True)  # x is this forward's own buffer
        return x if logits else torch.tanh(x)
