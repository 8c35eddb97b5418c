"""A GAN trained on a user's tiles: provenance, held-out validation, memorisation, campaigns."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from mdesign.config import CampaignConfig, config_from_dict
from mdesign.data import li2018_exemplar
from mdesign.dataset import nearest_distances
from mdesign.errors import InputError
from mdesign.gan.checkpoint import read_checkpoint
from mdesign.optimization.campaign import prepare_campaign, run_campaign
from tests.conftest import assert_input_error
from tests.gan.conftest import TINY


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny GAN trained by the CLI on 32 x 32 tiles of the ceramics exemplar."""
    from mdesign.cli import main

    root = tmp_path_factory.mktemp("own")
    np.savez(root / "ceramics.npz", images=li2018_exemplar("ceramics", 256)[None])
    data = root / "train.npz"
    assert (
        main(
            [
                *("dataset", str(root / "ceramics.npz"), "-o", str(data)),
                *("--tile", "32", "-n", "64", "--holdout-tiles", "24", "-q"),
            ]
        )
        == 0
    )
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    args = ["train", "--data", str(data), "--config", str(root / "tiny.yaml")]
    assert main([*args, "--out", str(root / "gan"), "-q"]) == 0
    return root


def test_the_checkpoint_records_the_datasets_provenance(trained):
    state = read_checkpoint(trained / "gan" / "model.pt")  # torch.load(weights_only=True)
    meta = state["data_meta"]
    assert meta["path"] == str((trained / "train.npz").resolve())
    ds = meta["dataset"]
    assert ds["n_tiles"] == 64 and ds["n_holdout"] == 24 and ds["config"]["tile"] == 32
    assert ds["sources"][0]["holdout_region"] == [0, 256, 204, 256]  # ceil(0.2 * 256) = 52 columns
    with np.load(trained / "train.npz") as data:
        holdout = data["holdout"]
    import hashlib

    assert ds["holdout_sha256"] == hashlib.sha256(holdout.tobytes()).hexdigest()
    assert "grf" not in meta


def test_sample_report_uses_held_out_tiles_and_checks_memorisation(trained, run_cli, tmp_path):
    out, rep = tmp_path / "s.npz", tmp_path / "r.json"
    ck = trained / "gan" / "model.pt"
    res = run_cli("sample", "--checkpoint", ck, "-n", 16, "-o", out, "--report", rep)
    assert res.code == 0, res.err
    report = json.loads(rep.read_text())
    assert "held-out tiles" in report["reference"] and "(12 and 12)" in report["reference"]
    mem = report["memorisation"]
    assert len(mem["samples"]["values"]) == 16 and len(mem["holdout"]["values"]) == 24
    with np.load(trained / "train.npz") as data:
        train, holdout = data["images"], data["holdout"]
    with np.load(out) as data:
        samples = data["images"]
    # both distributions are the nearest-training-tile Hamming distances
    assert np.allclose(mem["holdout"]["values"], nearest_distances(holdout, train))
    assert np.allclose(mem["samples"]["values"], nearest_distances(samples, train))
    assert "memorisation:" in res.err
    # a copy of the training tiles is flagged: the samples would all be at distance 0
    from mdesign.dataset import TrainingData, memorisation

    copied = memorisation(train[:16], TrainingData(train, holdout, trained / "train.npz"))
    assert copied["samples"]["median"] == 0 and not copied["goal_met"]


def test_a_moved_dataset_is_one_error_and_data_points_at_it(trained, run_cli, tmp_path):
    moved = tmp_path / "moved"
    moved.mkdir()
    ck = moved / "model.pt"
    shutil.copy(trained / "gan" / "model.pt", ck)
    shutil.move(trained / "train.npz", moved / "elsewhere.npz")
    try:
        out, rep = tmp_path / "s.npz", tmp_path / "r.json"
        args = ("sample", "--checkpoint", ck, "-n", 8, "-o", out, "--report", rep)
        assert_input_error(run_cli(*args), "--data", "cannot be found")
        assert not out.exists()
        assert run_cli(*args, "--data", moved / "elsewhere.npz").code == 0
        np.savez(tmp_path / "other.npz", images=np.zeros((8, 32, 32), np.uint8))
        assert_input_error(run_cli(*args, "--data", tmp_path / "other.npz"), "not the images")
        # a campaign: refused before any flow, unless generator.data points at the data
        cfg = _campaign(tmp_path, ck)
        assert_input_error(
            run_cli("optimize", "--config", cfg, "--out", tmp_path / "c"), "generator.data"
        )
        with pytest.raises(InputError, match=r"generator\.data"):
            prepare_campaign(_config(ck), tmp_path / "c")
        prepare_campaign(_config(ck, data=str(moved / "elsewhere.npz")), tmp_path / "c")
    finally:
        shutil.move(moved / "elsewhere.npz", trained / "train.npz")


def _config(ck, **generator):
    return config_from_dict(
        CampaignConfig,
        {
            "name": "own",
            "generator": {"checkpoint": str(ck), **generator},
            "objectives": [{"evaluator": "volume_fraction", "goal": "maximize"}],
            "bo": {
                "budget": 4,
                "initial": 4,
                "num_restarts": 2,
                "raw_samples": 32,
                "mc_samples": 32,
                "pool_size": 32,
            },
            "baseline_batch_size": 4,
        },
    )


def _campaign(tmp_path, ck):
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(_config(ck).model_dump(mode="json")))
    return path


def test_default_baselines_draw_training_images_for_a_gan_not_trained_on_grf(trained, tmp_path):
    ck = trained / "gan" / "model.pt"
    out = tmp_path / "c"
    summary = run_campaign(_config(ck), out, progress=False)
    assert set(summary.methods) == {"bo", "random", "training"}
    with np.load(trained / "train.npz") as data:
        train = data["images"]
    recs = summary.methods["training"].records
    assert len(recs) == 4
    for r in recs:  # each value is the objective of the recorded training image
        img = train[r.design["training_index"] % len(train)]
        assert r.outcomes[0] == pytest.approx(float(img.mean()))
    assert "random training images" in (out / "report.md").read_text()
    # asking for the GRF baseline of a GAN trained on other images says what to use instead
    grf = _config(ck).model_copy(update={"baselines": ["grf"]})
    with pytest.raises(InputError, match="'training'"):
        prepare_campaign(grf, tmp_path / "g")


def test_fewer_tiles_than_a_batch_is_one_error(trained, run_cli, tmp_path):
    small = tmp_path / "small.npz"
    args = ("dataset", trained / "ceramics.npz", "-o", small, "--tile", 32, "-n", 4, "-q")
    assert run_cli(*args).code == 0
    res = run_cli(
        "train", "--data", small, "--config", trained / "tiny.yaml", "--out", tmp_path / "g"
    )
    assert_input_error(res, "--data", "fewer than one batch")
