"""Optical absorption: mdesign's RCWA against meent, and the error of each setting.

Prints, on this machine and in one run (each part cached in ``results/optics_PART.json``, so a
killed run resumes; ``--fresh`` recomputes):

* ``speed``: seconds per image of :mod:`mdesign.evaluators.rcwa` (``precision`` complex64 and
  complex128) against the evaluator it replaces (meent, the same formulation and the same Li
  matrices), each image's wavelengths in one call, the solvers alternated, one thread each, on
  one shipped-GAN pattern at the old default setting (grid 64): at order 5 on the old 15
  wavelengths, at order 9 on 3 of them (meent costs ~60 s per image there); median of
  ``--repeat`` and the ratio;
* ``agreement``: the largest difference to meent (complex128) and the complex64 error, per
  wavelength, on the 5 patterns at order 3;
* ``spectral``: each pattern's spectrum at 2.5 nm (281 wavelengths, order 5, the image's own
  raster; resumable image by image) and the uniform film's (Airy's closed form; its dense
  integral at 0.1 nm): the error of each spectral rule (trapezoid or product integration, 15-141
  wavelengths) against the 281-point product integral, and of the old default raster (grid 64);
* ``order``: the product-rule value at ``--order-wavelengths`` wavelengths at orders 3-9 on the
  patterns, the relative change between orders, and Aitken's extrapolation from 5, 7, 9;
* ``convergence``: higher orders by ``--conv-plan`` (29-wavelength spectra, or 6 probe ones), a
  wavelength per task in ``--workers`` processes, resumable and bounded by ``--deadline``, with
  each solve's CPU seconds; the order table against each pattern's highest order (3-9 from the
  ``order`` part), the probe, and each setting's estimated error (spectral, raster and order
  errors, each measured alone, composed as factors) against its CPU per image.

The patterns are the campaign's kind: 128x128 samples of the shipped GAN (``artifacts/gan``),
fractions from its training distribution, seed 0. The machine's load is printed: timings on
shared cores are comparable only within one run.

Usage: ``python bench/bench_optics.py [--parts speed,agreement,spectral,order,convergence]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import RESULTS, report

from mdesign.evaluators.optics import (
    absorption_spectra,
    adaptive_average,
    meent_spectra,
    refractive_index,
    spectral_weights,
    thin_film_absorption,
)

LAM_OLD = np.linspace(400.0, 1100.0, 15)
DENSE = 281  # 2.5 nm: every rule below takes a subset of these wavelengths
RULES = [("trapezoid", 15), ("product", 15), ("product", 29), ("product", 36), ("product", 57)]
RULES += [("product", 71), ("product", 141), ("trapezoid", 141)]
WORKERS = 1  # --workers: processes for the spectral and order parts


def patterns(n: int = 5) -> np.ndarray:
    """``n`` 128x128 samples of the shipped GAN, fractions from its training distribution."""
    from mdesign.gan import decode, latent_shape, sample_latents, shipped_checkpoint
    from mdesign.gan.sampling import sample_fractions, training_fractions

    ck = shipped_checkpoint(device="cpu")
    z = sample_latents(
        n, latent_shape(ck.config), seed=0, global_channels=ck.config.generator.global_channels
    )
    f = sample_fractions(n, training_fractions(ck.data_meta), seed=0)
    return decode(ck.generator, z, fractions=f)


def _cached(part: str, fresh: bool, fn):
    path = RESULTS / f"optics_{part}.json"
    if path.is_file() and not fresh:
        return json.loads(path.read_text())
    if fresh:  # the image-by-image progress of an earlier run is not reused either
        (RESULTS / f"optics_{part}_partial.json").unlink(missing_ok=True)
    out = fn()
    path.write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / f"optics_{part}_partial.json").unlink(missing_ok=True)
    return json.loads(path.read_text())  # keys as a cached run reads them


def part_speed(imgs: np.ndarray, repeat: int) -> dict:
    """Seconds per image of each solver, all of the image's wavelengths in one call as the
    evaluator makes it, the solvers alternated within each of ``repeat`` rounds (the order
    reversed every other round: the load of a shared machine drifts), median over rounds."""
    img = imgs[:1]
    rows = {}
    for order, lam in ((5, LAM_OLD), (9, LAM_OLD[[3, 7, 10]])):
        solvers = {
            "meent": lambda la, o=order: meent_spectra(img, la, order=o, grid=64),
            "complex128": lambda la, o=order: absorption_spectra(
                img, la, order=o, grid=64, precision="complex128"
            ),
            "complex64": lambda la, o=order: absorption_spectra(
                img, la, order=o, grid=64, precision="complex64"
            ),
        }
        for f in solvers.values():  # warm-up
            f(lam[:1])
        totals = {k: [] for k in solvers}
        values = {}
        cpu = {k: [] for k in solvers}
        for r in range(repeat):
            for k in list(solvers)[:: 1 if r % 2 == 0 else -1]:
                t, c = time.perf_counter(), time.process_time()
                values[k] = solvers[k](lam)[0]
                totals[k].append(time.perf_counter() - t)
                cpu[k].append(time.process_time() - c)
        # 600 nm is a Rayleigh anomaly (the period): both solvers take a limit there
        ok = np.abs(lam - 600.0) > 1e-9
        rows[order] = {
            "wavelengths": len(lam),
            **{f"{k}_s": statistics.median(v) for k, v in totals.items()},
            **{f"{k}_cpu_s": statistics.median(v) for k, v in cpu.items()},
            "max_diff_128": float(np.abs(values["complex128"] - values["meent"])[ok].max()),
            "max_diff_64": float(np.abs(values["complex64"] - values["meent"])[ok].max()),
        }
    return {"load": os.getloadavg()[0], "repeat": repeat, "orders": rows}


def part_agreement(imgs: np.ndarray) -> dict:
    lam = np.array([450.0, 610.0, 733.0, 905.0, 1050.0])  # not 600 nm: a Rayleigh anomaly
    m = meent_spectra(imgs, lam, order=3, grid=32)
    a128 = absorption_spectra(imgs, lam, order=3, grid=32, precision="complex128")
    a64 = absorption_spectra(imgs, lam, order=3, grid=32, precision="complex64")
    return {
        "max_diff_meent_128": float(np.abs(a128 - m).max()),
        "max_err_64": float(np.abs(a64 - a128).max()),
    }


def part_spectral(imgs: np.ndarray) -> dict:
    lam = np.linspace(400.0, 1100.0, DENSE)
    partial = RESULTS / "optics_spectral_partial.json"
    done = json.loads(partial.read_text()) if partial.is_file() else {"spectra": [], "s": 0.0}
    for img in imgs[len(done["spectra"]) :]:  # image by image, so a killed run resumes
        t = time.perf_counter()
        done["spectra"].append(
            absorption_spectra(img, lam, order=5, grid=None, workers=WORKERS)[0].tolist()
        )
        done["s"] += time.perf_counter() - t
        partial.write_text(json.dumps(done))
    spectra = np.asarray(done["spectra"])
    seconds = done["s"]
    old_raster = absorption_spectra(imgs, LAM_OLD, order=5, grid=64)
    own_raster = spectra[:, :: (DENSE - 1) // 14]
    lam_fine = np.linspace(400.0, 1100.0, 7001)
    film_fine = thin_film_absorption(
        refractive_index("Si", lam_fine), refractive_index("SiO2", lam_fine), 100.0, lam_fine
    )
    film = film_fine[::25]
    return {
        "seconds_per_wavelength": seconds / spectra.size,
        "wall_s_with_workers": WORKERS,
        "spectra": spectra.tolist(),
        "film": film.tolist(),
        "film_dense_integral": float(
            film_fine @ spectral_weights(lam_fine, "am15g", rule="product")
        ),
        "old_raster_trapezoid15": (old_raster @ spectral_weights(LAM_OLD, "am15g")).tolist(),
        "own_raster_trapezoid15": (own_raster @ spectral_weights(LAM_OLD, "am15g")).tolist(),
    }


def rule_value(spectrum: np.ndarray, rule: str, n: int) -> float:
    step = (DENSE - 1) // (n - 1)
    lam = np.linspace(400.0, 1100.0, DENSE)[::step]
    return float(spectrum[::step] @ spectral_weights(lam, "am15g", rule=rule))


def adaptive_value(spectrum: np.ndarray, start: int, tol: float) -> tuple[float, int]:
    """The evaluator's adaptive rule (:func:`adaptive_average`, 2.5 nm finest spacing) run on a
    dense spectrum: every wavelength it asks for is on the 2.5 nm grid, so this is what the
    evaluator computes, at the cost of the points it used."""
    lam = np.linspace(400.0, 1100.0, DENSE)

    def lookup(x: np.ndarray) -> np.ndarray:
        i = np.rint((np.asarray(x) - 400.0) / 2.5).astype(int)
        assert np.allclose(lam[i], x)
        return spectrum[i]

    v, pts = adaptive_average(
        lookup, np.linspace(400.0, 1100.0, start), "am15g", tolerance=tol, step_min=2.5
    )
    return v, len(pts)


def part_order(imgs: np.ndarray, n_lam: int, orders: tuple[int, ...]) -> dict:
    lam = np.linspace(400.0, 1100.0, n_lam)
    w = spectral_weights(lam, "am15g", rule="product")
    out = {}
    for order in orders:
        t = time.perf_counter()
        v = absorption_spectra(imgs, lam, order=order, grid=None, workers=WORKERS) @ w
        out[order] = {
            "values": v.tolist(),
            "seconds_per_image": (time.perf_counter() - t) / len(imgs),
        }
    return {"wavelengths": n_lam, "orders": out}


CONV_LAM = 29  # the order part's wavelengths (25 nm): its values at orders 3-9 are reused


def _conv_task(args: tuple) -> tuple[float, float]:
    """One wavelength of one pattern at one order, own raster: (absorption, CPU seconds)."""
    img, lam, order = args
    t = time.process_time()
    a = absorption_spectra(img, np.array([lam]), order=order, grid=None, workers=1)[0, 0]
    return float(a), time.process_time() - t


PROBE = (2, 6, 10, 13, 17, 21)  # 450, 550, 650, 725, 825, 925 nm of the CONV_LAM grid


def _plan(plan: str, n_patterns: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """``"11:0-2,13:0:probe"``: (order, pattern, wavelength indices), in the order solved."""
    out = []
    for item in plan.split(","):
        order, pats, *which = item.split(":")
        lo, _, hi = pats.partition("-")
        idx = PROBE if which == ["probe"] else tuple(range(CONV_LAM))
        for p in range(int(lo), min(int(hi or lo), n_patterns - 1) + 1):
            out.append((int(order), p, idx))
    return out


def part_convergence(imgs: np.ndarray, plan: str, deadline: float) -> dict:
    """Spectra at ``CONV_LAM`` wavelengths (own raster) by ``plan`` (:func:`_plan`), wavelength
    by wavelength in ``WORKERS`` processes, resumable; no solve is started after ``deadline``
    (a Unix time). The CPU seconds of each solve are kept per order."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    lam = np.linspace(400.0, 1100.0, CONV_LAM)
    partial = RESULTS / "optics_convergence_partial.json"
    done = json.loads(partial.read_text()) if partial.is_file() else {"values": {}, "cpu": {}}
    todo = []
    for o, p, idx in _plan(plan, len(imgs)):
        vals = done["values"].setdefault(f"{o}/{p}", [None] * CONV_LAM)
        todo += [(o, p, i) for i in idx if vals[i] is None]
    with ProcessPoolExecutor(max_workers=WORKERS, mp_context=get_context("spawn")) as pool:
        running = {}
        while todo or running:
            while todo and len(running) < WORKERS and time.time() < deadline:
                o, p, i = todo.pop(0)
                running[pool.submit(_conv_task, (imgs[p], float(lam[i]), o))] = (o, p, i)
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                o, p, i = running.pop(fut)
                a, cpu = fut.result()
                done["values"][f"{o}/{p}"][i] = a
                done["cpu"].setdefault(str(o), []).append(cpu)
                tmp = partial.with_suffix(".tmp")
                tmp.write_text(json.dumps(done))
                tmp.replace(partial)
                print(f"order {o} pattern {p} {lam[i]:.0f} nm: {a:.5f} ({cpu:.1f} s CPU)")
    return {"wavelengths": CONV_LAM, **done}


def convergence_tables(conv: dict, imgs_n: int) -> dict:
    """The order table (29-point product value against the highest order solved on all 29
    wavelengths of a pattern), the per-wavelength probe, and each setting's estimated error
    (the spectral, raster and order errors, each measured alone, composed as factors) against
    its CPU per image."""
    lam = np.linspace(400.0, 1100.0, CONV_LAM)
    w = spectral_weights(lam, "am15g", rule="product")
    vals: dict[int, dict[int, float]] = {}
    old = RESULTS / "optics_order.json"  # orders 3-9 on the same wavelengths and patterns
    if old.is_file() and json.loads(old.read_text())["wavelengths"] == CONV_LAM:
        for o, r in json.loads(old.read_text())["orders"].items():
            vals[int(o)] = dict(enumerate(r["values"]))
    spectra = {}
    for key, v in conv["values"].items():
        o, p = (int(x) for x in key.split("/"))
        spectra[(o, p)] = v
        if all(x is not None for x in v):
            vals.setdefault(o, {})[p] = float(np.asarray(v) @ w)
    cpu = {int(o): float(np.median(c)) for o, c in conv["cpu"].items()}
    ref_order = {p: max(o for o in vals if p in vals[o]) for p in range(imgs_n)}
    ref = {p: vals[ref_order[p]][p] for p in range(imgs_n)}
    order_rows = []
    for o in sorted(vals):
        # against a higher order only ("ref": this is the pattern's reference)
        errs = [
            vals[o][p] / ref[p] - 1 if p in vals[o] and ref_order[p] > o else None
            for p in range(imgs_n)
        ]
        known = [abs(e) for e in errs if e is not None]
        order_rows.append(
            {
                "order": o,
                "cpu_s_per_solve": round(cpu[o], 2) if o in cpu else None,
                "values": " ".join(
                    f"{vals[o][p]:.4f}" if p in vals[o] else "-" for p in range(imgs_n)
                ),
                "vs_reference_%": " ".join(
                    f"{100 * e:+.2f}" if e is not None else "ref" if ref_order[p] == o else "-"
                    for p, e in enumerate(errs)
                ),
                "max_abs_%": round(100 * max(known), 2) if known else None,
            }
        )
    probe_rows = []
    probe_orders = sorted(o for (o, p), v in spectra.items() if p == 0 and v[PROBE[0]] is not None)
    for i in PROBE:
        row = {"nm": round(float(lam[i]))}
        for o in probe_orders:
            v = spectra[(o, 0)][i]
            row[f"order_{o}"] = None if v is None else round(v, 5)
        probe_rows.append(row)
    # spectral and raster errors at order 5 (the spectral part), solves of the default rule
    sp = json.loads((RESULTS / "optics_spectral.json").read_text())
    dense_spectra = np.asarray(sp["spectra"])
    dense = np.array([rule_value(a, "product", DENSE) for a in dense_spectra])
    adapt = [adaptive_value(a, 36, 1e-4) for a in dense_spectra]
    e_ad = np.array([v for v, _ in adapt]) / dense - 1
    n_ad = float(np.mean([n for _, n in adapt]))
    own15 = np.asarray(sp["own_raster_trapezoid15"])
    e_t15 = own15 / dense - 1
    e_r = np.asarray(sp["old_raster_trapezoid15"]) / own15 - 1
    settings = []

    def setting(name, order, factors, solves):
        # on the patterns solved at a higher order than this setting's
        pats = [p for p in range(imgs_n) if p in vals.get(order, {}) and ref_order[p] > order]
        if not pats:
            return
        e_o = np.array(
            [vals[order][p] / ref[p] - 1 if p in pats else np.nan for p in range(imgs_n)]
        )
        err = np.prod([1 + f for f in (*factors, e_o)], axis=0) - 1
        settings.append(
            {
                "setting": name,
                "solves": round(solves),
                "cpu_min_per_image": round(solves * cpu[order] / 60, 2) if order in cpu else None,
                "error_%": " ".join("-" if np.isnan(e) else f"{100 * e:+.2f}" for e in err),
                "max_abs_%": round(100 * float(np.nanmax(np.abs(err))), 2),
            }
        )

    setting("old default: order 5, grid 64, trapezoid 15", 5, (e_r, e_t15), 15)
    setting("order 5, own raster, trapezoid 15", 5, (e_t15,), 15)
    for o in sorted(vals):
        if o >= 5:  # (the reference itself: its spectral error alone)
            setting(f"order {o}, own raster, adaptive (default rule)", o, (e_ad,), n_ad)
    return {
        "reference_order": ref_order,
        "order_rows": order_rows,
        "probe_rows": probe_rows,
        "settings": settings,
        "cpu_s_per_solve": cpu,
        "adaptive_solves_mean": n_ad,
    }


def aitken(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Aitken's delta-squared limit of the sequence a, b, c (where it is defined)."""
    den = (c - b) - (b - a)
    safe = np.abs(den) > 1e-12
    return np.where(safe, c - (c - b) ** 2 / np.where(safe, den, 1.0), c)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="speed,agreement,spectral,order")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--patterns", type=int, default=5)
    parser.add_argument("--order-wavelengths", type=int, default=36)
    parser.add_argument("--orders", default="3,5,7,9")
    parser.add_argument(
        "--conv-plan",
        default="5:0-4,7:0:probe,9:0:probe,11:0,13:0:probe,15:0:probe,11:1-4,13:0",
        help="convergence: order:patterns[:probe],... solved in this order",
    )
    parser.add_argument(
        "--deadline", default=None, help="convergence: start no solve after this UTC HH:MM"
    )
    parser.add_argument("--fresh", action="store_true", help="recompute cached parts")
    parser.add_argument("--workers", type=int, default=1, help="processes (spectral, order)")
    args = parser.parse_args()
    global WORKERS
    WORKERS = args.workers
    parts = args.parts.split(",")
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    imgs = patterns(args.patterns)
    print("pattern fractions", " ".join(f"{f:.3f}" for f in imgs.mean((1, 2))))
    if "speed" in parts:
        sp = _cached("speed", args.fresh, lambda: part_speed(imgs, args.repeat))
        rows = []
        for order, r in sp["orders"].items():
            rows.append(
                {
                    "order": order,
                    "wavelengths": r["wavelengths"],
                    "meent_s": round(r["meent_s"], 2),
                    "c128_s": round(r["complex128_s"], 2),
                    "c64_s": round(r["complex64_s"], 2),
                    "speedup_128": round(r["meent_s"] / r["complex128_s"], 2),
                    "speedup_64": round(r["meent_s"] / r["complex64_s"], 2),
                    "max_diff_128": f"{r['max_diff_128']:.1e}",
                    "max_diff_64": f"{r['max_diff_64']:.1e}",
                }
            )
        report(
            "optics_speed_table",
            rows,
            title=f"RCWA per image (grid 64), median of {sp['repeat']}, load {sp['load']:.1f}",
        )
    if "agreement" in parts:
        ag = _cached("agreement", args.fresh, lambda: part_agreement(imgs))
        print(json.dumps(ag))
    if "spectral" in parts:
        sp = _cached("spectral", args.fresh, lambda: part_spectral(imgs))
        spectra = np.asarray(sp["spectra"])
        film = np.asarray(sp["film"])
        dense = [rule_value(s, "product", DENSE) for s in spectra]
        rows = []
        for rule, n in RULES:
            errs = [rule_value(s, rule, n) / d - 1 for s, d in zip(spectra, dense, strict=True)]
            film_err = rule_value(film, rule, n) / sp["film_dense_integral"] - 1
            rows.append(
                {
                    "rule": rule,
                    "wavelengths": n,
                    "film_%": round(100 * film_err, 3),
                    "patterns_%": " ".join(f"{100 * e:+.2f}" for e in errs),
                    "max_abs_%": round(100 * max(abs(e) for e in [*errs, film_err]), 3),
                }
            )
        for start, tol in ((36, 1e-3), (36, 3e-4), (36, 1e-4), (36, 3e-5), (71, 1e-4)):
            res = [adaptive_value(a, start, tol) for a in [*spectra, film]]
            ref = [*dense, sp["film_dense_integral"]]
            errs = [v / r - 1 for (v, _), r in zip(res, ref, strict=True)]
            rows.append(
                {
                    "rule": f"adaptive from {start}, tolerance {tol:g}"
                    + (" (default)" if (start, tol) == (36, 1e-4) else ""),
                    "wavelengths": "-".join(str(f(n for _, n in res)) for f in (min, max)),
                    "film_%": round(100 * errs[-1], 3),
                    "patterns_%": " ".join(f"{100 * e:+.2f}" for e in errs[:-1]),
                    "max_abs_%": round(100 * max(abs(e) for e in errs), 3),
                }
            )
        old = np.asarray(sp["old_raster_trapezoid15"])
        own = np.asarray(sp["own_raster_trapezoid15"])
        rows.append(
            {
                "rule": "old default: grid 64, trapezoid",
                "wavelengths": 15,
                "film_%": None,
                "patterns_%": " ".join(f"{100 * e:+.2f}" for e in old / np.asarray(dense) - 1),
                "max_abs_%": round(100 * np.abs(old / np.asarray(dense) - 1).max(), 3),
            }
        )
        rows.append(
            {
                "rule": "grid 64 against own raster (trapezoid 15)",
                "wavelengths": 15,
                "film_%": None,
                "patterns_%": " ".join(f"{100 * e:+.2f}" for e in old / own - 1),
                "max_abs_%": round(100 * np.abs(old / own - 1).max(), 3),
            }
        )
        report(
            "optics_spectral_table",
            rows,
            title="spectral rules against the dense integral (281 wavelengths, 2.5 nm; order 5, "
            f"own raster; {sp['seconds_per_wavelength']:.3f} s per wavelength)",
        )
    if "convergence" in parts:
        deadline = float("inf")
        if args.deadline:
            import datetime as dt

            hh, mm = (int(x) for x in args.deadline.split(":"))
            now = dt.datetime.now(dt.UTC)
            deadline = now.replace(hour=hh, minute=mm, second=0).timestamp()
        conv = part_convergence(imgs, args.conv_plan, deadline)
        tables = convergence_tables(conv, len(imgs))
        (RESULTS / "optics_convergence.json").write_text(
            json.dumps({"load": os.getloadavg()[0], **conv, **tables}, indent=1) + "\n"
        )
        ref = sorted(set(tables["reference_order"].values()))
        report(
            "optics_convergence_order",
            tables["order_rows"],
            title=f"order convergence: product rule on {CONV_LAM} wavelengths, own raster, "
            f"against order {'/'.join(map(str, ref))} (CPU s per solve, one thread)",
        )
        report("optics_convergence_probe", tables["probe_rows"], title="pattern 0, per wavelength")
        report(
            "optics_convergence_settings",
            tables["settings"],
            title="each setting's estimated error against the reference and its CPU per image",
        )
    if "order" in parts:
        orders = tuple(int(o) for o in args.orders.split(","))
        od = _cached("order", args.fresh, lambda: part_order(imgs, args.order_wavelengths, orders))
        vals = {int(k): np.asarray(v["values"]) for k, v in od["orders"].items()}
        top = max(vals)
        rows = []
        for o in sorted(vals):
            rows.append(
                {
                    "order": o,
                    "s_per_image": round(od["orders"][str(o)]["seconds_per_image"], 1),
                    "values": " ".join(f"{v:.4f}" for v in vals[o]),
                    f"vs_order_{top}_%": " ".join(
                        f"{100 * (v / t - 1):+.2f}" for v, t in zip(vals[o], vals[top], strict=True)
                    ),
                }
            )
        if {5, 7, 9} <= set(vals):
            ext = aitken(vals[5], vals[7], vals[9])
            rows.append(
                {
                    "order": "Aitken(5,7,9)",
                    "s_per_image": None,
                    "values": " ".join(f"{v:.4f}" for v in ext),
                    f"vs_order_{top}_%": " ".join(
                        f"{100 * (v / t - 1):+.2f}" for v, t in zip(ext, vals[top], strict=True)
                    ),
                }
            )
        report(
            "optics_order_table",
            rows,
            title=f"order convergence (product rule, {od['wavelengths']} wavelengths, own raster)",
        )


if __name__ == "__main__":
    main()
