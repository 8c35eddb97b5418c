"""Small helpers shared by the benchmark scripts (timing, memory, table printing)."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def median_time(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    Read from ``VmHWM`` in ``/proc/self/status``: unlike ``getrusage``'s ``ru_maxrss``, which a
    child started by ``subprocess`` inherits from its parent on Linux, it starts afresh at exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.is_available(),
    }


def report(name: str, rows: list[dict], *, title: str) -> None:
    """Print ``rows`` as aligned tables and save them with the machine to results/NAME.json.

    The columns are the keys of the rows, a key a row lacks printed empty; a row that shares no
    key with the table so far (ratios after a summary, for example) starts a table of its own."""
    print(f"\n{title}  ({machine()['cpus']} CPUs, torch {torch.__version__})")
    blocks: list[tuple[dict, list[dict]]] = []  # (the keys in order, the rows)
    for r in rows:
        if blocks and not blocks[-1][0].keys().isdisjoint(r):
            blocks[-1][0].update(dict.fromkeys(r))
            blocks[-1][1].append(r)
        else:
            blocks.append((dict.fromkeys(r), [r]))
    for i, (keys, block) in enumerate(blocks):
        width = {k: max(len(k), *(len(_fmt(r.get(k, ""))) for r in block)) for k in keys}
        if i:
            print()
        print("  ".join(k.ljust(width[k]) for k in keys))
        for r in block:
            print("  ".join(_fmt(r.get(k, "")).ljust(width[k]) for k in keys))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"machine": machine(), "rows": rows}, indent=1) + "\n"
    )


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def timed_reconstruction(exemplar, config) -> tuple[object, dict]:
    """``mdesign.reconstruction.reconstruct(exemplar, None, config)`` on the CPU, and the record
    the reconstruction benches keep of it: wall and process CPU seconds, the stages' seconds,
    iterations, weights and the load average before and after."""
    from mdesign.reconstruction import reconstruct

    load_before = os.getloadavg()[0]
    cpu = time.process_time()
    res = reconstruct(exemplar, None, config, device="cpu")
    cpu = time.process_time() - cpu
    info = {
        "seconds": res.seconds,
        "cpu_seconds": cpu,
        "seconds_optimization": res.seconds_optimization,
        "seconds_annealing": res.seconds_annealing,
        "iterations": res.iterations,
        "converged": res.converged,
        "weights": res.weights,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }
    return res, info
