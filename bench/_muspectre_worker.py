"""muSpectre's effective Mandel stiffness of each image of a .npy stack (run in its own venv).

Called by ``bench_mechanics.py`` with the virtualenv's python and one JSON argument (``images``:
a .npy of labels ``N x H x W [x D]``; ``moduli``, ``nu``: per phase; ``scheme``: ``rot`` for
Willot's rotated scheme (muFFT's ``averaged_upwind`` derivative) or ``fe`` for muSpectre's linear
triangles/tetrahedra; ``tol``). Prints one JSON list: per image the tensor (Mandel, x = image
axis 1 as in mdesign), the seconds and the CG iterations. Imports nothing of mdesign.
"""

import json
import sys
import time

import muFFT.Stencils2D as s2
import muFFT.Stencils3D as s3
import muSpectre as msp
import numpy as np


def tensor(img, moduli, nu, scheme, tol):
    d = img.ndim
    n = list(img.shape)
    if scheme == "fe":
        fe = msp.linear_finite_elements
        grad, w = fe.gradient_2d if d == 2 else fe.gradient_3d
        cell = msp.Cell(n, [float(k) for k in n], msp.Formulation.small_strain, grad, w)
    else:
        st = s2 if d == 2 else s3
        lengths = [float(k) for k in n]
        cell = msp.Cell(n, lengths, msp.Formulation.small_strain, st.averaged_upwind, [1])
    mat = msp.material
    M = mat.MaterialLinearElastic1_2d if d == 2 else mat.MaterialLinearElastic1_3d
    mats = [
        M.make(cell, f"m{k}", float(e), float(v))
        for k, (e, v) in enumerate(zip(moduli, nu, strict=True))
    ]
    for i, p in enumerate(cell.pixels):
        mats[int(img[tuple(p)])].add_pixel(i)
    cell.initialise()
    pairs = [(i, i) for i in range(d)] + ([(1, 2), (0, 2), (0, 1)] if d == 3 else [(0, 1)])
    m = len(pairs)
    out = np.zeros((m, m))
    its = 0
    for b, (i, j) in enumerate(pairs):
        E = np.zeros((d, d))
        if i == j:
            E[i, i] = 1
        else:
            E[i, j] = E[j, i] = 1 / np.sqrt(2)
        solver = msp.solvers.KrylovSolverCG(cell, tol, 20000, msp.Verbosity.Silent)
        r = msp.solvers.newton_cg(cell, E, solver, tol, tol, msp.Verbosity.Silent)
        s = np.asarray(r.stress).reshape(d, d, -1, order="F").mean(-1)
        its = max(its, int(getattr(solver, "counter", 0) or 0))
        for a, (k, q) in enumerate(pairs):
            out[a, b] = s[k, q] * (1 if k == q else np.sqrt(2))
    return out, its


if __name__ == "__main__":
    req = json.loads(sys.argv[1])
    imgs = np.load(req["images"])
    res = []
    for img in imgs:
        # muSpectre's axis 0 is our x (image axis 1): transpose so that tensor indices agree
        img = np.ascontiguousarray(img.transpose((1, 0) if img.ndim == 2 else (1, 0, 2)))
        t = time.perf_counter()
        c, its = tensor(img, req["moduli"], req["nu"], req["scheme"], req["tol"])
        res.append({"tensor": c.tolist(), "seconds": time.perf_counter() - t, "iterations": its})
    print(json.dumps(res))
