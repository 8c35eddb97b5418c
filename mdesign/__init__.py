"""mdesign: generative microstructure design.

The main entry points are attributes of the package, imported on first use (PEP 562), so
``import mdesign`` is fast and loads neither torch nor matplotlib::

    import mdesign
    images = mdesign.grf_microstructures(4, (128, 128), volume_fraction=0.4,
                                         correlation_length=6, seed=0).images
    char = mdesign.characterize(images)
    fig = mdesign.plot_characterization(char, images)

``dir(mdesign)`` lists them; each lives in one stage module or subpackage:
:mod:`mdesign.grf` (training images), :mod:`mdesign.segment` (a grayscale micrograph to phase
labels), :mod:`mdesign.dataset` (a training set of tiles from your own images, with a held-out
region), :mod:`mdesign.descriptors`, :mod:`mdesign.evaluators` (properties),
:mod:`mdesign.reconstruction`, :mod:`mdesign.gan` (the latent design space),
:mod:`mdesign.surrogates`, :mod:`mdesign.optimization` (design campaigns; the Prefect wiring is
in ``flows/``), :mod:`mdesign.io`, :mod:`mdesign.plotting`, :mod:`mdesign.seeds`,
:mod:`mdesign.config` (every default once) and :mod:`mdesign.cli` (the ``mdesign`` command).

Importing the package has no side effects: no global seeds, no logging or numpy error settings.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it; imported when the name is first looked up
_ENTRY_POINTS = {
    "mdesign.grf": ["grf_microstructures", "gaussian_random_field", "level_cut", "GRFResult"],
    # mdesign.segment is the module (importing it sets the package attribute): segmenting is
    # mdesign.segment.segment(image)
    "mdesign.dataset": ["make_dataset", "TileDataset"],
    "mdesign.descriptors": [
        "characterize",
        "Characterization",
        "volume_fractions",
        "two_point_correlation",
        "lineal_path",
        "chord_lengths",
        "specific_surface",
    ],
    "mdesign.io": ["read_images", "write_images", "labels_from_values"],
    "mdesign.plotting": [
        "plot_characterization",
        "plot_segmentation",
        "show_labels",
        "save_figure",
    ],
    "mdesign.config": ["load_config"],
    "mdesign.evaluators": [
        "get_evaluator",
        "list_evaluators",
        "register_evaluator",
        "evaluate_batch",
        "effective_conductivity",
        "optical_absorption",
    ],
    "mdesign.reconstruction": ["reconstruct", "reconstruction_errors"],
    "mdesign.reconstruction.plot": ["plot_reconstruction", "plot_image"],
    "mdesign.gan": [
        "load_checkpoint",
        "shipped_checkpoint",
        "sample_latents",
        "decode",
        "train",
        "validate",
        "plot_validation",
    ],
    "mdesign.surrogates": ["make_surrogate", "load_surrogate", "screen", "run_study"],
    "mdesign.optimization": ["run_campaign"],
}
_WHERE = {name: module for module, names in _ENTRY_POINTS.items() for name in names}
_SUBMODULES = (
    "cli",
    "config",
    "dataset",
    "descriptors",
    "device",
    "errors",
    "evaluators",
    "gan",
    "grf",
    "io",
    "memory",
    "optimization",
    "plotting",
    "reconstruction",
    "runs",
    "seeds",
    "segment",
    "surrogates",
)

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({"__version__", *_WHERE, *_SUBMODULES})
