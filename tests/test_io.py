import errno
import json
import math
import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from mdesign import io
from mdesign.errors import InputError
from mdesign.io import read_images, write_images


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".png", ".tif"])
@pytest.mark.parametrize("k", [2, 3, 8])
def test_round_trip_single_image(tmp_path, suffix, k):
    rng = np.random.default_rng(k)
    img = rng.integers(0, k, size=(20, 24)).astype(np.uint8)
    path = write_images(tmp_path / f"a{suffix}", img)
    back = read_images(path)
    assert back.images.shape == (1, 20, 24)
    assert np.array_equal(back.images[0], img)
    assert back.note is None


def test_npz_stack_with_extras_and_meta(tmp_path):
    imgs = np.zeros((3, 8, 8), np.uint8)
    imgs[1] = 1  # a stack in which image 1 is all phase 1 keeps its numbering
    path = write_images(
        tmp_path / "s.npz", imgs, meta={"seed": 3}, latents=np.ones((3, 1, 2, 2), np.float32)
    )
    back = read_images(path)
    assert np.array_equal(back.images, imgs)
    assert back.extras["meta"] == {"seed": 3}
    assert back.extras["latents"].shape == (3, 1, 2, 2)


def test_png_of_a_stack_is_a_grid(tmp_path):
    imgs = np.zeros((5, 8, 8), np.uint8)
    write_images(tmp_path / "g.png", imgs)
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "RGB" and im.size[0] > 8 * 2


def test_grayscale_is_segmented_and_says_so(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, size=(40, 40))
    gray = (truth * 150 + 50 + rng.normal(0, 12, size=truth.shape)).clip(0, 255).astype(np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    back = read_images(tmp_path / "g.png")
    assert back.note and "Otsu" in back.note and "2 phases" in back.note
    assert (back.images[0] == truth).mean() > 0.99
    three = np.digitize(rng.random((40, 40)), [0.3, 0.6])
    gray3 = (three * 90 + 20 + rng.normal(0, 6, size=three.shape)).astype(np.float32)
    tifffile.imwrite(tmp_path / "g3.tif", gray3)
    back3 = read_images(tmp_path / "g3.tif", phases=3)
    assert "multi-Otsu" in back3.note
    assert (back3.images[0] == three).mean() > 0.99


def test_few_valued_arrays_are_labels_in_sorted_order(tmp_path):
    np.save(tmp_path / "a.npy", np.array([[10, 30], [20, 10]]))
    assert np.array_equal(read_images(tmp_path / "a.npy").images[0], [[0, 2], [1, 0]])
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = [255, 255, 255]
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "c.png")
    assert np.array_equal(read_images(tmp_path / "c.png").images[0][:, 0], [1, 1, 0, 0])


@pytest.mark.parametrize(
    ("name", "make", "needle"),
    [
        ("x.npy", lambda p: None, "no such file"),
        ("x.png", lambda p: p.write_bytes(b"not a png at all"), "cannot read"),
        ("x.npy", lambda p: np.save(p, np.zeros(5)), "2D image"),
        ("x.npy", lambda p: np.save(p, np.zeros((2, 2, 3, 3))), "2D image"),
        ("x.npy", lambda p: np.save(p, np.array([[0.0, np.nan], [1.0, 0.0]])), "NaN"),
        ("x.npy", lambda p: np.save(p, np.zeros((0, 4))), "empty"),
        ("x.npz", lambda p: np.savez(p, images=np.arange(36).reshape(1, 6, 6)), "at most 8"),
        ("x.npz", lambda p: np.savez(p, other=np.zeros((2, 4, 4))), "no 'images'"),
        ("x.npz", lambda p: np.savez(p, images=np.full((1, 4, 4), 0.5)), "integer"),
        ("x.txt", lambda p: p.write_text("hello"), "unsupported format"),
    ],
    ids=[
        "missing",
        "garbage",
        "1d",
        "4d",
        "nan",
        "empty",
        "nine-phases",
        "no-images",
        "float-labels",
        "txt",
    ],
)
def test_bad_inputs_raise_one_clear_error(tmp_path, name, make, needle):
    path = tmp_path / name
    make(path)
    with pytest.raises(InputError, match=needle) as info:
        read_images(path)
    assert str(path) in str(info.value)


def test_phases_out_of_range_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"^phases: must be between 2 and 8") as info:
        read_images(tmp_path / "x.png", phases=9)
    assert info.value.param == "phases"


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = write_images(tmp_path / "s.npz", np.ones((2, 4, 4), np.uint8))
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    from mdesign import io as mio

    monkeypatch.setattr(mio, "_savez", boom)
    with pytest.raises(RuntimeError):
        write_images(path, np.zeros((2, 4, 4), np.uint8))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]


def test_meta_is_json(tmp_path):
    path = write_images(tmp_path / "s.npz", np.zeros((1, 4, 4), np.uint8), meta={"a": [1, 2]})
    with np.load(path) as data:
        assert json.loads(str(data["meta"])) == {"a": [1, 2]}
    assert io.PALETTE.shape == (8, 3)


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    path = write_images(tmp_path / "s.npz", np.zeros((1, 4, 4), np.uint8))
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_the_li2018_exemplars_ship_inside_the_package():
    """The exemplars are package data inside the project (nothing reads a sibling folder):
    labels, the documented fractions (Li et al. 2018 table in mdesign/data/li2018/README.md), and
    a clear error for an unknown name."""
    from mdesign.data import LI2018_MATERIALS, li2018_exemplar

    fractions = {"alloy": 0.865, "carbonate": 0.139, "ceramics": 0.391, "pmma": 0.026}
    for name in LI2018_MATERIALS:
        for size in (64, 256):
            img = li2018_exemplar(name, size)
            assert img.shape == (size, size) and img.dtype == np.uint8
            assert img.max() == (2 if name == "composite" else 1) and img.min() == 0
        if name in fractions:
            assert abs(li2018_exemplar(name).mean() - fractions[name]) < 5e-4
    with pytest.raises(ValueError, match="known: alloy"):
        li2018_exemplar("granite")


def test_same_file_sees_paths_links_and_hard_links(tmp_path):
    from mdesign.io import same_file

    a = tmp_path / "a.npz"
    a.write_bytes(b"x")
    os.link(a, tmp_path / "hard.npz")
    (tmp_path / "soft.npz").symlink_to(a)
    assert same_file(a, tmp_path / "." / "a.npz")
    assert same_file(a, tmp_path / "hard.npz") and same_file(a, tmp_path / "soft.npz")
    assert not same_file(a, tmp_path / "b.npz")  # missing: compared by resolved path
    assert same_file(tmp_path / "new.npz", tmp_path / "sub" / ".." / "new.npz")


def test_check_output_path_tries_the_folder_for_real(tmp_path):
    from mdesign.io import check_output_dir, check_output_path

    (tmp_path / "f").write_bytes(b"x")
    assert check_output_path(tmp_path / "new" / "deeper" / "x.npz") == (
        tmp_path / "new" / "deeper" / "x.npz"
    )
    assert not (tmp_path / "new").exists()  # nothing created by the check
    for bad, needle in [
        ("/proc/x.npz", "cannot write in /proc"),
        (tmp_path / "f" / "x.npz", "is not a directory"),
        (tmp_path / "x.bmp", "unsupported output format"),
    ]:
        with pytest.raises(InputError, match=needle):
            check_output_path(bad, option="-o")
    with pytest.raises(InputError, match="is a file, expected a directory"):
        check_output_dir(tmp_path / "f")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # no probe left behind


def test_atomic_paths_write_all_or_nothing(tmp_path):
    from mdesign.io import atomic_paths

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text("old a")
    with pytest.raises(OSError, match="No space") as info:
        with atomic_paths(a, None, b) as (ta, none, tb):
            assert none is None
            ta.write_text("new a")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert info.value.filename == str(b) or info.value.filename == str(a)
    assert a.read_text() == "old a" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    with atomic_paths(a, b) as (ta, tb):
        ta.write_text("new a")
        tb.write_text("new b")
    assert a.read_text() == "new a" and b.read_text() == "new b"


def test_atomic_path_names_the_target_in_os_errors(tmp_path):
    from mdesign.io import atomic_path

    target = tmp_path / "x.npz"
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp))
    assert info.value.errno == errno.EROFS and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("suffix", "shape"),
    [
        *((s, (n, 24, 40)) for s in (".npz", ".npy") for n in (1, 3)),
        (".png", (1, 24, 40)),  # several images make a picture grid, not a stack
        (".tif", (1, 24, 40)),
    ],
)
def test_peek_images_reads_the_shape_of_what_read_images_returns(tmp_path, suffix, shape):
    from mdesign.io import peek_images

    images = (np.arange(np.prod(shape)).reshape(shape) % 3).astype(np.uint8)
    path = write_images(tmp_path / f"x{suffix}", images)
    peeked, _ = peek_images(path)
    assert math.prod(peeked) == images.size
    assert read_images(path).images.shape == ((1, *peeked) if len(peeked) == 2 else peeked)


def test_read_images_checks_memory_from_the_header(tmp_path, monkeypatch):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((64, 64), np.uint8))
    monkeypatch.setenv("MDESIGN_MEMORY_LIMIT", "1K")
    with pytest.raises(InputError, match="of memory"):
        read_images(path)
    monkeypatch.setenv("MDESIGN_MEMORY_LIMIT", "1G")
    assert read_images(path).images.shape == (1, 64, 64)
