"""The optical campaigns' re-confirmation (bench/bench_optical_reconfirm.py): which designs it
takes from a campaign's results, the setting it evaluates them at, and its verdicts, on results
and values built by hand."""

import numpy as np
import pytest

from tests.conftest import bench_module


@pytest.fixture(scope="module")
def bench():
    with bench_module("bench_optical_reconfirm") as module:
        yield module


def test_setting_drops_the_old_spectrum_and_raster_and_keeps_the_physics(bench):
    old = {"wavelengths": 15, "spectral_rule": "trapezoid", "grid": 64, "thickness": 80.0}
    assert bench.setting(old, 11) == {"thickness": 80.0, "order": 11}
    assert bench.setting({"order": 5}, 9) == {"order": 9}


def _results(conf_design, best_design):
    method = {
        "confirmed": {"design": conf_design, "best": 0.12},
        "best_design": best_design,
    }
    return {
        "per_seed": {"0": {"methods": {"bo": method}}},
        "best_by_order": {"0": {"bo": {"5": 0.13, "9": 0.11}}},
        "confirmed": {"order": 9},
    }


def test_designs_rank_the_confirmed_best_first_and_skip_a_repeat(bench):
    a, b = {"latent": [0.1]}, {"latent": [0.2]}
    assert bench.designs(_results(a, b), "0", "bo") == [(1, a, 0.12), (2, b, 0.11)]
    assert bench.designs(_results(a, a), "0", "bo") == [(1, a, 0.12)]


def test_image_key_depends_on_the_image_and_the_parameters(bench):
    img = np.zeros((1, 4, 4), dtype=np.float32)
    k = bench.image_key(img, {"order": 9})
    assert k == bench.image_key(img.copy(), {"order": 9})
    assert k != bench.image_key(img, {"order": 11})
    other = img.copy()
    other[0, 0, 0] = 1
    assert k != bench.image_key(other, {"order": 9})


def _job(seed, method, rank, key, old):
    ctx = {"outcomes": [{"params": {"order": 9}}]}
    return {"key": key, "context": ctx, "design": {}, "seed": seed, "method": method,
            "rank": rank, "old": old}  # fmt: skip


def test_summary_takes_each_methods_best_new_value_and_counts_complete_seeds(bench):
    jobs = [
        _job(0, "bo", 1, "a", 0.12),
        _job(0, "bo", 2, "b", 0.10),
        _job(0, "random", 1, "c", 0.13),
        _job(0, "grf", 1, "d", 0.11),
        _job(1, "bo", 1, "e", 0.14),
        _job(1, "random", 1, "f", 0.10),
        _job(1, "grf", 1, "g", 0.10),
    ]
    vals = {"a": 0.10, "b": 0.125, "c": 0.12, "d": 0.11, "e": 0.14, "f": 0.10}  # g not yet
    cache = {k: {"value": v, "seconds": 1.0} for k, v in vals.items()}
    res = bench.summarise(jobs, cache, order=9)
    s0 = res["seeds"]["0"]
    assert s0["best"] == {"bo": 0.125, "random": 0.12, "grf": 0.11}  # BO's rank 2 wins
    assert s0["bo_above_both"] is True and s0["old_bo_above_both"] is False
    assert s0["gain_pct"]["random"] == pytest.approx(100 * (0.125 / 0.12 - 1))
    assert res["seeds"]["1"]["bo_above_both"] is None  # grf missing: no verdict
    assert res["seeds_complete"] == 1 and res["bo_above_both"] == 1
    text = bench.markdown(res, "optical")
    assert "| 0 | 0.1200 / 0.1250 |" in text and "| 0 / 1 of 1 |" in text
    table = bench.combined({"optical": res})
    assert "| 0 | 0.1200 -> 0.1250 | 0.1300 -> 0.1200 | 0.1100 -> 0.1100 |" in table
