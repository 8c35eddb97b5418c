"""Training sets cut from a user's images: tiles, held-out band, provenance, independence."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from mdesign.data import li2018_exemplar
from mdesign.dataset import dihedral, make_dataset, nearest_distances
from mdesign.errors import InputError
from mdesign.segment import synthetic_micrograph
from tests.conftest import assert_input_error


def test_tiles_are_slices_and_none_overlaps_the_held_out_band():
    a = li2018_exemplar("ceramics", 256)
    b = li2018_exemplar("sandstone", 256)[:160]  # 160 x 256: its band is along x too
    ds = make_dataset([a, b], tile=64, n_tiles=100, holdout=0.25, holdout_tiles=20, seed=3)
    assert ds.images.shape == (100, 64, 64) and ds.holdout.shape == (20, 64, 64)
    srcs = [a, b]
    for tile, (i, y, x) in zip(ds.images, ds.positions, strict=True):
        assert np.array_equal(tile, srcs[i][y : y + 64, x : x + 64])
        assert x + 64 <= 256 - 64  # the band is the last 64 columns (25% of 256)
    for tile, (i, y, x) in zip(ds.holdout, ds.holdout_positions, strict=True):
        assert np.array_equal(tile, srcs[i][y : y + 64, x : x + 64])
        assert x >= 256 - 64
    # independent data: non-overlapping tiles of the training regions, 4 x 3 + 2 x 3
    assert ds.independent == 4 * 3 + 2 * 3
    assert ds.meta["holdout_independent_tiles"] == 4 + 2
    assert ds.warning and "hold 18 non-overlapping" in ds.warning
    # tiles in proportion to the room for them: the larger image gets more
    assert (ds.positions[:, 0] == 0).sum() > (ds.positions[:, 0] == 1).sum()
    # same seed, same tiles; another seed, others
    again = make_dataset([a, b], tile=64, n_tiles=100, holdout=0.25, holdout_tiles=20, seed=3)
    assert np.array_equal(again.positions, ds.positions)
    other = make_dataset([a, b], tile=64, n_tiles=100, holdout=0.25, holdout_tiles=20, seed=4)
    assert not np.array_equal(other.positions, ds.positions)


def test_a_tall_image_holds_out_a_band_at_the_bottom_and_enough_data_has_no_warning():
    img = np.tile(li2018_exemplar("ceramics", 256), (2, 1))  # 512 x 256
    ds = make_dataset([img], tile=32, n_tiles=50, holdout=0.2, min_independent=64)
    assert (ds.positions[:, 1] + 32 <= 512 - 103).all()  # ceil(0.2 * 512) = 103 rows held out
    assert (ds.holdout_positions[:, 1] >= 512 - 103).all()
    assert ds.independent == (409 // 32) * (256 // 32) and ds.warning is None


def test_dihedral_augmentation_is_the_group_of_the_square():
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 2, (3, 8, 8)).astype(np.uint8)
    out = dihedral(tiles)
    assert out.shape == (24, 8, 8)
    for j in range(3):
        group = {g.tobytes() for g in out[8 * j : 8 * j + 8]}
        assert len(group) == 8  # a random tile has no symmetry
        for g in out[8 * j : 8 * j + 8]:  # closed under rotation and mirror
            assert np.rot90(g).tobytes() in group and g[::-1].tobytes() in group
    ds = make_dataset([li2018_exemplar("ceramics", 256)], tile=32, n_tiles=10, augment=True)
    assert ds.images.shape[0] == 80 and ds.meta["n_tiles"] == 10


def test_too_small_images_are_refused():
    img = li2018_exemplar("ceramics", 64)
    with pytest.raises(InputError, match="smaller than a tile"):
        make_dataset([img], tile=128)
    with pytest.raises(InputError, match="held-out band"):
        make_dataset([img], tile=64, holdout=0.2)
    with pytest.raises(InputError, match="multiple of 32"):
        make_dataset([img], tile=48)


def test_nearest_distances_match_brute_force():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, (7, 16, 16)).astype(np.uint8)
    b = rng.integers(0, 2, (11, 16, 16)).astype(np.uint8)
    b[4] = a[2]  # an exact copy
    brute = np.array([min((x != y).mean() for y in b) for x in a])
    got = nearest_distances(a, b, chunk=3)
    assert np.allclose(got, brute) and got[2] == 0


def test_dataset_command_records_sources_and_segments_grayscale(tmp_path, run_cli):
    from PIL import Image

    labels = li2018_exemplar("ceramics", 256)
    np.savez(tmp_path / "a.npz", images=labels[None])
    gray = tmp_path / "sem.png"
    Image.fromarray(synthetic_micrograph(li2018_exemplar("sandstone", 256), seed=0)).save(gray)
    out = tmp_path / "train.npz"
    res = run_cli(
        "dataset", tmp_path / "a.npz", gray, "-o", out, "--tile", 64, "-n", 40, "--seed", 2
    )
    assert res.code == 0, res.err
    assert "independent data: 24 non-overlapping" in res.err and "warning:" in res.err
    with np.load(out) as data:
        meta = json.loads(str(data["meta"]))
        assert data["images"].shape == (40, 64, 64)
        assert data["holdout"].shape[1:] == (64, 64)
        assert data["positions"].shape == (40, 3)
    srcs = meta["sources"]
    assert srcs[0]["sha256"] == hashlib.sha256((tmp_path / "a.npz").read_bytes()).hexdigest()
    assert srcs[1]["sha256"] == hashlib.sha256(gray.read_bytes()).hexdigest()
    assert "segment" in srcs[1] and srcs[1]["segment"]["config"]["phases"] == 2
    assert srcs[0]["holdout_region"] == [0, 256, 192, 256]
    assert meta["independent_tiles"] == 24 and meta["config"]["tile"] == 64


def test_dataset_command_bad_inputs(tmp_path, run_cli):
    from PIL import Image

    np.save(tmp_path / "small.npy", li2018_exemplar("ceramics", 64))
    out = tmp_path / "t.npz"
    assert_input_error(
        run_cli("dataset", tmp_path / "small.npy", "-o", out, "--tile", 128), "smaller than a tile"
    )
    assert_input_error(
        run_cli("dataset", tmp_path / "small.npy", "-o", out, "--tile", 40), "--tile"
    )
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    assert_input_error(run_cli("dataset", tmp_path / "c.png", "-o", out), "colour")
    assert not out.exists()


def test_reconstructions_enlarge_training_only_and_are_stated(tmp_path, run_cli):
    real = li2018_exemplar("ceramics", 256)
    rec = li2018_exemplar("ceramics", 256)[::-1].copy()  # stands in for a reconstruction
    sources = [
        {"path": "real.npz"},
        {"path": "rec.npz", "reconstruction": {"exemplar_labels_sha256": "0" * 64}},
    ]
    ds = make_dataset([real, rec], tile=64, n_tiles=60, holdout=0.25, sources=sources, seed=1)
    assert (ds.holdout_positions[:, 0] == 0).all()  # held-out tiles from the real image only
    assert ds.independent == 4 * 3 and ds.meta["reconstruction_independent_tiles"] == 16
    assert ds.meta["sources"][1]["holdout_region"] is None
    assert (ds.positions[:, 0] == 1).any()  # the reconstruction gives training tiles
    with pytest.raises(InputError, match="at least one real image"):
        make_dataset([rec], tile=64, sources=sources[1:])
    # a reconstruction of the whole real image saw its held-out band: said so
    digest = hashlib.sha256(real.tobytes()).hexdigest()
    sources[1]["reconstruction"]["exemplar_labels_sha256"] = digest
    leaky = make_dataset([real, rec], tile=64, n_tiles=60, holdout=0.25, sources=sources)
    assert "held-out band included" in leaky.warning
    # through the command: the meta of `mdesign reconstruct` marks the file
    np.savez(tmp_path / "real.npz", images=real[None])
    meta = {"command": "reconstruct", "exemplar": "real.npz", "exemplar_labels_sha256": digest}
    np.savez(tmp_path / "rec.npz", images=rec[None], meta=np.array(json.dumps(meta)))
    out = tmp_path / "t.npz"
    res = run_cli("dataset", tmp_path / "real.npz", tmp_path / "rec.npz", "-o", out, "--tile", 64)
    assert res.code == 0, res.err
    assert "16 in reconstructions" in res.err and "held-out band included" in res.err
    with np.load(out) as data:
        srcs = json.loads(str(data["meta"]))["sources"]
    assert srcs[1]["reconstruction"]["exemplar_labels_sha256"] == digest


def test_make_dataset_refuses_what_the_command_refuses_before_any_allocation(monkeypatch):
    """Probe: 10^10 tiles allocated 74.5 GiB before any check (OOM-killed); labels 0..8,
    negative or 300 passed; a sources list of the wrong length was an IndexError."""
    monkeypatch.setenv("MDESIGN_MEMORY_LIMIT", "1G")
    labels = np.zeros((256, 256), np.uint8)
    labels[:, 128:] = 1
    with pytest.raises(InputError, match="memory") as err:
        make_dataset([labels], tile=32, n_tiles=10**10)
    assert err.value.param == "n_tiles"
    for bad in (9, 300, -1):
        image = labels.astype(np.int16)
        image[0, 0] = bad
        with pytest.raises(InputError, match=r"labels 0\.\.7"):
            make_dataset([image], tile=32, n_tiles=4)
    with pytest.raises(InputError, match="one record per image") as err:
        make_dataset([labels, labels], tile=32, n_tiles=4, sources=[{}])
    assert err.value.param == "sources"
