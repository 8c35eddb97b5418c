import numpy as np
import pytest
import torch

from mdesign.reconstruction.decoding import decode_kmeans
from mdesign.reconstruction.encoding import labels_to_pixels


@pytest.mark.parametrize("k", [2, 3, 5])
def test_noisy_colours_decode_to_their_labels(k, three_phase):
    rng = np.random.default_rng(k)
    labels = rng.integers(0, k, (24, 20)).astype(np.uint8)
    pixels = labels_to_pixels(labels, k)[0]
    noisy = pixels + 0.08 * torch.as_tensor(rng.standard_normal(pixels.shape), dtype=torch.float32)
    got = decode_kmeans(noisy, k, seed=0)
    assert got.dtype == np.uint8 and np.array_equal(got, labels)


def test_clusters_map_one_to_one_so_no_phase_vanishes():
    # both clusters lie nearer black than white; nearest-colour alone would give one phase
    rng = np.random.default_rng(0)
    truth = (rng.random((16, 16)) < 0.3).astype(np.uint8)
    pixels = np.where(truth, 0.4, 0.05)[None] + 0.01 * rng.standard_normal((1, 16, 16))
    assert np.array_equal(decode_kmeans(pixels, 2, seed=1), truth)


def test_flat_image_decodes_without_error():
    out = decode_kmeans(np.full((1, 8, 8), 0.7), 2, seed=0)
    assert out.shape == (8, 8) and len(np.unique(out)) == 1


def test_decode_kmeans_takes_a_generator_or_seed_sequence():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, size=(16, 16)).astype(np.uint8)
    pixels = truth[None].astype(np.float64) + 0.05 * rng.standard_normal((1, 16, 16))
    for seed in (np.random.default_rng(0), np.random.SeedSequence(0)):
        assert np.array_equal(decode_kmeans(pixels, 2, seed=seed), truth)
