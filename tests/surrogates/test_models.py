"""Surrogate models: fit/predict invariants, save/load round trips, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdesign.errors import InputError
from mdesign.evaluators import effective_conductivity
from mdesign.surrogates import (
    NetworkSurrogate,
    S2Surrogate,
    Surrogate,
    load_surrogate,
    s2_features,
    save_surrogate,
    scratch_surrogate,
    transfer_surrogate,
)
from mdesign.surrogates.networks import augment, build_trunk, flip_views, trunk_architecture
from tests.surrogates.conftest import ARCH, NET, S2

TRAIN, TEST = slice(0, 40), slice(200, 240)


def _fit(kind: str, images, values, gan, *, seed=0):
    if kind == "s2_gp":
        return S2Surrogate(S2).fit(images[TRAIN], values[TRAIN], seed=seed)
    if kind == "scratch":
        return scratch_surrogate(ARCH, config=NET).fit(images[TRAIN], values[TRAIN], seed=seed)
    return transfer_surrogate(gan, mode=kind, config=NET).fit(
        images[TRAIN], values[TRAIN], seed=seed, target={"task": "c10"}
    )


@pytest.fixture(scope="module", params=["frozen", "finetune", "scratch", "s2_gp"])
def fitted(request, images, c10, tiny_gan):
    return request.param, _fit(request.param, images, c10, tiny_gan)


def test_save_load_round_trip_gives_identical_predictions(fitted, images, tmp_path):
    kind, model = fitted
    path = save_surrogate(model, tmp_path / f"{kind}.pt")
    # the file is plain tensors and containers: loadable without unpickling code
    torch.load(path, weights_only=True)
    again = load_surrogate(path)
    a, b = model.predict(images[TEST]), again.predict(images[TEST])
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    assert again.target == model.target
    assert again.fit_info.n_images == 40
    if isinstance(model, NetworkSurrogate):
        assert again.mode == model.mode and len(again.members) == len(model.members)


def test_both_families_satisfy_the_surrogate_protocol(fitted):
    kind, model = fitted
    assert isinstance(model, Surrogate) and model.is_fitted
    assert model.kind == ("s2_gp" if kind == "s2_gp" else "network") and model.mode == kind
    assert not isinstance(object(), Surrogate)


def test_same_seed_same_model_other_seed_other_model(fitted, images, c10, tiny_gan):
    kind, model = fitted
    again = _fit(kind, images, c10, tiny_gan)
    np.testing.assert_array_equal(
        again.predict(images[TEST]).mean, model.predict(images[TEST]).mean
    )
    if kind != "s2_gp":  # the GP's fit has no randomness unless it must restart
        other = _fit(kind, images, c10, tiny_gan, seed=1)
        assert not np.array_equal(
            other.predict(images[TEST]).mean, model.predict(images[TEST]).mean
        )


def test_uncertainty_is_the_ensemble_spread(fitted, images):
    kind, model = fitted
    pred = model.predict(images[TEST])
    assert pred.mean.shape == pred.std.shape == (40,)
    assert np.isfinite(pred.mean).all() and (pred.std > 0).all()
    if kind != "s2_gp":
        members = model.member_predictions(images[TEST])
        assert members.shape == (NET.ensemble_size, 40)
        np.testing.assert_allclose(pred.mean, members.mean(0), rtol=1e-12)
        np.testing.assert_allclose(pred.std, members.std(0), rtol=1e-12)


def test_models_learn_the_property(fitted, images, c10):
    # 40 labels of a volume-fraction-dominated property: every model beats the mean predictor
    kind, model = fitted
    pred = model.predict(images[TEST]).mean
    y = c10[TEST]
    assert np.abs(pred - y).mean() < 0.6 * np.abs(y - c10[TRAIN].mean()).mean(), kind


def test_prediction_is_per_image(fitted, images):
    _, model = fitted
    batch = model.predict(images[TEST]).mean
    single = np.array([model.predict(images[i : i + 1]).mean[0] for i in range(200, 205)])
    np.testing.assert_allclose(single, batch[:5], rtol=1e-5)


def test_frozen_and_finetune_leave_the_source_alone(images, c10, tiny_gan):
    before = {k: v.clone() for k, v in tiny_gan.discriminator.state_dict().items()}
    frozen = transfer_surrogate(tiny_gan, mode="frozen", config=NET).fit(images[TRAIN], c10[TRAIN])
    keep_norm = NET.model_copy(update={"finetune_norm": "frozen"})
    tuned = transfer_surrogate(tiny_gan, mode="finetune", config=keep_norm)
    tuned.fit(images[TRAIN], c10[TRAIN])
    for k, v in tiny_gan.discriminator.state_dict().items():
        assert torch.equal(v, before[k])
    src = {f"features.{k}": v for k, v in tiny_gan.discriminator.features.state_dict().items()}
    # the frozen members share the pretrained trunk, unchanged
    assert frozen.members[0].trunk is frozen.members[1].trunk
    for k, v in frozen.members[0].trunk.state_dict().items():
        assert torch.equal(v, src[k]), k
    # fine-tuning moves the convolutions but (finetune_norm: frozen) not BatchNorm's statistics
    moved = tuned.members[0].trunk.state_dict()
    assert not torch.equal(moved["features.0.conv.weight"], src["features.0.conv.weight"])
    assert torch.equal(moved["features.1.norm.running_mean"], src["features.1.norm.running_mean"])


def test_augmentations_are_symmetries_of_the_conductivity(images):
    x = torch.as_tensor(images[:6]).float().unsqueeze(1)
    gen = torch.Generator().manual_seed(0)
    y = augment(x, generator=gen)
    views = flip_views(x)
    assert y.shape == x.shape and views.shape == (24, 1, 32, 32)
    # a flip and a periodic shift rearrange the pixels...
    np.testing.assert_array_equal(y.sum((1, 2, 3)), x.sum((1, 2, 3)))
    assert not torch.equal(y, x)
    # ...and keep the effective conductivity along x (same periodic medium, mirrored)
    a = effective_conductivity(images[:6], conductivities=(1, 10), refinement=1, tolerance=1e-8)
    b = effective_conductivity(
        y[:, 0].numpy().astype(np.uint8), conductivities=(1, 10), refinement=1, tolerance=1e-8
    )
    c = effective_conductivity(
        views[:, 0].numpy().astype(np.uint8), conductivities=(1, 10), refinement=1, tolerance=1e-8
    )
    np.testing.assert_allclose(b, a, rtol=1e-6)
    np.testing.assert_allclose(c, np.tile(a, 4), rtol=1e-6)


def test_trunk_architecture_round_trip():
    assert trunk_architecture(build_trunk(ARCH)) == ARCH


def test_s2_features_centre_is_the_fraction_and_the_map_is_symmetric(images):
    f = s2_features(images[:5], max_distance=4).reshape(5, 9, 9)
    np.testing.assert_allclose(f[:, 4, 4], images[:5].mean((1, 2)), rtol=1e-6)
    np.testing.assert_allclose(f, f[:, ::-1, ::-1], atol=1e-6)  # S2(d) = S2(-d)


def test_s2_gp_recovers_a_principal_component(images):
    # a property that is the first principal component of the training S2 maps (computed here
    # independently, from the eigenvectors of their covariance) is one of the GP's inputs:
    # PCA + GP must predict it on new images almost exactly
    x = s2_features(images, max_distance=4)
    mean = x[:60].mean(0)
    _, vecs = np.linalg.eigh(np.cov(x[:60] - mean, rowvar=False))
    y = (x - mean) @ vecs[:, -1]
    model = S2Surrogate(S2).fit(images[:60], y[:60])
    pred = model.predict(images[TEST])
    err = np.abs(pred.mean - y[TEST]).max()
    assert err < 0.02 * np.ptp(y[:60]), err


def test_bad_input(images, c10, tiny_gan, tmp_path):
    model = scratch_surrogate(ARCH, config=NET)
    with pytest.raises(InputError, match="labels 0 and 1"):
        model.fit(images[:10] * 2, c10[:10])
    with pytest.raises(InputError, match="multiples of 4"):
        model.fit(images[:10, :30, :30], c10[:10])
    with pytest.raises(InputError, match="10 values"):
        model.fit(images[:10], c10[:9])
    with pytest.raises(InputError, match="finite"):
        model.fit(images[:10], np.r_[c10[:9], np.nan])
    with pytest.raises(InputError, match="too few"):
        model.fit(images[:5], c10[:5])
    with pytest.raises(InputError, match="not fitted"):
        model.predict(images[:2])
    with pytest.raises(InputError, match="pretrained trunk"):
        NetworkSurrogate("frozen")
    with pytest.raises(InputError, match="no such"):
        load_surrogate(tmp_path / "missing.pt")
    # the GAN's checkpoint is not a surrogate; nor is a truncated file
    with pytest.raises(InputError, match="not an mdesign surrogate"):
        load_surrogate(tiny_gan.path)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match="not a readable"):
        load_surrogate(bad)


def test_shipped_config_is_the_default():
    from pathlib import Path

    from mdesign.config import SURROGATE_DEFAULTS, SurrogateConfig, load_config

    path = Path(__file__).resolve().parents[2] / "configs" / "surrogates.yaml"
    assert load_config(SurrogateConfig, path) == SURROGATE_DEFAULTS


def test_study_config_is_checked():
    from mdesign.config import SurrogateConfig, config_from_dict

    with pytest.raises(InputError, match="cross: source 'x' is not a task"):
        config_from_dict(SurrogateConfig, {"study": {"cross": [{"source": "x", "target": "y"}]}})
    with pytest.raises(InputError, match=r"study\.sizes\.0"):
        config_from_dict(SurrogateConfig, {"study": {"sizes": [1]}})
    with pytest.raises(InputError, match=r"network\.pool"):
        config_from_dict(SurrogateConfig, {"network": {"pool": "max"}})


def test_calibration_scales_the_spread_to_the_held_out_errors(images, c10, tiny_gan, tmp_path):
    model = _fit("frozen", images, c10, tiny_gan)
    held = slice(100, 160)
    raw = model.predict(images[held])
    scale = model.calibrate(images[held], c10[held])
    # the maximum-likelihood factor: the z-scores' root mean square is one afterwards
    pred = model.predict(images[held])
    np.testing.assert_allclose(pred.mean, raw.mean, rtol=1e-12)
    np.testing.assert_allclose(pred.std, raw.std * scale, rtol=1e-12)
    z = (c10[held] - pred.mean) / pred.std
    assert np.sqrt(np.mean(z**2)) == pytest.approx(1.0, rel=1e-9)
    assert scale != pytest.approx(1.0, rel=1e-3)
    again = load_surrogate(save_surrogate(model, tmp_path / "cal.pt"))
    assert again.std_scale == scale
    np.testing.assert_array_equal(again.predict(images[TEST]).std, model.predict(images[TEST]).std)
    model.fit(images[TRAIN], c10[TRAIN], seed=0)  # a refit drops the old calibration
    assert model.std_scale == 1.0
    with pytest.raises(InputError, match="values"):
        model.calibrate(images[held], c10[:3])


def test_a_seed_sequence_seeds_the_members_by_spawning(images, c10):
    def fit(seed):
        short = NET.model_copy(update={"max_steps": 10})
        model = scratch_surrogate(ARCH, config=short).fit(
            images[:16], c10[:16], seed=seed, ensemble_size=2
        )
        return model.predict(images[TEST]).mean

    spawned = fit(np.random.SeedSequence(3))
    np.testing.assert_array_equal(spawned, fit(np.random.SeedSequence(3)))
    assert not np.array_equal(spawned, fit(3))  # children of the sequence, not [3, k]
