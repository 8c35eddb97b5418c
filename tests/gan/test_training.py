import json

import numpy as np
import pytest
import torch

import mdesign.gan.training as training
from mdesign.config import GAN_DEFAULTS, GANConfig, load_config
from mdesign.errors import InputError
from mdesign.gan import load_checkpoint
from mdesign.gan.checkpoint import read_checkpoint
from mdesign.gan.sampling import latent_shape, sample_latents
from mdesign.gan.training import check_training_images, data_provenance, train
from tests.gan.conftest import tiny_config, tiny_networks


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _metrics(path):
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    for rec in lines:
        for key in ("seconds", "seconds_total", "images_per_second"):
            rec.pop(key)
    return lines


def test_run_directory(tmp_path, tiny, tiny_images):
    res = train(tiny_images, tmp_path / "run", tiny, device="cpu")
    assert res.epoch == 2 and len(res.metrics) == 2
    assert load_config(GANConfig, res.out_dir / "config.yaml") == tiny
    assert sorted(p.name for p in (res.out_dir / "samples").iterdir()) == [
        "epoch_0001.png",
        "epoch_0002.png",
    ]
    recs = _metrics(res.out_dir / "metrics.jsonl")
    assert [r["epoch"] for r in recs] == [1, 2]
    for r in recs:
        assert np.isfinite([r["loss_d"], r["loss_g"], r["s2_distance"]]).all()
        assert 0 <= r["d_real"] <= 1 and 0 <= r["d_fake"] <= 1
    assert abs(recs[0]["volume_fraction_real"] - tiny_images[:8].mean()) < 1e-12
    assert all(0 <= r["grey_fraction"] <= 1 for r in recs)
    full, model = read_checkpoint(res.checkpoint), read_checkpoint(res.model)
    assert {"optimizer_g", "optimizer_d", "rng"} <= full.keys()
    assert not {"optimizer_g", "optimizer_d", "rng"} & model.keys()
    assert _same_state(full["generator"], model["generator"])
    assert full["data_meta"]["sha256"] == data_provenance(tiny_images)["sha256"]
    # an epoch is N // batch_size discriminator steps, and as many generator steps at D:G 1:1
    steps = [s["step"] for s in full["optimizer_d"]["state"].values()]
    assert all(int(s) == 2 * (32 // 8) for s in steps)


def test_monitor_counts_grey_pixels_in_eval_mode(tiny, tiny_images):
    g, _ = tiny_networks(tiny)
    with torch.no_grad():
        g.out.weight.mul_(100)  # spreads the tiny network's outputs over (-1, 1)
    z = torch.from_numpy(sample_latents(16, latent_shape(tiny), seed=1))
    g.train()
    grey = training._monitor(g, tiny_images, z, 8)["grey_fraction"]
    assert g.training  # the monitor does not switch the generator's mode
    with torch.no_grad():
        raw = g.eval()(z).numpy()
    want = (np.abs(raw) < 0.9).mean()
    assert 0.1 < want < 0.9  # a case the threshold decides
    assert grey == pytest.approx(want, abs=2e-3)


def test_d_steps_sets_the_ratio_of_updates(tmp_path, tiny_images):
    cfg = tiny_config(train={"d_steps": 2, "monitor_size": 0})
    res = train(tiny_images, tmp_path / "run", cfg, epochs=1, device="cpu")
    state = read_checkpoint(res.checkpoint)
    d_steps = {int(s["step"]) for s in state["optimizer_d"]["state"].values()}
    g_steps = {int(s["step"]) for s in state["optimizer_g"]["state"].values()}
    assert d_steps == {4} and g_steps == {2}
    assert "s2_distance" not in res.metrics[0]


def test_training_is_seeded(tmp_path, tiny, tiny_images):
    a = train(tiny_images, tmp_path / "a", tiny, epochs=1, device="cpu")
    b = train(tiny_images, tmp_path / "b", tiny, epochs=1, device="cpu")
    c = train(tiny_images, tmp_path / "c", tiny_config(train={"seed": 4}), epochs=1, device="cpu")
    ga, gb, gc = (read_checkpoint(r.model)["generator"] for r in (a, b, c))
    assert _same_state(ga, gb)
    assert not _same_state(ga, gc)


@pytest.mark.parametrize(
    ("upsample", "pool", "global_channels"),
    [
        ("transposed", "mean", 0),
        ("resize", "mean", 0),
        ("blur", "mean", 0),
        ("blur", "mean_std", 1),
    ],
)
def test_resume_continues_exactly(tmp_path, tiny_images, upsample, pool, global_channels):
    tiny = tiny_config(
        generator={"upsample": upsample, "global_channels": global_channels},
        discriminator={"pool": pool},
    )
    straight = train(tiny_images, tmp_path / "straight", tiny, epochs=3, device="cpu")
    train(tiny_images, tmp_path / "split", tiny, epochs=1, device="cpu")
    split = train(tiny_images, tmp_path / "split", None, epochs=3, resume=True, device="cpu")
    a, b = read_checkpoint(straight.checkpoint), read_checkpoint(split.checkpoint)
    assert a["epoch"] == b["epoch"] == 3
    for key in ("generator", "discriminator"):
        assert _same_state(a[key], b[key])
    assert torch.equal(a["rng"], b["rng"])
    assert _metrics(straight.out_dir / "metrics.jsonl") == _metrics(split.out_dir / "metrics.jsonl")
    loaded = load_checkpoint(split.out_dir / "model.pt")
    assert loaded.generator.upsample == upsample and loaded.discriminator.pool == pool
    assert loaded.generator.global_channels == global_channels
    assert loaded.latent_shape == (1 + global_channels, 1, 1)


def test_lr_steps_change_the_rate_from_their_epoch_and_resume_exactly(tmp_path, tiny_images):
    base = {"epochs": 3, "ema_decay": 0.0}
    stepped = tiny_config(train={**base, "lr_steps": [[2, 1e-4]]})
    assert [stepped.train.lr_at(e) for e in (1, 2, 3)] == [stepped.train.lr, 1e-4, 1e-4]
    straight = train(tiny_images, tmp_path / "straight", stepped, device="cpu")
    assert [r["lr"] for r in _metrics(straight.out_dir / "metrics.jsonl")] == [
        stepped.train.lr,
        1e-4,
        1e-4,
    ]
    state = read_checkpoint(straight.checkpoint)
    assert {g["lr"] for g in state["optimizer_g"]["param_groups"]} == {1e-4}
    # a resume across the step continues exactly
    train(tiny_images, tmp_path / "split", stepped, epochs=1, device="cpu")
    split = train(tiny_images, tmp_path / "split", None, epochs=3, resume=True, device="cpu")
    assert _same_state(state["generator"], read_checkpoint(split.checkpoint)["generator"])
    # a step to the same rate changes nothing; the run without it agrees up to epoch 1 only
    same = tiny_config(train={**base, "lr_steps": [[2, stepped.train.lr]]})
    plain = train(tiny_images, tmp_path / "plain", tiny_config(train=base), device="cpu")
    flat = train(tiny_images, tmp_path / "same", same, device="cpu")
    p, f = read_checkpoint(plain.checkpoint), read_checkpoint(flat.checkpoint)
    assert _same_state(p["generator"], f["generator"])
    assert not _same_state(p["generator"], state["generator"])
    recs = [_metrics(r.out_dir / "metrics.jsonl") for r in (plain, straight)]
    assert recs[0][0] == recs[1][0] and recs[0][1]["loss_d"] != recs[1][1]["loss_d"]


def test_lr_steps_must_be_in_order():
    with pytest.raises(InputError, match="lr_steps: epochs must increase"):
        tiny_config(train={"lr_steps": [[5, 1e-4], [3, 1e-5]]})
    with pytest.raises(InputError, match="lr_steps"):
        tiny_config(train={"lr_steps": [[1, 1e-4]]})  # epoch 1 is lr itself


@pytest.mark.parametrize("where", ["grid", "checkpoint"])
def test_resume_after_a_kill(tmp_path, tiny, tiny_images, monkeypatch, where):
    straight = train(tiny_images, tmp_path / "straight", tiny, device="cpu")
    real_write, real_save = training.write_images, training.save_checkpoint
    calls = {"n": 0}

    def killed_in_epoch_2(*args, **kwargs):
        calls["n"] += 1
        # the grid is written once per epoch, the checkpoints twice (full, then model)
        if calls["n"] == (2 if where == "grid" else 3):
            raise KeyboardInterrupt
        return (real_write if where == "grid" else real_save)(*args, **kwargs)

    monkeypatch.setattr(
        training, "write_images" if where == "grid" else "save_checkpoint", killed_in_epoch_2
    )
    with pytest.raises(KeyboardInterrupt):
        train(tiny_images, tmp_path / "killed", tiny, device="cpu")
    assert read_checkpoint(tmp_path / "killed" / "checkpoint.pt")["epoch"] == 1
    monkeypatch.setattr(training, "write_images", real_write)
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    resumed = train(tiny_images, tmp_path / "killed", None, resume=True, device="cpu")
    a, b = read_checkpoint(straight.checkpoint), read_checkpoint(resumed.checkpoint)
    assert _same_state(a["generator"], b["generator"])
    assert _metrics(straight.out_dir / "metrics.jsonl") == _metrics(
        resumed.out_dir / "metrics.jsonl"
    )


def test_existing_checkpoint_is_not_overwritten(tmp_path, tiny, tiny_images):
    res = train(tiny_images, tmp_path / "run", tiny, epochs=1, device="cpu")
    before = res.checkpoint.read_bytes()
    with pytest.raises(InputError, match="already holds") as info:
        train(tiny_images, tmp_path / "run", tiny, epochs=1, device="cpu")
    assert info.value.param == "out_dir"  # the Python parameter, not the CLI's --out
    assert res.checkpoint.read_bytes() == before
    with pytest.raises(InputError, match=r"another configuration \(differs in: train.lr\)"):
        train(tiny_images, tmp_path / "run", tiny_config(train={"lr": 1e-3}), resume=True)
    with pytest.raises(InputError, match="images differ"):
        train(1 - tiny_images, tmp_path / "run", None, resume=True, device="cpu")
    with pytest.raises(InputError, match="nothing to resume"):
        train(tiny_images, tmp_path / "other", None, resume=True, device="cpu")
    model_only = tmp_path / "m"
    model_only.mkdir()
    (model_only / "checkpoint.pt").write_bytes(res.model.read_bytes())
    with pytest.raises(InputError, match="not resumable"):
        train(tiny_images, model_only, None, resume=True, device="cpu")
    assert res.checkpoint.read_bytes() == before


def test_wgan_gp(tmp_path, tiny_images):
    cfg = tiny_config(
        train={"loss": "wgan-gp", "beta1": 0.0, "beta2": 0.9, "lr": 1e-4},
        discriminator={"norm": "instance"},
    )
    res = train(tiny_images, tmp_path / "run", cfg, epochs=1, device="cpu")
    rec = res.metrics[0]
    # the critic's loss includes the (non-negative) penalty; its outputs are unbounded scores
    assert np.isfinite([rec["loss_d"], rec["loss_g"]]).all()
    ck = load_checkpoint(res.model, device="cpu")
    assert ck.config.train.loss == "wgan-gp"
    with pytest.raises(InputError, match=r"discriminator\.norm"):
        tiny_config(train={"loss": "wgan-gp"})


@pytest.mark.parametrize(
    ("images", "needle"),
    [
        (np.zeros((64, 48, 48), np.uint8), "not divisible by 32"),
        (np.zeros((64, 64, 64), np.uint8), "set generator.latent_size: 2"),
        (np.zeros((64, 128, 96), np.uint8), "square"),
        (np.full((64, 128, 128), 2, np.uint8), "two-phase"),
        (np.zeros((64, 128, 128), np.float32), "label stack"),
        (np.zeros((128, 128), np.uint8), "label stack"),
        (np.zeros((10, 128, 128), np.uint8), "fewer than one batch"),
    ],
)
def test_bad_training_images(images, needle):
    with pytest.raises(InputError, match=needle):
        check_training_images(images, GAN_DEFAULTS)


def test_provenance_keeps_the_grf_record():
    meta = {"command": "grf", "seed": 0, "volume_fraction": "0.3:0.6"}
    rec = data_provenance(np.ones((2, 4, 4), np.uint8), source="x.npz", meta=meta)
    assert rec["grf"] == meta and rec["n_images"] == 2 and rec["volume_fraction"] == 1.0
    assert "grf" not in data_provenance(np.ones((2, 4, 4), np.uint8), meta={"command": "x"})


def test_the_saved_generator_is_the_weight_average(tmp_path, tiny_images):
    res = train(tiny_images, tmp_path / "ema", tiny_config(), epochs=1, device="cpu")
    state = read_checkpoint(res.checkpoint)
    assert state["ema_updates"] == 4
    avg, raw = state["generator"], state["generator_train"]
    assert not torch.equal(avg["out.weight"], raw["out.weight"])
    plain = train(tiny_images, tmp_path / "plain", tiny_config(train={"ema_decay": 0}), epochs=1)
    assert "generator_train" not in read_checkpoint(plain.checkpoint)
    # the same run without averaging trains the same weights
    assert _same_state(read_checkpoint(plain.checkpoint)["generator"], raw)


def test_ema_update_closed_form():
    from mdesign.gan.networks import Generator

    a, b = Generator(1, (2,)), Generator(1, (2,))
    with torch.no_grad():
        for p in a.parameters():
            p.fill_(1.0)
        for p in b.parameters():
            p.fill_(3.0)
    training._ema_update(a, b, decay=0.999, updates=0)  # warm-up: d = 1/10
    assert all(torch.allclose(p, torch.full_like(p, 0.1 * 1 + 0.9 * 3)) for p in a.parameters())
    training._ema_update(a, b, decay=0.5, updates=1000)  # d = decay
    assert all(torch.allclose(p, torch.full_like(p, 0.5 * 2.8 + 0.5 * 3)) for p in a.parameters())


def test_standing_statistics_are_the_mean_over_the_batches(tiny):
    from mdesign.gan.networks import Generator, init_weights, up_conv

    g = init_weights(Generator.from_config(tiny), seed=0)
    training.standing_statistics(g, (1, 1, 1), seed=9, n_batches=3, batch_size=5)
    assert not g.training
    gen = torch.Generator().manual_seed(9)
    zs = [torch.rand((5, 1, 1, 1), generator=gen) * 2 - 1 for _ in range(3)]
    with torch.no_grad():
        first = [up_conv(z, g.blocks[0].conv.weight, None, periodic=False) for z in zs]
    means = torch.stack([f.mean((0, 2, 3)) for f in first]).mean(0)
    variances = torch.stack([f.var((0, 2, 3)) for f in first]).mean(0)  # unbiased, per batch
    torch.testing.assert_close(g.blocks[0].norm.running_mean, means)
    torch.testing.assert_close(g.blocks[0].norm.running_var, variances)
    assert g.blocks[0].norm.momentum == 0.1
