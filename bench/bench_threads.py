"""OpenMP wait policy: should the ``mdesign`` console script set ``OMP_WAIT_POLICY=PASSIVE``?

A spinning OpenMP pool (the default, ``ACTIVE``-ish: threads busy-wait between parallel regions)
costs nothing on an idle machine and a lot on an oversubscribed one, where the spinning threads
take the cores the working ones need. The policy is read once, when torch loads its OpenMP
runtime, so each measurement is a fresh process.

Each round starts three child processes, with the policy unset, with ``PASSIVE`` in the
environment, and set by the child itself before torch loads (``setdefault``, what the
console script does), rotating which goes first, with torch's default thread count; each
child times, after a warm-up, the median of ``--repeat`` calls of

* **sample**: :func:`mdesign.gan.decode` of 16 latents with the default generator (128 x 128);
* **step**: one DCGAN training step (D then G, Adam, BCE) on a batch of 16 128 x 128 images
  with the default networks.

Prints the medians over rounds, their ratio, and the load average before and after (the dev
machine's 2 cores are shared with other jobs; that is the case the policy is for).

Usage: ``python bench/bench_threads.py [--rounds 5] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

POLICIES = ("unset", "PASSIVE", "setdefault")
"""``setdefault``: the environment leaves it unset and the child process sets it itself, with
``os.environ.setdefault`` before torch loads, as the console script does."""


def child(repeat: int, *, set_in_process: bool) -> dict:
    if set_in_process:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    import torch.nn.functional as F

    from mdesign.config import GAN_DEFAULTS
    from mdesign.gan import decode, latent_shape, sample_latents
    from mdesign.gan.networks import Discriminator, Generator, init_weights

    g = init_weights(Generator.from_config(GAN_DEFAULTS), seed=0)
    d = init_weights(Discriminator.from_config(GAN_DEFAULTS), seed=1)
    zshape = latent_shape(GAN_DEFAULTS)
    z = sample_latents(16, zshape, seed=0)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(16, 1, 128, 128).round() * 2 - 1

    def sample():
        decode(g.eval(), z, batch_size=16)

    def step():
        g.train()
        fake = g(torch.from_numpy(sample_latents(16, zshape, seed=1)))
        loss_d = F.binary_cross_entropy_with_logits(
            d(real), torch.ones(16)
        ) + F.binary_cross_entropy_with_logits(d(fake.detach()), torch.zeros(16))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(d(fake), torch.ones(16))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    out = {"threads": torch.get_num_threads()}
    for name, fn in (("sample", sample), ("step", step)):
        fn()  # warm-up
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        out[name] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--set-in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.repeat, set_in_process=args.set_in_process)))
        return
    # only now: _util imports torch, which a child must not load before it sets the policy
    sys.path.insert(0, str(Path(__file__).parent))
    from _util import RESULTS, report

    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {p: [] for p in POLICIES}
    for r in range(args.rounds):
        for policy in POLICIES[r % len(POLICIES) :] + POLICIES[: r % len(POLICIES)]:
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY",)}
            env.pop("OMP_NUM_THREADS", None)
            if policy == "PASSIVE":
                env["OMP_WAIT_POLICY"] = policy
            flag = ["--set-in-process"] if policy == "setdefault" else []
            res = subprocess.run(
                [sys.executable, __file__, "--child", "--repeat", str(args.repeat), *flag],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            runs[policy].append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {policy}: {runs[policy][-1]}", flush=True)
    load_after = os.getloadavg()
    rows = []
    for what in ("sample", "step"):
        med = {p: statistics.median(x[what] for x in runs[p]) for p in POLICIES}
        rows.append(
            {
                "call": what,
                "unset ms": med["unset"] * 1e3,
                "PASSIVE ms": med["PASSIVE"] * 1e3,
                "setdefault ms": med["setdefault"] * 1e3,
                "unset/PASSIVE": med["unset"] / med["PASSIVE"],
                "torch threads": runs["unset"][0]["threads"],
                "load before": load_before[0],
                "load after": load_after[0],
            }
        )
    report("threads", rows, title=f"OMP_WAIT_POLICY, median of {args.rounds} fresh processes")
    (RESULTS / "threads_runs.json").write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
