from pathlib import Path

import pytest

from mdesign.config import (
    GAN_DEFAULTS,
    GRF_DEFAULTS,
    GANConfig,
    GRFConfig,
    dump_config,
    load_config,
)
from mdesign.errors import InputError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_shipped_grf_config_is_the_default():
    # configs/grf.yaml documents the defaults; it must not drift from the typed config
    assert load_config(GRFConfig, CONFIGS / "grf.yaml") == GRF_DEFAULTS


def test_round_trip_and_overrides(tmp_path):
    cfg = load_config(GRFConfig, None, phases=3, covariance=None)
    assert cfg.phases == 3 and cfg.covariance == GRF_DEFAULTS.covariance
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(GRFConfig, path) == cfg


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("phases: 9\n", "phases"),
        ("covariance: cubic\n", "covariance"),
        ("anisotropy: -1\n", "anisotropy"),
        ("phasse: 3\n", "phasse: unknown key"),
        ("- a\n- b\n", "mapping"),
        ("phases: [1\n", "not valid YAML"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=needle) as info:
        load_config(GRFConfig, path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"phases: 3\n\xff\xfe\n", "not UTF-8"),
        (b"PK\x03\x04\x00\x00binary", "binary file"),  # an .npz given as a config
        (b"# " + b"x" * (1 << 20) + b"\n", "not a config file"),
    ],
)
def test_non_text_config_files_are_refused_by_name(tmp_path, payload, needle):
    path = tmp_path / "bad.yaml"
    path.write_bytes(payload)
    with pytest.raises(InputError, match=needle) as info:
        load_config(GRFConfig, path)
    assert str(info.value).startswith(f"{path}: ")


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="no such config file"):
        load_config(GRFConfig, tmp_path / "nope.yaml")


def test_shipped_gan_config_is_the_default():
    assert load_config(GANConfig, CONFIGS / "gan.yaml") == GAN_DEFAULTS


def test_gan_config_names_nested_keys(tmp_path):
    path = tmp_path / "gan.yaml"
    path.write_text("train:\n  lr: -1\n")
    with pytest.raises(InputError, match=r"train\.lr"):
        load_config(GANConfig, path)
    path.write_text("generator:\n  widths: [128, 0]\n")
    with pytest.raises(InputError, match=r"generator\.widths\.1"):
        load_config(GANConfig, path)
    path.write_text("train:\n  loss: wgan-gp\n")
    with pytest.raises(InputError, match=r"discriminator\.norm instance or none"):
        load_config(GANConfig, path)
    assert GAN_DEFAULTS.scale == 32


def test_a_bad_override_names_its_keyword_and_a_bad_file_value_names_the_file(tmp_path):
    with pytest.raises(InputError, match=r"^phases: Input should be less than or equal to 8$") as e:
        load_config(GRFConfig, phases=9)
    assert e.value.param == "phases"
    path = tmp_path / "g.yaml"
    path.write_text("phases: 9\n")
    with pytest.raises(InputError, match="phases") as e:
        load_config(GRFConfig, path, covariance="exponential")
    assert e.value.param is None and str(e.value).startswith(f"{path}: phases: ")
    # the override wins over the file, and is the one named when it is wrong
    with pytest.raises(InputError) as e:
        load_config(GRFConfig, path, phases=1)
    assert e.value.param == "phases"
