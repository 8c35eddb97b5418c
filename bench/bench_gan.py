"""DCGAN: training time per epoch, sampling throughput, peak memory.

Prints, on this machine and in one run (each part in a fresh child process, so its peak memory
is its own):

* **training**: the time of one epoch of 5,000 128x128 images at batch 64 (78 steps, D:G 1:1),
  measured on a fraction of the epoch (``--steps`` steps, default 10) with ``mdesign.gan.train``
  and extrapolated to 78 steps, which the table says (each round trains two epochs from scratch
  and times the second); beside it, in the same process and interleaved with it, the plain
  eager loop of the PyTorch DCGAN example on the same architecture (``nn.Sequential``, separate
  real/fake discriminator passes, Adam), and the ratio.
  ``--full`` trains a whole epoch of 5,000 images instead of extrapolating;
* **sampling**: 128x128 images per second from the shipped model (``artifacts/gan``), plain
  eager (the generator in eval mode under ``torch.no_grad``, cut at 0) against
  ``mdesign.gan.decode`` (BatchNorm folded, channels-last, inference mode, batches in parallel
  over the torch threads), interleaved, median of 3, and the ratio; and 256x256 from 8x8
  latents;
* **the default of ``mdesign sample``**: the exact-fraction cut (fractions drawn from the
  training distribution) against the same cut as it was filed in issue 31 (scipy's Gaussian
  filter in float64 image by image) and as it was before the batches ran in parallel (batches
  of 256 through torch's intra-op threads), interleaved with the rest, and the pixels they
  differ in; and ``mdesign sample -n 4096`` end to end in fresh processes, with its start-up
  (``-n 1``), median of 3;
* **peak memory** (VmHWM) of each child: training holds the 5,000-image stack.

The machine's load average is printed: the dev machine's 2 cores are shared, and an oversubscribed
OpenMP pool spins (``OMP_WAIT_POLICY=PASSIVE`` helps; the Makefile's bench target does not set
it, so set it yourself when the machine is shared).

Usage: ``python bench/bench_gan.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import peak_rss_mb, report

BATCH = 64
EPOCH_IMAGES = 5000
EPOCH_STEPS = EPOCH_IMAGES // BATCH  # 78


def _peer_networks():
    """The same architecture as plain ``nn.Sequential`` stacks (the PyTorch DCGAN example)."""
    from torch import nn

    g_layers = []
    widths = (1, 128, 64, 32, 16)
    for a, b in pairwise(widths):
        g_layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
    g_layers += [nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Tanh()]
    d_layers = []
    widths = (1, 16, 32, 64, 128)
    for i, (a, b) in enumerate(pairwise(widths)):
        d_layers += [nn.Conv2d(a, b, 4, 2, 1, bias=i == 0)]
        d_layers += [nn.BatchNorm2d(b)] if i else []
        d_layers += [nn.LeakyReLU(0.2)]
    d_layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 1), nn.Flatten(0)]
    return nn.Sequential(*g_layers), nn.Sequential(*d_layers)


def part_train(data: str, steps: int, rounds: int, full: bool) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from mdesign.config import GAN_DEFAULTS, GANConfig, config_from_dict
    from mdesign.gan import train
    from mdesign.io import read_images

    images = read_images(data).images
    raw = GAN_DEFAULTS.model_dump()
    raw["train"]["monitor_size"] = 0
    cfg = config_from_dict(GANConfig, raw)
    subset = images if full else images[: steps * BATCH]
    n_steps = subset.shape[0] // BATCH

    g, d = _peer_networks()
    opt_g = torch.optim.Adam(g.parameters(), lr=5e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=5e-4, betas=(0.5, 0.999))
    real_all = torch.from_numpy(subset[: n_steps * BATCH].astype(np.float32) * 2 - 1)[:, None]
    gen = torch.Generator().manual_seed(0)

    def peer_epoch() -> float:
        t = time.perf_counter()
        for b in range(n_steps):
            real = real_all[b * BATCH : (b + 1) * BATCH]
            fake = g(torch.rand((BATCH, 1, 4, 4), generator=gen) * 2 - 1)
            ones, zeros = torch.ones(BATCH), torch.zeros(BATCH)
            loss_d = F.binary_cross_entropy_with_logits(
                d(real), ones
            ) + F.binary_cross_entropy_with_logits(d(fake.detach()), zeros)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(d(fake), ones)
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
        return time.perf_counter() - t

    ours, ours_total, peer = [], [], []
    peer_epoch()  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            # two epochs from scratch: the first warms up (oneDNN primitives), the second counts
            res = train(subset, Path(tmp) / f"run{r}", cfg, epochs=2)
            ours.append(res.metrics[1]["seconds"])
            ours_total.append(res.metrics[1]["seconds_total"])
            peer.append(peer_epoch())
    keep = slice(None)
    scale = EPOCH_STEPS / n_steps
    return {
        "steps_measured": n_steps,
        "rounds": rounds,
        "epoch_s": statistics.median(ours[keep]) * scale,
        "epoch_with_checkpoint_s": statistics.median(
            [t * scale + (tt - t) for t, tt in zip(ours[keep], ours_total[keep], strict=True)]
        ),
        "peer_epoch_s": statistics.median(peer[keep]) * scale,
        "peak_rss_mb": peak_rss_mb(),
    }


def part_sample(n: int, repeat: int) -> dict:
    import numpy as np
    import torch

    from mdesign.config import GAN_DEFAULTS
    from mdesign.gan import decode, latent_shape, sample_latents, shipped_checkpoint
    from mdesign.gan.sampling import (
        _detrend,
        _detrend_torch,
        _fused,
        sample_fractions,
        training_fractions,
    )
    from mdesign.grf import level_cut

    ck = shipped_checkpoint(device="cpu")
    g = ck.generator
    n_global = ck.config.generator.global_channels
    z = torch.from_numpy(
        sample_latents(n, latent_shape(ck.config), seed=0, global_channels=n_global)
    )
    z8 = torch.from_numpy(
        sample_latents(
            max(8, n // 4), latent_shape(ck.config, size=8), seed=1, global_channels=n_global
        )
    )

    def eager(zz, batch=256):
        out = []
        with torch.no_grad():
            for i in range(0, zz.shape[0], batch):
                out.append((g(zz[i : i + batch])[:, 0] > 0).to(torch.uint8).numpy())
        return np.concatenate(out)

    fr = sample_fractions(n, training_fractions(ck.data_meta), seed=0)

    def cut_before(zz, ff, batch=256):
        """The exact-fraction cut before issue 31: scipy's detrending in float64, per image."""
        fused, out = _fused(g, torch.float32), []
        per = GAN_DEFAULTS.sample.periodic
        with torch.inference_mode():
            for i in range(0, zz.shape[0], batch):
                y = fused(zz[i : i + batch], periodic=per, logits=True)[:, 0]
                y = _detrend(y.float().numpy(), width=fused.scale, periodic=per)
                f = ff[i : i + batch, None]
                out.append(level_cut(y, np.hstack([1 - f, f])))
        return np.concatenate(out)

    def cut_main(zz, ff, batch=256):
        """The default before the parallel batches: batches of 256 through torch's threads."""
        fused, out = _fused(g, torch.float32), []
        per = GAN_DEFAULTS.sample.periodic
        with torch.inference_mode():
            for i in range(0, zz.shape[0], batch):
                y = fused(zz[i : i + batch], periodic=per, logits=True)[:, 0]
                y = _detrend_torch(y, width=fused.scale, periodic=per)
                f = ff[i : i + batch, None]
                out.append(level_cut(y, np.hstack([1 - f, f])))
        return np.concatenate(out)

    # the same images, to float rounding (the fused blur layers round differently)
    eager_differs = int((eager(z) != decode(g, z)).sum())
    assert eager_differs <= 1e-5 * z.shape[0] * 128 * 128, eager_differs
    cut_differs = int((cut_before(z, fr) != decode(g, z, fractions=fr)).sum())
    main_differs = int((cut_main(z, fr) != decode(g, z, fractions=fr)).sum())
    rows = {"eager": [], "decode": [], "decode_bf16": [], "eager_256": [], "decode_256": []}
    rows |= {"cut": [], "cut_before": [], "cut_main": []}
    eager(z[:256]), decode(g, z[:256]), decode(g, z[:256], precision="bfloat16")  # warm-up
    flipped = float((decode(g, z, precision="bfloat16") != decode(g, z)).mean())
    for _ in range(repeat):
        for name, fn, zz in (
            ("eager", eager, z),
            ("decode", lambda x: decode(g, x), z),
            ("decode_bf16", lambda x: decode(g, x, precision="bfloat16"), z),
            ("eager_256", eager, z8),
            ("decode_256", lambda x: decode(g, x), z8),
            ("cut", lambda x: decode(g, x, fractions=fr), z),
            ("cut_before", lambda x: cut_before(x, fr), z),
            ("cut_main", lambda x: cut_main(x, fr), z),
        ):
            t = time.perf_counter()
            fn(zz)
            rows[name].append(zz.shape[0] / (time.perf_counter() - t))
    return {
        **{k: statistics.median(v) for k, v in rows.items()},
        "n": n,
        "repeat": repeat,
        "bf16_flipped": flipped,
        "cut_pixels_differing": cut_differs,
        "eager_pixels_differing": eager_differs,
        "main_pixels_differing": main_differs,
        "threads": torch.get_num_threads(),
        "batch_size": GAN_DEFAULTS.sample.batch_size,
        "peak_rss_mb": peak_rss_mb(),
    }


def part_cli(n: int, repeat: int) -> dict:
    """``mdesign sample`` end to end as a user runs it (a fresh process: imports, the checkpoint,
    decoding, the .npz written): ``-n n`` and ``-n 1`` (the start-up), interleaved, medians."""
    ckpt = Path(__file__).resolve().parents[1] / "artifacts" / "gan" / "checkpoint.pt"
    times: dict[int, list[float]] = {1: [], n: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            for count in times:
                cmd = [sys.executable, "-m", "mdesign", "sample", "--checkpoint", str(ckpt)]
                cmd += ["-n", str(count), "-o", str(Path(tmp) / "s.npz"), "-q"]
                t = time.perf_counter()
                subprocess.run(cmd, check=True)
                times[count].append(time.perf_counter() - t)
    total, start = statistics.median(times[n]), statistics.median(times[1])
    return {"cli_n": n, "cli_s": total, "cli_start_s": start, "cli_repeat": repeat}


def _child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (smoke test)")
    parser.add_argument("--full", action="store_true", help="train a whole 5,000-image epoch")
    parser.add_argument("--steps", type=int, default=10, help="training steps measured")
    parser.add_argument("--part", choices=["train", "sample"], help=argparse.SUPPRESS)
    parser.add_argument("--sample-only", action="store_true", help="skip the training part")
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = 3 if args.quick else args.steps
    rounds = 2 if args.quick else 3
    if args.part == "train":
        print(json.dumps(part_train(args.data, steps, rounds, args.full)))
        return
    if args.part == "sample":
        print(json.dumps(part_sample(256 if args.quick else 1024, 2 if args.quick else 3)))
        return

    from mdesign.grf import grf_microstructures
    from mdesign.io import write_images

    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    tr = None
    if not args.sample_only:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "grf.npz"
            res = grf_microstructures(
                EPOCH_IMAGES,
                (128, 128),
                volume_fraction=(0.3, 0.6),
                correlation_length=(4, 8),
                seed=0,
            )
            write_images(data, res.images)
            del res
            tr = _child(
                ["--part", "train", "--data", str(data), "--steps", str(steps)]
                + (["--full"] if args.full else [])
                + (["--quick"] if args.quick else [])
            )
    sa = _child(["--part", "sample"] + (["--quick"] if args.quick else []))
    cli = part_cli(1024 if args.quick else 4096, 2 if args.quick else 3)
    rows = []
    if tr is not None:
        how = (
            "measured on a whole epoch"
            if args.full
            else f"extrapolated from {tr['steps_measured']} of {EPOCH_STEPS} steps"
        )
        rows.append(
            {
                "figure": "training epoch, 5,000 x 128x128, batch 64",
                "mdesign": f"{tr['epoch_s']:.1f} s",
                "peer": f"{tr['peer_epoch_s']:.1f} s (plain eager DCGAN loop)",
                "speedup": tr["peer_epoch_s"] / tr["epoch_s"],
                "note": f"{how}; median of {tr['rounds']} interleaved rounds; with the per-epoch "
                f"checkpoint, grid and EMA statistics {tr['epoch_with_checkpoint_s']:.1f} s",
            }
        )
    rows += [
        {
            "figure": "sampling 128x128 (images/s)",
            "mdesign": f"{sa['decode']:.0f}",
            "peer": f"{sa['eager']:.0f} (plain eager)",
            "speedup": sa["decode"] / sa["eager"],
            "note": f"{sa['n']} images, median of {sa['repeat']}; decode = fused BN, "
            "channels-last, inference mode, the blur as a depthwise convolution and the last "
            f"layer as a sub-pixel convolution; {sa['eager_pixels_differing']} of "
            f"{sa['n'] * 128 * 128} pixels differ from eager",
        },
        {
            "figure": "`mdesign sample` default: exact-fraction cut (images/s)",
            "mdesign": f"{sa['cut']:.0f}",
            "peer": f"{sa['cut_before']:.0f} (the cut before: scipy, float64, per image)",
            "speedup": sa["cut"] / sa["cut_before"],
            "note": "torch high-pass (two matrix products) on the device; "
            f"{sa['cut_pixels_differing']} of {sa['n'] * 128 * 128} pixels differ from the cut "
            f"before; midpoint cut {sa['decode']:.0f} images/s in the same run",
        },
        {
            "figure": "`mdesign sample` default against the default before this (images/s)",
            "mdesign": f"{sa['cut']:.0f}",
            "peer": f"{sa['cut_main']:.0f} (batches of 256 through torch's threads)",
            "speedup": sa["cut"] / sa["cut_main"],
            "note": f"batches of {sa['batch_size']} decoded in parallel, one per torch thread "
            f"({sa['threads']}); {sa['main_pixels_differing']} of {sa['n'] * 128 * 128} "
            "pixels differ",
        },
        {
            "figure": f"`mdesign sample -n {cli['cli_n']}` end to end (images/s)",
            "mdesign": f"{cli['cli_n'] / cli['cli_s']:.0f}",
            "peer": "",
            "speedup": None,
            "note": f"{cli['cli_s']:.2f} s in a fresh process, median of {cli['cli_repeat']}; "
            f"its start-up (`-n 1`) {cli['cli_start_s']:.2f} s, without it "
            f"{cli['cli_n'] / (cli['cli_s'] - cli['cli_start_s']):.0f} images/s",
        },
        {
            "figure": "sampling 128x128, bfloat16 (images/s)",
            "mdesign": f"{sa['decode_bf16']:.0f}",
            "peer": f"{sa['eager']:.0f} (plain eager, float32)",
            "speedup": sa["decode_bf16"] / sa["eager"],
            "note": f"opt-in precision='bfloat16': {100 * sa['bf16_flipped']:.3f}% of pixels "
            "differ from float32",
        },
        {
            "figure": "sampling 256x256 from 8x8 latents (images/s)",
            "mdesign": f"{sa['decode_256']:.0f}",
            "peer": f"{sa['eager_256']:.0f} (plain eager)",
            "speedup": sa["decode_256"] / sa["eager_256"],
            "note": "",
        },
        {
            "figure": "peak memory (VmHWM)",
            "mdesign": (f"train {tr['peak_rss_mb']:.0f} MB, " if tr else "")
            + f"sample {sa['peak_rss_mb']:.0f} MB",
            "peer": "",
            "speedup": None,
            "note": "each in its own process; training holds the 5,000-image stack",
        },
    ]
    report("gan_sample" if tr is None else "gan", rows, title="DCGAN training and sampling")


if __name__ == "__main__":
    main()
