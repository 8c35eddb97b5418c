import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import mdesign.gan.checkpoint as ckpt_mod
from mdesign.config import GAN_DEFAULTS
from mdesign.errors import InputError
from mdesign.gan import (
    PAPER_CHECKPOINT,
    SHIPPED_CHECKPOINT,
    GANCheckpoint,
    decode,
    latent_shape,
    load_checkpoint,
    sample_latents,
    save_checkpoint,
    shipped_checkpoint,
)
from tests.gan.conftest import tiny_networks


@pytest.fixture
def saved(tmp_path, tiny):
    g, d = tiny_networks(tiny)
    meta = {"n_images": 3, "shape": [32, 32], "grf": {"seed": 1, "volume_fraction": "0.3:0.5"}}
    path = save_checkpoint(
        tmp_path / "c.pt", generator=g, discriminator=d, config=tiny, epoch=7, data_meta=meta
    )
    return path, g, d, meta


def test_round_trip(saved, tiny):
    path, g, d, meta = saved
    ck = load_checkpoint(path, device="cpu")
    assert isinstance(ck, GANCheckpoint)
    assert ck.config == tiny and ck.epoch == 7 and ck.data_meta == meta
    assert not ck.generator.training and not ck.discriminator.training
    for a, b in ((g, ck.generator), (d, ck.discriminator)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    z = sample_latents(3, latent_shape(tiny, size=2), seed=0)
    assert np.array_equal(decode(ck.generator, z), decode(g, z))
    assert ck.latent_shape == (1, 1, 1)


def test_checkpoint_holds_only_plain_data(saved):
    # the weights-only unpickler refuses anything but tensors and containers of primitives
    state = torch.load(saved[0], weights_only=True)
    assert state["format"] == "mdesign.gan/1" and "optimizer_g" not in state


def test_corrupted_checkpoint(saved, tmp_path):
    data = saved[0].read_bytes()
    bad = tmp_path / "cut.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_checkpoint(noise)


def test_foreign_checkpoints(tmp_path, tiny):
    g, _ = tiny_networks(tiny)
    plain = tmp_path / "state_dict.pt"
    torch.save(g.state_dict(), plain)
    with pytest.raises(InputError, match="not an mdesign GAN checkpoint"):
        load_checkpoint(plain)
    pickled = tmp_path / "pickled.pt"
    torch.save(g, pickled)  # a whole pickled module: refused by weights_only
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_checkpoint(pickled)
    arbitrary = tmp_path / "evil.pt"
    arbitrary.write_bytes(pickle.dumps(print, protocol=2))
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_checkpoint(arbitrary)
    with pytest.raises(InputError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    tiles = tmp_path / "train.npz"  # a training set given as the checkpoint: named, not unpickled
    np.savez(tiles, images=np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(InputError, match=r"a \.npz file, not a checkpoint"):
        load_checkpoint(tiles)


def test_weights_that_do_not_fit_the_config(saved, tmp_path):
    state = torch.load(saved[0], weights_only=True)
    state["config"]["generator"]["widths"] = [16, 8, 8, 8]
    path = tmp_path / "mismatch.pt"
    torch.save(state, path)
    with pytest.raises(InputError, match="generator weights do not fit"):
        load_checkpoint(path)
    state["config"]["generator"]["widths"] = [0]
    torch.save(state, path)
    with pytest.raises(InputError, match=r"generator\.widths"):
        load_checkpoint(path)


def test_a_failed_write_keeps_the_old_checkpoint(saved, tiny, monkeypatch):
    path, g, d, _ = saved
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):  # f: a path, or the buffer of io.save_torch
        if hasattr(f, "write"):
            f.write(b"partial")
        else:
            Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, generator=g, discriminator=d, config=tiny, epoch=8)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_missing_shipped_checkpoint_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(ckpt_mod, "SHIPPED_CHECKPOINT", tmp_path / "gone.pt")
    with pytest.raises(InputError, match="shipped GAN checkpoint is missing"):
        shipped_checkpoint()


def test_shipped_checkpoints_are_the_recipes_in_configs():
    from mdesign.config import GANConfig, load_config

    configs = SHIPPED_CHECKPOINT.parents[2] / "configs"
    assert SHIPPED_CHECKPOINT.name == PAPER_CHECKPOINT.name == "checkpoint.pt"
    assert (SHIPPED_CHECKPOINT.parent.name, PAPER_CHECKPOINT.parent.name) == ("gan", "gan_paper")
    for path in (SHIPPED_CHECKPOINT, PAPER_CHECKPOINT):
        assert path.stat().st_size < 2_000_000
    ck = shipped_checkpoint(device="cpu")
    # the shipped model is configs/gan.yaml at its last epoch; the paper's network the typed
    # defaults (trained for 100 epochs)
    # (sample.batch_size, a decoding setting, is not the recipe: the checkpoints record 256)
    decoding = {"sample": {"batch_size"}}
    recipe = load_config(GANConfig, configs / "gan.yaml").model_dump(exclude=decoding)
    assert ck.config.model_dump(exclude=decoding) == recipe
    assert ck.epoch == ck.config.train.epochs == 47
    assert ck.latent_shape == (2, 4, 4)
    paper = load_checkpoint(PAPER_CHECKPOINT, device="cpu")
    skip = {"train": {"epochs"}, **decoding}
    assert paper.config.model_dump(exclude=skip) == GAN_DEFAULTS.model_dump(exclude=skip)
    assert paper.latent_shape == (1, 4, 4) and paper.epoch == 100
    # both were trained on the same 5,000 images
    for meta in (ck.data_meta, paper.data_meta):
        assert meta["shape"] == [128, 128] and meta["n_images"] == 5000 and "grf" in meta
    assert ck.data_meta["sha256"] == paper.data_meta["sha256"]


@pytest.mark.parametrize("upsample", ["resize", "blur"])
def test_other_generators_round_trip(tmp_path, upsample):
    from tests.gan.conftest import tiny_config

    config = tiny_config(generator={"upsample": upsample})
    g, d = tiny_networks(config)
    path = save_checkpoint(
        tmp_path / "r.pt", generator=g, discriminator=d, config=config, epoch=1, data_meta={}
    )
    ck = load_checkpoint(path, device="cpu")
    assert ck.config.generator.upsample == upsample and ck.generator.upsample == upsample
    z = sample_latents(4, latent_shape(config, size=2), seed=1)
    assert np.array_equal(decode(ck.generator, z), decode(g, z))


def test_mean_std_discriminator_round_trips(tmp_path):
    from tests.gan.conftest import tiny_config

    config = tiny_config(discriminator={"pool": "mean_std"})
    g, d = tiny_networks(config)
    path = save_checkpoint(
        tmp_path / "d.pt", generator=g, discriminator=d, config=config, epoch=1, data_meta={}
    )
    ck = load_checkpoint(path, device="cpu")
    assert ck.discriminator.pool == "mean_std" and ck.discriminator.head.in_features == 32
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ck.discriminator(x), d.eval()(x))


def test_checkpoints_without_upsample_are_transposed():
    # the paper's network was written before the options existed
    ck = load_checkpoint(PAPER_CHECKPOINT, device="cpu")
    assert ck.config.generator.upsample == "transposed"
    assert ck.config.discriminator.pool == "mean" and ck.discriminator.pool == "mean"
    assert isinstance(ck.generator.out, torch.nn.ConvTranspose2d)
