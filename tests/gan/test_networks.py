from itertools import pairwise

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mdesign.config import GAN_DEFAULTS
from mdesign.errors import InputError
from mdesign.gan.networks import (
    Discriminator,
    FusedGenerator,
    Generator,
    _blur_depthwise,
    _blur_subpixel,
    _subpixel_kernel,
    blur_conv,
    broadcast_global,
    discriminator_trunk,
    init_weights,
    labels_to_signed,
    resize_conv,
    up_conv,
)
from tests.gan.conftest import tiny_config, tiny_networks

UPSAMPLES = ("transposed", "resize", "blur")


def _tiny(upsample: str):
    return tiny_config(generator={"upsample": upsample})


def test_default_generator_is_the_papers():
    g = Generator.from_config(GAN_DEFAULTS)
    # five stride-2 transposed convolutions 1-128-64-32-16-1, kernel 4, BatchNorm on the hidden
    widths = (1, 128, 64, 32, 16, 1)
    convs = sum(a * b * 16 for a, b in pairwise(widths))
    norms = 2 * sum(widths[1:-1])
    assert sum(p.numel() for p in g.parameters()) == convs + norms + 1  # + the output bias
    assert 170_000 < convs + norms + 1 < 180_000  # the issue's ~175k
    assert g.scale == 32
    with torch.no_grad():
        out = g.eval()(torch.zeros(2, 1, 4, 4))
    assert out.shape == (2, 1, 128, 128)


def test_default_discriminator_mirrors_it():
    d = Discriminator.from_config(GAN_DEFAULTS)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128]
    assert all(c.stride == (2, 2) and c.kernel_size == (4, 4) for c in convs)
    assert d.out_features == 128 and d.stride == 16


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (4, 4)])
@pytest.mark.parametrize("upsample", UPSAMPLES)
def test_any_latent_size_gives_32_pixels_per_cell(upsample, size):
    g, _ = tiny_networks(_tiny(upsample))
    with torch.no_grad():
        for periodic in (False, True):
            out = g(torch.zeros(3, 1, *size), periodic=periodic)
            assert out.shape == (3, 1, 32 * size[0], 32 * size[1])
            assert out.abs().max() < 1  # tanh


def _periodic_transposed_conv_brute_force(x, w, b):
    """Full (unpadded) transposed convolution, folded onto the 2h x 2w torus.

    Output pixel o of the zero-padded layer is o_full - 1, so the periodic output at o sums the
    full output at every o_full = o + 1 (mod 2h).
    """
    full = F.conv_transpose2d(x, w, b, stride=2)  # (2h + 2) x (2w + 2), o_full = 2 i + k
    h2, w2 = 2 * x.shape[-2], 2 * x.shape[-1]
    out = torch.zeros(x.shape[0], w.shape[1], h2, w2, dtype=x.dtype)
    if b is not None:
        full = full - b[None, :, None, None]
    for oy in range(full.shape[-2]):
        for ox in range(full.shape[-1]):
            out[:, :, (oy - 1) % h2, (ox - 1) % w2] += full[:, :, oy, ox]
    if b is not None:
        out = out + b[None, :, None, None]
    return out


def test_periodic_up_conv_is_the_transposed_convolution_on_the_torus():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 3, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 2, 4, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(2, generator=gen, dtype=torch.float64)
    got = up_conv(x, w, b, periodic=True)
    torch.testing.assert_close(got, _periodic_transposed_conv_brute_force(x, w, b))
    # and the zero-padded form is PyTorch's layer with padding 1
    torch.testing.assert_close(
        up_conv(x, w, b, periodic=False), F.conv_transpose2d(x, w, b, stride=2, padding=1)
    )


def test_resize_conv_is_nearest_upsampling_then_a_3x3_convolution():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 3, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(2, 3, 3, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(2, generator=gen, dtype=torch.float64)
    up = x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    torch.testing.assert_close(resize_conv(x, w, b, periodic=False), F.conv2d(up, w, b, padding=1))
    # periodic: the centre of the zero-padded layer applied to the input tiled 3x3
    h2, w2 = 2 * x.shape[-2], 2 * x.shape[-1]
    centre = resize_conv(x.repeat(1, 1, 3, 3), w, b, periodic=False)[..., h2 : 2 * h2, w2 : 2 * w2]
    torch.testing.assert_close(resize_conv(x, w, b, periodic=True), centre)


def test_blur_conv_is_one_transposed_convolution_with_the_filtered_kernel():
    # the binomial filter applied after the transposed convolution is the 6x6 kernel
    # w * [1, 2, 1]^2 / 4 (a full 2-D convolution, built here by hand) with padding 2, and the
    # bias is added after it
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 3, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 2, 4, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(2, generator=gen, dtype=torch.float64)
    taps = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64) / 2
    kernel = torch.zeros(3, 2, 6, 6, dtype=torch.float64)
    for i in range(3):
        for j in range(3):
            kernel[..., i : i + 4, j : j + 4] += taps[i] * taps[j] * w
    want = F.conv_transpose2d(x, kernel, b, stride=2, padding=2)
    torch.testing.assert_close(blur_conv(x, w, b, periodic=False), want)
    h2, w2 = 2 * x.shape[-2], 2 * x.shape[-1]
    centre = blur_conv(x.repeat(1, 1, 3, 3), w, b, periodic=False)[..., h2 : 2 * h2, w2 : 2 * w2]
    torch.testing.assert_close(blur_conv(x, w, b, periodic=True), centre)


def test_resize_and_blur_generators_have_no_checkerboard():
    # a constant latent on the torus: every layer of a resize generator sees a constant input,
    # so the image is exactly constant, and the blur's zero at period 2 evens out the two
    # parities; the free transposed convolution's uneven overlap (pixels of the two parities
    # gather different kernel taps) leaves a period-2 pattern
    z = torch.full((1, 1, 2, 2), 0.7)
    spread = {}
    for upsample in UPSAMPLES:
        g, _ = tiny_networks(_tiny(upsample))
        with torch.no_grad():
            img = g.eval()(z, periodic=True)[0, 0]
        spread[upsample] = float(img.max() - img.min())
    assert spread["resize"] < 1e-6 and spread["blur"] < 1e-6
    assert spread["transposed"] > 1e-3


def test_resize_generator_size():
    g = Generator(1, (128, 64, 32, 16), upsample="resize")
    widths = (1, 128, 64, 32, 16, 1)
    convs = sum(a * b * 9 for a, b in pairwise(widths))
    assert sum(p.numel() for p in g.parameters()) == convs + 2 * sum(widths[1:-1]) + 1
    with torch.no_grad():
        assert g.eval()(torch.zeros(1, 1, 3, 2)).shape == (1, 1, 96, 64)
    with pytest.raises(InputError, match="upsample"):
        Generator(1, (8,), upsample="bilinear")


def test_blur_generator_has_the_transposed_parameters():
    shapes = {
        u: [p.shape for p in Generator(1, (128, 64, 32, 16), upsample=u).parameters()]
        for u in ("transposed", "blur")
    }
    assert shapes["blur"] == shapes["transposed"]
    with torch.no_grad():
        g = Generator(1, (128, 64, 32, 16), upsample="blur").eval()
        assert g(torch.zeros(1, 1, 3, 2)).shape == (1, 1, 96, 64)


@pytest.mark.parametrize("upsample", UPSAMPLES)
def test_periodic_generator_tiles(upsample):
    g, _ = tiny_networks(_tiny(upsample))
    z = torch.rand(2, 1, 2, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        img = g(z, periodic=True)
        tiled = g(z.repeat(1, 1, 2, 2), periodic=True)
        plain = g(z, periodic=False)
    torch.testing.assert_close(tiled, img.repeat(1, 1, 2, 2), atol=1e-5, rtol=0)
    # zero padding is not periodic: its image differs at the borders
    assert (plain - img).abs().max() > 1e-3


@pytest.mark.parametrize("upsample", UPSAMPLES)
def test_each_latent_cell_reaches_only_its_receptive_field(upsample):
    # five stride-2 layers, kernel 4: cell 0 reaches pixels -31..62 (a -> 2a - 1, b -> 2b + 2);
    # the blur's filter adds a pixel each side (a -> 2a - 2, b -> 2b + 3): up to pixel 93
    last = 93 if upsample == "blur" else 62
    g, _ = tiny_networks(_tiny(upsample))
    z = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(2)) * 2 - 1
    z2 = z.clone()
    z2[0, 0, 0, 0] = -z[0, 0, 0, 0] + 0.5
    with torch.no_grad():
        diff = (g(z) - g(z2))[0, 0].abs()
    assert diff[last + 1 :, :].max() == 0 and diff[:, last + 1 :].max() == 0
    assert diff[last, :].max() > 0 and diff[:, last].max() > 0


@pytest.mark.parametrize("upsample", UPSAMPLES)
def test_fused_generator_matches_eval_mode(upsample):
    g, _ = tiny_networks(_tiny(upsample))
    f = FusedGenerator(g)
    z = torch.rand(5, 1, 2, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        for periodic in (False, True):
            ref = g(z, periodic=periodic)
            torch.testing.assert_close(f(z, periodic=periodic), ref, atol=1e-5, rtol=1e-4)
            logits = f(z, periodic=periodic, logits=True)
            torch.testing.assert_close(torch.tanh(logits), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("upsample", UPSAMPLES)
def test_global_channels_enter_through_their_spatial_mean(upsample):
    config = tiny_config(generator={"upsample": upsample, "global_channels": 1})
    g = tiny_networks(config)[0].eval()
    in_dim = 1 if upsample == "resize" else 0
    assert g.in_channels == 2 and g.blocks[0].conv.weight.shape[in_dim] == 2
    gen = torch.Generator().manual_seed(1)
    z = torch.rand(3, 2, 4, 4, generator=gen) * 2 - 1  # a global channel that varies over the map
    flat = z.clone()
    flat[:, 1] = z[:, 1].mean((-2, -1), keepdim=True)
    with torch.no_grad():
        torch.testing.assert_close(g(z), g(flat))
        # the prior's maps (constant global channels) pass unchanged, bit for bit
        prior = torch.rand(5, 2, 7, 7, generator=gen) * 2 - 1
        prior[:, 1] = prior[:, 1, :1, :1]
        assert torch.equal(broadcast_global(prior, 1), prior)
        torch.testing.assert_close(FusedGenerator(g)(z), g(z), rtol=1e-4, atol=1e-5)
        # a local cell reaches only nearby pixels; the global value reaches every pixel
        local, glob = flat.clone(), flat.clone()
        local[:, 0, 0, 0] += 0.5
        glob[:, 1] += 0.5
        far = (slice(None), 0, slice(112, 128), slice(112, 128))  # beyond cell (0, 0)'s reach
        assert torch.equal(g(local)[far], g(flat)[far])
        assert (g(glob) - g(flat)).abs().amin() > 0


def test_init_is_seeded():
    a = init_weights(Generator(1, (8, 4)), seed=5).state_dict()
    b = init_weights(Generator(1, (8, 4)), seed=5).state_dict()
    c = init_weights(Generator(1, (8, 4)), seed=6).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["blocks.0.conv.weight"], c["blocks.0.conv.weight"])
    assert abs(float(a["blocks.1.conv.weight"].std()) - 0.02) < 0.005


@pytest.mark.parametrize("hw", [(32, 32), (64, 48), (16, 80)])
def test_discriminator_and_trunk_take_any_size_divisible_by_16(tiny, hw):
    _, d = tiny_networks(tiny)
    x = torch.rand(3, 1, *hw, generator=torch.Generator().manual_seed(4)) * 2 - 1
    trunk = discriminator_trunk(d)
    with torch.no_grad():
        feats = trunk(x)
        assert feats.shape == (3, trunk.out_features) == (3, d.out_features)
        # the head of the discriminator is linear in the trunk's features
        torch.testing.assert_close(d.head(feats).squeeze(-1), d(x))


def test_mean_std_pool_feeds_the_head_the_mean_and_population_std(tiny):
    d = Discriminator(tiny.discriminator.widths, pool="mean_std").eval()
    assert d.head.in_features == 2 * d.out_features
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():  # weights that give features of order 1 (DCGAN's init gives ~1e-5)
        for p in d.parameters():
            p.normal_(0, 0.5, generator=gen)
    x = torch.rand(3, 1, 48, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        f = d.features(x).double().numpy()  # N x F x 3 x 2
        logits = d(x).double().numpy()
    w = d.head.weight.detach().double().numpy()[0]
    b = float(d.head.bias)
    F_ = d.out_features
    for n in range(3):
        cells = f[n].reshape(F_, -1)
        mean, std = cells.mean(1), np.sqrt(((cells - cells.mean(1, keepdims=True)) ** 2).mean(1))
        assert logits[n] == pytest.approx(w[:F_] @ mean + w[F_:] @ std + b, rel=1e-4, abs=1e-6)
    # the spread term matters: the same features rearranged into a mosaic of one constant
    # value per feature (zero spread) would score w[:F] @ mean + b
    assert np.abs(w[F_:] @ f.reshape(3, F_, -1).std(2).T).min() > 1e-4


def test_mean_std_pool_is_batch_independent_in_eval_mode(tiny):
    d = init_weights(Discriminator(tiny.discriminator.widths, pool="mean_std"), seed=2).eval()
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(d(x)[2:3], d(x[2:3]))


def test_discriminator_rejects_an_unknown_pool():
    with pytest.raises(InputError, match="pool must be one of 'mean', 'mean_std'"):
        Discriminator((4, 8), pool="max")


def test_trunk_is_a_copy_with_batch_independent_features(tiny):
    _, d = tiny_networks(tiny)
    trunk = discriminator_trunk(d)
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(trunk(x)[1:2], trunk(x[1:2]))
        for p in trunk.parameters():
            p.add_(1.0)
    assert not torch.equal(
        next(trunk.parameters()).detach(), next(d.features.parameters()).detach()
    )


def test_trunk_rejects_bad_sizes(tiny):
    trunk = discriminator_trunk(tiny_networks(tiny)[1])
    with pytest.raises(InputError, match="multiples of 16"):
        trunk(torch.zeros(1, 1, 40, 32))
    with pytest.raises(InputError, match="N x 1 x H x W"):
        trunk(torch.zeros(1, 32, 32))


def test_labels_to_signed():
    x = labels_to_signed(np.array([[[0, 1], [1, 0]]], dtype=np.uint8))
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    assert x.flatten().tolist() == [-1, 1, 1, -1]


def test_fused_blur_layers_equal_blur_conv():
    # the depthwise filter and the sub-pixel kernel (several output channels, so the phases'
    # channel order is checked) against the filter's shifted sums, on the line and the torus
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 5, 6, generator=gen)
    w, b = torch.randn(3, 4, 4, 4, generator=gen), torch.randn(4, generator=gen)
    for periodic in (False, True):
        ref = blur_conv(x, w, b, periodic=periodic)
        torch.testing.assert_close(_blur_depthwise(x, w, b, periodic=periodic), ref)
        sub = _blur_subpixel(x, _subpixel_kernel(w), b, periodic=periodic)
        torch.testing.assert_close(sub, ref)
