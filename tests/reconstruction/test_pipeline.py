import numpy as np
import pytest

from mdesign.config import ReconstructionConfig
from mdesign.errors import InputError
from mdesign.grf import phase_counts
from mdesign.reconstruction import check_exemplar, reconstruct

FAST = dict(weights="random", iterations=8, anneal_sweeps=0.5)


def cfg(**flat) -> ReconstructionConfig:
    """The fast settings, and more, by their flat keys (mapped into the sections)."""
    return ReconstructionConfig(**{**FAST, **flat})


@pytest.fixture(scope="module")
def result(ceramics_crop):
    return reconstruct(ceramics_crop, (40, 36), cfg(seed=3), device="cpu")


def test_reconstruction_of_a_real_exemplar(result, ceramics_crop):
    res = result
    assert res.labels.shape == (40, 36) and res.labels.dtype == np.uint8
    assert res.pixels.shape == (1, 40, 36)
    # the exemplar's fractions, to within one pixel
    phi = ceramics_crop.mean()
    want = phase_counts(np.array([[1 - phi, phi]]), res.labels.size)[0]
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=2), want)
    assert res.errors.fraction_error_pixels <= 1
    # the optimiser ran and the loss fell
    assert res.iterations == 8 and res.optimization.losses[-1] < res.optimization.losses[0]
    rep = res.report()
    for key in (
        "volume_fraction_exemplar",
        "volume_fraction_reconstruction",
        "s2_rmse",
        "lineal_path_rmse",
        "iterations",
        "seconds",
        "weights",
    ):
        assert key in rep
    assert rep["weights"] == "random" and rep["iterations"] == 8
    assert rep["annealing"]["stages"] == [
        "fractions",
        "swaps+neighbourhood+cluster guard",
        "join network fragments",
        "remove small clusters",
        "fractions",
        "swaps+neighbourhood+cluster guard",
        "surface",
    ]
    assert rep["volume_fraction_exemplar"] == pytest.approx([1 - phi, phi])


def test_same_seed_same_bytes(result, ceramics_crop):
    again = reconstruct(ceramics_crop, (40, 36), cfg(seed=3), device="cpu")
    assert np.array_equal(again.labels, result.labels)
    other = reconstruct(ceramics_crop, (40, 36), cfg(seed=4), device="cpu")
    assert not np.array_equal(other.labels, result.labels)
    # a SeedSequence (or Generator) seed: its spawned children, the same bytes again
    a, b = (
        reconstruct(
            ceramics_crop, (40, 36), cfg(), seed=np.random.SeedSequence(3), device="cpu"
        ).labels
        for _ in range(2)
    )
    assert np.array_equal(a, b) and not np.array_equal(a, result.labels)


def test_three_phases_gram_only_coarse_to_fine(three_phase):
    ex = np.tile(three_phase, (2, 2))[:64, :64]
    res = reconstruct(
        ex, None, cfg(seed=0, s2_weight=0.0, coarse_to_fine=True, coarse_iterations=3), device="cpu"
    )
    assert res.coarse is not None and res.coarse.pixels.shape == (1, 3, 32, 32)
    assert res.iterations == 3 + 8
    fr = np.bincount(ex.ravel(), minlength=3) / ex.size
    assert np.all(np.abs(np.bincount(res.labels.ravel(), minlength=3) - fr * ex.size) <= 1)
    assert res.optimization.s2_losses.max() == 0


@pytest.mark.parametrize(
    ("image", "needle"),
    [
        (np.zeros((2, 40, 40)), "one 2D image"),
        (np.zeros((40, 40)), "only one phase"),
        (np.ones((40, 40)) * np.arange(40) % 9, "9 phases"),
        (np.eye(20), "at least 32"),
        ((np.arange(1600).reshape(40, 40) % 3) * 2, "missing 1"),
    ],
)
def test_bad_exemplars(image, needle):
    with pytest.raises(InputError, match=needle):
        check_exemplar(image)


def test_output_size_below_32_is_refused(ceramics_crop):
    with pytest.raises(InputError, match="at least 32") as info:
        reconstruct(ceramics_crop, (16, 40), cfg(), device="cpu")
    assert info.value.param == "size"  # the Python parameter; the CLI shows --size


def test_non_periodic_output(ceramics_crop):
    res = reconstruct(ceramics_crop, None, cfg(periodic=False, seed=1), device="cpu")
    assert res.labels.shape == ceramics_crop.shape
    assert res.errors.fraction_error_pixels <= 1
    assert res.optimization.losses[-1] < res.optimization.losses[0]
    # measured in-image, like the exemplar: the report's curves are the non-periodic ones
    from mdesign.reconstruction.metrics import reconstruction_errors

    e = reconstruction_errors(ceramics_crop, res.labels, phases=2, reconstruction_periodic=False)
    assert e.s2_rmse == res.errors.s2_rmse


def test_one_exemplar_for_an_image(ceramics_crop):
    with pytest.raises(InputError, match="need a volume"):
        reconstruct([ceramics_crop] * 3, (40, 40), cfg(), device="cpu")


def test_grf_start_begins_nearer_the_exemplars_s2(ceramics_crop):
    """``optimiser.init="grf"``: the fitted GRF's colours start the pixels, so the first S2 term
    is well below that of the noise start; the start's labels and fit are in the result."""
    kw = dict(seed=0, iterations=1, anneal_sweeps=0.1)
    noise = reconstruct(ceramics_crop, None, cfg(**kw, optimiser={"init": "noise"}), device="cpu")
    grf = reconstruct(ceramics_crop, None, cfg(**kw, optimiser={"init": "grf"}), device="cpu")
    assert noise.start is None and grf.grf is not None
    assert grf.start.shape == ceramics_crop.shape
    assert grf.optimization.s2_losses[0] < 0.5 * noise.optimization.s2_losses[0]


def test_grf_start_coarse_to_fine(three_phase):
    """The GRF start of the half-size stage is the full-size start's average (2x2 blocks)."""
    ex = np.tile(three_phase, (2, 2))[:64, :64]
    opt = {"init": "grf", "coarse_to_fine": True, "coarse_iterations": 2}
    c = cfg(seed=1, iterations=2, optimiser=opt)
    res = reconstruct(ex, None, c, device="cpu")
    assert res.start.shape == (64, 64) and res.coarse.pixels.shape == (1, 3, 32, 32)
    assert res.iterations == 4 and res.errors.fraction_error_pixels <= 1


@pytest.mark.parametrize("fine", [("relu1_1", "pool1"), None])
def test_full_size_stage_uses_the_fine_layers(three_phase, fine):
    """``texture.fine_layers``: after the half-size stage, the full-size stage's Gram term is
    the one of those layers (None: ``texture.layers``), recomputed here on the upsampled
    half-size pixels with an extractor of its own."""
    from mdesign.reconstruction.loss import TextureLoss
    from mdesign.reconstruction.pipeline import _upsample
    from mdesign.reconstruction.vgg import vgg19_features

    ex = np.tile(three_phase, (2, 2))[:64, :64]
    c = cfg(seed=2, iterations=1, coarse_to_fine=True, coarse_iterations=2)
    c = c.model_copy(update={"texture": c.texture.model_copy(update={"fine_layers": fine})})
    res = reconstruct(ex, None, c, device="cpu")
    layers = c.texture.layers if fine is None else fine
    extractor = vgg19_features(layers, weights="random", padding_mode="circular", seed=2)
    loss = TextureLoss(
        extractor.cpu(),
        ex,
        phases=3,
        s2_weight=1.0,
        s2_max_lag=16,
        periodic=True,
        temperature=c.texture.temperature,
        tv_weight=c.texture.tv_weight,
    )
    start = _upsample(res.coarse.pixels, (64, 64), periodic=True)
    assert float(loss(start).gram) == pytest.approx(res.optimization.gram_losses[0], rel=1e-5)


@pytest.mark.parametrize(("first", "cleanup"), [(0.25, True), (None, True), (0.25, False)])
def test_first_sweeps_sets_the_annealing_before_the_cleanup(
    ceramics_crop, monkeypatch, first, cleanup
):
    """``anneal.first_sweeps``: the proposals of the annealing before the cleanup; the one after
    it (or the only one, without the cleanup) keeps ``anneal.sweeps``."""
    import mdesign.reconstruction.pipeline as pipeline

    steps = []
    real = pipeline.anneal_fractions

    def spy(*args, **kw):
        steps.append(kw["steps"])
        return real(*args, **kw)

    monkeypatch.setattr(pipeline, "anneal_fractions", spy)
    c = cfg(seed=0, iterations=1, anneal_cleanup=cleanup)
    c = c.model_copy(update={"anneal": c.anneal.model_copy(update={"first_sweeps": first})})
    res = reconstruct(ceramics_crop, None, c, device="cpu")
    n = ceramics_crop.size
    if not cleanup:
        assert steps == [round(0.5 * n)]
    else:
        assert steps == [round((0.5 if first is None else first) * n), round(0.5 * n)]
    assert res.errors.fraction_error_pixels <= 1


def test_bfloat16_precision_reaches_the_loss(ceramics_crop):
    """``texture.precision: bfloat16``: the loss's extractor runs in bfloat16 (its Gram term
    differs from float32's at the same pixels, by rounding only), and a reconstruction keeps the
    exemplar's fractions."""
    from mdesign.reconstruction.pipeline import _extractor

    c = cfg(seed=1, iterations=2)
    low = c.model_copy(update={"texture": c.texture.model_copy(update={"precision": "bfloat16"})})
    assert _extractor(low, "cpu", False).precision == "bfloat16"
    assert _extractor(c, "cpu", False).precision == "float32"
    res = reconstruct(ceramics_crop[:48, :48], None, low, device="cpu")
    ref = reconstruct(ceramics_crop[:48, :48], None, c, device="cpu")
    first, first_ref = res.optimization.gram_losses[0], ref.optimization.gram_losses[0]
    assert first != first_ref and first == pytest.approx(first_ref, rel=0.05)
    assert res.errors.fraction_error_pixels <= 1
