"""geone DeeSse realisations of each training image of a .npy stack (run in its own venv).

Called by ``bench_reconstruction.py`` with the virtualenv's python and one JSON argument
(``images``: a .npy of labels ``N x H x W``; ``out``: the .npy to write, ``N x H x W`` uint8;
``seed``; the DeeSse settings ``nneighboringNode``, ``distanceThreshold``, ``maxScanFraction``,
``npostProcessingPathMax``). Each image is its own training image and the simulation grid has its
size (unconditional, non-periodic, one realisation, one thread). Prints one JSON list: per image
the CPU seconds of the simulation and the copy fraction, the share of horizontally adjacent
simulated pixels whose training-image sources are adjacent too (1 for a verbatim copy of the
training image, about 1/N_TI for independent pixels). Imports nothing of mdesign.
"""

import json
import sys
import time

import numpy as np
from geone import deesseinterface as dsi
from geone import img as gimg


def simulate(ti: np.ndarray, req: dict) -> tuple[np.ndarray, float, float]:
    ny, nx = ti.shape
    im = gimg.Img(nx, ny, 1, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, nv=1, val=ti[None, None].astype(float))
    inp = dsi.DeesseInput(
        nx=nx,
        ny=ny,
        nz=1,
        nv=1,
        varname="label",
        nTI=1,
        TI=im,
        distanceType=0,  # categorical: the fraction of mismatched neighbours
        nneighboringNode=req["nneighboringNode"],
        distanceThreshold=req["distanceThreshold"],
        maxScanFraction=req["maxScanFraction"],
        npostProcessingPathMax=req["npostProcessingPathMax"],
        outputTiGridNodeIndexFlag=True,
        seed=int(req["seed"]),
        nrealization=1,
    )
    cpu = time.process_time()
    out = dsi.deesseRun(inp, nthreads=1, verbose=0)
    cpu = time.process_time() - cpu
    sim = np.asarray(out["sim"][0].val[0, 0]).round().astype(np.uint8)
    src = np.asarray(out["tiGridNode"][0].val[0, 0]).astype(np.int64)
    copy = float(np.mean(src[:, 1:] - src[:, :-1] == 1))
    return sim, cpu, copy


if __name__ == "__main__":
    req = json.loads(sys.argv[1])
    images = np.load(req["images"])
    sims, info = [], []
    for ti in images:
        sim, cpu, copy = simulate(ti, req)
        sims.append(sim)
        info.append({"cpu_seconds": cpu, "copy_fraction": copy})
    np.save(req["out"], np.stack(sims))
    print(json.dumps(info))
