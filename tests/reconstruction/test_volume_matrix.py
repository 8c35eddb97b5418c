"""The matrix-material rule (``anneal.volume_matrix``, on by default): which exemplars take the
image's annealing stages in a volume, and volumes of the other materials unchanged by it."""

import numpy as np
import pytest

from mdesign.config import ReconstructionConfig
from mdesign.data import li2018_exemplar
from mdesign.reconstruction.annealing import MATRIX_MINORITY, is_matrix_material
from mdesign.reconstruction.pipeline import _anneal_kwargs, _anneal_stages, reconstruct

FAST = dict(
    weights="random",
    volume_iterations=3,
    volume_anneal_sweeps=0.05,
    volume_anneal_max_lag=4,
    s2_max_lag=6,
    layers=["relu1_1", "pool1", "pool2"],
)


def _crop(img, side):
    y0 = (img.shape[0] - side) // 2
    return img[y0 : y0 + side, y0 : y0 + side]


def _li(name):
    """The shipped exemplar at 64, at 256 and its central 128 crop (the benches' exemplar)."""
    big = li2018_exemplar(name, 256)
    return [li2018_exemplar(name, 64), big, _crop(big, 128)]


@pytest.mark.parametrize(
    ("name", "picked"),
    [
        ("carbonate", True),  # a pore matrix around many small grains (14-20% of the image)
        ("sandstone", True),
        ("pmma", False),  # a matrix, but its particles are 2-3% of the image
        ("ceramics", False),  # no matrix: the largest cluster holds 50-84% of its phase
        ("alloy", False),  # a thin network around grains: neither is a matrix
        ("copolymer", False),  # lamellae
        ("composite", False),
    ],
)
def test_the_rule_picks_the_porous_rocks_among_the_shipped_exemplars(name, picked):
    for ex in _li(name):
        assert is_matrix_material(ex, int(ex.max()) + 1) is picked


def _pores(side=48, pore=5, step=12):
    """A matrix (0) with separate square pores (1), ``pore**2 / step**2`` of the image."""
    img = np.zeros((side, side), dtype=np.uint8)
    for y in range(3, side, step):
        for x in range(3, side, step):
            img[y : y + pore, x : x + pore] = 1
    return img


def test_the_rule_on_synthetic_exemplars():
    rock = _pores()  # 17% pores
    assert is_matrix_material(rock, 2) and is_matrix_material(1 - rock, 2)  # either label
    sparse = _pores(pore=3)  # 6% particles: sparse
    assert (sparse == 1).mean() < MATRIX_MINORITY and not is_matrix_material(sparse, 2)
    # just above and below the threshold: 10 px pores of 30 px cells (11%) and 9 px (9%)
    assert is_matrix_material(_pores(60, 10, 30), 2)
    assert not is_matrix_material(_pores(60, 9, 30), 2)
    stripes = np.zeros((48, 48), dtype=np.uint8)
    stripes[:, ::4] = stripes[:, 1::4] = 1  # half and half, many clusters each
    assert not is_matrix_material(stripes, 2)
    cut = rock.copy()
    cut[:, ::6] = 1  # the matrix cut into strips: 30% pores but no cluster of 95%
    assert not is_matrix_material(cut, 2)
    # three phases: a matrix with two pore kinds, and the same with one of them sparse
    three = rock.copy()
    three[:, 24:][three[:, 24:] == 1] = 2
    assert (np.bincount(three.ravel()) / three.size).min() < MATRIX_MINORITY
    assert not is_matrix_material(three, 3)
    assert not is_matrix_material(np.where(rock == 1, 2, 0).astype(np.uint8), 3)  # 1 absent
    # the default takes the image's stages on a rock's volume and only there
    cfg = ReconstructionConfig()
    assert cfg.anneal.volume_matrix
    # (an image of the rock also shapes its pores as particles, a volume does not)
    image = ReconstructionConfig(anneal={"shape_particles": False})
    assert _anneal_stages(3, cfg, [rock] * 3) == _anneal_stages(2, image, [rock])
    for other in (sparse, stripes, cut):
        assert _anneal_stages(3, cfg, [other] * 3) == ("fractions", "swaps")  # a volume's chain
    assert _anneal_stages(3, cfg, [rock, rock, sparse]) == ("fractions", "swaps")


def _config(matrix=True):
    cfg = ReconstructionConfig(**FAST, seed=1)
    return cfg.model_copy(
        update={"anneal": cfg.anneal.model_copy(update={"volume_matrix": matrix})}
    )


def _volume(ex, *, matrix=True):
    return reconstruct(ex, (32, 32, 32), _config(matrix), device="cpu")


@pytest.mark.parametrize("name", ["alloy", "ceramics", "copolymer", "pmma"])
def test_the_other_materials_volume_settings_are_those_without_the_rule(name):
    for ex in _li(name):
        kw = dict(ndim=3, size=64**3, phases=2, quarter=16, exemplars=[ex] * 3)
        assert _anneal_kwargs(_config(), **kw) == _anneal_kwargs(_config(False), **kw)
        assert _anneal_stages(3, _config(), [ex] * 3) == _anneal_stages(3, _config(False), [ex] * 3)


@pytest.mark.parametrize("name", ["ceramics", "pmma"])
def test_volumes_of_the_other_materials_are_unchanged_by_the_default(name):
    ex = li2018_exemplar(name, 64)
    on, off = _volume(ex), _volume(ex, matrix=False)
    assert np.array_equal(on.labels, off.labels)
    assert on.report()["annealing"]["stages"] == ["fractions", "swaps"]


def test_a_rocks_volume_takes_the_images_stages_by_default():
    ex = li2018_exemplar("sandstone", 64)
    on, off = _volume(ex), _volume(ex, matrix=False)
    stages = on.report()["annealing"]["stages"]
    assert "swaps+neighbourhood+cluster guard" in stages and "surface" in stages
    assert off.report()["annealing"]["stages"] == ["fractions", "swaps"]
    assert not np.array_equal(on.labels, off.labels)
    counts = [np.bincount(r.labels.ravel(), minlength=2) for r in (on, off)]
    assert np.array_equal(*counts)  # the same exact fractions
