"""``mdesign grf``: level-cut Gaussian random field microstructures."""

from __future__ import annotations

import argparse

from mdesign.cli._common import (
    SEED_HELP,
    add_quiet,
    check_outputs,
    note,
    parse_range,
    parse_ranges,
    run_meta,
    seed_type,
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "grf",
        help="level-cut Gaussian random field microstructures with exact phase fractions",
        description=(
            "Level-cut Gaussian random fields (Torquato 2002). Each image's phase fractions hit "
            "their targets to within one pixel. A value written A:B is drawn per image uniformly "
            "in [A, B]. The correlation length is in pixels: for the gaussian covariance the "
            "field's correlation falls to 1/e at that distance, and blobs are about 2-2.5 "
            "correlation lengths across (see mdesign.grf). Options not given take their "
            "defaults from mdesign.config.GRFConfig."
        ),
    )
    p.add_argument("-n", type=int, required=True, help="number of images")
    p.add_argument(
        "--size",
        type=int,
        nargs="+",
        required=True,
        metavar="H",
        help="H [W [D]]: image size in pixels (W defaults to H; D makes volumes)",
    )
    p.add_argument(
        "--volume-fraction",
        required=True,
        metavar="V|A:B",
        help="fraction of phase 1; with --phases K > 2, one value for each of phases "
        "1..K-1 or a comma-separated list of K-1 values",
    )
    p.add_argument(
        "--correlation-length",
        required=True,
        metavar="L|A:B",
        help="correlation length of the field in pixels, > 0 and <= the image side",
    )
    p.add_argument(
        "--anisotropy",
        metavar="R|A:B",
        help="ratio of the correlation length along --angle to the one across it",
    )
    p.add_argument(
        "--angle",
        metavar="DEG|A:B",
        help="direction of the long axis, degrees counter-clockwise from x",
    )
    p.add_argument("--phases", type=int, metavar="K", help="number of phases (2..8)")
    p.add_argument("--covariance", choices=["gaussian", "exponential", "matern"])
    p.add_argument(
        "--no-periodic",
        dest="periodic",
        action="store_false",
        default=None,
        help="non-periodic fields (circulant embedding) instead of tileable ones",
    )
    p.add_argument(
        "--seed", type=seed_type, required=True, metavar="S", help=f"random seed, {SEED_HELP}"
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT.npz",
        help="output stack (.npz), or .png for a picture of the images",
    )
    add_quiet(p)
    p.set_defaults(run=run, param_flags={"shape": "--size"})


def run(args: argparse.Namespace) -> int:
    from mdesign.config import GRFConfig, load_config
    from mdesign.errors import InputError
    from mdesign.grf import grf_memory, grf_microstructures
    from mdesign.io import VOLUME_WRITE_SUFFIXES, WRITE_SUFFIXES, write_images
    from mdesign.memory import format_bytes, memory_budget

    volumes = len(args.size) == 3
    check_outputs([("-o", args.output, VOLUME_WRITE_SUFFIXES if volumes else WRITE_SUFFIXES)])
    cfg = load_config(
        GRFConfig, phases=args.phases, covariance=args.covariance, periodic=args.periodic
    )
    if len(args.size) > 3:
        raise InputError(f"--size: expected H [W [D]], got {len(args.size)} numbers")
    if any(s <= 0 for s in args.size):
        raise InputError(f"--size: sizes must be positive, got {' '.join(map(str, args.size))}")
    shape = tuple(args.size) if len(args.size) > 1 else (args.size[0], args.size[0])
    need = grf_memory(args.n, shape, periodic=cfg.periodic, chunk_size=cfg.chunk_size)
    budget = memory_budget()
    if args.n > 0 and need > 2**30 and (budget is None or need <= budget):
        # a size over the budget is refused by grf_microstructures, with one error line
        note(args, f"note: this needs about {format_bytes(need)} of memory")
    vf = parse_ranges(args.volume_fraction, option="--volume-fraction")
    res = grf_microstructures(
        args.n,
        shape,
        volume_fraction=vf if len(vf) > 1 else vf[0],
        correlation_length=parse_range(args.correlation_length, option="--correlation-length"),
        anisotropy=(
            parse_range(args.anisotropy, option="--anisotropy")
            if args.anisotropy is not None
            else cfg.anisotropy
        ),
        angle=parse_range(args.angle, option="--angle") if args.angle is not None else cfg.angle,
        covariance=cfg.covariance,
        nu=cfg.matern_nu,
        phases=cfg.phases,
        periodic=cfg.periodic,
        chunk_size=cfg.chunk_size,
        seed=args.seed,
        progress=not args.quiet,
    )
    meta = run_meta(
        "grf",
        seed=args.seed,
        shape=shape,
        volume_fraction=args.volume_fraction,
        correlation_length=args.correlation_length,
        anisotropy=args.anisotropy,
        angle=args.angle,
        config=cfg.model_dump(mode="json"),
    )
    write_images(
        args.output,
        res.images,
        meta=meta,
        volume_fraction=res.volume_fraction,
        phase_fractions=res.phase_fractions,
        correlation_length=res.correlation_length,
        anisotropy=res.anisotropy,
        angle=res.angle,
    )
    size = "x".join(map(str, shape))
    note(args, f"wrote {res.images.shape[0]} images of {size} to {args.output}")
    return 0
