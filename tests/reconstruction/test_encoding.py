import numpy as np
import pytest
import torch

from mdesign.io import PALETTE
from mdesign.reconstruction.encoding import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    encoding_colours,
    labels_to_pixels,
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
    # undo the normalisation: each pixel is its phase's colour, gray repeated for two phases
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    back = rgb[0] * std + mean
    colours = encoding_colours(k).expand(k, 3) if k == 2 else encoding_colours(k)
    want = colours[torch.as_tensor(labels)].permute(2, 0, 1)
    torch.testing.assert_close(back, want)


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
