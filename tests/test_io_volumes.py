"""Volumes in .tif and .npy files: written as volumes, read back as volumes where volumes are
accepted, and a multi-page TIFF of 2D images still read as a stack."""

import json

import numpy as np
import pytest
import tifffile

from mdesign.errors import InputError
from mdesign.evaluators import effective_conductivity
from mdesign.io import TIFF_VOLUME_KEY, read_images, write_images
from tests.conftest import assert_input_error


@pytest.fixture(scope="module")
def vols() -> np.ndarray:
    rng = np.random.default_rng(4)
    return (rng.random((2, 12, 10, 14)) < 0.4).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".tif", ".npy", ".npz"])
@pytest.mark.parametrize("n", [1, 2])
def test_volumes_round_trip(tmp_path, vols, suffix, n):
    path = write_images(tmp_path / f"v{suffix}", vols[:n])
    back = read_images(path, volumes=True).images
    assert back.shape == (n, 12, 10, 14)
    np.testing.assert_array_equal(back, vols[:n])
    # where volumes are not accepted, a volume is refused, not read as a stack of its pages
    with pytest.raises(InputError, match="got shape"):
        read_images(path)


def test_tif_marks_volumes_and_a_stack_stays_a_stack(tmp_path, vols):
    path = write_images(tmp_path / "v.tif", vols[:1])
    with tifffile.TiffFile(path) as tf:
        assert tf.shaped_metadata[0][TIFF_VOLUME_KEY] == "volumes"
    stack = write_images(tmp_path / "s.tif", vols[0])  # 12 images of 10 x 14
    with tifffile.TiffFile(stack) as tf:
        assert TIFF_VOLUME_KEY not in tf.shaped_metadata[0]
    for volumes in (False, True):
        back = read_images(stack, volumes=volumes).images
        assert back.shape == (12, 10, 14)
        np.testing.assert_array_equal(back, vols[0])


def test_tiff_volume_reads_a_plain_multi_page_tif_as_one_volume(tmp_path, vols):
    path = tmp_path / "user.tif"
    tifffile.imwrite(path, vols[0] * 255, photometric="minisblack")  # no mdesign metadata
    assert read_images(path, volumes=True).images.shape == (12, 10, 14)
    back = read_images(path, tiff_volume=True).images
    assert back.shape == (1, 12, 10, 14)
    np.testing.assert_array_equal(back[0], vols[0])
    one = tmp_path / "one.tif"
    tifffile.imwrite(one, vols[0, 0])
    with pytest.raises(InputError, match="several pages"):
        read_images(one, tiff_volume=True)
    npy = write_images(tmp_path / "v.npy", vols[:1])
    with pytest.raises(InputError, match="only a"):
        read_images(npy, tiff_volume=True)


def test_characterize_and_evaluate_read_a_tif_volume_as_a_volume(run_cli, tmp_path, vols):
    tif, npz = (
        write_images(tmp_path / "v.tif", vols[:1]),
        write_images(tmp_path / "v.npz", vols[:1]),
    )
    reports = []
    for path in (tif, npz):
        res = run_cli("characterize", path, "--json", "-q")
        assert res.code == 0, res.err
        reports.append(json.loads(res.out))
    assert reports[0]["n_images"] == 1 and reports[0]["shape"] == [12, 10, 14]
    assert reports[0] == reports[1]
    res = run_cli(
        "evaluate", tif, "--evaluator", "effective_conductivity",
        "--param", "conductivities=1,10", "--param", "direction=z", "--json", "-q",
    )  # fmt: skip
    assert res.code == 0, res.err
    expected = effective_conductivity(vols[:1], conductivities=(1, 10), direction="z")
    np.testing.assert_allclose(json.loads(res.out)["values"], expected, rtol=1e-9)
    # a user's multi-page TIFF: a stack of 12 images, or with --volume one volume
    user = tmp_path / "user.tif"
    tifffile.imwrite(user, vols[0])
    res = run_cli("characterize", user, "--json", "-q")
    assert json.loads(res.out)["n_images"] == 12
    res = run_cli("characterize", user, "--volume", "--json", "-q")
    assert json.loads(res.out) == reports[0]
    res = run_cli("characterize", npz, "--volume", "-q")
    assert_input_error(res, "only a .tif")
