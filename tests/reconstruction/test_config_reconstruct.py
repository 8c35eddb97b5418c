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

    from mdesign.reconstruction import reconstruct

    params = inspect.signature(reconstruct).parameters
    for key, value in RECONSTRUCTION_DEFAULTS.model_dump().items():
        assert params[key].default == value, key


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
