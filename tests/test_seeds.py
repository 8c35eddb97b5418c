"""The one seed rule (mdesign.seeds): library, configs and CLI agree."""

import argparse

import numpy as np
import pytest
import torch

from mdesign.config import GANConfig, GRFConfig, ReconstructionConfig, config_from_dict
from mdesign.errors import InputError
from mdesign.seeds import SEED_LIMIT, check_seed

BAD = [-1, SEED_LIMIT, 2**63, 1.5, True]
GOOD = [0, 1, SEED_LIMIT - 1, 7.0, np.uint32(5), np.int64(9)]


@pytest.mark.parametrize("seed", GOOD)
def test_every_seeded_generator_takes_a_seed_of_the_rule(seed):
    s = check_seed(seed)
    assert type(s) is int and s == seed
    np.random.SeedSequence(s)
    np.random.RandomState(s)  # the narrowest: refuses 2**32 and above
    torch.Generator().manual_seed(s)


@pytest.mark.parametrize("seed", BAD)
def test_seeds_outside_the_rule_are_input_errors_naming_the_parameter(seed):
    with pytest.raises(InputError) as info:
        check_seed(seed)
    assert info.value.param == "seed"


@pytest.mark.parametrize("seed", BAD)
def test_the_cli_type_and_the_configs_refuse_the_same_seeds(seed):
    from mdesign.cli._common import seed_type

    if isinstance(seed, int) and not isinstance(seed, bool):
        with pytest.raises(argparse.ArgumentTypeError):
            seed_type(str(seed))
    for cls, raw in [
        (GANConfig, {"train": {"seed": seed}}),
        (ReconstructionConfig, {"seed": seed}),
    ]:
        with pytest.raises(InputError, match="seed"):
            config_from_dict(cls, raw)


def test_library_entry_points_check_the_seed():
    from mdesign.gan import sample_latents
    from mdesign.grf import grf_microstructures

    with pytest.raises(InputError, match=r"^seed: "):
        grf_microstructures(1, (8, 8), volume_fraction=0.5, correlation_length=2, seed=-1)
    with pytest.raises(InputError, match=r"^seed: "):
        sample_latents(1, (1, 2, 2), seed=SEED_LIMIT)
    assert GRFConfig()  # the configs' default seeds are inside the rule
