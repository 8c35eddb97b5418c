"""The DCGAN latent design space (Yang et al., J. Mech. Des. 140(11) 111416, 2018).

A fully convolutional generator maps a latent map ``z`` (``N x C x h x w``, uniform on
``[-1, 1]``; 16 design variables for the paper's ``1 x 4 x 4``) to a two-phase microstructure of
side ``32 h``. ``G`` of the ``C`` channels may be global, one value per image
(``generator.global_channels``): the shipped model, ``artifacts/gan``, has one (a
``2 x 4 x 4`` map of 16 cells and one global value); the paper's network,
``artifacts/gan_paper``, has none. This package holds the networks
(:mod:`~mdesign.gan.networks`), the training loop (:mod:`~mdesign.gan.training`, ``mdesign
train``), checkpoints (:mod:`~mdesign.gan.checkpoint`), decoding (:mod:`~mdesign.gan.sampling`,
``mdesign sample``) and statistical validation (:mod:`~mdesign.gan.validation`).

Typical use::

    from mdesign.gan import decode, latent_shape, load_checkpoint, sample_latents
    from mdesign.gan import SHIPPED_CHECKPOINT

    ckpt = load_checkpoint(SHIPPED_CHECKPOINT)
    G = ckpt.config.generator.global_channels      # channels with one value per image
    z = sample_latents(8, latent_shape(ckpt.config), seed=0, global_channels=G)  # 8 x 2 x 4 x 4
    images = decode(ckpt.generator, z, fractions=0.45)           # 8 x 128 x 128 uint8
    big = sample_latents(1, latent_shape(ckpt.config, size=8), seed=1, global_channels=G)
    decode(ckpt.generator, big, fractions=0.45)                  # 1 x 256 x 256

Discriminator features for structure-property models: ``discriminator_trunk(ckpt.discriminator)``
maps ``N x 1 x H x W`` images (``labels_to_signed``) to ``N x F`` with ``F = trunk.out_features``.
"""

from mdesign.gan.checkpoint import (
    PAPER_CHECKPOINT,
    SHIPPED_CHECKPOINT,
    GANCheckpoint,
    load_checkpoint,
    save_checkpoint,
    shipped_checkpoint,
)
from mdesign.gan.networks import (
    Discriminator,
    DiscriminatorTrunk,
    FusedGenerator,
    Generator,
    discriminator_trunk,
    labels_to_signed,
)
from mdesign.gan.sampling import check_latents, decode, latent_shape, sample_latents
from mdesign.gan.training import TrainResult, check_training_images, data_provenance, train
from mdesign.gan.validation import (
    ValidationReport,
    grf_reference,
    grf_training_parameters,
    plot_validation,
    s2_distance,
    validate,
)

__all__ = [
    "PAPER_CHECKPOINT",
    "SHIPPED_CHECKPOINT",
    "Discriminator",
    "DiscriminatorTrunk",
    "FusedGenerator",
    "GANCheckpoint",
    "Generator",
    "TrainResult",
    "ValidationReport",
    "check_latents",
    "check_training_images",
    "data_provenance",
    "decode",
    "discriminator_trunk",
    "grf_reference",
    "grf_training_parameters",
    "labels_to_signed",
    "latent_shape",
    "load_checkpoint",
    "plot_validation",
    "s2_distance",
    "sample_latents",
    "save_checkpoint",
    "shipped_checkpoint",
    "train",
    "validate",
]
