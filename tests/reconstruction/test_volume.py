import numpy as np
import pytest
import torch

from mdesign.config import ReconstructionConfig
from mdesign.data import li2018_exemplar
from mdesign.descriptors import autocorrelation
from mdesign.errors import InputError
from mdesign.grf import grf_microstructures, phase_counts
from mdesign.reconstruction.loss import s2_window
from mdesign.reconstruction.metrics import reconstruction_errors, slice_errors
from mdesign.reconstruction.pipeline import (
    BYTES_PER_PIXEL,
    _start,
    _upsample,
    check_exemplars,
    check_size,
    reconstruct,
    reconstruction_memory,
)
from mdesign.reconstruction.vgg import vgg19_features
from mdesign.reconstruction.volume_loss import (
    SliceLoss,
    plane_windows,
    slices_of,
)

SHAPE = (32, 36, 40)  # unequal sides: an axis mixed up with another changes a shape
FAST = dict(
    weights="random",
    volume_iterations=3,
    volume_anneal_sweeps=0.05,
    volume_anneal_max_lag=4,
    s2_max_lag=6,
    layers=["relu1_1", "pool1", "pool2"],
)


def reconstruct_volume(exemplars, *, size, **flat):
    """A volume with the fast settings (flat keys, mapped into the config's sections)."""
    return reconstruct(exemplars, size, ReconstructionConfig(**{**FAST, **flat}), device="cpu")


CONTRACT_KEYS = {
    "volume_fraction_exemplar",
    "volume_fraction_reconstruction",
    "s2_rmse",
    "lineal_path_rmse",
    "iterations",
    "seconds",
    "weights",
}


@pytest.fixture(scope="module")
def ceramics() -> np.ndarray:
    return li2018_exemplar("ceramics", 64)


@pytest.fixture(scope="module")
def result(ceramics):
    return reconstruct_volume(ceramics, size=SHAPE, seed=3, **FAST)


def _counts(fractions: np.ndarray, n: int) -> np.ndarray:
    return phase_counts(np.asarray(fractions)[None], n)[0]


def _fractions(image: np.ndarray, phases: int) -> np.ndarray:
    return np.bincount(image.ravel(), minlength=phases) / image.size


# --- the loss: slices, planes of displacements, streaming ----------------------------------


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slices_of_are_numpy_take_slices(axis):
    vol = torch.arange(2 * 5 * 6 * 7, dtype=torch.float64).reshape(2, 5, 6, 7)
    index = torch.tensor([4, 0, 2, 2])  # unsorted, repeated
    got = slices_of(vol, axis, index).numpy()
    others = [n for a, n in enumerate((5, 6, 7)) if a != axis]
    assert got.shape == (4, 2, *others)  # rows along the lower remaining axis
    for j, i in enumerate(index.tolist()):
        for c in range(2):
            np.testing.assert_array_equal(got[j, c], np.take(vol[c].numpy(), i, axis=axis))


@pytest.mark.parametrize("periodic", [True, False])
def test_plane_windows_are_the_mean_s2_window_of_the_slices(periodic):
    r = 3
    x = torch.rand(2, 9, 11, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    windows = plane_windows(autocorrelation(x, periodic=periodic, max_lag=r, dims=3), r)
    assert len(windows) == 3
    for axis, win in enumerate(windows):
        # every slice normal to `axis`, as a batch of 2-indicator images: n x 2 x h x w
        slices = np.stack([np.take(x.numpy(), i, axis=axis + 1) for i in range(x.shape[axis + 1])])
        want = s2_window(torch.as_tensor(slices), r, periodic=periodic).mean(0)
        assert win.shape == (2, 2 * r + 1, 2 * r + 1)
        torch.testing.assert_close(win, want, rtol=0, atol=1e-6)
    # the zero lag is the mean square, whatever the estimator
    torch.testing.assert_close(windows[0][:, r, r], (x**2).mean((1, 2, 3)))


@pytest.fixture(scope="module")
def slice_loss(three_phase):
    """A 3-phase SliceLoss with a different exemplar per axis (a wrong axis changes the loss)."""
    ex = np.tile(three_phase, (2, 2))
    exemplars = [ex[:32, :36], ex[5:41, 3:43].T.copy(), ex[10:42, 20:52]]
    model = vgg19_features(["relu1_1", "pool1", "pool2"], weights="random", seed=1)
    return SliceLoss(
        model,
        exemplars,
        phases=3,
        s2_weight=1.0,
        s2_max_lag=4,
        periodic=False,
        exemplar_periodic=False,
        temperature=0.1,
        tv_weight=1.0,
    )


def test_streamed_gram_gradient_is_the_gradient_of_the_whole_loss(slice_loss):
    gen = torch.Generator().manual_seed(4)
    base = torch.rand(3, 20, 24, 28, generator=gen)
    picks = [torch.tensor([3, 11, 3]), torch.tensor([], dtype=torch.long), torch.tensor([0, 27])]
    grads, totals = [], []
    for chunk in (1, 2, 100):
        vol = base.clone().requires_grad_(True)
        totals.append(slice_loss.gram_backward(vol, picks, chunk=chunk))
        grads.append(vol.grad.clone())
    # the plain loss in one graph: mean over the axes with picks of the mean over their slices
    vol = base.clone().requires_grad_(True)
    axes = [a for a in range(3) if len(picks[a])]
    plain = sum(slice_loss.gram(slices_of(vol, a, picks[a]), a) / len(picks[a]) for a in axes)
    plain = plain / len(axes)
    plain.backward()
    for total, grad in zip(totals, grads, strict=True):
        assert total == pytest.approx(plain.item(), rel=1e-5)
        torch.testing.assert_close(grad, vol.grad, rtol=1e-5, atol=1e-5 * vol.grad.abs().max())
    # slices that were not picked get no Gram gradient; the axis without picks none at all
    picked = torch.zeros(20, 24, 28, dtype=torch.bool)
    picked[[3, 11]] = True
    picked[:, :, [0, 27]] = True
    assert (grads[0][:, ~picked] == 0).all() and (grads[0][:, picked] != 0).any()


def test_backward_step_adds_the_field_terms_and_starts_from_zero(slice_loss):
    base = torch.rand(3, 20, 24, 28, generator=torch.Generator().manual_seed(5))
    picks = [torch.tensor([1]), torch.tensor([2]), torch.tensor([3])]
    vol = base.clone().requires_grad_(True)
    vol.grad = torch.full_like(vol, 7.0)  # a stale gradient must not leak into the step
    terms = slice_loss.backward_step(vol, picks, chunk=2)
    ref = base.clone().requires_grad_(True)
    gram = slice_loss.gram_backward(ref, picks, chunk=8)
    s2, tv = slice_loss.field_terms(ref)
    (s2 + tv).backward()  # both weights are 1
    torch.testing.assert_close(vol.grad, ref.grad)
    assert terms.gram == pytest.approx(gram, rel=1e-6)
    assert terms.s2 == pytest.approx(s2.item(), rel=1e-6) and terms.s2 > 0
    assert terms.total == pytest.approx(terms.gram + terms.s2 + terms.tv, rel=1e-6)


# --- slice statistics ------------------------------------------------------------------------


@pytest.mark.parametrize("periodic", [True, False])
def test_slice_errors_of_an_extruded_exemplar_are_zero(periodic):
    ex = li2018_exemplar("ceramics", 64)[8:40, 4:40]  # 32 x 36, a real (non-periodic) image
    vol = np.repeat(ex[None], 32, axis=0)  # every slice normal to axis 0 is the exemplar
    e = slice_errors(
        ex, vol, axis=0, phases=2, volume_periodic=periodic, exemplar_periodic=periodic
    )
    # zero up to the rounding of a mean over 32 equal slices
    assert e.s2_rmse < 1e-12 and e.lineal_path_rmse < 1e-12 and e.fraction_error < 1e-12
    me, mr = e.morphology_exemplar, e.morphology_reconstruction
    np.testing.assert_array_equal(mr.clusters, me.clusters)
    np.testing.assert_allclose(mr.mean_chord_length, me.mean_chord_length, rtol=1e-12)
    np.testing.assert_allclose(mr.specific_surface, me.specific_surface, rtol=1e-6)
    np.testing.assert_allclose(e.volume_fraction_reconstruction, _fractions(ex, 2), rtol=1e-12)
    # along the other axes the slices are not the exemplar: the error is seen
    assert slice_errors(ex, vol, axis=1, phases=2).s2_rmse > 0.01


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_one_slice_of_the_exemplars_size_is_a_2d_reconstruction(axis, three_phase):
    ex = three_phase[:, :36]
    rec = grf_microstructures(
        1, (40, 36), volume_fraction=[0.3, 0.25], correlation_length=4, phases=3, seed=5
    ).images[0]
    vol = np.expand_dims(rec, axis)  # the volume's only slice normal to `axis` is rec
    kw = dict(phases=3, exemplar_periodic=True)
    e3 = slice_errors(ex, vol, axis=axis, volume_periodic=False, **kw)
    e2 = reconstruction_errors(ex, rec, reconstruction_periodic=False, **kw)
    assert e3.s2_rmse == pytest.approx(e2.s2_rmse, rel=1e-6) and e3.s2_rmse > 0
    assert e3.lineal_path_rmse == pytest.approx(e2.lineal_path_rmse, rel=1e-6)
    assert e3.fraction_error == pytest.approx(e2.fraction_error)
    for key in ("clusters", "specific_surface", "mean_chord_length", "lineal_path"):
        a = getattr(e3.morphology_reconstruction, key)
        b = getattr(e2.morphology_reconstruction, key)
        np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=key)
        a = getattr(e3.morphology_exemplar, key)
        b = getattr(e2.morphology_exemplar, key)
        np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=key)


# --- checks and memory ----------------------------------------------------------------------


def test_volume_memory_grows_with_the_size_and_the_chunk():
    small = reconstruction_memory((32, 32, 32), chunk=4)
    assert reconstruction_memory((32, 32, 33), chunk=4) > small
    assert reconstruction_memory((32, 32, 32), chunk=5) > small
    # the chunk's activations are those of the largest face, whichever axis it is normal to
    face = 48 * 64
    assert reconstruction_memory((32, 48, 64), chunk=9) - reconstruction_memory(
        (32, 48, 64), chunk=4
    ) == (5 * BYTES_PER_PIXEL * face)
    assert reconstruction_memory((64, 32, 48), chunk=4) == reconstruction_memory(
        (32, 48, 64), chunk=4
    )


@pytest.mark.parametrize("size", [(32,), (32, 32, 16), (32, 32, 32, 32), (0, 40, 40)])
def test_volume_sizes_refused(size):
    with pytest.raises(InputError, match="at least 32") as info:
        check_size(size)
    assert info.value.param == "size"


def test_exemplar_sets_refused(ceramics, three_phase):
    two = ceramics[:40, :40]
    with pytest.raises(InputError, match="got 2"):
        check_exemplars([two, two], sources=["a", "b"])
    with pytest.raises(InputError, match="b: 3"):
        check_exemplars([two, three_phase, two], sources=["a", "b", "c"])
    assert check_exemplars([two, two, two], sources=["a", "b", "c"]) == 2


# --- the pipeline -----------------------------------------------------------------------------


def test_volume_reconstruction_has_the_exemplars_fractions(result, ceramics):
    res = result
    assert res.labels.shape == SHAPE and res.labels.dtype == np.uint8
    assert res.decoded.shape == SHAPE and res.start.shape == SHAPE
    want = _counts(_fractions(ceramics, 2), res.labels.size)
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=2), want)
    assert res.iterations == 3 and np.isfinite(res.optimization.losses).all()
    rep = res.report()
    assert CONTRACT_KEYS <= rep.keys()
    assert rep["weights"] == "random" and rep["iterations"] == 3 and rep["shape"] == list(SHAPE)
    assert rep["volume_fraction_exemplar"] == pytest.approx(_fractions(ceramics, 2).tolist())
    assert rep["volume_fraction_reconstruction"] == pytest.approx((want / want.sum()).tolist())
    assert rep["fraction_error_pixels"] == 0
    assert rep["annealing"]["stages"] == ["fractions", "swaps"]  # not the 2D-only ones
    assert len(rep["axes"]) == 3
    assert [a["slices"] for a in rep["axes"]] == list(SHAPE)
    # the per-axis statistics are those of the returned labels, and the top level their mean
    for a, entry in enumerate(rep["axes"]):
        e = slice_errors(ceramics, res.labels, axis=a, phases=2, exemplar_periodic=False)
        assert entry["s2_rmse"] == pytest.approx(e.s2_rmse)
        assert entry["lineal_path_rmse"] == pytest.approx(e.lineal_path_rmse)
    assert rep["s2_rmse"] == pytest.approx(np.mean([a["s2_rmse"] for a in rep["axes"]]))


def test_volume_same_seed_same_bytes(result, ceramics):
    again = reconstruct_volume(ceramics, size=SHAPE, seed=3, **FAST)
    assert np.array_equal(again.labels, result.labels)
    np.testing.assert_array_equal(again.optimization.losses, result.optimization.losses)
    other = reconstruct_volume(ceramics, size=SHAPE, seed=4, **FAST)
    assert not np.array_equal(other.labels, result.labels)


@pytest.mark.parametrize("names", [("ceramics", "alloy", "sandstone"), ("alloy", "alloy", "pmma")])
def test_three_exemplars_one_per_axis(names):
    exemplars = [li2018_exemplar(name, 64) for name in names]
    fractions = [_fractions(ex, 2) for ex in exemplars]
    distinct = [fractions[i] for i, n in enumerate(names) if n not in names[:i]]
    assert np.ptp([f[1] for f in distinct]) > 0.05  # different enough to tell them apart
    res = reconstruct_volume(exemplars, size=(32, 32, 32), seed=0, **FAST)
    # the mean of the distinct exemplars: an axis pair sharing one exemplar counts it once
    target = np.mean(distinct, axis=0)
    want = _counts(target, res.labels.size)
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=2), want)
    # each axis is measured against its own exemplar
    for a, e in enumerate(res.axes):
        np.testing.assert_allclose(e.volume_fraction_exemplar, fractions[a])
    # the report's exemplar fractions are those the labels were made to
    rep = res.report()
    assert rep["volume_fraction_exemplar"] == pytest.approx(target)
    vf = np.array(rep["volume_fraction_reconstruction"])
    assert np.abs(vf - target).max() * res.labels.size <= 1
    assert rep["fraction_error_pixels"] == 0


def test_three_phase_volume():
    ex = li2018_exemplar("composite", 64)
    res = reconstruct_volume(ex, size=(32, 32, 32), seed=1, **FAST)
    want = _counts(_fractions(ex, 3), res.labels.size)
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=3), want)
    rep = res.report()
    assert rep["curve_phases"] == [0, 1, 2]
    assert all(len(a["s2_slices"]) == 3 for a in rep["axes"])


def test_noise_start_is_further_from_the_exemplar_than_the_grf_start(result, ceramics):
    noise = reconstruct_volume(ceramics, size=SHAPE, seed=3, volume_init="noise", **FAST)
    assert noise.start is None and noise.grf is None and noise.report()["start"] is None
    want = _counts(_fractions(ceramics, 2), noise.labels.size)
    assert np.array_equal(np.bincount(noise.labels.ravel(), minlength=2), want)
    # a few steps cannot make noise's slices correlate like the exemplar; the fitted GRF's do
    assert result.grf is not None and result.report()["start"] is not None
    for g, n in zip(result.axes, noise.axes, strict=True):
        assert g.s2_rmse < 0.5 * n.s2_rmse


def test_unknown_settings_are_an_error_not_ignored():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="anneal_sweep"):
        ReconstructionConfig(anneal_sweep=0.1)


def test_a_web_phase_starts_as_sheets_only_when_every_exemplar_has_it():
    alloy = li2018_exemplar("alloy", 64)
    pmma = li2018_exemplar("pmma", 64)
    kw = dict(phases=2, init="grf", seed=0, exemplar_periodic=False)
    labels, fit = _start([alloy] * 3, (32, 32, 32), **kw)
    assert fit.sheet_phase == 0  # the grain boundaries
    assert np.bincount(labels.ravel(), minlength=2)[0] == round(fit.fractions[0] * labels.size)
    _, fit = _start([pmma] * 3, (32, 32, 32), **kw)
    assert fit.sheet_phase is None  # particles: a level cut
    _, fit = _start([alloy, alloy, pmma], (32, 32, 32), **kw)
    assert fit.sheet_phase is None
    assert _start([alloy] * 3, (32, 32, 32), **{**kw, "init": "noise"}) == (None, None)


@pytest.mark.parametrize("init", ["shell", "lamellae"])
def test_lamellar_starts_have_the_exemplars_period_and_fractions(init):
    from mdesign.reconstruction.baseline import dominant_wavenumber

    ex = li2018_exemplar("copolymer", 64)
    labels, fit = _start(
        [ex] * 3, (32, 32, 32), phases=2, init=init, seed=0, exemplar_periodic=False
    )
    assert np.bincount(labels.ravel(), minlength=2)[1] == round(fit.fractions[1] * labels.size)
    k0 = dominant_wavenumber(ex)
    assert fit.correlation_length == pytest.approx(1 / (fit.wavenumber), rel=1e-12)
    assert 1.0 <= fit.wavenumber / k0 <= 1.2 + 1e-9
    if init == "lamellae":  # every slice orientation has the exemplar's period
        for axis in range(3):
            sl = np.take(labels, 16, axis=axis)
            assert dominant_wavenumber(sl) == pytest.approx(k0, abs=1.5 / 32)


def test_a_lamellar_start_runs_through_the_pipeline_to_exact_fractions():
    ex = li2018_exemplar("copolymer", 64)
    res = reconstruct_volume(ex, size=(32, 32, 32), seed=0, volume_init="lamellae", **FAST)
    want = _counts(_fractions(ex, 2), res.labels.size)
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=2), want)
    assert res.report()["start"]["grf_covariance"] == "shell"


# --- coarse-to-fine (slices.coarse_to_fine) ------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 10), (8, 10, 12)])
def test_periodic_upsampling_commutes_with_shifts_on_the_torus(shape):
    # the wrap is right when a shift of one coarse pixel is a shift of two fine ones
    x = torch.rand((1, 2, *shape), generator=torch.Generator().manual_seed(0))
    big = tuple(2 * n for n in shape)
    up = _upsample(x, big, periodic=True)
    assert up.shape == (1, 2, *big)
    dims = tuple(range(2, 2 + len(shape)))
    shifted = _upsample(torch.roll(x, (1,) * len(shape), dims), big, periodic=True)
    torch.testing.assert_close(shifted, torch.roll(up, (2,) * len(shape), dims))
    # a constant stays constant, and the mean is kept
    torch.testing.assert_close(_upsample(torch.full_like(x, 0.3), big, periodic=True), 0.3 + 0 * up)
    torch.testing.assert_close(up.mean(dims), x.mean(dims))
    assert _upsample(x, big, periodic=False).shape == up.shape


def test_volume_coarse_to_fine_runs_a_half_size_stage_first():
    ex = li2018_exemplar("ceramics", 64)
    base = ReconstructionConfig(**FAST)
    cfg = base.model_copy(
        update={
            "seed": 1,
            "slices": base.slices.model_copy(
                update={"coarse_to_fine": True, "coarse_iterations": 2}
            ),
        }
    )
    res = reconstruct(ex, (64, 68, 72), cfg, device="cpu")
    assert res.coarse is not None and res.coarse.pixels.shape == (1, 1, 32, 34, 36)
    assert res.optimization.pixels.shape == (1, 1, 64, 68, 72)
    assert res.iterations == 3 + 2 and np.isfinite(res.coarse.losses).all()
    want = _counts(_fractions(ex, 2), res.labels.size)
    assert np.array_equal(np.bincount(res.labels.ravel(), minlength=2), want)
    # below twice the smallest side there is no half-size stage
    small = reconstruct(ex, SHAPE, cfg, device="cpu")
    assert small.coarse is None and small.iterations == 3
