"""Tortuosity factor: TauFactor on the same volumes, percolation found before any solve, the
evaluator's report of a non-percolating sample, closed forms."""

from __future__ import annotations

import json
import sys
from collections import deque

import numpy as np
import pytest

from mdesign.errors import InputError
from mdesign.evaluators import evaluate_batch, get_evaluator, percolates, tortuosity
from mdesign.grf import grf_microstructures
from mdesign.io import write_images


@pytest.fixture(scope="module")
def vols() -> np.ndarray:
    return grf_microstructures(
        4, (16, 14, 12), volume_fraction=(0.45, 0.65), correlation_length=2, seed=21
    ).images


def test_straight_channels_and_a_closed_form():
    # phase 1 in straight channels along x: tau = 1 exactly (epsilon / sigma = eps / eps)
    img = np.zeros((1, 10, 12), np.uint8)
    img[0, 2:5] = 1
    np.testing.assert_allclose(tortuosity(img, phase=1, direction="x"), 1.0, rtol=1e-9)
    # and across them nothing percolates: inf, with no solve
    assert np.isinf(tortuosity(img, phase=1, direction="y")).all()


def test_against_taufactor_on_volumes(vols):
    tau = pytest.importorskip("taufactor")
    got = tortuosity(vols, phase=1, direction="y")  # TauFactor's flow is along its axis 0 (y)
    for v, g in zip(vols, got, strict=True):
        solver = tau.Solver((v == 1).astype(np.float32), device="cpu")
        solver.solve(verbose=False, conv_crit=1e-4)
        want = float(np.asarray(solver.tau).ravel()[0])
        if not percolates(v[None], phase=1, direction="y")[0]:
            assert np.isinf(g)
            continue
        assert abs(g / want - 1) < 0.01, (g, want)


def test_non_percolating_is_found_before_solving(monkeypatch):
    imgs = grf_microstructures(
        6, (24, 24), volume_fraction=0.25, correlation_length=2, seed=2
    ).images
    ok = percolates(imgs, phase=1, direction="x")
    assert not ok.all(), "the test wants some samples without a path"
    # brute force: a breadth-first flood from the first column through 4-neighbours
    for img, p in zip(imgs, ok, strict=True):
        h, w = img.shape
        seen = np.zeros_like(img, dtype=bool)
        queue = deque((i, 0) for i in range(h) if img[i, 0] == 1)
        for i, j in queue:
            seen[i, j] = True
        while queue:
            i, j = queue.popleft()
            for a, b in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if 0 <= a < h and 0 <= b < w and img[a, b] == 1 and not seen[a, b]:
                    seen[a, b] = True
                    queue.append((a, b))
        assert p == bool(seen[:, -1].any())
    mt = sys.modules["mdesign.evaluators.tortuosity"]
    solved = []
    real = mt.effective_conductivity

    def spy(images, **kw):
        solved.append(len(images))
        return real(images, **kw)

    monkeypatch.setattr(mt, "effective_conductivity", spy)
    out = tortuosity(imgs, phase=1, direction="x")
    assert np.isinf(out[~ok]).all() and np.isfinite(out[ok]).all() and (out[ok] >= 1).all()
    assert solved == ([int(ok.sum())] if ok.any() else [])


def test_evaluator_reports_inf_as_failed_image(tmp_path, run_cli):
    img = np.zeros((2, 8, 8), np.uint8)
    img[0, 3] = 1  # a channel along x
    img[1, :, 3] = 1  # a channel along y: no path along x
    ev = get_evaluator("tortuosity", phase=1, direction="x")
    res = evaluate_batch(ev, img)
    assert res.values[0] == pytest.approx(1.0)
    assert np.isnan(res.values[1]) and "does not percolate" in res.errors[0].message
    path = tmp_path / "imgs.npz"
    write_images(path, img)
    out = run_cli("evaluate", path, "--evaluator", "tortuosity", "--json", "-q")
    report = json.loads(out.out)
    assert report["values"][1] is None and report["errors"][0]["index"] == 1
    with pytest.raises(InputError, match="z"):
        get_evaluator("tortuosity", direction="z").check_images(img)
