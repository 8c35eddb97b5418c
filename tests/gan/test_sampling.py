import math

import numpy as np
import pytest
import torch

from mdesign.config import GAN_DEFAULTS
from mdesign.errors import InputError
from mdesign.gan.networks import FusedGenerator
from mdesign.gan.sampling import decode, latent_shape, sample_latents
from tests.gan.conftest import tiny_networks


def test_latent_shape_and_prior():
    assert latent_shape(GAN_DEFAULTS) == (1, 4, 4)
    assert latent_shape(GAN_DEFAULTS, size=8) == (1, 8, 8)
    z = sample_latents(4000, (1, 2, 2), seed=0)
    assert isinstance(z, np.ndarray)  # numpy out at the public API
    assert z.shape == (4000, 1, 2, 2) and z.dtype == np.float32
    assert z.min() >= -1 and z.max() <= 1
    # uniform on [-1, 1]: mean 0, variance 1/3 (standard errors ~0.005 and ~0.003)
    assert abs(float(z.mean())) < 0.02
    assert abs(float(z.var()) - 1 / 3) < 0.015
    assert np.array_equal(z, sample_latents(4000, (1, 2, 2), seed=0))
    assert not np.array_equal(z, sample_latents(4000, (1, 2, 2), seed=1))


def test_a_shared_generator_draws_the_same_prior_as_a_seed():
    # the training loop draws latents from a stream it shares with the batch order
    gen = torch.Generator().manual_seed(5)
    first = sample_latents(3, (1, 2, 2), generator=gen)
    second = sample_latents(3, (1, 2, 2), generator=gen)
    assert np.array_equal(first, sample_latents(3, (1, 2, 2), seed=5))
    assert not np.array_equal(first, second)  # the stream advanced
    both = torch.rand((6, 1, 2, 2), generator=torch.Generator().manual_seed(5)) * 2 - 1
    assert np.array_equal(np.concatenate([first, second]), both.numpy())
    with pytest.raises(TypeError, match="exactly one"):
        sample_latents(3, (1, 2, 2))
    with pytest.raises(TypeError, match="exactly one"):
        sample_latents(3, (1, 2, 2), seed=1, generator=gen)


def test_decode_is_the_sign_of_the_generator_per_image(tiny):
    g, _ = tiny_networks(tiny)
    z = sample_latents(7, (1, 2, 3), seed=4)
    labels = decode(g, z, batch_size=3)
    assert labels.shape == (7, 64, 96) and labels.dtype == np.uint8
    with torch.no_grad():
        ref = (g.eval()(torch.from_numpy(z))[:, 0] > 0).numpy()
    # one image per call, a different batch size: the same labels (eval BatchNorm)
    assert np.array_equal(labels, ref)
    single = np.concatenate([decode(g, z[i : i + 1]) for i in range(7)])
    assert np.array_equal(labels, single)
    assert set(np.unique(labels)) <= {0, 1}


def test_decode_ignores_training_mode_and_sees_weight_changes(tiny):
    g, _ = tiny_networks(tiny)
    z = sample_latents(4, (1, 1, 1), seed=5)
    before = decode(g.train(), z)
    assert g.training  # decode does not change the mode
    with torch.no_grad():
        g.out.bias.fill_(5.0)  # pushes every pixel to phase 1
    after = decode(g, z)
    assert not np.array_equal(before, after) and after.all()


def _otsu_brute_force(values: np.ndarray) -> float:
    """Threshold maximising the between-class variance over all cuts of the sorted values."""
    v = np.sort(values.ravel().astype(np.float64))
    n = v.size
    csum = np.cumsum(v)
    k = np.arange(1, n)
    w0, w1 = k / n, 1 - k / n
    m0 = csum[:-1] / k
    m1 = (csum[-1] - csum[:-1]) / (n - k)
    between = w0 * w1 * (m0 - m1) ** 2
    i = int(np.argmax(between))
    return (v[i] + v[i + 1]) / 2


def test_otsu_binarisation_matches_a_brute_force_otsu(tiny):
    g, _ = tiny_networks(tiny)
    with torch.no_grad():
        g.out.bias.fill_(0.002)  # an output not centred on 0, where Otsu and midpoint differ
    z = sample_latents(3, (1, 2, 2), seed=6)
    labels = decode(g, z, binarize="otsu")
    with torch.no_grad():
        y = g.eval()(torch.from_numpy(z))[:, 0].numpy()
    for img, lab in zip(y, labels, strict=True):
        ref = img > _otsu_brute_force(img)
        # skimage bins the values (256 bins): pixels within a bin of the cut may differ
        assert (ref != lab).mean() < 0.01
    assert not np.array_equal(labels, decode(g, z, binarize="midpoint"))


def test_periodic_decode_tiles(tiny):
    g, _ = tiny_networks(tiny)
    z = sample_latents(2, (1, 2, 2), seed=7)
    one = decode(g, z, periodic=True)
    four = decode(g, np.tile(z, (1, 1, 2, 2)), periodic=True)
    assert np.array_equal(four, np.tile(one, (1, 2, 2)))


def test_decode_accepts_a_fused_generator_and_torch(tiny):
    g, _ = tiny_networks(tiny)
    z = sample_latents(3, (1, 1, 1), seed=8)
    assert np.array_equal(decode(FusedGenerator(g), z), decode(g, torch.from_numpy(z)))


@pytest.mark.parametrize(
    ("z", "needle"),
    [
        (np.zeros((2, 2, 4, 4), np.float32), "2 channels"),
        (np.zeros((4, 4), np.float32), "N x C x h x w"),
        (np.full((1, 1, 2, 2), np.nan, np.float32), "NaN"),
        (np.zeros((0, 1, 2, 2), np.float32), "no latents"),
    ],
)
def test_decode_rejects_bad_latents(tiny, z, needle):
    g, _ = tiny_networks(tiny)
    with pytest.raises(InputError, match=needle):
        decode(g, z)


def test_decode_rejects_unknown_binarisation(tiny):
    g, _ = tiny_networks(tiny)
    with pytest.raises(InputError, match="midpoint or otsu"):
        decode(g, sample_latents(1, (1, 1, 1), seed=0), binarize="mean")


def test_bfloat16_decoding_flips_only_pixels_at_the_cut():
    from mdesign.gan import shipped_checkpoint

    g = shipped_checkpoint(device="cpu").generator
    z = sample_latents(32, (2, 4, 4), seed=9, global_channels=1)
    exact = decode(g, z)
    fast = decode(g, z, precision="bfloat16")
    assert fast.shape == exact.shape and fast.dtype == np.uint8
    # measured: 0.53% of pixels (the paper's network: 0.14%; the blur generator's smoother
    # output puts more pixels near the cut); a wrong cast or layout flips tens of percent
    assert 0 < (fast != exact).mean() < 0.01
    with pytest.raises(InputError, match="float32 or bfloat16"):
        decode(g, z, precision="float16")


def test_a_fraction_cut_is_exact_and_a_level_set_of_the_output(tiny):
    from mdesign.gan.sampling import _fused

    g, _ = tiny_networks(tiny)
    z = sample_latents(6, (1, 2, 2), seed=8)
    f = np.array([0.0, 0.1, 0.3, 0.5, 0.77, 1.0])
    labels = decode(g, z, fractions=f, batch_size=4)
    n_pix = 64 * 64
    # exact counts, to the pixel
    assert np.array_equal(labels.reshape(6, -1).sum(1), np.rint(f * n_pix).astype(int))
    # a level set of the output less its drift (Gaussian, one latent cell = 32 pixels wide):
    # every phase-1 pixel's value is above every phase-0 pixel's, per image
    from scipy.ndimage import gaussian_filter

    with torch.inference_mode():
        y = _fused(g, torch.float32)(torch.from_numpy(z), logits=True)[:, 0].double().numpy()
    y = np.stack([v - gaussian_filter(v, 32.0, mode="reflect") for v in y])
    for img, out in zip(labels, y, strict=True):
        if 0 < img.sum() < n_pix:
            assert out[img == 1].min() >= out[img == 0].max()
    # nested: a larger fraction of the same latent adds phase 1, never moves it
    more = decode(g, z, fractions=np.minimum(f + 0.2, 1.0))
    assert np.all(more >= labels)
    # one value for all; bad values are refused by name
    assert np.array_equal(decode(g, z, fractions=0.3).reshape(6, -1).sum(1), [1229] * 6)
    with pytest.raises(InputError, match="fractions"):
        decode(g, z, fractions=[0.5, 1.5, 0, 0, 0, 0])
    with pytest.raises(InputError, match="6 fractions"):
        decode(g, z, fractions=[0.5, 0.5])


def test_training_fractions_from_the_record_and_their_sampling():
    from scipy.stats import kstest

    from mdesign.gan import PAPER_CHECKPOINT, data_provenance, load_checkpoint
    from mdesign.gan.sampling import fractions_at, sample_fractions, training_fractions
    from mdesign.grf import grf_microstructures

    # the paper network's checkpoint predates the recorded quantiles; its data's record,
    # mdesign grf --volume-fraction 0.3:0.6 (drawn uniformly), gives them
    q = training_fractions(load_checkpoint(PAPER_CHECKPOINT).data_meta)
    assert np.allclose(q, np.linspace(0.3, 0.6, 101))
    # new checkpoints record the images' own quantiles: the inverse CDF of their fractions
    res = grf_microstructures(
        200, (32, 32), volume_fraction=(0.2, 0.7), correlation_length=3, seed=0
    )
    meta = data_provenance(res.images)
    q = training_fractions(meta)
    vf = res.images.reshape(200, -1).mean(1)
    assert q[0] == vf.min() and q[-1] == vf.max() and np.all(np.diff(q) >= 0)
    drawn = sample_fractions(4000, q, seed=1)
    assert (
        np.abs(np.quantile(drawn, [0.1, 0.5, 0.9]) - np.quantile(vf, [0.1, 0.5, 0.9])).max() < 0.02
    )
    assert np.array_equal(drawn, sample_fractions(4000, q, seed=1))
    assert (
        kstest(
            sample_fractions(4000, np.linspace(0.3, 0.6, 101), seed=2), "uniform", args=(0.3, 0.3)
        ).statistic
        < 0.03
    )
    assert fractions_at(np.array([0, 0.5, 1]), np.linspace(0.3, 0.6, 101)) == pytest.approx(
        [0.3, 0.45, 0.6]
    )
    assert training_fractions({"n_images": 3}) is None


def test_global_channels_of_the_prior_are_one_uniform_value_per_latent():
    from scipy.stats import kstest

    from mdesign.gan.sampling import latent_maps

    z = sample_latents(2000, (3, 4, 4), seed=7, global_channels=1)
    plain = sample_latents(2000, (3, 4, 4), seed=7)
    assert np.array_equal(z[:, :2], plain[:, :2])  # the local channels are the same draws
    assert np.array_equal(z[:, 2], np.broadcast_to(z[:, 2, :1, :1], (2000, 4, 4)))
    assert kstest(z[:, 2, 0, 0], "uniform", args=(-1, 2)).pvalue > 1e-3
    # design vectors (the local cells, then the global values) map back to the same latents
    x = np.concatenate([z[:, :2].reshape(2000, -1), z[:, 2:, 0, 0]], axis=1)
    assert x.shape == (2000, 2 * 16 + 1)
    assert np.array_equal(latent_maps(x, (3, 4, 4), global_channels=1).numpy(), z)
    with pytest.raises(InputError, match="global channels"):
        sample_latents(1, (1, 4, 4), seed=0, global_channels=2)


def test_decode_refuses_a_global_channel_that_varies_over_the_map():
    from tests.gan.conftest import tiny_config

    g = tiny_networks(tiny_config(generator={"global_channels": 1}))[0]
    z = sample_latents(3, (2, 3, 3), seed=4, global_channels=1)
    images = decode(g, z, fractions=0.5)
    # a bilinear resize of the maps rounds the constant channel: still accepted, same images
    zt = torch.from_numpy(z).double()
    big = torch.nn.functional.interpolate(zt, size=(5, 5), mode="bilinear").float()
    assert decode(g, big, fractions=0.5).shape == (3, 160, 160)
    assert np.array_equal(decode(g, z.copy(), fractions=0.5), images)
    wrong = sample_latents(3, (2, 3, 3), seed=4)  # the prior drawn without global_channels
    with pytest.raises(InputError, match=r"latent 0 varies .*global_channels=1"):
        decode(g, wrong, fractions=0.5)
    wrong = z.copy()
    wrong[2, 1, 1, 2] += 1e-3  # one cell of the last latent
    with pytest.raises(InputError, match=r"latent 2 varies over the map by 0\.001"):
        decode(g, wrong, fractions=0.5)


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("width", [3, 32])  # 32: scipy's kernel (radius 128) is longer than H, W
def test_fft_detrend_equals_scipys_gaussian_filter(periodic, width):
    from mdesign.gan.sampling import _detrend, _detrend_torch

    y = np.random.default_rng(0).normal(size=(3, 40, 72)).cumsum(1)  # drifting, non-square
    ours = _detrend_torch(torch.as_tensor(y), width=width, periodic=periodic).numpy()
    np.testing.assert_allclose(ours, _detrend(y, width=width, periodic=periodic), atol=1e-10)


@pytest.mark.parametrize("margin", [64, 0])  # 0: most brackets miss, torch.kthvalue's fallback
def test_the_device_cut_equals_level_cut(monkeypatch, margin):
    # _cut_torch (the cut off the CPU) brackets each image's k-th value in torch; run here on
    # CPU tensors against level_cut, numpy's partition
    from mdesign.gan import sampling
    from mdesign.grf import level_cut

    monkeypatch.setattr(sampling, "_BRACKET_MARGIN", margin)
    y = torch.randn(7, 16, 24, generator=torch.Generator().manual_seed(1))
    y[4, :4] = 0.25  # a tie at the level: ranked stably, as level_cut does
    y[6] = y[6].round()  # few distinct values: ties everywhere
    f = np.array([0.0, 0.2, 0.5, 0.61, 1 - 96 / 384, 1.0, 0.3])
    expected = level_cut(y.numpy(), np.stack([1 - f, f], axis=1))
    np.testing.assert_array_equal(sampling._cut_torch(y, f), expected)


def test_kth_smallest_equals_kthvalue(monkeypatch):
    from mdesign.gan import sampling
    from mdesign.gan.sampling import _kth_smallest

    flat = torch.randn(5, 5000, generator=torch.Generator().manual_seed(2)) ** 3
    k = torch.tensor([1, 17, 2500, 4999, 5000])
    expected = torch.stack([torch.kthvalue(r, int(i)).values for r, i in zip(flat, k, strict=True)])
    assert torch.equal(_kth_smallest(flat, k), expected)
    assert _kth_smallest(flat, torch.zeros(5, dtype=torch.int64)).eq(-math.inf).all()
    # brackets of no width: most miss, and torch.kthvalue is the fallback, row by row
    monkeypatch.setattr(sampling, "_BRACKET_MARGIN", 0)
    flat = torch.arange(18.0).reshape(3, 6).flip(1)
    k = torch.tensor([6, 2, 1])
    expected = torch.stack([torch.kthvalue(r, int(i)).values for r, i in zip(flat, k, strict=True)])
    assert torch.equal(_kth_smallest(flat, k), expected)
