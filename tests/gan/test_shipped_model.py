"""The shipped model (artifacts/gan: a global latent channel, a discriminator that sees the
spread of its features, the generator not weight-averaged, a lower learning rate late in
training) and the paper's network (artifacts/gan_paper) against fresh images of their training
distribution."""

import numpy as np
import pytest
import torch

from mdesign.descriptors import specific_surface
from mdesign.gan import (
    PAPER_CHECKPOINT,
    SHIPPED_CHECKPOINT,
    Discriminator,
    decode,
    discriminator_trunk,
    grf_reference,
    labels_to_signed,
    load_checkpoint,
    sample_latents,
    shipped_checkpoint,
)
from mdesign.gan.networks import init_weights
from mdesign.gan.sampling import sample_fractions, training_fractions
from mdesign.gan.validation import anisotropy, s2_distance
from mdesign.optimization.problem import GANDesignSpace, check_space
from mdesign.reconstruction.metrics import cluster_counts


@pytest.fixture(scope="module")
def shipped():
    return shipped_checkpoint(device="cpu")


@pytest.fixture(scope="module")
def paper():
    return load_checkpoint(PAPER_CHECKPOINT, device="cpu")


def test_it_is_a_design_space_of_16_local_cells_a_global_value_and_a_fraction(shipped):
    g = shipped.config.generator
    assert (g.latent_channels, g.global_channels, g.upsample) == (1, 1, "blur")
    assert shipped.config.discriminator.pool == "mean_std"
    assert shipped.config.train.lr_steps == [(42, 1.5e-4)] and shipped.epoch == 47
    assert shipped.latent_shape == (2, 4, 4)
    space = GANDesignSpace(SHIPPED_CHECKPOINT, device="cpu")
    check_space(space)
    assert space.dim == 18 and space.image_shape == (128, 128)


def test_samples_match_the_training_statistics(shipped):
    z = sample_latents(200, shipped.latent_shape, seed=11, global_channels=1)
    gen = decode(shipped.generator, z)  # cut at the midpoint: the generator's own fractions
    real = grf_reference(shipped.data_meta, 1000, seed=12).images
    # the training fractions are uniform on [0.3, 0.6]: mean 0.45; 200 samples have a standard
    # error of ~0.003 (the model's spread at the midpoint is 0.044; measured mean 0.459), and
    # the paper model at epoch 1 was 0.06 off
    assert abs(gen.mean() - 0.45) < 0.015
    assert 0.3 < np.quantile(gen.mean((1, 2)), 0.05) and np.quantile(gen.mean((1, 2)), 0.95) < 0.6
    # sampling noise alone gives ~0.004 here (measured 0.003); an untrained generator gives ~0.4
    assert s2_distance(gen, real) < 0.012


def _ridge_r2(features: np.ndarray, y: np.ndarray, n_train: int) -> float:
    X = np.c_[features, np.ones(len(features))]
    tr, te = slice(0, n_train), slice(n_train, None)
    w = np.linalg.solve(X[tr].T @ X[tr] + 1e-3 * np.eye(X.shape[1]), X[tr].T @ y[tr])
    resid = X[te] @ w - y[te]
    return 1 - (resid**2).sum() / ((y[te] - y[te].mean()) ** 2).sum()


def test_discriminator_features_transfer_to_structure(paper):
    # the paper's transferability claim, for the paper network's discriminator (the surrogates'
    # default trunk): a linear model on the trained trunk's features predicts held-out images'
    # volume fraction and correlation length, better than on the features of a random trunk
    # whose BatchNorm statistics are those of the same images. The shipped model's
    # discriminator transfers worse (fraction R^2 0.90, below a random trunk's 0.97;
    # artifacts/gan/README.md), so the surrogates start from this one.
    res = grf_reference(paper.data_meta, 400, seed=21)
    x = labels_to_signed(res.images)
    random_d = init_weights(Discriminator(), seed=0).train()
    for m in random_d.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a cumulative average: the statistics of exactly these images
    with torch.no_grad():
        random_d(x[:300])
        trained = discriminator_trunk(paper.discriminator)(x).numpy()
        untrained = discriminator_trunk(random_d.eval())(x).numpy()
    assert trained.shape == (400, paper.discriminator.out_features) == (400, 128)
    for y in (res.volume_fraction, res.correlation_length):
        r2_trained, r2_random = _ridge_r2(trained, y, 300), _ridge_r2(untrained, y, 300)
        # measured: fraction 0.98 vs 0.97, length 0.93 vs 0.82 (random conv features are good
        # at a mean like the fraction; training cuts the unexplained variance by 1.7x and 2.5x)
        assert r2_trained > 0.9, r2_trained
        assert 1 - r2_trained < 0.75 * (1 - r2_random), (r2_trained, r2_random)


def _morphology(ckpt, n: int, seed: int):
    g = ckpt.config.generator.global_channels
    z = sample_latents(n, ckpt.latent_shape, seed=seed, global_channels=g)
    f = sample_fractions(n, training_fractions(ckpt.data_meta), seed=seed)
    images = decode(ckpt.generator, z, fractions=f)
    return specific_surface(images, periodic=False), _clusters(images), anisotropy(images)


def _clusters(images) -> np.ndarray:
    return np.stack([cluster_counts(img, phases=2) for img in images])


def test_its_morphology_matches_the_training_images_where_the_papers_network_misses(shipped, paper):
    # neither is fitted on these figures: the GAN sees images, not cluster counts
    real = grf_reference(shipped.data_meta, 400, seed=21).images
    surf_real = specific_surface(real, periodic=False).mean()
    clusters_real = _clusters(real).mean(0)
    anisotropy_real = anisotropy(real).mean()
    surf, clusters, aniso = _morphology(shipped, 300, seed=22)
    err_surf = surf.mean() / surf_real - 1
    err_clusters = clusters.mean(0) / clusters_real - 1
    # 500-image validation over ten seeds: surface +2.2% to +6.8%, clusters within 9.5%,
    # anisotropy ratio 1.07-1.14; 300 images and a 400-image reference add a few percent of noise
    # (this draw: +3.6%, -5.7% / +2.7%, 1.15)
    assert abs(err_surf) < 0.09
    assert np.all(np.abs(err_clusters) < 0.15)
    # bars and streaks along the pixel grid: an earlier candidate (epoch 41) measured 1.39
    assert aniso.mean() / anisotropy_real < 1.25
    # the paper network's phase 0 is fragmented: +18% to +28% more clusters over the same seeds
    _, paper_clusters, _ = _morphology(paper, 300, seed=22)
    assert paper_clusters.mean(0)[0] / clusters_real[0] - 1 > 0.15
