"""mdesign: generative microstructure design.

Stages, one module each: :mod:`mdesign.grf` (training images), :mod:`mdesign.descriptors`
(statistical descriptors), :mod:`mdesign.io` (images in and out), :mod:`mdesign.config` (typed
configuration), :mod:`mdesign.cli` (the ``mdesign`` command).

Importing the package has no side effects: no global seeds, no logging or numpy error settings.
"""

__version__ = "0.1.0"
