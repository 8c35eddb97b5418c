"""Effective conductivity against closed forms, bounds, duality and an independent solver."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mdesign.errors import InputError
from mdesign.evaluators import conductivity_tensor, effective_conductivity
from mdesign.grf import grf_microstructures

R90 = np.array([[0.0, -1.0], [1.0, 0.0]])


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    """Six periodic 48x48 two-phase images, fractions 0.3-0.6, blobs ~10 px across."""
    return grf_microstructures(
        6, (48, 48), volume_fraction=(0.3, 0.6), correlation_length=4, seed=11
    ).images


def laminate(widths, size=24, axis=0):
    """Layers normal to ``axis`` (axis=0: horizontal stripes) with the given label per row."""
    labels = np.repeat(np.arange(len(widths)), widths)[:size]
    img = np.broadcast_to(labels[:, None], (size, size)).astype(np.uint8)
    return img if axis == 0 else img.T.copy()


@pytest.mark.parametrize("refinement,extrapolate", [(1, False), (2, True), (3, False)])
def test_laminate_is_exact(refinement, extrapolate):
    # three phases in stripes of 5, 11 and 8 rows: arithmetic along, harmonic across
    cond = (2.0, 30.0, 0.5)
    widths = (5, 11, 8)
    f = np.array(widths) / sum(widths)
    arithmetic = float(f @ cond)
    harmonic = 1 / float(f @ (1 / np.array(cond)))
    img = laminate(widths)
    t = conductivity_tensor(
        img, conductivities=cond, refinement=refinement, extrapolate=extrapolate, tolerance=1e-8
    )[0]
    np.testing.assert_allclose(t, [[arithmetic, 0], [0, harmonic]], rtol=1e-9, atol=1e-9)
    # the same stack turned by 90 degrees swaps the roles of x and y
    sx = effective_conductivity(img.T, conductivities=cond, direction="x", tolerance=1e-8)
    sy = effective_conductivity(img.T, conductivities=cond, direction="y", tolerance=1e-8)
    np.testing.assert_allclose([sx[0], sy[0]], [harmonic, arithmetic], rtol=1e-9)


def test_uniform_and_insulating_limits():
    assert effective_conductivity(np.zeros((1, 8, 8), np.uint8), conductivities=(3.0, 1.0)) == (
        pytest.approx(3.0)
    )
    # conducting squares isolated in an insulator carry no current
    img = np.zeros((16, 16), np.uint8)
    img[4:8, 4:8] = 1
    assert effective_conductivity(img, conductivities=(0.0, 1.0))[0] == pytest.approx(0, abs=1e-5)


def _anisotropic_hs_satisfied(t, f1, s1, s2, slack=0.0):
    """The 2D Hashin-Shtrikman bounds in trace form, valid for anisotropic tensors.

    For s1 < s2 and fractions f1, f2 (Lurie & Cherkaev 1984; Milton 2002, sec. 23.2):
    Tr[(S - s1 I)^-1] <= 2/(f2 (s2 - s1)) + f1/(f2 s1)    (lower bound on S)
    Tr[(s2 I - S)^-1] <= 2/(f1 (s2 - s1)) - f2/(f1 s2)    (upper bound on S)
    For an isotropic S = s I they are the familiar HS bounds on s.
    """
    f2 = 1 - f1
    t = (t + t.T) / 2
    eye = np.eye(2)
    lower = np.trace(np.linalg.inv(t - s1 * eye)) <= (1 + slack) * (
        2 / (f2 * (s2 - s1)) + f1 / (f2 * s1)
    )
    upper = np.trace(np.linalg.inv(s2 * eye - t)) <= (1 + slack) * (
        2 / (f1 * (s2 - s1)) - f2 / (f1 * s2)
    )
    return lower and upper


@pytest.mark.parametrize("contrast", [10.0, 100.0])
def test_hashin_shtrikman_and_wiener_bounds(blobs, contrast):
    s1, s2 = 1.0, contrast
    tensors = conductivity_tensor(blobs, conductivities=(s1, s2))
    for img, t in zip(blobs, tensors, strict=True):
        f2 = img.mean()
        f1 = 1 - f2
        eig = np.linalg.eigvalsh((t + t.T) / 2)
        assert 1 / (f1 / s1 + f2 / s2) <= eig.min() and eig.max() <= f1 * s1 + f2 * s2
        assert _anisotropic_hs_satisfied(t, f1, s1, s2)
        # the isotropic HS bounds bracket the mean diagonal of these near-isotropic images
        hs_lo = s1 + f2 / (1 / (s2 - s1) + f1 / (2 * s1))
        hs_hi = s2 + f1 / (1 / (s1 - s2) + f2 / (2 * s2))
        assert hs_lo <= np.trace(t) / 2 <= hs_hi


def test_bounds_check_can_fail():
    # a tensor outside the bounds (the arithmetic mean, isotropic) is caught by the check
    f1, s1, s2 = 0.5, 1.0, 10.0
    assert not _anisotropic_hs_satisfied(np.eye(2) * (f1 * s1 + (1 - f1) * s2), f1, s1, s2)


def test_keller_duality_within_2_percent_at_contrast_10(blobs):
    # sigma(s2, s1) = s1 s2 R sigma(s1, s2)^-1 R^T (Keller 1964, Mendelson 1975); its diagonal
    # is sigma_xx(s1,s2) sigma_yy(s2,s1) = s1 s2 when the off-diagonal terms vanish
    s1, s2 = 1.0, 10.0
    a = conductivity_tensor(blobs, conductivities=(s1, s2))
    b = conductivity_tensor(blobs, conductivities=(s2, s1))
    product = a @ (R90.T @ b @ R90) / (s1 * s2)
    err = np.abs(product - np.eye(2)).max(axis=(1, 2))
    assert err.max() < 0.02, err
    # and refinement is what buys it: the plain one-cell-per-pixel scheme misses by more
    a1 = conductivity_tensor(blobs, conductivities=(s1, s2), refinement=1)
    b1 = conductivity_tensor(blobs, conductivities=(s2, s1), refinement=1)
    err1 = np.abs(a1 @ (R90.T @ b1 @ R90) / (s1 * s2) - np.eye(2)).max(axis=(1, 2))
    assert (err1 > err).all()


def _direct_fv(img, cond, field):
    """The same finite-volume scheme assembled as a sparse matrix and solved directly."""
    sigma = np.asarray(cond)[img].astype(float)
    h, w = sigma.shape
    idx = np.arange(h * w).reshape(h, w)
    rows, cols, vals = [], [], []
    rhs = np.zeros(h * w)
    fluxes = []
    for axis, e in ((1, field[0]), (0, field[1])):
        nb = np.roll(sigma, -1, axis)
        g = np.where(sigma + nb > 0, 2 * sigma * nb / np.maximum(sigma + nb, 1e-300), 0.0)
        i, j = idx.ravel(), np.roll(idx, -1, axis).ravel()
        gg = g.ravel()
        rows += [i, j, i, j]
        cols += [i, j, j, i]
        vals += [gg, gg, -gg, -gg]
        np.add.at(rhs, i, gg * e)
        np.add.at(rhs, j, -gg * e)
        fluxes.append((g, axis, e))
    a = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(h * w,) * 2
    )
    phi = np.zeros(h * w)
    phi[1:] = spla.spsolve(a[1:, 1:].tocsc(), rhs[1:])  # fix the free constant
    phi = phi.reshape(h, w)
    return [float((g * (e + np.roll(phi, -1, axis) - phi)).mean()) for g, axis, e in fluxes]


def test_matches_a_direct_sparse_solve_of_the_same_scheme(blobs):
    img = blobs[0][:24, :32]  # not square, not periodic-looking: any image is one period
    cond = (1.0, 25.0)
    t = conductivity_tensor(img, conductivities=cond, refinement=1, tolerance=1e-10)[0]
    jx, jy = _direct_fv(img, cond, (1.0, 0.0))
    np.testing.assert_allclose(t[:, 0], [jx, jy], rtol=1e-8, atol=1e-10)
    jx, jy = _direct_fv(img, cond, (0.0, 1.0))
    np.testing.assert_allclose(t[:, 1], [jx, jy], rtol=1e-8, atol=1e-10)


def test_three_phases_and_directions(blobs):
    img = blobs[1].copy()
    img[:, :10][img[:, :10] == 0] = 2
    cond = (1.0, 5.0, 20.0)
    t = conductivity_tensor(img, conductivities=cond, tolerance=1e-7)[0]
    sx = effective_conductivity(img, conductivities=cond, direction="x")[0]
    sy = effective_conductivity(img, conductivities=cond, direction="y")[0]
    assert sx == pytest.approx(t[0, 0], rel=1e-6) and sy == pytest.approx(t[1, 1], rel=1e-6)
    assert t[0, 1] == pytest.approx(t[1, 0], abs=1e-6 * t[0, 0])  # symmetric
    # transposing the image swaps x and y
    tt = conductivity_tensor(img.T, conductivities=cond, tolerance=1e-7)[0]
    np.testing.assert_allclose(tt, t[::-1, ::-1], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"conductivities": (1.0,)}, "at least 2"),
        ({"conductivities": (1.0, -1.0)}, ">= 0"),
        ({"conductivities": (0.0, 0.0)}, "positive"),
        ({"conductivities": (1.0, 2.0), "direction": "z"}, "direction"),
        ({"conductivities": (1.0, 2.0), "refinement": 0}, "refinement"),
    ],
)
def test_bad_arguments(kwargs, needle):
    with pytest.raises(InputError, match=needle):
        effective_conductivity(np.zeros((1, 4, 4), np.uint8), **kwargs)


def test_label_beyond_the_conductivities():
    img = np.zeros((1, 4, 4), np.uint8)
    img[0, 0, 0] = 2
    with pytest.raises(InputError, match="phase 2"):
        effective_conductivity(img, conductivities=(1.0, 2.0))


def test_chunked_solves_equal_one_batch(blobs, monkeypatch):
    import mdesign.evaluators.conductivity as mc

    whole = conductivity_tensor(blobs, conductivities=(1.0, 4.0))
    monkeypatch.setattr(mc, "_CELLS_PER_CHUNK", 2 * 48 * 48 * 4 * 2)  # two images per chunk
    np.testing.assert_allclose(
        conductivity_tensor(blobs, conductivities=(1.0, 4.0)), whole, rtol=1e-12
    )
