"""Effective elastic stiffness: laminates, bounds, symmetries, a dilute inclusion, an
independent finite-element solve (scikit-fem), the evaluator and the CLI.

Tensor indices: x = image axis 1, y = axis 0, z = axis 2; Mandel notation throughout.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from mdesign.errors import InputError
from mdesign.evaluators import (
    elastic_moduli,
    elastic_stiffness,
    evaluate_batch,
    get_evaluator,
    lame_constants,
    stiffness_tensor,
)
from mdesign.evaluators.elasticity import phase_stiffness
from mdesign.grf import grf_microstructures
from mdesign.io import write_images

AXIS_OF_INDEX = {2: (1, 0), 3: (1, 0, 2)}
TIGHT = {"tolerance": 1e-10}


def mandel_pairs(d: int) -> list[tuple[int, int]]:
    pairs = [(i, i) for i in range(d)]
    return pairs + ([(1, 2), (0, 2), (0, 1)] if d == 3 else [(0, 1)])


def mandel_basis(d: int) -> np.ndarray:
    out = []
    for i, j in mandel_pairs(d):
        b = np.zeros((d, d))
        if i == j:
            b[i, i] = 1
        else:
            b[i, j] = b[j, i] = 1 / math.sqrt(2)
        out.append(b)
    return np.array(out)


def mandel_rotation(q: np.ndarray) -> np.ndarray:
    """``M`` with ``C' = M C M^T`` for the orthogonal map ``q`` of the tensor indices."""
    basis = mandel_basis(len(q))
    return np.einsum("iab,jab->ij", basis, np.einsum("ac,jcd,bd->jab", q, basis, q))


def phases_c(e, nu, d, plane="strain"):
    lam, mu = lame_constants(youngs_moduli=e, poissons_ratios=nu)
    if d == 2 and plane == "stress":
        lam = 2 * lam * mu / (lam + 2 * mu)
    return [phase_stiffness(a, b, ndim=d) for a, b in zip(lam, mu, strict=True)]


def laminate(cs, fractions, normal: int, d: int) -> np.ndarray:
    """Closed form of the layered medium: strains along the layers and tractions on them are
    continuous (Backus 1962), in Mandel notation; ``normal`` is the tensor index."""
    nset = [k for k, (i, j) in enumerate(mandel_pairs(d)) if normal in (i, j)]
    tset = [k for k in range(len(cs[0])) if k not in nset]
    ix = np.ix_
    inv_nn = sum(f * np.linalg.inv(c[ix(nset, nset)]) for c, f in zip(cs, fractions, strict=True))
    a = np.linalg.inv(inv_nn)
    b = sum(
        f * np.linalg.inv(c[ix(nset, nset)]) @ c[ix(nset, tset)]
        for c, f in zip(cs, fractions, strict=True)
    )
    out = np.zeros_like(cs[0])
    out[ix(nset, nset)] = a
    out[ix(nset, tset)] = a @ b
    out[ix(tset, nset)] = (a @ b).T
    tt = sum(
        f
        * (
            c[ix(tset, tset)]
            - c[ix(tset, nset)] @ np.linalg.inv(c[ix(nset, nset)]) @ c[ix(nset, tset)]
        )
        for c, f in zip(cs, fractions, strict=True)
    )
    out[ix(tset, tset)] = tt + b.T @ a @ b
    return out


# ---------------------------------------------------------------------------------------------
# closed forms


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize(
    "moduli,nu,widths",
    [((1.0, 10.0), (0.3, 0.2), (5, 7)), ((2.0, 30.0, 0.5), (0.25, 0.35, 0.1), (3, 5, 4))],
    ids=["two-phase", "three-phase"],
)
def test_laminate_is_exact_in_every_orientation(d, moduli, nu, widths):
    shape = [12, 14, 10][:d]
    cs = phases_c(moduli, nu, d)
    for normal in range(d):
        axis = AXIS_OF_INDEX[d][normal]
        n = shape[axis]
        layer = np.repeat(np.arange(len(widths)), widths)
        layer = np.resize(layer, n) if len(layer) != n else layer
        shape_l = list(shape)
        shape_l[axis] = len(layer)
        idx = [None] * d
        idx[axis] = slice(None)
        img = np.broadcast_to(layer[tuple(idx)], shape_l).astype(np.uint8)
        fractions = [np.mean(layer == k) for k in range(len(widths))]
        got = stiffness_tensor(img[None], youngs_moduli=moduli, poissons_ratios=nu, **TIGHT)[0]
        want = laminate(cs, fractions, normal, d)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


def test_refinement_keeps_laminates_exact_and_decreases_the_tensor():
    # refined elements still hold the laminate's piecewise-linear field exactly
    cs = phases_c((1.0, 10.0), (0.3, 0.2), 2)
    img = np.zeros((1, 6, 8), np.uint8)
    img[:, :, 5:] = 1
    got = stiffness_tensor(
        img, youngs_moduli=(1, 10), poissons_ratios=(0.3, 0.2), refinement=2, **TIGHT
    )
    np.testing.assert_allclose(got[0], laminate(cs, [5 / 8, 3 / 8], 0, 2), rtol=1e-9, atol=1e-9)
    # a disc: the Q1 tensor decreases with refinement (a Galerkin upper bound on nested
    # spaces), the steps shrinking
    n = 16
    y, x = np.mgrid[:n, :n] + 0.5
    disc = (((x - n / 2) ** 2 + (y - n / 2) ** 2) < 5**2).astype(np.uint8)[None]
    kw = {"youngs_moduli": (1.0, 20.0), **TIGHT}
    t1, t2, t4 = (stiffness_tensor(disc, refinement=r, **kw)[0] for r in (1, 2, 4))
    assert np.linalg.eigvalsh(t1 - t2)[0] > -1e-9 and np.linalg.eigvalsh(t2 - t4)[0] > -1e-9
    assert np.abs(t2 - t4).max() < 0.6 * np.abs(t1 - t2).max()


def test_plane_stress_laminate_and_homogeneous():
    cs = phases_c((1.0, 10.0), (0.3, 0.2), 2, plane="stress")
    img = np.zeros((1, 8, 10), np.uint8)
    img[:, :, 6:] = 1
    got = stiffness_tensor(img, youngs_moduli=(1, 10), poissons_ratios=(0.3, 0.2), plane="stress")
    np.testing.assert_allclose(got[0], laminate(cs, [0.6, 0.4], 0, 2), rtol=1e-8, atol=1e-9)
    # a homogeneous plane-stress sheet: E_x is Young's modulus itself
    one = np.zeros((1, 6, 6), np.uint8)
    e = elastic_stiffness(one, youngs_moduli=(3.0, 1.0), output="E_x", plane="stress")
    np.testing.assert_allclose(e, 3.0, rtol=1e-12)
    e = elastic_stiffness(one, youngs_moduli=(3.0, 1.0), output="E_x", plane="strain")
    np.testing.assert_allclose(e, 3.0 / (1 - 0.3**2), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# bounds and symmetries on random samples


@pytest.fixture(scope="module")
def grf2d() -> np.ndarray:
    return grf_microstructures(
        3, (32, 32), volume_fraction=(0.3, 0.7), correlation_length=3, seed=11
    ).images


@pytest.fixture(scope="module")
def grf3d() -> np.ndarray:
    return grf_microstructures(
        2, (10, 12, 8), volume_fraction=(0.35, 0.6), correlation_length=2, seed=5
    ).images


def hashin_shtrikman(k, g, f, d):
    """HS bounds (lower, upper) on the d-dimensional bulk and shear moduli of two
    well-ordered isotropic phases (Torquato 2002, eq. 21.63-21.66)."""
    k1, k2 = k
    g1, g2 = g
    f1, f2 = f

    def theta(kk, gg):
        return gg * (d * kk / 2 + (d + 1) * (d - 2) * gg / d) / (kk + 2 * gg)

    def kb(gr):
        return (
            k1 * f1
            + k2 * f2
            - f1 * f2 * (k2 - k1) ** 2 / (k1 * f2 + k2 * f1 + 2 * (d - 1) / d * gr)
        )

    def gb(kr, gr):
        return g1 * f1 + g2 * f2 - f1 * f2 * (g2 - g1) ** 2 / (g1 * f2 + g2 * f1 + theta(kr, gr))

    return (kb(g1), kb(g2)), (gb(k1, g1), gb(k2, g2))


@pytest.mark.parametrize("contrast", [10.0, 100.0])
def test_bounds_symmetry_positivity_2d_and_3d(grf2d, grf3d, contrast):
    for imgs in (grf2d, grf3d):
        d = imgs.ndim - 1
        moduli, nu = (1.0, contrast), (0.35, 0.2)
        c = stiffness_tensor(imgs, youngs_moduli=moduli, poissons_ratios=nu)
        cs = phases_c(moduli, nu, d)
        for img, ci in zip(imgs, c, strict=True):
            np.testing.assert_allclose(ci, ci.T, atol=1e-12 * np.abs(ci).max())
            assert np.linalg.eigvalsh(ci)[0] > 0
            f = [np.mean(img == k) for k in range(2)]
            voigt = f[0] * cs[0] + f[1] * cs[1]
            reuss = np.linalg.inv(f[0] * np.linalg.inv(cs[0]) + f[1] * np.linalg.inv(cs[1]))
            scale = np.abs(voigt).max()
            assert np.linalg.eigvalsh(voigt - ci)[0] > -1e-7 * scale
            assert np.linalg.eigvalsh(ci - reuss)[0] > -1e-7 * scale


@pytest.mark.parametrize("d,fractions", [(2, (0.3, 0.5, 0.7)), (3, (0.4, 0.6))])
def test_hashin_shtrikman_on_isotropic_grf(d, fractions):
    shape = (96, 96) if d == 2 else (16, 16, 16)
    moduli, nu = (1.0, 20.0), (0.3, 0.3)
    lam, mu = lame_constants(youngs_moduli=moduli, poissons_ratios=nu)
    k = lam + 2 * mu / d
    for i, fr in enumerate(fractions):
        imgs = grf_microstructures(
            1, shape, volume_fraction=fr, correlation_length=3 if d == 2 else 2, seed=40 + i
        ).images
        c = stiffness_tensor(imgs, youngs_moduli=moduli, poissons_ratios=nu)
        m = elastic_moduli(c)
        f1 = float(np.mean(imgs == 1))
        (k_lo, k_hi), (g_lo, g_hi) = hashin_shtrikman(k, mu, (1 - f1, f1), d)
        # the samples are only statistically isotropic, so the test is on both projections of
        # the tensor: the Voigt projection (the larger) below the upper bound, the Reuss
        # projection (the smaller) above the lower bound, stricter than on the Hill mean
        assert k_lo <= m.bulk_reuss[0] and m.bulk_voigt[0] <= k_hi, (fr, k_lo, m, k_hi)
        assert g_lo <= m.shear_reuss[0] and m.shear_voigt[0] <= g_hi, (fr, g_lo, m, g_hi)


def test_rotations_and_reflections_are_exact(grf2d, grf3d):
    moduli = (1.0, 15.0)
    for imgs in (grf2d[:1], grf3d[:1]):
        d = imgs.ndim - 1
        base = stiffness_tensor(imgs, youngs_moduli=moduli, **TIGHT)[0]
        idx_of_axis = {a: k for k, a in enumerate(AXIS_OF_INDEX[d])}
        # every axis permutation (with a reflection of axis 0), and every reflection alone:
        # together they generate all 90-degree rotations and reflections of the grid
        moves = [(perm, 0) for perm in itertools.permutations(range(d))]
        moves += [(tuple(range(d)), flip) for flip in range(1, d)]
        for perm, flip in moves:
            new = np.flip(np.transpose(imgs[0], perm), axis=flip)
            q = np.zeros((d, d))
            for k in range(d):
                q[idx_of_axis[k], idx_of_axis[perm[k]]] = -1 if k == flip else 1
            got = stiffness_tensor(new[None].copy(), youngs_moduli=moduli, **TIGHT)[0]
            mq = mandel_rotation(q)
            np.testing.assert_allclose(got, mq @ base @ mq.T, atol=1e-9 * np.abs(base).max())


def test_dilute_circular_inclusion_against_mori_tanaka():
    # a stiff disc, radius 12 pixels in a 96 x 96 cell (f = 4.9%), plane strain; the
    # Mori-Tanaka estimate (the HS formula with the matrix as reference) is the dilute
    # Eshelby result to first order in f. Measured: the excess stiffness over the matrix is
    # within 3% of it (the voxel staircase and the O(f^2) interaction)
    n, r = 96, 12
    y, x = np.mgrid[:n, :n] + 0.5
    img = (((x - n / 2) ** 2 + (y - n / 2) ** 2) < r**2).astype(np.uint8)[None]
    moduli, nu = (1.0, 10.0), (0.3, 0.3)
    lam, mu = lame_constants(youngs_moduli=moduli, poissons_ratios=nu)
    k = lam + mu  # plane-strain (2D) bulk modulus
    f = float(img.mean())
    (k_mt, _), (g_mt, _) = hashin_shtrikman(k, mu, (1 - f, f), 2)
    m = elastic_moduli(stiffness_tensor(img, youngs_moduli=moduli, poissons_ratios=nu))
    assert abs((m.bulk[0] - k[0]) / (k_mt - k[0]) - 1) < 0.03
    assert abs((m.shear[0] - mu[0]) / (g_mt - mu[0]) - 1) < 0.03
    assert m.anisotropy[0] < 1e-3


# ---------------------------------------------------------------------------------------------
# a second implementation: scikit-fem's Q1 elements, periodic by a node map, a direct solve


def skfem_tensor(img: np.ndarray, moduli, nu) -> np.ndarray:
    """The Mandel tensor of one image or volume by scikit-fem: Q1 elements assembled on the
    voxel mesh, made periodic by a node map, solved directly (x = axis 1, y = 0, z = 2)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla
    from skfem import (
        Basis,
        BilinearForm,
        ElementHex1,
        ElementQuad1,
        ElementVector,
        MeshHex,
        MeshQuad,
    )
    from skfem.helpers import ddot, sym_grad, trace

    d = img.ndim
    size = [img.shape[1], img.shape[0], *img.shape[2:]]  # cells along x, y[, z]
    axes = [np.arange(n + 1.0) for n in size]
    if d == 2:
        mesh, element = MeshQuad.init_tensor(*axes), ElementQuad1()
    else:
        mesh, element = MeshHex.init_tensor(*axes), ElementHex1()
    basis = Basis(mesh, ElementVector(element))
    lam, mu = lame_constants(youngs_moduli=moduli, poissons_ratios=nu)
    c = mesh.p[:, mesh.t].mean(axis=1).astype(int)  # element centres, (x, y[, z])
    phase = img[(c[1], c[0], *c[2:])]
    nq = basis.X.shape[-1]
    lam_q = np.repeat(lam[phase][:, None], nq, 1)
    mu_q = np.repeat(mu[phase][:, None], nq, 1)

    @BilinearForm
    def form(u, v, w):
        return w.lam * trace(sym_grad(u)) * trace(sym_grad(v)) + 2 * w.mu * ddot(
            sym_grad(u), sym_grad(v)
        )

    k = form.assemble(basis, lam=lam_q, mu=mu_q)
    # periodic map of the mesh nodes onto prod(size) nodes; dofs interleaved (node, component)
    pts = mesh.p.astype(int)
    node = np.zeros(pts.shape[1], dtype=int)
    for a in range(d):
        node = node * size[a] + pts[a] % size[a]
    dofs = basis.nodal_dofs  # d x nodes
    rows = np.concatenate(list(dofs))
    cols = np.concatenate([d * node + a for a in range(d)])
    n_per = d * math.prod(size)
    p = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(basis.N, n_per))
    kp = (p.T @ k @ p).tocsc()
    reg = sp.identity(kp.shape[0]) * 1e-10 * kp.diagonal().max()
    fields = []
    for e in mandel_basis(d):
        ua = np.zeros(basis.N)
        for a in range(d):
            ua[dofs[a]] = sum(e[a, b] * mesh.p[b] for b in range(d))
        x = spla.spsolve(kp + reg, -(p.T @ (k @ ua)))
        fields.append(ua + p @ x)
    m = len(fields)
    out = np.zeros((m, m))
    for i, j in itertools.product(range(m), range(m)):
        out[i, j] = fields[i] @ (k @ fields[j]) / math.prod(size)
    return out


@pytest.mark.parametrize("moduli", [(1.0, 10.0), (1.0, 100.0), (0.0, 1.0)], ids=str)
def test_agrees_with_scikit_fem(moduli):
    pytest.importorskip("skfem")
    nu = (0.3, 0.25)
    imgs = grf_microstructures(
        2, (24, 20), volume_fraction=0.7, correlation_length=2.5, seed=3
    ).images
    vol = grf_microstructures(
        1, (6, 5, 4), volume_fraction=0.7, correlation_length=1.5, seed=4
    ).images
    for stack in (imgs, vol):
        got = stiffness_tensor(stack, youngs_moduli=moduli, poissons_ratios=nu, **TIGHT)
        for img, g in zip(stack, got, strict=True):
            want = skfem_tensor(img, moduli, nu)
            np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


# ---------------------------------------------------------------------------------------------
# evaluator, errors, CLI


def test_outputs_and_evaluator(grf3d):
    ev = get_evaluator("elastic_stiffness", youngs_moduli="1,10", output="E_z")
    assert ev.phases == 2
    vals = evaluate_batch(ev, grf3d).values
    c = stiffness_tensor(grf3d, youngs_moduli=(1, 10))
    np.testing.assert_allclose(vals, 1 / np.linalg.inv(c)[:, 2, 2], rtol=1e-12)
    km = get_evaluator("elastic_stiffness", bulk_moduli="2,20", shear_moduli="1,10")
    lam, mu = lame_constants(bulk_moduli=(2, 20), shear_moduli=(1, 10))
    np.testing.assert_allclose(lam + 2 * mu / 3, (2, 20))
    assert np.isfinite(km(grf3d)).all()
    # a homogeneous solid: isotropic, Hill = exact
    m = elastic_moduli(stiffness_tensor(np.zeros((1, 4, 4, 4), np.uint8), youngs_moduli=(5, 1)))
    np.testing.assert_allclose(m.young, 5.0, rtol=1e-12)
    np.testing.assert_allclose(m.anisotropy, 0.0, atol=1e-12)


def test_pores_and_a_solid_that_falls_apart():
    img = np.zeros((1, 8, 8), np.uint8)
    img[0, :, 4:] = 1  # a pore layer across x: no stiffness along x, E_y the solid's half
    e = elastic_stiffness(img, youngs_moduli=(1.0, 0.0), output="E_y", plane="stress")
    np.testing.assert_allclose(e, 0.5, rtol=1e-9)
    e = elastic_stiffness(img, youngs_moduli=(1.0, 0.0), output="E_x")
    np.testing.assert_array_equal(e, 0.0)
    m = elastic_moduli(stiffness_tensor(img, youngs_moduli=(1.0, 0.0)))
    assert m.bulk_reuss[0] == 0 and m.shear_reuss[0] == 0 and np.isinf(m.anisotropy[0])
    # the infinite anisotropy of a solid that falls apart is a failed image in a batch
    ev = get_evaluator("elastic_stiffness", youngs_moduli="1,0", output="anisotropy")
    res = evaluate_batch(ev, img)
    assert res.errors and np.isnan(res.values[0])


def test_bad_parameters_are_input_errors(grf2d):
    with pytest.raises(InputError, match="youngs_moduli"):
        get_evaluator("elastic_stiffness")
    with pytest.raises(InputError, match="poissons_ratios"):
        get_evaluator("elastic_stiffness", youngs_moduli="1,2", poissons_ratios="0.6")
    with pytest.raises(InputError, match="output"):
        get_evaluator("elastic_stiffness", youngs_moduli="1,2", output="nope")
    ev = get_evaluator("elastic_stiffness", youngs_moduli="1,2", output="E_z")
    with pytest.raises(InputError, match="E_z"):
        ev.check_images(grf2d)
    with pytest.raises(InputError, match="phase"):
        stiffness_tensor(grf2d + 1, youngs_moduli=(1, 2))


def test_memory_is_refused_before_work(monkeypatch):
    monkeypatch.setenv("MDESIGN_MEMORY_LIMIT", "1M")
    ev = get_evaluator("elastic_stiffness", youngs_moduli="1,2")
    with pytest.raises(InputError, match="memory"):
        ev.check_images(np.zeros((2, 64, 64, 64), np.uint8))


def test_cli_evaluate_and_listing(tmp_path, grf2d, run_cli):
    path = tmp_path / "imgs.npz"
    write_images(path, grf2d)
    res = run_cli(
        "evaluate",
        path,
        "--evaluator",
        "elastic_stiffness",
        "--param",
        "youngs_moduli=1,10",
        "--param",
        "output=bulk",
        "--json",
        "--quiet",
    )
    assert res.code == 0, res.err
    report = json.loads(res.out)
    want = elastic_stiffness(grf2d, youngs_moduli=(1, 10), output="bulk")
    np.testing.assert_allclose(report["values"], want, rtol=1e-12)
    listing = run_cli("evaluators").out
    assert "elastic_stiffness" in listing and "youngs_moduli" in listing


def test_all_void_phases_name_the_parameter():
    with pytest.raises(InputError, match="youngs_moduli / shear_moduli: at least one phase"):
        get_evaluator("elastic_stiffness", youngs_moduli=(0, 0))
