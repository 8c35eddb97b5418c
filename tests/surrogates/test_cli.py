"""``mdesign surrogate-train``, ``surrogate-screen``, ``surrogate-study`` and the evaluator CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from mdesign.io import read_images, write_images
from mdesign.surrogates import load_surrogate
from tests.conftest import assert_input_error, snapshot
from tests.surrogates.conftest import NET, S2, tiny_surrogate_config


@pytest.fixture
def data(tmp_path, images, c10):
    path = tmp_path / "data.npz"
    write_images(path, images[:40], sigma=c10[:40])
    return path


@pytest.fixture
def config_yaml(tmp_path):
    path = tmp_path / "surrogates.yaml"
    path.write_text(yaml.safe_dump({"network": NET.model_dump(), "s2": S2.model_dump()}))
    return path


def test_train_then_evaluate_and_screen(
    run_cli, data, config_yaml, tiny_gan_path, tmp_path, images, c10
):
    model = tmp_path / "m.pt"
    res = run_cli(
        "surrogate-train",
        "--data",
        data,
        "--values",
        "sigma",
        "--model",
        "frozen",
        "--checkpoint",
        tiny_gan_path,
        "--config",
        config_yaml,
        "--ensemble",
        "3",
        "--out",
        model,
        "-q",
    )
    assert res.code == 0, res.err
    fitted = load_surrogate(model)
    assert len(fitted.members) == 3 and fitted.target["values"] == "sigma"

    cands = tmp_path / "cands.npz"
    write_images(cands, images[200:230])
    res = run_cli(
        "evaluate", cands, "--evaluator", "surrogate", "--param", f"model={model}", "--json", "-q"
    )
    assert res.code == 0, res.err
    report = json.loads(res.out)
    np.testing.assert_allclose(report["values"], fitted.predict(images[200:230]).mean)

    top = tmp_path / "top.npz"
    res = run_cli(
        "surrogate-screen",
        cands,
        "--model",
        model,
        "--evaluator",
        "effective_conductivity",
        "--param",
        "conductivities=1,10",
        "--param",
        "refinement=1",
        "--top",
        "4",
        "--json",
        "-o",
        top,
        "-q",
    )
    assert res.code == 0, res.err
    rep = json.loads(res.out)
    assert len(rep["mean"]) == 30 and len(rep["confirmed"]) == 4
    np.testing.assert_allclose(rep["values"], c10[200:230][rep["confirmed"]], rtol=1e-9)
    stack = read_images(top)
    np.testing.assert_array_equal(stack.images, images[200:230][rep["confirmed"]])
    np.testing.assert_allclose(stack.extras["value"], rep["values"])


def test_train_with_an_evaluator_and_cross_property_source(
    run_cli, data, config_yaml, tmp_path, tiny_gan_path
):
    src = tmp_path / "src.pt"
    assert (
        run_cli(
            "surrogate-train",
            "--data",
            data,
            "--values",
            "sigma",
            "--model",
            "scratch",
            "--config",
            config_yaml,
            "--ensemble",
            "1",
            "--out",
            src,
            "-q",
        ).code
        == 0
    )
    out = tmp_path / "c3.pt"
    res = run_cli(
        "surrogate-train",
        "--data",
        data,
        "--evaluator",
        "effective_conductivity",
        "--param",
        "conductivities=1,3",
        "--param",
        "refinement=1",
        "--model",
        "finetune",
        "--checkpoint",
        src,
        "--config",
        config_yaml,
        "--ensemble",
        "1",
        "--out",
        out,
        "-q",
    )
    assert res.code == 0, res.err
    m = load_surrogate(out)
    assert m.target["params"]["conductivities"] == [1.0, 3.0]
    assert m.architecture == load_surrogate(src).architecture
    s2 = tmp_path / "s2.pt"
    assert (
        run_cli(
            "surrogate-train",
            "--data",
            data,
            "--values",
            "sigma",
            "--model",
            "s2_gp",
            "--config",
            config_yaml,
            "--out",
            s2,
            "-q",
        ).code
        == 0
    )
    assert load_surrogate(s2).kind == "s2_gp"


def test_bad_input(run_cli, data, tmp_path, tiny_gan_path, config_yaml):
    base = ("surrogate-train", "--data", data, "--model", "s2_gp", "--config", config_yaml)
    assert_input_error(
        run_cli(*base, "--values", "nope", "--out", tmp_path / "m.pt"), "--values", "sigma"
    )
    assert_input_error(run_cli(*base, "--values", "sigma", "--out", tmp_path / "m.txt"), "--out")
    assert_input_error(
        run_cli(*base, "--evaluator", "nope", "--out", tmp_path / "m.pt"), "unknown evaluator"
    )
    res = run_cli(*base, "--values", "sigma", "--param", "a=1", "--out", tmp_path / "m.pt")
    assert_input_error(res, "--param")
    res = run_cli(
        "surrogate-train",
        "--data",
        data,
        "--values",
        "sigma",
        "--model",
        "frozen",
        "--checkpoint",
        data,
        "--out",
        tmp_path / "m.pt",
    )
    assert_input_error(res, "checkpoint")
    res = run_cli("evaluate", data, "--evaluator", "surrogate", "--param", f"model={data}")
    assert_input_error(res, "model", "not a readable")
    res = run_cli(
        "surrogate-screen",
        data,
        "--model",
        tmp_path / "none.pt",
        "--evaluator",
        "effective_conductivity",
        "--param",
        "conductivities=1,10",
    )
    assert_input_error(res, "none.pt")
    assert not (tmp_path / "m.pt").exists()


def test_study_command_and_its_errors(run_cli, tmp_path, tiny_gan_path):
    cfg = tmp_path / "study.yaml"
    raw = tiny_surrogate_config(
        models=["frozen", "s2_gp"], cross=[], seeds=1, ship=None
    ).model_dump(mode="json")
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "study"
    res = run_cli(
        "surrogate-study",
        "--checkpoint",
        tiny_gan_path,
        "--out",
        out,
        "--config",
        cfg,
        "--sizes",
        "6,10",
        "-q",
    )
    assert res.code == 0, res.err
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["study"]["sizes"] == [6, 10] and len(results["runs"]) == 8
    # another --sizes on the same directory would mix two studies
    assert_input_error(
        run_cli(
            "surrogate-study",
            "--checkpoint",
            tiny_gan_path,
            "--out",
            out,
            "--config",
            cfg,
            "--sizes",
            "6,12",
            "-q",
        ),
        "another config",
    )
    assert_input_error(
        run_cli(
            "surrogate-study",
            "--checkpoint",
            tiny_gan_path,
            "--out",
            tmp_path / "x",
            "--sizes",
            "6,a",
        ),
        "--sizes",
    )
    assert_input_error(
        run_cli("surrogate-study", "--checkpoint", tmp_path / "none.pt", "--out", tmp_path / "y"),
        "none.pt",
    )
    assert_input_error(
        run_cli(
            "surrogate-study",
            "--checkpoint",
            tiny_gan_path,
            "--out",
            tmp_path / "z",
            "--config",
            cfg,
            "--sizes",
            "6,99",
        ),
        "n_pool",
    )


# --- hardening (issue 13) ------------------------------------------------------------------


def test_train_refuses_string_values_seeds_and_unwritable_outputs(run_cli, tmp_path, images):
    data = tmp_path / "d.npz"
    write_images(data, images[:12], sigma=np.array(["high"] * 12), ok=np.ones(12))
    before = snapshot(tmp_path)
    base = ("surrogate-train", "--data", data, "--model", "s2_gp")
    for args, needles in [
        (["--values", "sigma", "--out", tmp_path / "m.pt"], ("--values sigma", "dtype <U4")),
        (["--values", "ok", "--seed", "-1", "--out", tmp_path / "m.pt"], ("--seed",)),
        (["--values", "ok", "--out", "/proc/mdesign-m.pt"], ("--out", "cannot write")),
        (["--values", "ok", "--out", data.with_suffix(".pt"), "--config", data], ("binary",)),
    ]:
        assert_input_error(run_cli(*base, *args, "-q"), *needles)
    assert snapshot(tmp_path) == before


def test_screen_output_over_its_input_is_refused(run_cli, tmp_path, images):
    data = tmp_path / "in.npz"
    write_images(data, images[:8])
    before = snapshot(tmp_path)
    res = run_cli(
        "surrogate-screen", data, "--model", tmp_path / "m.pt",
        "--evaluator", "effective_conductivity", "--param", "conductivities=1,10", "-o", data,
    )  # fmt: skip
    assert_input_error(res, "-o", "is the input INPUT")
    assert snapshot(tmp_path) == before


def test_study_out_that_is_a_file_is_refused(run_cli, tmp_path, tiny_gan_path):
    existing = tmp_path / "results"
    existing.write_bytes(b"not a folder")
    before = snapshot(tmp_path)
    res = run_cli("surrogate-study", "--checkpoint", tiny_gan_path, "--out", existing, "-q")
    assert_input_error(res, "--out", "is a file, expected a directory")
    assert snapshot(tmp_path) == before
