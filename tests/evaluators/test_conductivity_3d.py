"""Effective conductivity of volumes: closed forms, bounds, symmetries, the solver, the CLI.

Volumes are deliberately not cubes (12 x 16 x 10 and the like), so that a mix-up of axes shows.
Tensor indices: x = image axis 1, y = axis 0, z = axis 2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import mdesign.evaluators.conductivity as mc
from mdesign.evaluators import (
    conductivity_tensor,
    effective_conductivity,
    evaluate_batch,
    get_evaluator,
)
from mdesign.grf import grf_microstructures
from mdesign.io import write_images
from tests.conftest import assert_input_error

AXIS_OF_INDEX = (1, 0, 2)  # image axis of tensor index x, y, z
TIGHT = {"tolerance": 1e-9}


@pytest.fixture(scope="module")
def vols() -> np.ndarray:
    """Four periodic 12 x 16 x 10 two-phase volumes, fractions 0.3-0.6."""
    return grf_microstructures(
        4, (12, 16, 10), volume_fraction=(0.3, 0.6), correlation_length=2.5, seed=7
    ).images


def tensor_in_image_axes(t: np.ndarray) -> np.ndarray:
    """The tensor with rows and columns ordered by image axis (0, 1, 2)."""
    p = np.zeros((3, 3))
    for k, a in enumerate(AXIS_OF_INDEX):
        p[a, k] = 1
    return p @ t @ p.T


def affine_map(transform, shape) -> np.ndarray:
    """The orthogonal ``A`` (in image axes) with ``transform(v)[u] = v[A u + c]``.

    Found by transforming the index grids, so the test does not restate numpy's conventions.
    """
    idx = np.indices(shape)
    src = np.stack([transform(i) for i in idx])  # 3 x H' x W' x D'
    origin = src[:, 0, 0, 0].astype(float)
    a = np.zeros((3, 3))
    for j in range(3):
        unit = [0, 0, 0]
        unit[j] = 1
        a[:, j] = src[(slice(None), *unit)] - origin + 0.0
    # periodic wrap can make a step -(n-1) instead of +1
    for i in range(3):
        for j in range(3):
            if abs(a[i, j]) > 1:
                a[i, j] = -np.sign(a[i, j])
    assert np.allclose(np.abs(a).sum(0), 1) and np.allclose(np.abs(a).sum(1), 1)
    return a


# ---------------------------------------------------------------------------------------------
# closed forms


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize(
    "cond,widths",
    [((1.0, 10.0), (5, 7)), ((2.0, 30.0, 0.5), (3, 5, 4))],
    ids=["two-phase", "three-phase"],
)
@pytest.mark.parametrize("refinement,extrapolate", [(1, False), (2, True)])
def test_laminate_is_exact_in_every_orientation(axis, cond, widths, refinement, extrapolate):
    shape = [12, 14, 10]
    shape[axis] = sum(widths)
    labels = np.repeat(np.arange(len(widths)), widths).astype(np.uint8)
    view = [1, 1, 1]
    view[axis] = -1
    vol = np.broadcast_to(labels.reshape(view), shape).copy()
    f = np.array(widths) / sum(widths)
    arithmetic = float(f @ cond)
    harmonic = 1 / float(f @ (1 / np.array(cond)))
    t = conductivity_tensor(
        vol[None], conductivities=cond, refinement=refinement, extrapolate=extrapolate, **TIGHT
    )[0]
    expected = np.diag([arithmetic] * 3)
    across = AXIS_OF_INDEX.index(axis)
    expected[across, across] = harmonic
    np.testing.assert_allclose(t, expected, rtol=1e-9, atol=1e-9 * arithmetic)
    d = effective_conductivity(vol[None], conductivities=cond, direction="xyz"[across], **TIGHT)
    np.testing.assert_allclose(d, [harmonic], rtol=1e-9)


def test_uniform_volume_and_insulating_phase():
    ones = np.zeros((6, 8, 5), np.uint8)
    t = conductivity_tensor(ones[None], conductivities=(3.0, 1.0))[0]
    np.testing.assert_allclose(t, 3 * np.eye(3), rtol=1e-12)
    # a conducting rod along z in an insulator: only z conducts, by its area fraction
    rod = np.zeros((8, 8, 6), np.uint8)
    rod[2:5, 3:6, :] = 1
    t = conductivity_tensor(rod[None], conductivities=(0.0, 4.0), **TIGHT)[0]
    np.testing.assert_allclose(t, np.diag([0, 0, 4 * 9 / 64]), atol=1e-9)


def test_extruded_image_gives_the_2d_tensor_in_plane_and_the_mean_along_depth():
    img = grf_microstructures(1, (14, 18), volume_fraction=0.45, correlation_length=3, seed=2)
    img = img.images[0]
    cond = (1.0, 20.0)
    vol = np.repeat(img[:, :, None], 6, axis=2)
    for kw in ({"refinement": 1, "extrapolate": False}, {}):
        t2 = conductivity_tensor(img, conductivities=cond, **kw, **TIGHT)[0]
        t3 = conductivity_tensor(vol[None], conductivities=cond, **kw, **TIGHT)[0]
        np.testing.assert_allclose(t3[:2, :2], t2, rtol=1e-8)
        np.testing.assert_allclose(t3[2, 2], np.mean(np.array(cond)[img]), rtol=1e-10)
        np.testing.assert_allclose(t3[:2, 2], 0, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# bounds and tensor properties


def hs_trace_bounds(f1: float, s1: float, s2: float, t: np.ndarray) -> tuple[float, float]:
    """Slack of the anisotropic Hashin-Shtrikman bounds in 3D (s1 < s2), both must be >= 0.

    ``Tr[(T - s1 I)^-1] <= 3 / (f2 (s2 - s1)) + f1 / (f2 s1)`` and
    ``Tr[(s2 I - T)^-1] <= 3 / (f1 (s2 - s1)) - f2 / (f1 s2)`` (Torquato 2002, ch. 21; Milton
    2002, ch. 23); for an isotropic ``T = s I`` they are the HS bounds
    ``s1 + f2 / (1/(s2-s1) + f1/(3 s1)) <= s <= s2 + f1 / (1/(s1-s2) + f2/(3 s2))``.
    """
    f2 = 1 - f1
    eye = np.eye(3)
    lower = 3 / (f2 * (s2 - s1)) + f1 / (f2 * s1) - np.trace(np.linalg.inv(t - s1 * eye))
    upper = 3 / (f1 * (s2 - s1)) - f2 / (f1 * s2) - np.trace(np.linalg.inv(s2 * eye - t))
    return lower, upper


def test_hs_trace_bounds_reduce_to_the_isotropic_hs_bounds():
    f1, s1, s2 = 0.6, 1.0, 10.0
    f2 = 1 - f1
    lo = s1 + f2 / (1 / (s2 - s1) + f1 / (3 * s1))
    hi = s2 + f1 / (1 / (s1 - s2) + f2 / (3 * s2))
    assert hs_trace_bounds(f1, s1, s2, lo * np.eye(3))[0] == pytest.approx(0, abs=1e-12)
    assert hs_trace_bounds(f1, s1, s2, hi * np.eye(3))[1] == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("contrast", [10.0, 100.0])
def test_hashin_shtrikman_and_wiener_bounds_symmetry_positive_definiteness(vols, contrast):
    cond = (1.0, contrast)
    ts = conductivity_tensor(vols, conductivities=cond)
    for v, t in zip(vols, ts, strict=True):
        f1 = float(np.mean(v == 0))
        scale = np.abs(t).max()
        np.testing.assert_allclose(t, t.T, atol=1e-6 * scale)
        eig = np.linalg.eigvalsh((t + t.T) / 2)
        arithmetic = f1 * cond[0] + (1 - f1) * cond[1]
        harmonic = 1 / (f1 / cond[0] + (1 - f1) / cond[1])
        assert eig.min() > 0
        assert harmonic * (1 - 1e-9) <= eig.min() and eig.max() <= arithmetic * (1 + 1e-9)
        lower, upper = hs_trace_bounds(f1, cond[0], cond[1], (t + t.T) / 2)
        assert lower >= 0 and upper >= 0, (lower, upper)


# ---------------------------------------------------------------------------------------------
# symmetries of the grid: exact for the discrete operator, so to the solver's tolerance


TRANSFORMS = {
    "rot90 axes 0-1": lambda v: np.rot90(v, 1, axes=(0, 1)),
    "rot90 axes 1-2": lambda v: np.rot90(v, 1, axes=(1, 2)),
    "rot90 axes 0-2": lambda v: np.rot90(v, 1, axes=(0, 2)),
    "rot90 axes 2-0, twice": lambda v: np.rot90(v, 2, axes=(2, 0)),
    "transpose 2,0,1": lambda v: np.transpose(v, (2, 0, 1)),
    "transpose 1,0,2": lambda v: np.transpose(v, (1, 0, 2)),
    "flip axis 2": lambda v: v[:, :, ::-1],
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_rotations_and_transpositions_rotate_the_tensor(vols, name):
    transform = TRANSFORMS[name]
    cond = (1.0, 10.0)
    a = affine_map(transform, vols.shape[1:])
    t = tensor_in_image_axes(conductivity_tensor(vols[:2], conductivities=cond, **TIGHT)[1])
    moved = np.ascontiguousarray(transform(vols[1]))
    t_moved = conductivity_tensor(moved[None], conductivities=cond, **TIGHT)[0]
    t_moved = tensor_in_image_axes(t_moved)
    if name.startswith("flip"):
        # a reflection changes the sign of the off-diagonal terms with that axis
        assert np.abs(t[2, :2]).max() > 1e-3
    np.testing.assert_allclose(t_moved, a.T @ t @ a, atol=1e-8 * np.abs(t).max())


def test_affine_map_finds_the_rotation():
    # the helper itself, on numpy's documented example: rot90([[1, 2], [3, 4]]) is
    # [[2, 4], [1, 3]], so new[i, j] = old[j, W - 1 - i]
    assert np.rot90(np.array([[1, 2], [3, 4]])).tolist() == [[2, 4], [1, 3]]
    a = affine_map(lambda v: np.rot90(v, 1, axes=(0, 1)), (3, 4, 2))
    np.testing.assert_array_equal(a, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]])


# ---------------------------------------------------------------------------------------------
# batching, chunking, the solver


def test_batched_equals_one_by_one_and_chunking_changes_nothing(vols, monkeypatch):
    cond = (1.0, 10.0)
    batched = conductivity_tensor(vols, conductivities=cond)
    single = np.stack([conductivity_tensor(v[None], conductivities=cond)[0] for v in vols])
    np.testing.assert_allclose(batched, single, rtol=1e-12, atol=1e-12)
    # a budget below one volume's three loads: one volume, one load at a time
    monkeypatch.setattr(mc, "_CELLS_PER_CHUNK", 12 * 16 * 10 * 8)
    np.testing.assert_allclose(
        conductivity_tensor(vols, conductivities=cond), batched, rtol=1e-12, atol=1e-12
    )
    d = effective_conductivity(vols, conductivities=cond, direction="z")
    np.testing.assert_allclose(d, batched[:, 2, 2], rtol=1e-12)


def fv_residual_norms(sigma: np.ndarray, load: np.ndarray, phi: np.ndarray) -> tuple:
    """Preconditioned norms of ``b - A phi`` and ``b``, built in numpy independently.

    Faces along image axis ``a`` carry the harmonic mean of their two cells; ``load`` is given
    in image axes. The preconditioner is the inverse of the periodic 7-point Laplacian times
    the mean face conductance.
    """
    res = np.zeros_like(sigma)
    rhs = np.zeros_like(sigma)
    mean_g = 0.0
    for a in range(3):
        nb = np.roll(sigma, -1, a)
        g = np.where(sigma + nb > 0, 2 * sigma * nb / np.maximum(sigma + nb, 1e-300), 0)
        mean_g += g.mean() / 3
        # current through the face to the next cell, for the total potential drop
        flux_fluct = g * (np.roll(phi, -1, a) - phi)
        flux_field = g * load[a]
        # net current out of a cell: its forward face minus its backward face
        res += -(flux_fluct - np.roll(flux_fluct, 1, a))
        rhs += flux_field - np.roll(flux_field, 1, a)
    r = rhs - res
    k = np.meshgrid(*[np.fft.fftfreq(n) for n in sigma.shape], indexing="ij")
    lam = sum(2 - 2 * np.cos(2 * np.pi * ki) for ki in k) * mean_g
    inv = np.where(lam > 0, 1 / np.where(lam > 0, lam, 1), 0)

    def norm(x):
        return np.sqrt(np.real(np.sum(np.conj(np.fft.fftn(x)) * np.fft.fftn(x) * inv)) / x.size)

    return norm(r), norm(rhs)


def test_cg_meets_its_tolerance_and_iterations_do_not_grow_with_size():
    cond = torch.tensor([1.0, 100.0], dtype=torch.float64)
    tol = 1e-4
    iterations = {}
    for n in (16, 32):
        v = grf_microstructures(1, (n, n, n), volume_fraction=0.4, correlation_length=3, seed=n)
        sigma = cond[torch.as_tensor(v.images.astype(np.int64))]
        _, phi, its = mc._pcg_solve(
            sigma, torch.eye(3, dtype=torch.float64), tolerance=tol, max_iterations=500
        )
        iterations[n] = int(its.max())
        for k in range(3):
            load = np.zeros(3)
            load[AXIS_OF_INDEX[k]] = 1.0
            r, b = fv_residual_norms(sigma[0].numpy(), load, phi[0, k].numpy())
            assert r <= tol * b * (1 + 1e-6), (n, k, r / b)
            assert r > 0
    assert 5 <= iterations[16] and iterations[32] <= 1.3 * iterations[16] + 2, iterations


# ---------------------------------------------------------------------------------------------
# the evaluator and the CLI


def test_evaluator_takes_volumes_and_refuses_z_on_images(vols):
    ev = get_evaluator("effective_conductivity", conductivities=(1, 10), direction="z")
    expected = conductivity_tensor(vols, conductivities=(1, 10))[:, 2, 2]
    res = evaluate_batch(ev, vols)
    assert res.errors == []
    np.testing.assert_allclose(res.values, expected, rtol=1e-9)
    images = vols[:, :, :, 0]
    with pytest.raises(Exception, match="z needs volumes"):
        ev.check_images(images)
    res = evaluate_batch(ev, images)
    assert np.isnan(res.values).all() and "z needs volumes" in res.errors[0].message


def test_cli_evaluates_volumes_and_refuses_z_on_images(run_cli, tmp_path, vols):
    path = tmp_path / "vols.npz"
    write_images(path, vols[:2])
    res = run_cli(
        "evaluate", path, "--evaluator", "effective_conductivity",
        "--param", "conductivities=1,10", "--param", "direction=z", "--json", "-q",
    )  # fmt: skip
    assert res.code == 0, res.err
    expected = effective_conductivity(vols[:2], conductivities=(1, 10), direction="z")
    np.testing.assert_allclose(json.loads(res.out)["values"], expected, rtol=1e-9)

    flat = tmp_path / "images.npz"
    write_images(flat, vols[:2, :, :, 0])
    res = run_cli(
        "evaluate", flat, "--evaluator", "effective_conductivity",
        "--param", "conductivities=1,10", "--param", "direction=z", "-q",
    )  # fmt: skip
    assert_input_error(res, "direction", "z needs volumes")
    assert res.out == ""
