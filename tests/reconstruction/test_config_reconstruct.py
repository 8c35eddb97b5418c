from pathlib import Path

import pytest

from mdesign.config import (
    RECONSTRUCTION_DEFAULTS,
    ReconstructionConfig,
    dump_config,
    load_config,
    override,
)
from mdesign.errors import InputError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_shipped_reconstruct_config_is_the_default():
    assert (
        load_config(ReconstructionConfig, CONFIGS / "reconstruct.yaml") == RECONSTRUCTION_DEFAULTS
    )


def test_flat_keys_of_earlier_configs_are_read_into_their_sections(tmp_path):
    from mdesign.config import _FLAT_KEYS

    flat = tmp_path / "flat.yaml"
    flat.write_text(
        "iterations: 7\nweights: random\nanneal_sweeps: 0.5\nvolume_lr: 0.1\n"
        "volume_anneal_sweeps: 2\nvolume_anneal_max_lag: 12\nseed: 4\n"
    )
    cfg = load_config(ReconstructionConfig, flat)
    assert cfg.optimiser.iterations == 7 and cfg.texture.weights == "random"
    assert cfg.anneal.sweeps == 0.5 and cfg.anneal.volume_sweeps == 2
    assert cfg.slices.lr == 0.1 and cfg.anneal.max_lag == 12 and cfg.seed == 4
    nested = tmp_path / "nested.yaml"
    nested.write_text(dump_config(cfg))
    assert load_config(ReconstructionConfig, nested) == cfg
    # every flat key lands on a field of its section
    for key, (section, name) in _FLAT_KEYS.items():
        sub = getattr(RECONSTRUCTION_DEFAULTS, section)
        assert name in type(sub).model_fields, key
        assert ReconstructionConfig(**{key: getattr(sub, name)}) == RECONSTRUCTION_DEFAULTS
    # one setting twice, with different values: an error naming both, not a silent choice
    both = tmp_path / "both.yaml"
    both.write_text("iterations: 7\noptimiser:\n  iterations: 8\n")
    with pytest.raises(InputError, match=r"iterations \(flat\) and optimiser\.iterations"):
        load_config(ReconstructionConfig, both)


def test_overrides_name_their_option():
    cfg = override(RECONSTRUCTION_DEFAULTS, {"slices.iterations": (5, "iterations")})
    assert cfg.slices.iterations == 5
    assert cfg.optimiser.iterations == RECONSTRUCTION_DEFAULTS.optimiser.iterations
    assert override(cfg, {"texture.weights": (None, "weights")}) == cfg
    with pytest.raises(InputError) as info:
        override(cfg, {"optimiser.iterations": (0, "iterations")})
    assert info.value.param == "iterations"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("iterations: 0\n", "optimiser.iterations"),
        ("anneal:\n  sweeps: -1\n", "anneal.sweeps"),
        ("pooling: median\n", "pooling"),
        ("s2_wieght: 1\n", "unknown key"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, needle):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=needle):
        load_config(ReconstructionConfig, path)
