"""``mdesign sample``: decode latents to microstructures, optionally validated against real ones."""

from __future__ import annotations

import argparse

from mdesign.cli._common import (
    SEED_HELP,
    add_quiet,
    check_outputs,
    note,
    parse_device,
    run_meta,
    seed_type,
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="decode latents (random or given) with a trained DCGAN",
        description=(
            "Decode latents with a trained generator: random ones drawn uniformly from the "
            "latent box [-1, 1] (-n, --latent-size K, --seed), or given ones (--latent Z.npy "
            "of shape N x C x h x w, or a .npz with a 'latents' array and optionally "
            "'volume_fraction'; a generator with global channels uses the spatial mean of its "
            "last ones). A latent of side K gives an image of side 32*K. Each random "
            "sample is cut exactly at a phase-1 fraction drawn from the training images' "
            "distribution (--fraction; the training images were cut the same way), so samples "
            "cover the training fractions. With --fraction free the generator's own fraction is "
            "kept: 'midpoint' puts phase 1 where the tanh output is above 0; 'otsu' uses Otsu's "
            "threshold of each image. A .npz output holds the latents and fractions "
            "('volume_fraction') beside the images. --report compares the images with fresh "
            "images from the training distribution (S2, lineal path, volume fractions, specific "
            "surface, clusters per phase, anisotropy; the goals met or missed) and with a second "
            "real set for scale. Settings not given come from the checkpoint's "
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
    p.add_argument(
        "--fraction",
        metavar="F",
        help="phase-1 fraction of each image, cut exactly: 'training' (drawn from the training "
        "images' fractions; the default for random latents), a value V, a range A:B (uniform), "
        "or 'free' (the generator's own, cut by --binarize; the default for --latent files "
        "without fractions)",
    )
    p.add_argument(
        "--binarize",
        choices=["midpoint", "otsu"],
        help="with --fraction free: how the output is cut",
    )
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
        "with the training set's parameters, or the held-out tiles of a training set made by "
        "`mdesign dataset`); a second real set for scale is its other half",
    )
    p.add_argument(
        "--data",
        metavar="TRAIN.npz",
        help="with --report: the GAN's training set, where it has moved to (default: where the "
        "checkpoint records it); its held-out tiles are the reference and its training tiles "
        "the memorisation check's",
    )
    p.add_argument("--device", metavar="DEV", help="cpu or cuda (default: cuda if present)")
    add_quiet(p)
    flags = {
        "size": "--latent-size",
        "shape": "--latent-size",
        "z": "--latent",
        "fractions": "--fraction",
    }
    p.set_defaults(run=run, param_flags=flags)


def _read_latents(path, *, channels: int, global_channels: int):
    """Latents of a .npy or .npz file, and its fractions (a .npz `volume_fraction`) or None."""
    from pathlib import Path

    import numpy as np

    from mdesign.errors import InputError
    from mdesign.gan.sampling import check_latents
    from mdesign.io import peek_images, read_memory
    from mdesign.memory import check_memory

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--latent {path}: no such file")
    if path.suffix.lower() not in (".npy", ".npz"):
        raise InputError(f"--latent {path}: expected a .npy or .npz file")
    try:
        shape, dtype = peek_images(path, key="latents")
    except InputError as exc:
        raise InputError(f"--latent {exc}") from None
    check_memory(read_memory(shape, dtype), what=f"--latent {path}")
    fractions = None
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as data:
                z = data["latents"]
                if "volume_fraction" in data.files:
                    fractions = data["volume_fraction"]
        else:
            z = np.load(path, allow_pickle=False)
    except InputError:
        raise
    except Exception as exc:  # any parser failure: not a numpy file
        raise InputError(f"--latent {path}: cannot read ({type(exc).__name__}: {exc})") from None
    if z.dtype.kind not in "fiu":
        raise InputError(f"--latent {path}: expected numbers, got dtype {z.dtype}")
    z = check_latents(
        z,
        latent_channels=channels,
        global_channels=global_channels,
        source=f"--latent {path}",
        in_box=True,
    )
    if fractions is not None:
        from mdesign.gan.sampling import check_fractions

        fractions = check_fractions(fractions, z.shape[0], source=f"--latent {path}")
    return z, fractions


def _fraction_rule(text: str | None, default: str):
    """``--fraction``: "training", "free", a value or a range, as the quantile function of the
    fractions to cut at (None for free), and how it is described."""
    import numpy as np

    from mdesign.cli._common import parse_range
    from mdesign.errors import InputError
    from mdesign.gan.sampling import QUANTILE_POINTS

    text = default if text is None else text
    if text in ("training", "free"):
        return text, None
    value = parse_range(text, option="--fraction")
    lo, hi = (value, value) if isinstance(value, float) else value
    if not (0 <= lo <= hi <= 1):
        raise InputError(f"--fraction: expected fractions in [0, 1] with A <= B, got {text!r}")
    return text, np.linspace(lo, hi, QUANTILE_POINTS)


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from mdesign.errors import InputError
    from mdesign.gan import decode, latent_shape, load_checkpoint, sample_latents
    from mdesign.gan.sampling import decode_memory, sample_fractions, training_fractions
    from mdesign.io import WRITE_SUFFIXES, atomic_paths, read_images, write_images
    from mdesign.memory import check_memory

    if args.plot and not args.report:
        raise InputError("--plot: needs --report (the plot shows the validation)")
    if args.reference and not args.report:
        raise InputError("--reference: needs --report")
    if args.data and not args.report:
        raise InputError("--data: needs --report")
    if args.n is not None and args.n < 1:
        raise InputError(f"-n: must be at least 1, got {args.n}")
    if args.latent and (args.n is not None or args.latent_size is not None):
        raise InputError("--latent: decodes the given latents; -n and --latent-size do not apply")
    check_outputs(
        [
            ("-o", args.output, WRITE_SUFFIXES),
            ("--report", args.report, (".json",)),
            ("--plot", args.plot, (".png",)),
        ],
        inputs=[
            ("--checkpoint", args.checkpoint),
            ("--latent", args.latent),
            ("--reference", args.reference),
            ("--data", args.data),
        ],
    )
    # every input is read before any work: the reference set too
    reference = read_images(args.reference).images if args.reference else None
    ckpt = load_checkpoint(args.checkpoint, device=parse_device(args.device))
    cfg = ckpt.config.sample
    seed = cfg.seed if args.seed is None else args.seed
    periodic = cfg.periodic if args.periodic is None else args.periodic
    binarize = cfg.binarize if args.binarize is None else args.binarize
    # --binarize asks for the generator's own fraction, as do latents given without fractions
    free = args.latent or args.binarize is not None
    rule, quantiles = _fraction_rule(args.fraction, "free" if free else cfg.fraction)
    if rule == "training":
        quantiles = training_fractions(ckpt.data_meta)
        if quantiles is None:
            raise InputError(
                f"--fraction: {args.checkpoint} records no training fractions; give --fraction "
                "V, A:B or free"
            )
    if args.binarize is not None and quantiles is not None:
        raise InputError("--binarize: applies with --fraction free only")
    fractions = None
    if args.latent:
        z, fractions = _read_latents(
            args.latent,
            channels=ckpt.latent_shape[0],
            global_channels=ckpt.config.generator.global_channels,
        )
        if args.binarize is not None:
            fractions = None  # cut by --binarize, as asked
        elif fractions is not None and args.fraction is not None:
            raise InputError(
                f"--fraction: {args.latent} holds the fractions of its latents; leave it out"
            )
    else:
        n = args.n or (ckpt.config.validation.n_images if args.report else cfg.n_images)
        shape = latent_shape(ckpt.config, size=args.latent_size)
        side = shape[1] * ckpt.generator.scale
        check_memory(
            decode_memory(ckpt.generator, n, shape[1:]),
            what=f"{n} images of {side} x {side}",
            param="n" if n >= shape[1] * shape[2] else "size",  # the larger factor
        )
        z = sample_latents(
            n, shape, seed=seed, global_channels=ckpt.config.generator.global_channels
        )
    n = z.shape[0]
    if args.report and n < 2:
        raise InputError("--report: needs at least 2 images")
    if reference is not None and reference.shape[0] < 2 * n:
        raise InputError(
            f"--reference {args.reference}: {reference.shape[0]} images; comparing {n} "
            f"samples needs {2 * n} (two real sets for scale)"
        )
    if fractions is not None:
        rule = "from --latent"
    elif quantiles is not None:
        fractions = sample_fractions(n, quantiles, seed=seed)
    images = decode(ckpt.generator, z, fractions=fractions, periodic=periodic, binarize=binarize)
    report = _validate(args, ckpt, images, reference, seed=seed) if args.report else None
    meta = run_meta(
        "sample",
        checkpoint=str(args.checkpoint),
        epoch=ckpt.epoch,
        seed=None if args.latent else seed,
        latent=args.latent,
        periodic=periodic,
        fraction=rule,
        binarize=binarize if fractions is None else None,
    )
    # all outputs at the end, renamed into place together: a failure writes none of them
    with atomic_paths(args.output, args.report, args.plot) as (out, rep, plot):
        extra = {} if fractions is None else {"volume_fraction": np.asarray(fractions, np.float64)}
        write_images(out, images, meta=meta, latents=np.asarray(z, dtype=np.float32), **extra)
        if report is not None:
            rep.write_text(json.dumps(report[0], indent=1) + "\n")
        if plot is not None:
            from mdesign.gan.validation import plot_validation

            plot_validation(report[1], images, report[2], plot, title=f"{args.checkpoint}")
    note(
        args,
        f"wrote {images.shape[0]} images of {images.shape[1]}x{images.shape[2]} to {args.output}",
    )
    if report is not None:
        summary = report[0]
        note(
            args,
            f"S2 distance generated-vs-real {summary['s2_distance_generated']:.5f}, "
            f"real-vs-real {summary['s2_distance_real']:.5f} (ratio {summary['s2_ratio']:.2f}, "
            f"goal <= 2); fractions KS {summary['volume_fraction_ks_generated']:.3f}, std ratio "
            f"{summary['volume_fraction_std_ratio']:.2f}; specific surface "
            f"{100 * summary['specific_surface_error']:+.1f}% (std ratio "
            f"{summary['specific_surface_std_ratio']:.2f}), clusters per phase "
            + " / ".join(f"{100 * e:+.1f}%" for e in summary["clusters_error"])
            + f", anisotropy x{summary['anisotropy_ratio']:.2f} (goal <= 1.2)"
            + f"; wrote {args.report}"
            + (f" and {args.plot}" if args.plot else ""),
        )
        mem = summary.get("memorisation")
        if mem is not None:
            note(
                args,
                "memorisation: nearest-training-tile distance of the samples median "
                f"{mem['samples']['median']:.4f} (5% {mem['samples']['q05']:.4f}), of the "
                f"held-out tiles median {mem['holdout']['median']:.4f} (5% "
                f"{mem['holdout']['q05']:.4f}); "
                f"{100 * mem['share_of_samples_nearer_than_any_holdout']:.1f}% of the samples "
                "nearer than any held-out tile"
                + ("" if mem["goal_met"] else " (the GAN may have memorised its training tiles)"),
            )
    return 0


def _validate(args: argparse.Namespace, ckpt, images, reference, *, seed: int):
    """The report, the validation and the real images it compared with."""
    from mdesign.errors import InputError
    from mdesign.gan.validation import reference_sets, validate

    n = images.shape[0]
    near = ckpt.path.parent if ckpt.path is not None else None
    if reference is not None:
        real, real_b = reference[:n], reference[n : 2 * n]
        source = str(args.reference)
    else:
        real, real_b, source = reference_sets(
            ckpt.data_meta, n, seed=seed, data=args.data, near=near
        )
    if real.shape[1:] != images.shape[1:]:
        raise InputError(
            f"--latent-size: the samples are {images.shape[1]} x {images.shape[2]} but the real "
            f"images {real.shape[1]} x {real.shape[2]}; validate at the training size"
        )
    r_max = min(ckpt.config.validation.max_distance, min(images.shape[1:]) // 2)
    rep = validate(images, real, real_b, max_distance=r_max)
    summary = {
        "checkpoint": str(args.checkpoint),
        "epoch": ckpt.epoch,
        "reference": source,
        "image_shape": list(images.shape[1:]),
        **rep.summary(),
    }
    if not isinstance(ckpt.data_meta.get("grf"), dict) and reference is None:
        # a GAN trained on the user's tiles: are its samples copies of them?
        from mdesign.dataset import find_training_data, memorisation

        found = find_training_data(ckpt.data_meta, data=args.data, near=near)
        summary["memorisation"] = memorisation(images, found)
    return summary, rep, real
