"""mdesign: generative microstructure design.

Stages, one module or subpackage each (the README's table maps them to commands):

* :mod:`mdesign.grf`: training images, level-cut Gaussian random fields;
* :mod:`mdesign.segment`: a grayscale micrograph to phase labels; :mod:`mdesign.dataset`: a GAN
  training set of tiles cut from a user's images, with a held-out region;
* :mod:`mdesign.descriptors`: statistical descriptors (phase fractions, two-point correlation,
  lineal path, chord lengths, specific surface);
* :mod:`mdesign.evaluators`: property evaluators (effective conductivity, optical absorption),
  their protocol and registry;
* :mod:`mdesign.reconstruction`: single-exemplar reconstruction (VGG19 Gram matrices, k-means
  decoding, annealing);
* :mod:`mdesign.gan`: the DCGAN latent design space (networks, training, decoding, validation);
* :mod:`mdesign.surrogates`: structure-property surrogates on small data (transfer from the
  discriminator, scratch, PCA(S2) + GP), the ``surrogate`` evaluator and screening;
* :mod:`mdesign.optimization`: design campaigns, Bayesian optimisation over the GAN's latent
  space against random baselines (the Prefect wiring is in ``flows/``, outside the package);
* :mod:`mdesign.io`: images in and out (``.npz``, ``.npy``, ``.png``, ``.tif``);
  :mod:`mdesign.runs`: run folders that resume and refuse another configuration;
* :mod:`mdesign.config`: typed configuration, every default once;
* :mod:`mdesign.cli`: the ``mdesign`` command.

Importing the package has no side effects: no global seeds, no logging or numpy error settings.
"""

__version__ = "0.1.0"
