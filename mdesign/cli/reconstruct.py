"""``mdesign reconstruct``: a microstructure reconstructed from one exemplar."""

from __future__ import annotations

import argparse

from mdesign.cli._common import (
    SEED_HELP,
    add_phases,
    add_quiet,
    check_outputs,
    note,
    run_meta,
    seed_type,
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="Gram-matrix reconstruction from one exemplar (Li et al. 2018)",
        description=(
            "Reconstruct a statistically equivalent microstructure from one exemplar: L-BFGS on "
            "the pixels matches the Gram matrices of VGG19 features (Gatys et al. 2015) and, by "
            "default, the two-point correlation S2; k-means decodes the phases and simulated "
            "annealing makes the phase fractions exact (to one pixel) while keeping S2 close. "
            "With --size H W D, a volume whose orthogonal slices match the exemplar (or three "
            "exemplars, one per axis): Adam on the voxels against the Gram loss of slices drawn "
            "along each axis and the S2 of the volume's planes, from a fitted 3D GRF, then a 3D "
            "annealing. "
            "Options not given take their defaults from --config, else from "
            "mdesign.config.ReconstructionConfig (configs/reconstruct.yaml)."
        ),
    )
    p.add_argument(
        "exemplar",
        metavar="EXEMPLAR",
        nargs="+",
        help="one 2D image (.npy, .npz, .png, .tif); for a volume (--size H W D) one exemplar "
        "for every axis, or three: those of the slices normal to H, to W and to D",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT.npz",
        help="the reconstruction (.npz stack of one image or volume, .npy, .tif (a volume: one "
        "page per H), or .png (2D only))",
    )
    p.add_argument(
        "--size",
        type=int,
        nargs="+",
        metavar="H",
        help="H [W [D]]: output size in pixels (default: the exemplar's; at least 32); "
        "H W D makes a volume whose orthogonal slices match the exemplar(s)",
    )
    p.add_argument("--iterations", type=int, metavar="N", help="L-BFGS iterations")
    p.add_argument(
        "--weights",
        metavar="normalized|imagenet|random|PATH",
        help="VGG19 weights: the normalised VGG19 of Gatys et al. that Li et al. used (default; "
        "fetched once into the local cache by `mdesign weights`), torchvision's ImageNet weights "
        "(downloaded once into the torch hub cache), a seeded random initialisation (offline), "
        "or a local state dict",
    )
    p.add_argument("--seed", type=seed_type, metavar="S", help=f"random seed, {SEED_HELP}")
    p.add_argument("--report", metavar="REPORT.json", help="write the errors and timings as JSON")
    p.add_argument(
        "--plot",
        metavar="PLOT.png",
        help="write exemplar | reconstruction | S2 and lineal-path curves",
    )
    p.add_argument("--config", metavar="FILE.yaml", help="reconstruction settings (YAML)")
    p.add_argument(
        "--s2-weight", type=float, metavar="W", help="weight of the S2 term (0: Gram loss only)"
    )
    p.add_argument(
        "--coarse-to-fine",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="optimise at half size first, then refine",
    )
    p.add_argument(
        "--no-periodic",
        dest="periodic",
        action="store_false",
        default=None,
        help="non-periodic output (zero padding) instead of a tileable one",
    )
    add_phases(p)
    add_quiet(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from mdesign.config import ReconstructionConfig, load_config, override
    from mdesign.dataset import labels_sha256
    from mdesign.errors import InputError
    from mdesign.io import (
        VOLUME_WRITE_SUFFIXES,
        WRITE_SUFFIXES,
        atomic_paths,
        read_images,
        write_images,
    )
    from mdesign.memory import check_memory
    from mdesign.reconstruction import check_exemplars, check_size, reconstruct
    from mdesign.reconstruction.pipeline import reconstruction_memory

    volume = args.size is not None and len(args.size) == 3
    if args.size is not None and len(args.size) > 3:
        raise InputError(f"--size: expected H [W [D]], got {len(args.size)} numbers")
    if len(args.exemplar) > 1 and not volume:
        raise InputError(
            f"{len(args.exemplar)} exemplars: several exemplars (one per axis) need a volume "
            "(--size H W D)"
        )
    suffixes = VOLUME_WRITE_SUFFIXES if volume else WRITE_SUFFIXES
    check_outputs(
        [
            ("-o", args.output, suffixes),
            ("--report", args.report, (".json",)),
            ("--plot", args.plot, (".png",)),
        ],
        inputs=[*(("EXEMPLAR", ex) for ex in args.exemplar), ("--config", args.config)],
    )
    cfg = override(
        load_config(ReconstructionConfig, args.config, seed=args.seed, periodic=args.periodic),
        {
            # --iterations: L-BFGS iterations of an image, Adam steps of a volume
            f"{'slices' if volume else 'optimiser'}.iterations": (args.iterations, "iterations"),
            "texture.weights": (args.weights, "weights"),
            "texture.s2_weight": (args.s2_weight, "s2_weight"),
            "optimiser.coarse_to_fine": (args.coarse_to_fine, "coarse_to_fine"),
        },
    )
    size = None
    if args.size is not None:
        size = check_size(args.size if volume else (args.size[0], args.size[-1]))
    exemplars = []
    for path in args.exemplar:
        stack = read_images(path, phases=args.phases)
        if stack.note:
            note(args, f"note: {stack.note}")
        exemplars.append(stack.images)
    sources = [str(p) for p in args.exemplar]
    check_exemplars(exemplars, sources=sources, volume=volume)
    exemplars = [ex[0] for ex in exemplars]
    shape = size or exemplars[0].shape
    dims = " x ".join(map(str, shape))
    check_memory(
        reconstruction_memory(shape, chunk=cfg.slices.chunk),
        what=f"reconstructing {dims}",
        param="size",
    )
    if cfg.texture.weights == "random":
        note(args, "note: random VGG19 weights (--weights random)")
    res = reconstruct(exemplars, size, cfg, progress=not args.quiet)
    report = res.report()
    if not volume and not res.converged:
        note(
            args,
            f"warning: the loss fell only to {res.optimization.loss_ratio:.3g} of its start in "
            f"{res.iterations} iterations, so the result may still be noise; raise --iterations "
            "or --s2-weight",
        )

    meta = run_meta(
        "reconstruct",
        exemplar=sources if volume else sources[0],
        # what `mdesign dataset` compares with its sources (did the reconstruction see the
        # held-out region?)
        exemplar_labels_sha256=(
            [labels_sha256(ex) for ex in exemplars] if volume else labels_sha256(exemplars[0])
        ),
        size=list(res.labels.shape),
        **({} if volume else {"converged": res.converged}),
        config=cfg.model_dump(mode="json"),
    )
    fractions = np.asarray(report["volume_fraction_reconstruction"])
    # all outputs at the end, renamed into place together: a failure writes none of them
    with atomic_paths(args.output, args.report, args.plot) as (out, rep, plot):
        write_images(
            out,
            res.labels[None] if volume else res.labels,
            meta=meta,
            volume_fraction=fractions[1:2],
        )
        if rep is not None:
            rep.write_text(json.dumps(report, indent=1) + "\n")
        if plot is not None:
            from mdesign.reconstruction.plot import plot_reconstruction

            plot_reconstruction(exemplars, res, plot, title=" ".join(sources))
    if volume:
        per_axis = ", ".join(f"{e.s2_rmse:.4f}" for e in res.axes)
        note(
            args,
            f"wrote {args.output}: {dims}, slice S2 RMSE per axis {per_axis}, {res.seconds:.1f} s",
        )
    else:
        note(
            args,
            f"wrote {args.output}: {dims.replace(' x ', 'x')}, S2 RMSE {res.s2_rmse:.4f}, "
            f"lineal-path RMSE {res.lineal_path_rmse:.4f}, {res.seconds:.1f} s",
        )
    return 0
