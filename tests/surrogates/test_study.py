"""The study end to end on a tiny GAN: outputs, consistency, resume, refusal to mix configs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdesign.errors import InputError
from mdesign.surrogates import load_surrogate
from mdesign.surrogates.study import run_study
from tests.surrogates.conftest import tiny_surrogate_config


@pytest.fixture(scope="module")
def study(tiny_gan_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    return run_study(tiny_gan_path, out, config=tiny_surrogate_config())


def test_outputs(study):
    out = study.out_dir
    for name in ("results.json", "learning_curves.png", "report.md", "runs.jsonl", "c10_frozen.pt"):
        assert (out / name).is_file(), name
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = json.loads((out / "results.json").read_text())
    # 2 tasks x 4 models x 2 sizes x 2 seeds, and 2 cross models x 2 sizes x 2 seeds
    assert len(res["runs"]) == 32 + 8
    assert set(res["curves"]) == {"c10", "c3"}
    assert set(res["curves"]["c3"]) == {
        "frozen",
        "finetune",
        "scratch",
        "s2_gp",
        "cross_frozen<-c10",
        "cross_finetune<-c10",
    }
    assert res["data"] == {**res["data"], "pool": 16, "test": 12, "gan": 8}
    assert "c10" in (out / "report.md").read_text()


def test_curves_are_the_mean_over_seeds_of_the_runs(study):
    res = study.results
    for task, model, size in (("c10", "scratch", 12), ("c3", "cross_frozen<-c10", 8)):
        base = model.split("<-")[0]
        maes = [
            r["mae"]
            for r in res["runs"]
            if r["task"] == task and r["model"] == base and r["size"] == size
        ]
        assert len(maes) == 2
        mean, std, n = res["curves"][task][model]["mae"][str(size)]
        assert mean == pytest.approx(np.mean(maes)) and std == pytest.approx(np.std(maes))
        assert n == 2
    ratio = res["transfer_vs_scratch"]["c10"]["frozen"]["12"]
    pairs = {
        (r["model"], r["seed"]): r["mae"]
        for r in res["runs"]
        if r["task"] == "c10" and r["size"] == 12
    }
    expect = np.mean([pairs[("frozen", s)] / pairs[("scratch", s)] for s in (0, 1)])
    assert ratio["mae_ratio"] == pytest.approx(expect)


def test_subsets_are_nested_and_seeded(study):
    # the larger K contains the smaller (same seed), so a curve measures the labels added
    from mdesign.surrogates.study.plan import subset

    valid = np.arange(16)
    assert set(subset(valid, 8, 0)) <= set(subset(valid, 12, 0))
    assert set(subset(valid, 8, 0)) != set(subset(valid, 8, 1))


def test_shipped_model_and_screening(study):
    ship = study.results["ship"]
    model = load_surrogate(study.model)
    assert model.mode == "frozen" and len(model.members) == 3
    assert model.target["task"] == "c10"
    sc = ship["screening"]
    assert sc["confirmed_match_labels"] and sc["top_k"] == 3
    assert 1 <= sc["rank_of_best_found"] <= sc["candidates"]
    assert sc["best_found"] <= sc["best_possible"]
    assert 0 <= ship["test"]["within_1std"] <= ship["test"]["within_2std"] <= 1
    # its spread is calibrated on the pool images it was not trained on (16 - 12)
    assert ship["calibration_images"] == 4
    assert model.std_scale == ship["std_scale"] and model.std_scale != 1.0


def test_rerun_resumes_without_refitting(study, tiny_gan_path):
    lines = (study.out_dir / "runs.jsonl").read_text().splitlines()
    shipped = study.model.read_bytes()
    again = run_study(tiny_gan_path, study.out_dir, config=tiny_surrogate_config())
    assert (study.out_dir / "runs.jsonl").read_text().splitlines() == lines
    assert again.results["runs"] == json.loads((study.out_dir / "results.json").read_text())["runs"]
    # the shipped model of this study is reused, not refitted
    assert again.model.read_bytes() == shipped
    for key in ("mae", "r2", "within_2std"):
        assert again.results["ship"]["test"][key] == study.results["ship"]["test"][key]


def test_refuses_another_config_in_the_same_directory(study, tiny_gan_path):
    other = tiny_surrogate_config(seeds=3)
    with pytest.raises(InputError, match="another config"):
        run_study(tiny_gan_path, study.out_dir, config=other)


CALLS: list[int] = []


def mean_phase(images):
    """An evaluator that counts its calls (named by path in the test below)."""
    CALLS.append(len(images))
    return images.mean((1, 2))


def test_labels_are_cached_per_image_set(tmp_path, images):
    from mdesign.config import SurrogateTaskConfig
    from mdesign.surrogates.study.labels import label_task

    task = SurrogateTaskConfig(name="vf", evaluator="tests.surrogates.test_study:mean_phase")
    sets = {"pool": images[:6], "test": images[6:10], "gan": images[10:13]}
    cache = tmp_path / "vf.npz"
    CALLS.clear()
    first = label_task(task, sets, cache, progress=False, log=lambda m: None)
    assert sorted(CALLS) == [3, 4, 6] and first.cached == []
    # another GAN's samples: only they are evaluated again
    again = label_task(
        task, {**sets, "gan": images[13:15]}, cache, progress=False, log=lambda m: None
    )
    assert sorted(CALLS) == [2, 3, 4, 6] and again.cached == ["pool", "test"]
    np.testing.assert_array_equal(again.values["pool"], images[:6].mean((1, 2)))
    np.testing.assert_array_equal(again.values["gan"], images[13:15].mean((1, 2)))


def test_the_committed_study_would_resume_with_nothing_to_run():
    # artifacts/surrogates/: its identity is what this code computes for its config and the
    # paper network's checkpoint (the study's default), and its journal holds every run of its
    # plan
    import hashlib
    from pathlib import Path

    from mdesign.config import SurrogateConfig, config_from_dict
    from mdesign.surrogates.study import FORMAT
    from mdesign.surrogates.study.plan import plan_runs, read_rows

    root = Path(__file__).resolve().parents[2]
    out = root / "artifacts" / "surrogates"
    identity = json.loads((out / "study.json").read_text())
    config = config_from_dict(SurrogateConfig, identity["config"], source="study.json")
    paper = root / "artifacts" / "gan_paper" / "checkpoint.pt"
    sha = hashlib.sha256(paper.read_bytes()).hexdigest()
    assert identity == {
        "format": FORMAT,
        "config": config.model_dump(mode="json"),
        "checkpoint_sha256": sha,
    }
    rows = read_rows(out / "runs.jsonl")
    plan = plan_runs(config)
    assert [run.key for run in plan if run.key not in rows] == []
    for run in plan[:3] + plan[-3:]:  # a row begins with its run's fields, in order
        assert (
            list(rows[run.key])[:5]
            == list(run.row())
            == ["task", "model", "source", "size", "seed"]
        )
