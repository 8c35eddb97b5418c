"""``mdesign sample``: decode latents to microstructures, optionally validated against real ones."""

from __future__ import annotations

import argparse

from mdesign.cli._common import SEED_HELP, add_quiet, note, parse_device, run_meta, seed_type


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="decode latents (random or given) with a trained DCGAN",
        description=(
            "Decode latents with a trained generator: random ones drawn uniformly from the "
            "latent box [-1, 1] (-n, --latent-size K, --seed), or given ones (--latent Z.npy "
            "of shape N x C x h x w, or a .npz with a 'latents' array). A latent of side K "
            "gives an image of side 32*K. Binarisation: 'midpoint' puts phase 1 where the tanh "
            "output is above 0; 'otsu' uses Otsu's threshold of each image. A .npz output "
            "holds the latents beside the images. --report compares the images with fresh "
            "images from the training distribution (S2, lineal path, volume fractions) and "
            "with a second real set for scale. Settings not given come from the checkpoint's "
            "config (sample section)."
        ),
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint (.pt)")
    p.add_argument("-n", type=int, metavar="N", help="number of random latents")
    p.add_argument(
        "--latent-size", type=int, metavar="K", help="side of random latent maps (image 32*K)"
    )
    p.add_argument("--latent", metavar="Z.npy", help="latents to decode (.npy or .npz)")
    p.add_argument(
        "--seed", type=seed_type, metavar="S", help=f"seed of the random latents, {SEED_HELP}"
    )
    p.add_argument(
        "--periodic",
        action="store_const",
        const=True,
        default=None,
        help="tileable output (circular padding in every layer)",
    )
    p.add_argument("--binarize", choices=["midpoint", "otsu"], help="how the tanh output is cut")
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT.npz", help="images (.npz, .png, ...)"
    )
    p.add_argument(
        "--report",
        metavar="REPORT.json",
        help="validate the samples against the training distribution and write the report",
    )
    p.add_argument("--plot", metavar="PLOT.png", help="with --report: curves and sample images")
    p.add_argument(
        "--reference",
        metavar="REF.npz",
        help="with --report: real images to compare with (default: fresh GRF images drawn "
        "with the training set's parameters); a second real set for scale is its other half",
    )
    p.add_argument("--device", metavar="DEV", help="cpu or cuda (default: cuda if present)")
    add_quiet(p)
    p.set_defaults(run=run)


def _read_latents(path, *, channels: int):
    from pathlib import Path

    import numpy as np

    from mdesign.errors import InputError
    from mdesign.gan.sampling import check_latents

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--latent {path}: no such file")
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "latents" not in data.files:
                    raise InputError(f"--latent {path}: no 'latents' array")
                z = data["latents"]
        elif path.suffix.lower() == ".npy":
            z = np.load(path, allow_pickle=False)
        else:
            raise InputError(f"--latent {path}: expected a .npy or .npz file")
    except InputError:
        raise
    except Exception as exc:  # any parser failure: not a numpy file
        raise InputError(f"--latent {path}: cannot read ({type(exc).__name__}: {exc})") from None
    if z.dtype.kind not in "fiu":
        raise InputError(f"--latent {path}: expected numbers, got dtype {z.dtype}")
    return check_latents(z, latent_channels=channels, source=f"--latent {path}")


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from mdesign.errors import InputError
    from mdesign.gan import decode, latent_shape, load_checkpoint, sample_latents
    from mdesign.io import atomic_path, check_output_path, write_images

    out = check_output_path(args.output, option="-o")
    if args.report:
        check_output_path(args.report, suffixes=(".json",), option="--report")
    if args.plot:
        if not args.report:
            raise InputError("--plot: needs --report (the plot shows the validation)")
        check_output_path(args.plot, suffixes=(".png",), option="--plot")
    if args.reference and not args.report:
        raise InputError("--reference: needs --report")
    if args.n is not None and args.n < 1:
        raise InputError(f"-n: must be at least 1, got {args.n}")
    if args.latent and (args.n is not None or args.latent_size is not None):
        raise InputError("--latent: decodes the given latents; -n and --latent-size do not apply")
    ckpt = load_checkpoint(args.checkpoint, device=parse_device(args.device))
    cfg = ckpt.config.sample
    seed = cfg.seed if args.seed is None else args.seed
    periodic = cfg.periodic if args.periodic is None else args.periodic
    binarize = cfg.binarize if args.binarize is None else args.binarize
    if args.latent:
        z = _read_latents(args.latent, channels=ckpt.config.generator.latent_channels)
    else:
        n = args.n or (ckpt.config.validation.n_images if args.report else cfg.n_images)
        z = sample_latents(n, latent_shape(ckpt.config, size=args.latent_size), seed=seed)
    images = decode(ckpt.generator, z, periodic=periodic, binarize=binarize)
    meta = run_meta(
        "sample",
        checkpoint=str(args.checkpoint),
        epoch=ckpt.epoch,
        seed=None if args.latent else seed,
        latent=args.latent,
        periodic=periodic,
        binarize=binarize,
    )
    write_images(out, images, meta=meta, latents=z.numpy().astype(np.float32))
    note(args, f"wrote {images.shape[0]} images of {images.shape[1]}x{images.shape[2]} to {out}")
    if args.report:
        report = _validate(args, ckpt, images, seed=seed)
        with atomic_path(args.report) as tmp:
            tmp.write_text(json.dumps(report, indent=1) + "\n")
        note(
            args,
            f"S2 distance generated-vs-real {report['s2_distance_generated']:.5f}, "
            f"real-vs-real {report['s2_distance_real']:.5f} (ratio {report['s2_ratio']:.2f}, "
            f"goal <= 2); wrote {args.report}" + (f" and {args.plot}" if args.plot else ""),
        )
    return 0


def _validate(args: argparse.Namespace, ckpt, images, *, seed: int) -> dict:
    import numpy as np

    from mdesign.errors import InputError
    from mdesign.gan.validation import grf_reference, plot_validation, validate
    from mdesign.io import read_images

    n = images.shape[0]
    if n < 2:
        raise InputError("--report: needs at least 2 images")
    if args.reference:
        ref = read_images(args.reference).images
        if ref.shape[0] < 2 * n:
            raise InputError(
                f"--reference {args.reference}: {ref.shape[0]} images; comparing {n} "
                f"samples needs {2 * n} (two real sets for scale)"
            )
        real, real_b = ref[:n], ref[n : 2 * n]
        source = str(args.reference)
    else:
        # two fresh draws of the training distribution, seeded apart from the latents and from
        # the training set (whose seed is a small integer)
        s_a, s_b = np.random.SeedSequence([seed, 0x6A1]).generate_state(2, dtype=np.uint32)
        real = grf_reference(ckpt.data_meta, n, seed=int(s_a)).images
        real_b = grf_reference(ckpt.data_meta, n, seed=int(s_b)).images
        source = f"mdesign grf with the training parameters, seeds {int(s_a)} and {int(s_b)}"
    r_max = min(ckpt.config.validation.max_distance, min(images.shape[1:]) // 2)
    rep = validate(images, real, real_b, max_distance=r_max)
    if args.plot:
        plot_validation(rep, images, real, args.plot, title=f"{args.checkpoint}")
    return {
        "checkpoint": str(args.checkpoint),
        "epoch": ckpt.epoch,
        "reference": source,
        "image_shape": list(images.shape[1:]),
        **rep.summary(),
    }
