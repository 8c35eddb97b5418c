"""`mdesign evaluate` and `mdesign evaluators` as in the contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdesign.evaluators import effective_conductivity
from mdesign.io import write_images
from tests.conftest import assert_input_error


@pytest.fixture
def stack(tmp_path, grf_stack):
    path = tmp_path / "stack.npz"
    write_images(path, grf_stack[:4])
    return path


def test_evaluate_json_report(run_cli, stack, grf_stack):
    res = run_cli(
        "evaluate", stack, "--evaluator", "effective_conductivity",
        "--param", "conductivities=1,10", "--param", "direction=y", "--json", "-q",
    )  # fmt: skip
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert set(report) == {"evaluator", "params", "values", "errors"}
    assert report["evaluator"] == "effective_conductivity"
    assert report["params"]["conductivities"] == [1.0, 10.0]
    assert report["params"]["direction"] == "y"
    assert report["errors"] == []
    expected = effective_conductivity(grf_stack[:4], conductivities=(1, 10), direction="y")
    np.testing.assert_allclose(report["values"], expected, rtol=1e-9)


def test_evaluate_single_png_and_table(run_cli, tmp_path, grf_stack):
    path = tmp_path / "one.png"
    write_images(path, grf_stack[0])
    res = run_cli(
        "evaluate", path, "--evaluator", "optical_absorption",
        "--param", "order=1", "--param", "grid=8", "--param", "wavelengths=2",
    )  # fmt: skip
    assert res.code == 0, res.err
    lines = res.out.strip().splitlines()
    assert len(lines) == 2 and 0 <= float(lines[1].split()[1]) <= 1


def test_failed_image_is_null_with_an_error(run_cli, tmp_path):
    images = np.zeros((3, 4, 4), np.uint8)
    images[:, :2] = 1
    images[1, 0, 0] = 7  # the flaky plugin raises on this image
    path = tmp_path / "s.npz"
    write_images(path, images)
    res = run_cli("evaluate", path, "--evaluator", "tests.evaluators.plugin:Flaky", "--json")
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert report["values"][1] is None and report["values"][0] == pytest.approx(0.5)
    assert report["errors"] == [{"index": 1, "message": "ValueError: pixel 7 is not allowed"}]


@pytest.mark.parametrize("json_out", [True, False])
def test_every_image_failing_exits_2_after_the_report(run_cli, tmp_path, json_out):
    images = np.zeros((3, 4, 4), np.uint8)
    images[0, 0, 0], images[1, 0, 0], images[2, 0, 0] = 5, 6, 7  # inf, NaN, raises
    path = tmp_path / "s.npz"
    write_images(path, images)
    flags = ["--json"] if json_out else []
    res = run_cli("evaluate", path, "--evaluator", "tests.evaluators.plugin:Flaky", *flags, "-q")
    assert_input_error(res, str(path), "failed for every image (3)")
    if json_out:  # the report is still there, saying why per image
        report = json.loads(res.out)
        assert report["values"] == [None, None, None] and len(report["errors"]) == 3
    else:
        assert res.out.count("failed") >= 3


def test_evaluators_lists_parameters_and_units(run_cli):
    res = run_cli("evaluators")
    assert res.code == 0
    assert "effective_conductivity" in res.out and "optical_absorption" in res.out
    assert "thickness=100.0 [nm]" in res.out
    res = run_cli("evaluators", "--json")
    info = {e["name"]: e for e in json.loads(res.out)}
    params = {p["name"]: p for p in info["optical_absorption"]["parameters"]}
    assert params["period"]["unit"] == "nm" and params["order"]["default"] == 5
    cond = {p["name"]: p for p in info["effective_conductivity"]["parameters"]}
    assert cond["conductivities"]["required"] and cond["direction"]["type"] == "x|y|z"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--evaluator", "conductivity"], ["unknown evaluator", "effective_conductivity"]),
        (["--evaluator", "effective_conductivity"], ["conductivities is required"]),
        (
            ["--evaluator", "effective_conductivity", "--param", "conductivities=1,x"],
            ["conductivities"],
        ),
        (["--evaluator", "effective_conductivity", "--param", "conductivities"], ["KEY=VALUE"]),
        (
            ["--evaluator", "effective_conductivity", "--param", "conductivities=1,2,3"],
            ["--param conductivities", "2 phases"],
        ),
        (
            [
                "--evaluator",
                "effective_conductivity",
                "--param",
                "conductivities=1,2",
                "--param",
                "direction=diagonal",
            ],
            ["direction"],
        ),
        (["--evaluator", "optical_absorption", "--param", "materials=air,Si,SiO2"], ["materials"]),
        (["--evaluator", "optical_absorption", "--param", "colour=red"], ["colour"]),
        (["--evaluator", "no.such.module:f"], ["no.such.module"]),
    ],
)
def test_bad_input_is_one_error_line(run_cli, stack, args, needles):
    assert_input_error(run_cli("evaluate", stack, *args), *needles)


def test_missing_input_file(run_cli, tmp_path):
    res = run_cli(
        "evaluate", tmp_path / "nope.npz", "--evaluator", "effective_conductivity",
        "--param", "conductivities=1,2",
    )  # fmt: skip
    assert_input_error(res, "nope.npz")
