import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mdesign.errors import InputError
from mdesign.reconstruction import vgg
from mdesign.reconstruction.encoding import IMAGENET_INPUT, IMAGENET_MEAN, IMAGENET_STD
from mdesign.reconstruction.vgg import (
    IMAGENET_URL,
    LAYER_INDEX,
    VGG19Features,
    load_vgg19_state_dict,
    vgg19_features,
)


def test_layer_index_is_torchvisions_layout():
    # torchvision's vgg19().features: 16 conv+relu pairs and 5 pools, 37 modules
    assert len(LAYER_INDEX) == 37
    assert LAYER_INDEX["conv1_1"] == 0 and LAYER_INDEX["relu1_1"] == 1
    assert LAYER_INDEX["pool1"] == 4 and LAYER_INDEX["conv2_1"] == 5
    assert LAYER_INDEX["pool3"] == 18 and LAYER_INDEX["pool4"] == 27
    assert LAYER_INDEX["relu5_1"] == 29 and LAYER_INDEX["pool5"] == 36
    shapes = vgg._expected_shapes()
    assert len(shapes) == 32  # weight and bias of 16 convolutions
    assert shapes["0.weight"] == (64, 3, 3, 3) and shapes["34.weight"] == (512, 512, 3, 3)


def test_truncated_after_deepest_layer_and_frozen():
    model = vgg19_features(["pool2", "relu1_1"], weights="random", device="cpu")
    assert len(model.features) == LAYER_INDEX["pool2"] + 1
    assert all(not p.requires_grad for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not model.training
    out = model(torch.zeros(1, 3, 32, 32))
    assert [tuple(o.shape) for o in out] == [(1, 128, 8, 8), (1, 64, 32, 32)]


def _manual_features(state, x, *, pool):
    """relu1_1, pool1 and relu2_1 computed directly from the state dict with F.conv2d, after
    torchvision's input normalisation of RGB ``x`` in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    x = (x - mean) / std
    h = F.relu(F.conv2d(x, state["0.weight"], state["0.bias"], padding=1))
    relu1_1 = h
    h = F.relu(F.conv2d(h, state["2.weight"], state["2.bias"], padding=1))
    h = pool(h, 2)
    pool1 = h
    h = F.relu(F.conv2d(h, state["5.weight"], state["5.bias"], padding=1))
    return [relu1_1, pool1, h]


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_state_dict_file_loads_and_matches_direct_convolutions(vgg_file, vgg_state, pooling):
    model = vgg19_features(
        ["relu1_1", "pool1", "relu2_1"], weights=vgg_file, pooling=pooling, device="cpu"
    )
    for key in ("0.weight", "2.bias", "5.weight"):
        assert torch.equal(model.state_dict()[f"features.{key}"], vgg_state[key])
    assert model.convention == IMAGENET_INPUT  # a plain state dict: torchvision's input
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    pool = F.avg_pool2d if pooling == "avg" else F.max_pool2d
    for got, want in zip(model(x), _manual_features(vgg_state, x, pool=pool), strict=True):
        torch.testing.assert_close(got, want)


def test_features_only_state_dict_loads(tmp_path, vgg_state):
    # the keys of torchvision's vgg19().features, without the "features." prefix
    path = tmp_path / "features.pt"
    torch.save(vgg_state, path)
    assert load_vgg19_state_dict(path).keys() == vgg_state.keys()


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda s: s.pop("34.weight"), "missing 34.weight"),
        (lambda s: s.update({"37.weight": torch.zeros(1)}), "unexpected 37.weight"),
        (lambda s: s.update({"0.weight": torch.zeros(64, 1, 3, 3)}), "0.weight has shape"),
    ],
)
def test_wrong_state_dict_is_an_input_error(tmp_path, vgg_state, mutate, needle):
    state = dict(vgg_state)
    mutate(state)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(InputError, match=needle) as info:
        load_vgg19_state_dict(path)
    assert str(path) in str(info.value)


def test_unreadable_or_missing_weights_file(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read as a torch state dict"):
        load_vgg19_state_dict(junk)
    with pytest.raises(InputError, match="no such file"):
        load_vgg19_state_dict(tmp_path / "nope.pth")


def test_imagenet_offline_fails_with_advice(monkeypatch):
    calls = []

    def offline(url, **kw):
        calls.append((url, kw))
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(InputError) as info:
        vgg19_features(["relu1_1"], weights="imagenet", device="cpu")
    msg = str(info.value)
    assert info.value.param == "weights"  # the CLI shows it as --weights
    assert "or random" in msg and "local state dict" in msg and IMAGENET_URL in msg
    # torchvision's address, hash-checked
    assert calls[0][0] == IMAGENET_URL and calls[0][1]["check_hash"] is True


def test_imagenet_loads_through_the_hub(monkeypatch, vgg_state):
    # a cached or downloaded copy comes back from the hub as torchvision's full state dict
    full = {f"features.{k}": v for k, v in vgg_state.items()}
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda url, **kw: full)
    model = vgg19_features(["relu1_1"], weights="imagenet", device="cpu")
    assert torch.equal(model.features[0].weight, vgg_state["0.weight"])


def test_random_weights_are_seeded_he_normal():
    a = vgg19_features(["relu3_1"], weights="random", seed=1, device="cpu")
    b = vgg19_features(["relu3_1"], weights="random", seed=1, device="cpu")
    c = vgg19_features(["relu3_1"], weights="random", seed=2, device="cpu")
    for (k, va), vb, vc in zip(
        a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb)
        if k.endswith("weight"):
            assert not torch.equal(va, vc)
            fan_in = va[0].numel()
            assert abs(va.std().item() / np.sqrt(2 / fan_in) - 1) < 0.1
        else:
            assert not va.any()


def test_circular_convolution_matches_torch_and_is_shift_equivariant():
    model = vgg19_features(
        ["relu1_1", "pool2"], weights="random", padding_mode="circular", device="cpu"
    )
    conv = model.features[0]
    ref = nn.Conv2d(3, 64, 3, padding=1, padding_mode="circular")
    ref.load_state_dict(conv.state_dict())
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(conv(x), ref(x))
    # on the torus the features of a shifted image are the shifted features (shift by 4 = one
    # pixel of pool2)
    f1, f2 = model(x)
    g1, g2 = model(torch.roll(x, (4, -8), dims=(-2, -1)))
    torch.testing.assert_close(g1, torch.roll(f1, (4, -8), dims=(-2, -1)))
    torch.testing.assert_close(g2, torch.roll(f2, (1, -2), dims=(-2, -1)))


def test_unknown_layer_names_the_key():
    with pytest.raises(InputError, match="layers: unknown VGG19 layer"):
        VGG19Features(["relu9_9"])


def test_bfloat16_passes_return_float32_features_close_to_float32():
    """``precision="bfloat16"``: the same weights and layers, float32 features within
    bfloat16's rounding (8 bits of mantissa, a few layers deep), and a gradient to the pixels
    pointing the same way."""
    full = vgg19_features(["relu1_1", "pool2"], weights="random", seed=3, device="cpu")
    low = vgg19_features(
        ["relu1_1", "pool2"], weights="random", seed=3, device="cpu", precision="bfloat16"
    )
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0), requires_grad=True)
    grads = []
    for model in (full, low):
        feats = model(x)
        assert all(f.dtype == torch.float32 for f in feats)
        (g,) = torch.autograd.grad(sum((f**2).mean() for f in feats), x)
        grads.append(g)
    for a, b in zip(full(x), low(x), strict=True):
        assert not torch.equal(a, b)  # bfloat16 did run
        assert ((a - b).norm() / a.norm()).item() < 0.03
    cosine = F.cosine_similarity(grads[0].ravel(), grads[1].ravel(), dim=0)
    assert cosine.item() > 0.99
