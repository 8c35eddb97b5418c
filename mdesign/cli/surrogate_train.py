"""``mdesign surrogate-train``: fit a structure-property surrogate on labelled images."""

from __future__ import annotations

import argparse

from mdesign.cli._common import (
    SEED_HELP,
    add_quiet,
    apply_threads,
    check_outputs,
    note,
    parse_params,
    seed_type,
)

MODELS = ("frozen", "finetune", "scratch", "s2_gp")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "surrogate-train",
        help="fit a structure-property surrogate (transfer from the GAN discriminator, "
        "scratch, or PCA(S2) + GP) on labelled images",
        description=(
            "Fit a surrogate image -> property on the two-phase images of DATA.npz and save it "
            "(state dicts + config) to OUT.pt, for `mdesign evaluate --evaluator surrogate "
            "--param model=OUT.pt` and `mdesign surrogate-screen`. The values are an array of "
            "DATA.npz (--values KEY) or computed by an evaluator (--evaluator NAME --param "
            "KEY=VALUE). Settings not given come from --config, else from "
            "mdesign.config.SurrogateConfig (configs/surrogates.yaml)."
        ),
    )
    p.add_argument("--data", required=True, metavar="DATA.npz", help="two-phase label stack")
    p.add_argument("--out", required=True, metavar="OUT.pt", help="model file to write")
    p.add_argument("--model", required=True, choices=MODELS, help="which surrogate")
    p.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="GAN whose discriminator is the pretrained trunk (frozen, finetune; default: the "
        "paper network's artifacts/gan_paper/checkpoint.pt, whose discriminator transfers best), "
        "or a surrogate .pt of another property (cross-property transfer)",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--values", metavar="KEY", help="array of DATA.npz holding the targets")
    src.add_argument("--evaluator", metavar="NAME", help="evaluator that labels the images")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of --evaluator (repeatable)",
    )
    p.add_argument("--config", metavar="FILE.yaml", help="a SurrogateConfig YAML")
    p.add_argument("--ensemble", type=int, metavar="M", help="members (network.ensemble_size)")
    p.add_argument(
        "--seed",
        type=seed_type,
        metavar="S",
        help=f"seed of the fit (splits, initialisation), {SEED_HELP}",
    )
    p.add_argument(
        "--threads", type=int, metavar="T", help="torch threads (default: torch's choice)"
    )
    add_quiet(p)
    p.set_defaults(run=run, param_flags={"path": "--checkpoint"})


def run(args: argparse.Namespace) -> int:

    import numpy as np

    from mdesign.config import SurrogateConfig, load_config
    from mdesign.errors import InputError
    from mdesign.evaluators import evaluate_batch, evaluator_params, get_evaluator
    from mdesign.gan.checkpoint import PAPER_CHECKPOINT
    from mdesign.io import read_images
    from mdesign.surrogates import make_surrogate, save_surrogate
    from mdesign.surrogates.sources import load_transfer_source

    if args.ensemble is not None and args.ensemble < 1:
        raise InputError(f"--ensemble: must be at least 1, got {args.ensemble}")
    if args.param and not args.evaluator:
        raise InputError("--param: only with --evaluator")
    check_outputs(
        [("--out", args.out, (".pt",))],
        inputs=[
            ("--data", args.data),
            ("--config", args.config),
            ("--checkpoint", args.checkpoint),
        ],
    )
    config = load_config(SurrogateConfig, args.config)
    apply_threads(args.threads)
    evaluator = (
        get_evaluator(args.evaluator, **parse_params(args.param)) if args.evaluator else None
    )
    stack = read_images(args.data)
    images = stack.images
    if stack.n_phases != 2:
        raise InputError(f"--data {args.data}: surrogates take two-phase images")
    # the pretrained trunk is an input too: read it before the (possibly long) labelling
    source = None
    if args.model != "s2_gp" and (args.model != "scratch" or args.checkpoint):
        source = load_transfer_source(args.checkpoint or str(PAPER_CHECKPOINT))
    if args.values is not None:
        if args.values not in stack.extras:
            keys = ", ".join(k for k in stack.extras if k != "meta") or "none"
            raise InputError(f"--values: {args.data} has no array {args.values!r} (arrays: {keys})")
        raw = np.asarray(stack.extras[args.values])
        if raw.dtype.kind not in "biuf":
            raise InputError(
                f"--values {args.values}: expected numbers, got an array of dtype {raw.dtype}"
            )
        values = raw.astype(np.float64).reshape(-1)
        if values.shape != (len(images),):
            raise InputError(
                f"--values {args.values}: {values.size} values for {len(images)} images"
            )
        target = {"values": args.values, "data": str(args.data)}
    else:
        note(args, f"labelling {len(images)} images with {evaluator.name}")
        res = evaluate_batch(evaluator, images, progress=not args.quiet)
        values = res.values
        target = {"evaluator": args.evaluator, "params": evaluator_params(evaluator)}
    ok = np.isfinite(values)
    if not ok.any():
        what = (
            f"--values {args.values}"
            if args.values is not None
            else f"--evaluator {args.evaluator}"
        )
        raise InputError(f"{what}: none of the {len(values)} values is finite; nothing to fit")
    if not ok.all():
        note(args, f"note: {int((~ok).sum())} images without a finite value are left out")
    model = make_surrogate(args.model, gan=source, config=config)
    kw = {} if args.model == "s2_gp" else {"ensemble_size": args.ensemble}
    if args.seed is not None:
        kw["seed"] = args.seed
    model.fit(images[ok], values[ok], target=target, progress=not args.quiet, **kw)
    save_surrogate(model, args.out)
    info = model.fit_info
    note(
        args,
        f"fitted {args.model} on {info.n_images} images in {info.seconds:.1f} s; wrote {args.out}",
    )
    return 0
