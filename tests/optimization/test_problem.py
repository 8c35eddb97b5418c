import numpy as np
import pytest
import torch

from mdesign.gan import PAPER_CHECKPOINT, SHIPPED_CHECKPOINT
from mdesign.optimization.problem import GANDesignSpace, LatentDesignProblem, evaluate_design

OUTCOMES = [
    {"evaluator": "effective_conductivity", "params": {"conductivities": [1.0, 10.0]}},
    {"evaluator": "volume_fraction"},
]


@pytest.fixture(scope="module")
def space():
    return GANDesignSpace(SHIPPED_CHECKPOINT)


def test_the_shipped_gan_as_a_design_space(space):
    # 16 local latent cells, one global value, the fraction
    assert space.latent_shape == (2, 4, 4) and space.dim == 18 and space.fraction_variable
    assert space.image_shape == (128, 128)
    X = np.random.default_rng(0).uniform(-1, 1, (3, 18))
    a, b = space.decode(X), space.decode(X)
    assert a.shape == (3, 128, 128) and a.dtype == np.uint8 and np.array_equal(a, b)
    big = GANDesignSpace(SHIPPED_CHECKPOINT, latent_size=8)  # 64 cells, still one global value
    assert big.dim == 66 and big.image_shape == (256, 256)
    free = GANDesignSpace(SHIPPED_CHECKPOINT, fraction="free")
    assert free.dim == 17 and not free.fraction_variable
    paper = GANDesignSpace(PAPER_CHECKPOINT)  # the paper's network: no global channel
    assert paper.latent_shape == (1, 4, 4) and paper.dim == 17


def test_the_fraction_variable_spans_the_training_fractions_exactly(space):
    # the last coordinate x maps to the quantile (x + 1) / 2 of the training fractions (the
    # checkpoint records their quantiles; the 5,000 images were drawn uniform on [0.3, 0.6])
    from mdesign.gan.sampling import training_fractions

    q = training_fractions(space.ckpt.data_meta)
    assert abs(q[0] - 0.3) < 1e-3 and abs(q[-1] - 0.6) < 1e-3 and abs(q[50] - 0.45) < 0.01
    X = np.zeros((3, 18))
    X[:, -1] = [-1.0, 0.0, 1.0]
    vf = space.decode(X).mean((1, 2))
    assert np.allclose(vf, np.rint(q[[0, 50, 100]] * 128**2) / 128**2, atol=0)
    # random points of the box: fractions uniform on [0.3, 0.6] (KS against the uniform CDF)
    from scipy.stats import kstest

    X = np.random.default_rng(1).uniform(-1, 1, (300, 18))
    vf = space.decode(X).mean((1, 2))
    assert kstest(vf, "uniform", args=(0.3, 0.3)).statistic < 0.08
    # the latents still shape the image: the same fraction, other latents, another image
    X2 = X.copy()
    X2[:, :17] = np.random.default_rng(2).uniform(-1, 1, (300, 17))
    assert np.array_equal(space.decode(X2).mean((1, 2)), vf)
    assert not np.array_equal(space.decode(X2[:1]), space.decode(X[:1]))


def test_without_recorded_fractions_the_space_refuses_and_names_the_remedy(tmp_path):
    from mdesign.errors import InputError
    from mdesign.gan import load_checkpoint, save_checkpoint

    ck = load_checkpoint(SHIPPED_CHECKPOINT)
    path = tmp_path / "nofrac.pt"
    save_checkpoint(
        path,
        generator=ck.generator,
        discriminator=ck.discriminator,
        config=ck.config,
        epoch=ck.epoch,
        data_meta={"n_images": 1},
    )
    with pytest.raises(InputError, match="fraction: free"):
        GANDesignSpace(path)
    assert GANDesignSpace(path, fraction="free").dim == 17


def test_a_gan_with_a_global_channel_is_a_space_of_local_cells_and_one_global_value(tmp_path):
    from mdesign.gan import decode, save_checkpoint
    from mdesign.optimization.problem import check_space
    from tests.gan.conftest import tiny_config, tiny_networks

    config = tiny_config(generator={"global_channels": 1, "latent_size": 2})
    g, d = tiny_networks(config)
    with torch.no_grad():  # a global channel that matters as much as a trained one can
        g.blocks[0].conv.weight[1] *= 100
    path = save_checkpoint(
        tmp_path / "g.pt", generator=g, discriminator=d, config=config, epoch=1, data_meta={}
    )
    space = GANDesignSpace(path, fraction="free")
    assert space.latent_shape == (2, 2, 2) and space.dim == 4 + 1
    check_space(space)
    X = np.random.default_rng(0).uniform(-1, 1, (5, 5))
    z = space.latent_maps(X)
    assert torch.equal(z[:, 0], torch.as_tensor(X[:, :4], dtype=torch.float32).reshape(5, 2, 2))
    assert torch.equal(
        z[:, 1], torch.as_tensor(X[:, 4:], dtype=torch.float32)[:, :, None].expand(5, 2, 2)
    )
    assert np.array_equal(space.decode(X), decode(g, z))
    X2 = X.copy()
    X2[:, 4] = -X[:, 4]  # the global value alone changes the image
    assert not np.array_equal(space.decode(X2), space.decode(X))


def test_grf_baseline_is_drawn_like_the_training_set(space):
    from mdesign.gan import grf_training_parameters

    params = grf_training_parameters(space.ckpt.data_meta)
    lo, hi = params["volume_fraction"]
    img = space.grf(7)
    assert img.shape == (1, 128, 128)
    assert lo - 1 / 128**2 <= img.mean() <= hi + 1 / 128**2
    assert np.array_equal(img, space.grf(7)) and not np.array_equal(img, space.grf(8))


def test_problem_checks_bounds_and_evaluates(space):
    problem = LatentDesignProblem(space, OUTCOMES)
    assert problem.dim == 18 and problem.bounds.shape == (2, 18)
    X = torch.rand(2, 18, dtype=torch.float64) * 2 - 1
    Y = problem(X)
    assert Y.shape == (2, 2) and torch.isfinite(Y).all()
    vf = (space.decode(X.numpy()) == 1).reshape(2, -1).mean(1)
    assert np.allclose(Y[:, 1].numpy(), vf)
    # Wiener bounds on the conductivity
    assert (
        (Y[:, 0] >= 1 / (Y[:, 1] / 10 + 1 - Y[:, 1]) - 1e-6) & (Y[:, 0] <= 9 * Y[:, 1] + 1 + 1e-6)
    ).all()
    with pytest.raises(ValueError, match="bounds"):
        problem(X * 3)


def test_a_bad_design_is_a_failed_result_not_an_exception(space):
    ctx = {"space": {"checkpoint": str(SHIPPED_CHECKPOINT)}, "outcomes": OUTCOMES}
    res = evaluate_design(ctx, {"latent": [0.0] * 5})
    assert res["outcomes"] is None and "18 values" in res["error"]
    res = evaluate_design(ctx, {"latent": [2.0] * 18})
    assert res["outcomes"] is None and "[-1, 1]" in res["error"]
    ok = evaluate_design(ctx, {"latent": [0.1] * 18})
    assert ok["error"] is None and len(ok["outcomes"]) == 2
