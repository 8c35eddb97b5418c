"""Lamellae as a fitted Swift-Hohenberg pattern: periodic, one code for 2D and 3D, the target
period, exact fractions, seeded, and only lamellar exemplars rebuilt."""

import numpy as np
import pytest

from mdesign.data import LI2018_MATERIALS, li2018_exemplar
from mdesign.grf import grf_microstructures, phase_counts
from mdesign.reconstruction.baseline import dominant_wavenumber
from mdesign.reconstruction.lamellae import (
    LamellaeFit,
    _evolve,
    is_lamellar,
    lamellar_start,
    swift_hohenberg,
)

SH = dict(wavenumber=0.125, times=(20.0,), weight=0.0, eps=0.3, dt=0.5)


def test_evolution_commutes_with_a_periodic_shift():
    # the grid is a torus: shifting the start shifts the pattern (a walled grid would not)
    u0 = 0.1 * np.random.default_rng(0).standard_normal((24, 20, 16))
    shift = (5, -3, 7)
    a = _evolve(np.roll(u0, shift, axis=(0, 1, 2)), **SH | {"weight": 0.45})[0]
    b = np.roll(_evolve(u0, **SH | {"weight": 0.45})[0], shift, axis=(0, 1, 2))
    assert np.abs(a - b).max() < 1e-10


def test_a_volume_constant_along_one_axis_evolves_as_the_image():
    # one code for both: a 3D start constant along the last axis stays the 2D pattern per slice
    u0 = 0.1 * np.random.default_rng(1).standard_normal((32, 24))
    image = _evolve(u0, **SH)[0]
    volume = _evolve(np.repeat(u0[..., None], 8, axis=2), **SH)[0]
    assert np.abs(volume - image[..., None]).max() < 1e-10
    assert image.std() > 0.1  # a pattern grew (eps above onset), not the decayed noise


def _peak(field: np.ndarray) -> float:
    """Cycles per pixel of the radially binned power spectrum's maximum (sides equal)."""
    power = np.abs(np.fft.fftn(field - field.mean())) ** 2
    n = field.shape[0]
    k = np.sqrt(sum(f**2 for f in np.meshgrid(*(np.fft.fftfreq(s) for s in field.shape))))
    bins = np.rint(k * n).astype(np.int64).ravel()
    return float(np.argmax(np.bincount(bins, power.ravel())) / n)


def test_the_pattern_has_the_target_period():
    # an image's stripes and an isotropic volume's lamellae at the requested wavenumber; with
    # the slice planes' operator alone, the slices' stripes
    image = swift_hohenberg((64, 64), wavenumber=0.125, seed=3, times=(100.0,))[0]
    assert abs(dominant_wavenumber((image > 0).astype(np.uint8)) - 0.125) <= 1 / 64
    volume = swift_hohenberg((32, 32, 32), wavenumber=0.125, seed=3, times=(50.0,))[0]
    assert abs(_peak(volume) - 0.125) <= 1 / 32
    planes = swift_hohenberg((32,) * 3, wavenumber=0.125, seed=3, times=(50.0,), weight=1.0)[0]
    assert abs(_peak(planes) - 0.125 * np.sqrt(1.5)) <= 1 / 32  # the cube's diagonals
    for a in range(3):
        peaks = [dominant_wavenumber((s > 0).astype(np.uint8)) for s in np.moveaxis(planes, a, 0)]
        assert abs(np.median(peaks) - 0.125) <= 1 / 32


def test_sample_has_exact_fractions_and_is_seeded():
    fit = LamellaeFit(0.2, 0.3, 30.0, np.array([0.37, 0.63]), 0.0, 0.0)
    a = fit.sample((20, 18, 16), seed=4)
    assert a.dtype == np.uint8
    assert np.array_equal(np.bincount(a.ravel()), phase_counts(fit.fractions[None], a.size)[0])
    assert np.array_equal(a, fit.sample((20, 18, 16), seed=4))
    assert not np.array_equal(a, fit.sample((20, 18, 16), seed=5))


def test_only_the_copolymer_is_lamellar_among_the_li_exemplars():
    # the central 128^2 crops (the benches') and the 64^2 exemplars
    for ex in (
        [li2018_exemplar(m, 256)[64:192, 64:192] for m in LI2018_MATERIALS],
        [li2018_exemplar(m, 64) for m in LI2018_MATERIALS],
    ):
        found = [is_lamellar(e, int(e.max()) + 1) for e in ex]
        assert found == [m == "copolymer" for m in LI2018_MATERIALS]


def test_stripes_are_lamellar_and_a_level_cut_grf_is_not():
    field = swift_hohenberg((64, 64), wavenumber=0.2, seed=0, times=(100.0,))[0]
    assert is_lamellar((field > 0).astype(np.uint8), 2)
    grf = grf_microstructures(1, (64, 64), volume_fraction=0.5, correlation_length=3.0, seed=0)
    assert not is_lamellar(grf.images[0], 2)


@pytest.fixture(scope="module")
def copolymer():
    return li2018_exemplar("copolymer", 64)


def test_lamellar_start_replaces_a_lamellar_volume_only(copolymer):
    decoded = np.random.default_rng(0).integers(0, 2, (32, 32, 32)).astype(np.uint8)
    labels, fit = lamellar_start(decoded, [copolymer] * 3, phases=2, seed=0)
    assert fit is not None
    frac = np.bincount(copolymer.ravel()) / copolymer.size
    assert np.array_equal(np.bincount(labels.ravel()), phase_counts(frac[None], labels.size)[0])
    # the slices in every orientation carry the exemplar's period (to one bin of their spectrum)
    k0 = dominant_wavenumber(copolymer)
    for a in range(3):
        peaks = [dominant_wavenumber(s) for s in np.moveaxis(labels, a, 0)]
        assert abs(np.median(peaks) - k0) <= 1 / 32 + 1e-12
    again, _ = lamellar_start(decoded, [copolymer] * 3, phases=2, seed=0)
    assert np.array_equal(labels, again)
    alloy = li2018_exemplar("alloy", 64)
    same, none = lamellar_start(decoded, [alloy] * 3, phases=2, seed=0)
    assert none is None and np.array_equal(same, decoded)


def test_volume_lamellae_key_reaches_the_chain(copolymer):
    from mdesign.config import ReconstructionConfig
    from mdesign.reconstruction.pipeline import _anneal, _anneal_stages

    cfg = ReconstructionConfig()
    assert not cfg.anneal.volume_lamellae  # off by default
    an = cfg.anneal.model_copy(update={"volume_lamellae": True, "volume_sweeps": 0.2})
    on = cfg.model_copy(update={"anneal": an})
    off = cfg.model_copy(update={"anneal": an.model_copy(update={"volume_lamellae": False})})
    assert _anneal_stages(3, on, [copolymer] * 3)[:3] == (
        "lamellae",
        "fractions",
        "swaps+cluster guard",
    )
    carbonate = li2018_exemplar("carbonate", 64)
    assert _anneal_stages(3, on, [carbonate] * 3) == _anneal_stages(3, off, [carbonate] * 3)
    assert _anneal_stages(2, on, [copolymer]) == _anneal_stages(2, off, [copolymer])
    kw = dict(phases=2, quarter=8, cleanup_seed=1, progress=False)
    vol = np.random.default_rng(1).integers(0, 2, (32, 32, 32)).astype(np.uint8)
    # not lamellar: the same labels as without
    pmma = li2018_exemplar("pmma", 64)
    assert np.array_equal(*(_anneal(vol, [pmma] * 3, c, **kw).labels for c in (off, on)))
    res = _anneal(vol, [copolymer] * 3, on, **kw)
    frac = np.bincount(copolymer.ravel()) / copolymer.size
    assert np.array_equal(np.bincount(res.labels.ravel()), phase_counts(frac[None], vol.size)[0])
