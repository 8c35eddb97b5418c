from pathlib import Path

import pytest

from mdesign.config import RECONSTRUCTION_DEFAULTS, ReconstructionConfig, load_config
from mdesign.errors import InputError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_shipped_reconstruct_config_is_the_default():
    assert (
        load_config(ReconstructionConfig, CONFIGS / "reconstruct.yaml") == RECONSTRUCTION_DEFAULTS
    )


def test_the_library_defaults_are_the_configs():
    import inspect

    from mdesign.reconstruction import reconstruct, reconstruct_volume

    params = inspect.signature(reconstruct).parameters
    volume = inspect.signature(reconstruct_volume).parameters
    for key, value in RECONSTRUCTION_DEFAULTS.model_dump().items():
        if key.startswith("volume_"):
            # the 2D-to-3D settings are reconstruct_volume's, and only its
            assert key not in params and volume[key].default == value, key
        else:
            assert params[key].default == value, key
        if key in volume:
            assert volume[key].default == value, key
    # every setting of reconstruct_volume is a config key
    settings = set(volume) - {"exemplars", "size", "device", "progress", "_2d_only"}
    assert settings <= set(RECONSTRUCTION_DEFAULTS.model_dump())


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("iterations: 0\n", "iterations"),
        ("pooling: median\n", "pooling"),
        ("s2_wieght: 1\n", "unknown key"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, needle):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=needle):
        load_config(ReconstructionConfig, path)
