import numpy as np
import pytest
import torch

from mdesign.errors import InputError
from mdesign.io import PALETTE
from mdesign.reconstruction.encoding import (
    CAFFE_INPUT,
    IMAGENET_INPUT,
    IMAGENET_MEAN,
    IMAGENET_STD,
    InputConvention,
    encoding_colours,
    labels_to_pixels,
    normalise_input,
    pixel_channels,
    soft_indicators,
    to_vgg_input,
)


def test_colours_gray_indicator_palette():
    assert encoding_colours(2).tolist() == [[0.0], [1.0]]
    assert torch.equal(encoding_colours(3), torch.eye(3))
    np.testing.assert_allclose(encoding_colours(6).numpy(), PALETTE[:6] / 255, rtol=1e-6)
    assert [pixel_channels(k) for k in (2, 3, 8)] == [1, 3, 3]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_labels_to_vgg_input(k):
    labels = np.arange(k * 4).reshape(2, 2 * k) % k
    pixels = labels_to_pixels(labels, k)
    assert pixels.shape == (1, pixel_channels(k), 2, 2 * k)
    rgb = to_vgg_input(pixels)
    assert rgb.shape == (1, 3, 2, 2 * k)
    # each pixel is its phase's colour, gray repeated for two phases
    colours = encoding_colours(k).expand(k, 3) if k == 2 else encoding_colours(k)
    want = colours[torch.as_tensor(labels)].permute(2, 0, 1)
    torch.testing.assert_close(rgb[0], want)


def test_imagenet_convention_is_torchvisions_normalisation():
    rgb = torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(normalise_input(rgb, IMAGENET_INPUT), (rgb - mean) / std)


def test_caffe_convention_is_bgr_0_255_minus_means_exactly():
    # pixel values k / 255 come out as exactly k - mean in float64 (no division, no rounding
    # beyond the subtraction)
    levels = torch.arange(256, dtype=torch.float64)
    rgb = torch.stack([levels, levels.flip(0), (levels * 7) % 256])[None, :, None, :] / 255
    got = normalise_input(rgb, CAFFE_INPUT)[0, :, 0]
    rgb255 = torch.stack([levels, levels.flip(0), (levels * 7) % 256])
    for c_out, c_in, mean in zip(range(3), (2, 1, 0), (103.939, 116.779, 123.68), strict=True):
        torch.testing.assert_close(got[c_out], rgb255[c_in] - mean, rtol=0, atol=1e-12)
    # white and black in gray: 255 - mean and -mean per BGR channel
    gray = to_vgg_input(torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 2))
    out = normalise_input(gray, CAFFE_INPUT)[0, :, 0].T
    torch.testing.assert_close(out[0], -torch.tensor(CAFFE_INPUT.mean))
    torch.testing.assert_close(out[1], 255 - torch.tensor(CAFFE_INPUT.mean))


def test_convention_round_trips_and_rejects_nonsense():
    for conv in (IMAGENET_INPUT, CAFFE_INPUT):
        assert InputConvention.from_dict(conv.to_dict(), source="f") == conv
    bad = dict(CAFFE_INPUT.to_dict(), channel_order="GBR")
    with pytest.raises(InputError, match="f: invalid input convention"):
        InputConvention.from_dict(bad, source="f")
    with pytest.raises(InputError, match="f: input convention needs"):
        InputConvention.from_dict(dict(CAFFE_INPUT.to_dict(), std=[1, 0, 1]), source="f")
    with pytest.raises(InputError, match="f: invalid input convention"):
        InputConvention.from_dict({"scale": 1}, source="f")


@pytest.mark.parametrize("k", [2, 3, 6])
def test_soft_indicators_are_probabilities_sharp_on_the_colours(k):
    labels = np.arange(3 * k).reshape(3, k) % k
    pixels = labels_to_pixels(labels, k)
    p = soft_indicators(pixels, encoding_colours(k), temperature=0.02)
    assert p.shape == (1, k, 3, k)
    torch.testing.assert_close(p.sum(1), torch.ones(1, 3, k))
    assert torch.equal(p.argmax(1)[0], torch.as_tensor(labels))
    assert p.max(1).values.min() > 0.99
    # softer with a higher temperature
    assert soft_indicators(pixels, encoding_colours(k), temperature=1.0).max() < 0.99
