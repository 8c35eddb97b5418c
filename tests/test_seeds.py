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


def test_a_seed_may_be_a_generator_or_a_seed_sequence():
    from mdesign.seeds import as_seed_sequence, child_seeds, seed_int

    # an int keeps its derivation: SeedSequence(s), the value itself, s + i children
    assert as_seed_sequence(7).entropy == 7 and seed_int(7) == 7
    assert child_seeds(7, 3) == [7, 8, 9]
    ss = np.random.SeedSequence(123)
    kids = child_seeds(ss, 3)
    ref = [
        int(c.generate_state(1, dtype=np.uint32)[0]) for c in np.random.SeedSequence(123).spawn(3)
    ]
    assert kids == ref and len(set(kids)) == 3  # SeedSequence.spawn, not arithmetic
    assert child_seeds(ss, 3) != kids  # spawning again gives new children, as numpy does
    # a Generator: deterministic in its state, and it advances
    a, b = np.random.default_rng(4), np.random.default_rng(4)
    assert seed_int(a) == seed_int(b) and seed_int(a) != seed_int(np.random.default_rng(4))
    assert all(0 <= s < SEED_LIMIT for s in (*kids, seed_int(a)))
    for bad in ("3", None, 2.5, -1):
        with pytest.raises(InputError, match="seed"):
            as_seed_sequence(bad)


def test_grf_takes_any_seed_and_an_int_gives_the_same_bytes_as_its_sequence():
    from mdesign.grf import grf_microstructures

    kw = dict(volume_fraction=(0.3, 0.5), correlation_length=3, device="cpu")
    by_int = grf_microstructures(3, (16, 16), seed=5, **kw)
    by_seq = grf_microstructures(3, (16, 16), seed=np.random.SeedSequence(5), **kw)
    assert np.array_equal(by_int.images, by_seq.images)
    assert np.array_equal(by_int.seeds, by_seq.seeds)
    # image i takes the i-th spawned child, whatever n; the caller's sequence is not consumed
    ss = np.random.SeedSequence(5).spawn(3)[2]
    assert np.array_equal(
        grf_microstructures(2, (16, 16), seed=ss, **kw).images,
        grf_microstructures(4, (16, 16), seed=ss, **kw).images[:2],
    )
    assert ss.n_children_spawned == 0
    g1 = grf_microstructures(2, (16, 16), seed=np.random.default_rng(1), **kw).images
    g2 = grf_microstructures(2, (16, 16), seed=np.random.default_rng(1), **kw).images
    assert np.array_equal(g1, g2) and not np.array_equal(g1, by_int.images[:2])


def test_latents_take_any_seed_and_an_int_keeps_its_stream():
    from mdesign.gan import sample_latents

    z = sample_latents(4, (1, 2, 2), seed=9)
    ref = torch.rand((4, 1, 2, 2), generator=torch.Generator().manual_seed(9)) * 2 - 1
    assert isinstance(z, np.ndarray) and np.array_equal(z, ref.numpy())
    ss = np.random.SeedSequence(9)
    word = int(np.random.SeedSequence(9).generate_state(1, dtype=np.uint32)[0])
    assert np.array_equal(
        sample_latents(4, (1, 2, 2), seed=ss), sample_latents(4, (1, 2, 2), seed=word)
    )
    rng = np.random.default_rng(0)
    first, second = (sample_latents(4, (1, 2, 2), seed=rng) for _ in range(2))
    assert not np.array_equal(first, second)  # the generator advanced
    assert np.array_equal(first, sample_latents(4, (1, 2, 2), seed=np.random.default_rng(0)))
