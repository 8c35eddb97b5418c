"""A/B timing of 2D reconstruction between two checkouts: the same crops and seeds, alternated.

Two worker processes, one per checkout (``--baseline``, e.g. main's, and ``--candidate``, this
one; each imports ``mdesign`` from its own tree), one torch thread each, take the runs in turn:
per crop and seed, A then B or B then A (alternating), never both at once, so that each pair sees
the same load. Each worker first makes one untimed tiny reconstruction (first-use imports). Per
run: process CPU seconds of ``reconstruct`` (or, with ``--stage anneal``, of the annealing alone
from the fitted GRF's labels: a cheap micro-bench of the chain), the stages' wall seconds, and
the sha256 of the labels, so that an exact speed-up shows as equal digests. The summary gives
the medians, the ratio of the medians and the median of the per-pair ratios.

Inputs: the central 128x128 crops of the six two-phase Li et al. (2018) exemplars, as
``bench_reconstruction.py``. ``--overrides-a``/``--overrides-b``: JSON config overrides of
either side (for example a candidate option). Results: ``bench/results/NAME.json`` and
``NAME.md`` (``--name``, default ``reconstruction_ab``).

Usage: ``python bench/bench_reconstruction_ab.py --baseline /work/main --seeds 0 1``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MATERIALS = ("alloy", "carbonate", "ceramics", "copolymer", "pmma", "sandstone")


def worker() -> None:
    """One side: read a JSON task per line from stdin, answer a JSON record per line."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import mdesign
    from mdesign.config import ReconstructionConfig
    from mdesign.data import li2018_exemplar
    from mdesign.reconstruction import reconstruct

    def crop(name: str, size: int) -> np.ndarray:
        img = li2018_exemplar(name, 256)
        y0, x0 = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        return img[y0 : y0 + size, x0 : x0 + size]

    overrides = json.loads(sys.argv[2])
    tiny = ReconstructionConfig(optimiser={"iterations": 1, "coarse_iterations": 1}, seed=0)
    reconstruct(crop("ceramics", 64), None, tiny, device="cpu")  # untimed warm-up
    print(json.dumps({"ready": str(Path(mdesign.__file__).parent)}), flush=True)
    for line in sys.stdin:
        task = json.loads(line)
        ex = crop(task["material"], task["size"])
        config = ReconstructionConfig(seed=task["seed"], **overrides)
        load = os.getloadavg()[0]
        if task["stage"] == "anneal":
            from mdesign.reconstruction import pipeline as P

            phases = int(ex.max()) + 1
            start = P._start([ex], ex.shape, phases=phases, init="grf", seed=task["seed"],
                             exemplar_periodic=config.exemplar_periodic)[0]  # fmt: skip
            cpu = time.process_time()
            labels = P._anneal(
                start, [ex], config, phases=phases, quarter=min(ex.shape) // 4,
                cleanup_seed=task["seed"] + 1, progress=False,
            ).labels  # fmt: skip
            cpu = time.process_time() - cpu
            stages = {}
        else:
            cpu = time.process_time()
            res = reconstruct(ex, None, config, device="cpu")
            cpu = time.process_time() - cpu
            labels = res.labels
            stages = {
                "seconds_optimization": res.seconds_optimization,
                "seconds_annealing": res.seconds_annealing,
                "evaluations": res.report()["evaluations"],
            }
        digest = hashlib.sha256(np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
        record = {**task, "cpu_seconds": cpu, "sha256": digest.hexdigest(), **stages}
        record |= {"load_before": load, "load_after": os.getloadavg()[0]}
        print(json.dumps(record), flush=True)


def _start_worker(tree: Path, python: Path, overrides: str) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [str(python), __file__, "--worker", overrides],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd="/",
    )
    ready = json.loads(proc.stdout.readline())
    print(f"worker {tree}: mdesign from {ready['ready']}", flush=True)
    return proc


def _ask(proc: subprocess.Popen, task: dict) -> dict:
    proc.stdin.write(json.dumps(task) + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker()
        return
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="checkout A (its .venv)")
    parser.add_argument("--candidate", type=Path, default=here, help="checkout B (this one)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--materials", nargs="+", choices=MATERIALS, default=list(MATERIALS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--stage", choices=("all", "anneal"), default="all")
    parser.add_argument("--overrides-a", default="{}", help="JSON config overrides of A")
    parser.add_argument("--overrides-b", default="{}", help="JSON config overrides of B")
    parser.add_argument("--name", default="reconstruction_ab")
    args = parser.parse_args()
    sides = {}
    for key, tree, over in (
        ("A", args.baseline, args.overrides_a),
        ("B", args.candidate, args.overrides_b),
    ):
        python = tree / ".venv" / "bin" / "python"
        sides[key] = _start_worker(
            tree.resolve(), python if python.exists() else sys.executable, over
        )
    rows, turn = [], 0
    for seed in args.seeds:
        for material in args.materials:
            task = {"material": material, "seed": seed, "size": args.size, "stage": args.stage}
            order = ("A", "B") if turn % 2 == 0 else ("B", "A")
            turn += 1
            pair = {}
            for key in order:
                pair[key] = _ask(sides[key], task)
            for key in ("A", "B"):
                rows.append({"side": key, **pair[key]})
            a, b = pair["A"], pair["B"]
            print(
                f"{material} seed {seed}: A {a['cpu_seconds']:.2f} s, B {b['cpu_seconds']:.2f} s"
                f" ({a['cpu_seconds'] / b['cpu_seconds']:.2f}x), labels "
                f"{'equal' if a['sha256'] == b['sha256'] else 'differ'}, "
                f"load {a['load_before']:.1f}-{b['load_after']:.1f}",
                flush=True,
            )
    for proc in sides.values():
        proc.stdin.close()
        proc.wait()
    write(args, rows)


def write(args, rows: list[dict]) -> None:
    by = {k: [r for r in rows if r["side"] == k] for k in ("A", "B")}
    med = {k: statistics.median(r["cpu_seconds"] for r in v) for k, v in by.items()}
    pairs = [a["cpu_seconds"] / b["cpu_seconds"] for a, b in zip(by["A"], by["B"], strict=True)]
    equal = sum(a["sha256"] == b["sha256"] for a, b in zip(by["A"], by["B"], strict=True))
    loads = [x for r in rows for x in (r["load_before"], r["load_after"])]
    summary = {
        "baseline": str(args.baseline),
        "candidate": str(args.candidate),
        "overrides_a": json.loads(args.overrides_a),
        "overrides_b": json.loads(args.overrides_b),
        "stage": args.stage,
        "seeds": args.seeds,
        "median_cpu_a": med["A"],
        "median_cpu_b": med["B"],
        "ratio_of_medians": med["A"] / med["B"],
        "median_pair_ratio": statistics.median(pairs),
        "labels_equal": f"{equal}/{len(pairs)}",
        "load": [min(loads), max(loads)],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(
        json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n"
    )
    lines = [
        f"# A/B reconstruction timing ({args.stage}): A {args.baseline} against B {args.candidate}",
        "",
        f"Seeds {' '.join(map(str, args.seeds))}, {args.size}x{args.size} crops, one torch "
        f"thread, process CPU seconds, pairs alternated; load average "
        f"{min(loads):.1f}-{max(loads):.1f} (shared machine). Overrides A "
        f"`{args.overrides_a}`, B `{args.overrides_b}`.",
        "",
        f"Median CPU: A **{med['A']:.2f} s**, B **{med['B']:.2f} s**: ratio of medians "
        f"**{med['A'] / med['B']:.2f}x**, median of the pair ratios "
        f"{statistics.median(pairs):.2f}x; labels equal in {equal}/{len(pairs)} pairs.",
        "",
        "| material | seed | A CPU s | B CPU s | A / B | labels |",
        "|---|---|---|---|---|---|",
    ]
    for a, b in zip(by["A"], by["B"], strict=True):
        lines.append(
            f"| {a['material']} | {a['seed']} | {a['cpu_seconds']:.2f} | {b['cpu_seconds']:.2f}"
            f" | {a['cpu_seconds'] / b['cpu_seconds']:.2f} | "
            f"{'equal' if a['sha256'] == b['sha256'] else 'differ'} |"
        )
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:6]))


if __name__ == "__main__":
    main()
