"""Every plotting function returns a Figure, draws into a given one, and saves only when asked."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.figure import Figure

from mdesign.descriptors import characterize
from mdesign.grf import grf_microstructures
from mdesign.plotting import plot_band, plot_characterization, show_labels

PNG = b"\x89PNG\r\n\x1a\n"


def _images(n=6, shape=(32, 32), seed=0):
    kw = dict(volume_fraction=(0.3, 0.5), correlation_length=3, device="cpu")
    return grf_microstructures(n, shape, seed=seed, **kw).images


def _validation():
    from mdesign.gan.validation import validate

    a, b, c = (_images(8, seed=s) for s in (1, 2, 3))
    return (validate(a, b, c, max_distance=6), a, b), {}


def _reconstruction():
    from mdesign.reconstruction.metrics import reconstruction_errors

    ex, rec = _images(2, (40, 40))
    return (ex, rec, reconstruction_errors(ex, rec, phases=2)), {"title": "t"}


def _volume():
    from mdesign.reconstruction.metrics import slice_errors

    ex = _images(1, (40, 40))[0]
    vol = _images(1, (32, 32, 32))[0]
    axes = [slice_errors(ex, vol, axis=a, phases=2) for a in range(3)]
    return ([ex], SimpleNamespace(labels=vol, axes=axes, seconds=1.0)), {}


def _characterization(shape=(32, 32)):
    images = _images(4, shape)
    return (characterize(images, max_distance=8), images), {"title": "t"}


def _segmentation():
    from mdesign.segment import segment, synthetic_micrograph

    labels = _images(1, (48, 48))[0]
    gray = synthetic_micrograph(labels, seed=np.random.SeedSequence(1))
    return (gray, segment(gray, phases=2, denoise="none", regularize="none")), {}


def _curves():
    sizes = {"8": [0.2, 0.05], "16": [0.1, 0.02]}
    results = {
        "curves": {
            "conductivity": {"transfer": {"mae": sizes, "r2": sizes}, "s2_gp": {"mae": sizes}}
        },
        "config": {"study": {"seeds": 2}},
        "data": {"test": 10},
    }
    return (results,), {}


def _plotters():
    from mdesign.gan.validation import plot_validation
    from mdesign.plotting import plot_segmentation
    from mdesign.reconstruction.plot import plot_image, plot_reconstruction
    from mdesign.surrogates.study.report import plot_learning_curves

    return {
        "characterization": (plot_characterization, _characterization),
        "characterization_3d": (plot_characterization, lambda: _characterization((16, 16, 16))),
        "reconstruction": (plot_image, _reconstruction),
        "volume_reconstruction": (plot_reconstruction, _volume),
        "validation": (plot_validation, _validation),
        "segmentation": (plot_segmentation, _segmentation),
        "learning_curves": (plot_learning_curves, _curves),
    }


@pytest.mark.parametrize(
    "name",
    [
        "characterization",
        "characterization_3d",
        "reconstruction",
        "volume_reconstruction",
        "validation",
        "segmentation",
        "learning_curves",
    ],
)
def test_each_plot_returns_a_figure_draws_into_a_given_one_and_saves_on_request(name, tmp_path):
    plot, make = _plotters()[name]
    args, kw = make()
    fig = plot(*args, **kw)
    assert isinstance(fig, Figure) and fig.axes
    assert not list(tmp_path.iterdir())  # nothing written unless asked
    # into a subfigure of the caller's figure: the caller's figure comes back, its other panel kept
    outer = Figure(figsize=(14, 12), layout="constrained")
    left, right = outer.subfigures(1, 2, width_ratios=[1, 4])
    mine = left.subplots()
    out = plot(*args, fig=right, **kw)
    assert out is outer and mine in outer.axes
    assert len(outer.axes) == len(fig.axes) + 1  # the root lists its subfigures' axes
    # path= also writes the PNG (the CLI's), and still returns the figure
    assert isinstance(plot(*args, tmp_path / "a.png", **kw), Figure)
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG


def test_panel_helpers_draw_into_the_given_axes_and_return_its_figure():
    fig = Figure()
    ax = fig.add_subplot()
    assert show_labels(ax, _images(1)[0], k=2, title="x") is fig
    assert len(ax.images) == 1 and ax.get_title() == "x"
    other = fig.add_subplot(2, 1, 2)
    assert plot_band(other, np.random.default_rng(0).random((5, 9)), label="b") is fig
    assert len(other.lines) == 1 and len(other.collections) == 1  # the mean and its band
    with pytest.raises(TypeError, match="fig"):
        plot_characterization(*_characterization()[0], fig=ax)
