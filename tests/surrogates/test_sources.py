"""Where a transfer surrogate's trunk comes from (:mod:`mdesign.surrogates.sources`)."""

import pytest

from tests.surrogates.conftest import tiny_surrogate_config


def test_transfer_source_is_a_gan_or_a_network_surrogate(tmp_path, tiny_gan_path, images, c10):
    from mdesign.errors import InputError
    from mdesign.gan.checkpoint import GANCheckpoint
    from mdesign.surrogates import make_surrogate, save_surrogate
    from mdesign.surrogates.sources import load_transfer_source

    assert isinstance(load_transfer_source(tiny_gan_path), GANCheckpoint)
    gp = make_surrogate("s2_gp", config=tiny_surrogate_config())
    gp.fit(images[:12], c10[:12], target={"values": "c10"})
    save_surrogate(gp, tmp_path / "gp.pt")
    with pytest.raises(InputError, match="no trunk to transfer") as info:
        load_transfer_source(tmp_path / "gp.pt")
    assert info.value.param == "path"
