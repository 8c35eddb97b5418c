"""VGG19 feature extractor in plain torch, with torchvision's ``vgg19().features`` layout.

The layers are numbered as in torchvision's ``vgg19().features`` (37 modules: 16 ``Conv2d(3x3,
padding=1)`` each followed by ``ReLU``, and 5 ``MaxPool2d(2)``), so a state dict of torchvision's
VGG19 or of its ``features`` loads strictly, with no torchvision installed. The extractor keeps only
the layers up to the deepest one the loss uses, and is frozen. Layer names follow Gatys et al.:
``convB_I`` before its ReLU, ``reluB_I`` after it, ``poolB`` the pooling that ends block B (Gatys'
``conv1_1``, rectified in place by Caffe, is ``relu1_1`` here). Each extractor applies its weights'
input convention (:class:`~mdesign.reconstruction.encoding.InputConvention`) to its RGB input.

Weights: ``normalized`` (the default; the normalised VGG19 of Gatys et al. that Li et al. used, from
the cache :func:`mdesign.reconstruction.weights.ensure_normalized_weights` fills, Caffe input),
``imagenet`` (torchvision's weights, ``IMAGENET_URL``, fetched once into the torch hub cache and
hash-checked; offline without a copy an :class:`~mdesign.errors.InputError` says how to proceed),
``random`` (seeded He normal weights, ``std = sqrt(2 / fan_in)``, zero biases: the activations'
scale is the same at every depth; random filters carry useful texture statistics, Ustyuzhaninov et
al. 2017, but fewer than trained ones), or a state dict file. None falls back to other weights;
details in the reconstruction guide.

References
----------
Simonyan, K. & Zisserman, A. "Very deep convolutional networks for large-scale image
recognition", ICLR (2015).
Gatys, L. A., Ecker, A. S. & Bethge, M. "Texture synthesis using convolutional neural networks",
NeurIPS (2015); "Image style transfer using convolutional neural networks", CVPR (2016).
Li, X. et al. "A transfer learning approach for microstructure reconstruction and
structure-property predictions", Sci. Rep. 8, 13461 (2018).
He, K., Zhang, X., Ren, S. & Sun, J. "Delving deep into rectifiers", ICCV (2015).
Ustyuzhaninov, I., Brendel, W., Gatys, L. A. & Bethge, M. "What does it take to generate natural
textures?", ICLR (2017).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from mdesign.config import RECONSTRUCTION_DEFAULTS
from mdesign.errors import InputError
from mdesign.reconstruction.encoding import IMAGENET_INPUT, InputConvention, normalise_input
from mdesign.reconstruction.weights import VGG19Weights, load_normalized_weights

__all__ = [
    "IMAGENET_URL",
    "LAYER_INDEX",
    "VGG19Features",
    "load_vgg19_state_dict",
    "load_vgg19_weights",
    "vgg19_features",
]

IMAGENET_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
"""torchvision's ``VGG19_Weights.IMAGENET1K_V1``; the file name carries its SHA-256 prefix."""

# torchvision's configuration "E": output channels of each 3x3 convolution, "M" a 2x2 pooling
_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip

Pooling = Literal["avg", "max"]
PaddingMode = Literal["zeros", "circular"]
Precision = Literal["float32", "bfloat16"]


def _layer_names() -> list[str]:
    names, block, conv = [], 1, 1
    for v in _CFG:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


LAYER_INDEX: dict[str, int] = {name: i for i, name in enumerate(_layer_names())}
"""Index of each named layer in torchvision's ``vgg19().features`` (``relu1_1`` is 1, ...)."""


class CircularConv2d(nn.Conv2d):
    """A ``3 x 3`` convolution on the torus: the input is wrapped by one pixel on each side.

    Same parameters (and state dict keys) as ``nn.Conv2d(..., padding=1)``. Wrapping with
    :func:`torch.cat` costs about a third of ``padding_mode="circular"``, whose padding and its
    backward took most of the time of a VGG19 pass on the CPU.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[..., -1:, :], x, x[..., :1, :]], dim=-2)
        x = torch.cat([x[..., -1:], x, x[..., :1]], dim=-1)
        return self._conv_forward(x, self.weight, self.bias)


def _layout(depth: int, *, pooling: Pooling, padding_mode: PaddingMode) -> list[nn.Module]:
    """The first ``depth`` modules of the layout, on the meta device (no memory, no RNG)."""
    modules: list[nn.Module] = []
    in_ch = 3
    with torch.device("meta"):
        for v in _CFG:
            if v == "M":
                modules.append(nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2))
            else:
                if padding_mode == "circular":
                    conv = CircularConv2d(in_ch, int(v), 3, padding=0)
                else:
                    conv = nn.Conv2d(in_ch, int(v), 3, padding=1)
                modules += [conv, nn.ReLU(inplace=False)]
                in_ch = int(v)
    return modules[:depth]


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of the whole ``features`` layout (keys ``N.weight``)."""
    full = nn.Sequential(*_layout(len(LAYER_INDEX), pooling="max", padding_mode="zeros"))
    return {k: tuple(v.shape) for k, v in full.state_dict().items()}


class VGG19Features(nn.Module):
    """Frozen VGG19 features up to the deepest of ``layers``, returning each of ``layers``.

    Parameters
    ----------
    layers : sequence of str
        Names from :data:`LAYER_INDEX` (``relu1_1``, ``pool2``, ...), returned in this order.
    pooling : {"avg", "max"}
        Average pooling in place of max pooling (Gatys et al. 2015 found it gives smoother
        gradients and better syntheses), or torchvision's max pooling.
    padding_mode : {"zeros", "circular"}
        ``circular`` makes every convolution see the image as a torus, so the synthesis is
        periodic (tileable).
    convention : InputConvention
        The input convention of the weights, applied to the RGB input
        (:data:`~mdesign.reconstruction.encoding.IMAGENET_INPUT` for torchvision's and random
        weights).
    precision : {"float32", "bfloat16"}
        ``bfloat16`` runs the layers under :func:`torch.autocast` (the convolutions in
        bfloat16); the returned features are float32 either way.

    Notes
    -----
    The parameters are created empty, on the meta device; :func:`vgg19_features` fills them
    (:meth:`load_features` or :meth:`init_random`) and moves the module to its device. The state
    dict keys are ``features.N.weight`` as in torchvision's full model.
    """

    def __init__(
        self,
        layers: Sequence[str],
        *,
        pooling: Pooling = RECONSTRUCTION_DEFAULTS.texture.pooling,
        padding_mode: PaddingMode = "zeros",
        convention: InputConvention = IMAGENET_INPUT,
        precision: Precision = RECONSTRUCTION_DEFAULTS.texture.precision,
    ) -> None:
        super().__init__()
        self.convention = convention
        self.precision = precision
        unknown = [name for name in layers if name not in LAYER_INDEX]
        if unknown or not layers:
            raise InputError(
                f"layers: unknown VGG19 layer(s) {', '.join(unknown) or '(none given)'}; "
                f"expected names like relu1_1, conv3_2, pool4 (one of {', '.join(LAYER_INDEX)})"
            )
        self.layers = tuple(layers)
        self.indices = tuple(LAYER_INDEX[name] for name in layers)
        self.features = nn.Sequential(
            *_layout(max(self.indices) + 1, pooling=pooling, padding_mode=padding_mode)
        )
        self.requires_grad_(False)
        self.eval()

    def load_features(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Copy the kept layers' parameters from a full ``features`` state dict (``N.weight``)."""
        own = {f"features.{k}": v for k, v in state_dict.items()}
        kept = {k: v for k, v in own.items() if k in self.state_dict()}
        self.load_state_dict(kept, strict=True, assign=True)
        self.requires_grad_(False)

    def init_random(self, seed: int) -> None:
        """He-normal weights (``std = sqrt(2 / fan_in)``) and zero biases, from ``seed``."""
        gen = torch.Generator().manual_seed(int(seed))
        state = {}
        for name, p in self.state_dict().items():
            if name.endswith("weight"):
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                w = torch.randn(p.shape, generator=gen) * math.sqrt(2.0 / fan_in)
                state[name] = w
            else:
                state[name] = torch.zeros(p.shape)
        self.load_state_dict(state, strict=True, assign=True)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at ``layers``.

        Parameters
        ----------
        x : Tensor, ``batch x 3 x H x W``
            RGB in ``[0, 1]`` (:func:`~mdesign.reconstruction.encoding.to_vgg_input`); the
            extractor applies :attr:`convention` before the first convolution.

        Returns
        -------
        list of Tensor
            ``batch x C_l x H_l x W_l`` for each of ``layers``, in that order.
        """
        wanted = {idx: None for idx in self.indices}
        x = normalise_input(x, self.convention)
        low = self.precision == "bfloat16"
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=low):
            for i, module in enumerate(self.features):
                x = module(x)
                if i in wanted:
                    wanted[i] = x
        return [wanted[idx].float() for idx in self.indices]


def _normalise_keys(state: Mapping[str, object], *, source: str) -> dict[str, torch.Tensor]:
    """Keys ``N.weight``/``N.bias`` of ``features``, from torchvision's model or its features."""
    if not isinstance(state, Mapping):
        raise InputError(f"{source}: expected a state dict (a mapping of names to tensors)")
    if any(str(k).startswith("features.") for k in state):
        # the full model: keep features.*, drop the classifier (not part of the extractor)
        state = {
            k[len("features.") :]: v for k, v in state.items() if str(k).startswith("features.")
        } | {k: v for k, v in state.items() if not str(k).startswith(("features.", "classifier."))}
    expected = _expected_shapes()
    missing = sorted(set(expected) - set(state), key=_key_order)
    unexpected = sorted(set(state) - set(expected), key=str)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)}")
        raise InputError(
            f"{source}: not a state dict of torchvision's VGG19 features ({'; '.join(parts)})"
        )
    out = {}
    for k, shape in expected.items():
        v = state[k]
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != shape:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise InputError(f"{source}: {k} has shape {got}, expected {shape}")
        out[k] = v.detach().to(torch.float32)
    return out


def _key_order(key: str) -> tuple[int, str]:
    head, _, tail = key.partition(".")
    return (int(head), tail) if head.isdigit() else (10**6, key)


def _few(keys: list[str], n: int = 4) -> str:
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(map(str, keys[:n])) + more


def load_vgg19_weights(weights: str | os.PathLike, *, progress: bool = False) -> VGG19Weights:
    """The VGG19 ``features`` parameters named by ``weights`` and their input convention.

    Parameters
    ----------
    weights : str or path
        ``"normalized"`` (the normalised VGG19 of Gatys et al. from the local cache, made once:
        :mod:`mdesign.reconstruction.weights`), ``"imagenet"`` (torchvision's weights through
        the hub cache, downloaded once) or the path of a state dict (see the module docstring).
    progress : bool
        Show the download's progress.

    Returns
    -------
    VGG19Weights
        All 32 parameters of ``features`` (keys ``N.weight``/``N.bias``, float32, on the CPU)
        and the input they expect (Caffe's for ``normalized``, ImageNet's for ``imagenet`` and
        for plain state dicts).

    Raises
    ------
    InputError
        The weights are not available (offline, no cached copy, a hash mismatch; the message
        says what to do), the file is missing or not a torch state dict, or its keys or shapes
        are not VGG19's.
    """
    if str(weights) == "normalized":
        loaded = load_normalized_weights(progress=progress)
        state = _normalise_keys(loaded.state, source="--weights normalized")
        return VGG19Weights(state=state, convention=loaded.convention)
    if str(weights) == "imagenet":
        # torch.hub announces a download on stdout, which is for results: move the line to
        # stderr, or drop it when quiet
        announce = contextlib.redirect_stdout(sys.stderr if progress else io.StringIO())
        try:
            with announce:
                state = torch.hub.load_state_dict_from_url(
                    IMAGENET_URL, map_location="cpu", progress=progress, check_hash=True
                )
        except Exception as exc:  # URLError, timeouts, hash mismatch: all mean "not available"
            hub = Path(torch.hub.get_dir()) / "checkpoints"
            raise InputError(
                f"imagenet: cannot fetch {IMAGENET_URL} "
                f"({type(exc).__name__}: {exc}); with network access it is downloaded once into "
                f"{hub}; offline, copy that file there, give the path of a local state dict, "
                "or choose normalized (the default) or random",
                param="weights",
            ) from None
        state = _normalise_keys(state, source="--weights imagenet")
        return VGG19Weights(state=state, convention=IMAGENET_INPUT)
    path = Path(weights)
    source = f"--weights {path}"
    if not path.is_file():
        raise InputError(
            f"{source}: no such file (expected normalized, imagenet, random, or the path of a "
            "state dict)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(
            f"{source}: cannot read as a torch state dict ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    convention = IMAGENET_INPUT
    if isinstance(state, Mapping) and isinstance(state.get("features"), Mapping):
        # the format of the normalised cache: parameters and their input convention
        convention = InputConvention.from_dict(state.get("input", {}), source=source)
        state = state["features"]
    return VGG19Weights(state=_normalise_keys(state, source=source), convention=convention)


def load_vgg19_state_dict(
    weights: str | os.PathLike, *, progress: bool = False
) -> dict[str, torch.Tensor]:
    """The parameters of :func:`load_vgg19_weights`, without the input convention."""
    return load_vgg19_weights(weights, progress=progress).state


def vgg19_features(
    layers: Sequence[str],
    *,
    weights: str | os.PathLike,
    pooling: Pooling = RECONSTRUCTION_DEFAULTS.texture.pooling,
    padding_mode: PaddingMode = "zeros",
    seed: int = RECONSTRUCTION_DEFAULTS.seed,
    device: torch.device | str | None = None,
    progress: bool = False,
    precision: Precision = RECONSTRUCTION_DEFAULTS.texture.precision,
) -> VGG19Features:
    """A frozen float32 VGG19 extractor for ``layers`` with the given weights.

    Parameters
    ----------
    layers : sequence of str
        Layer names (:data:`LAYER_INDEX`); the network is truncated after the deepest.
    weights : {"normalized", "imagenet", "random"} or path
        See the module docstring.
    pooling, padding_mode
        See :class:`VGG19Features`.
    seed : int
        Seed of the ``random`` initialisation (ignored otherwise).
    device : torch.device, optional
        Where the extractor runs (CUDA when available by default).
    progress : bool
        Show download progress (``normalized``, ``imagenet``).
    precision : {"float32", "bfloat16"}
        See :class:`VGG19Features`.

    Returns
    -------
    VGG19Features
        With the weights' input convention.
    """
    from mdesign.device import default_device

    model = VGG19Features(layers, pooling=pooling, padding_mode=padding_mode, precision=precision)
    if str(weights) == "random":
        model.init_random(seed)
    else:
        loaded = load_vgg19_weights(weights, progress=progress)
        model.load_features(loaded.state)
        model.convention = loaded.convention
    return model.to(default_device(device))
