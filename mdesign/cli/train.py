"""``mdesign train``: train the DCGAN design space on a GRF label stack."""

from __future__ import annotations

import argparse

from mdesign.cli._common import SEED_HELP, add_quiet, check_outputs, note, parse_device, seed_type


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train the DCGAN (latent design space) on a two-phase label stack",
        description=(
            "Train the DCGAN of Yang et al. (2018) on a two-phase .npz label stack. Every epoch "
            "writes DIR/checkpoint.pt (resumable: networks, optimisers, config, epoch, RNG "
            "state), DIR/model.pt (inference weights only), a line of DIR/metrics.jsonl and "
            "DIR/samples/epoch_NNNN.png; DIR/config.yaml is the config used. Settings not "
            "given come from --config, else from mdesign.config.GANConfig (the paper's network, "
            "artifacts/gan_paper); --config configs/gan.yaml trains the shipped model's recipe "
            "(artifacts/gan). generator.latent_size, unless the config sets it, follows the "
            "images (side / 32). The checkpoint records where the data came from (its path, "
            "sha256 and, for a set made by `mdesign dataset`, its sources and held-out tiles). "
            "Uses CUDA when present."
        ),
    )
    p.add_argument("--data", required=True, metavar="DATA.npz", help="training label stack")
    p.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="a GANConfig YAML (configs/gan.yaml: the shipped model's)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="run directory")
    p.add_argument("--epochs", type=int, metavar="E", help="total epochs (train.epochs)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue DIR/checkpoint.pt exactly where it stopped, up to --epochs",
    )
    p.add_argument(
        "--seed", type=seed_type, metavar="S", help=f"training seed (train.seed), {SEED_HELP}"
    )
    p.add_argument("--device", metavar="DEV", help="cpu or cuda (default: cuda if present)")
    add_quiet(p)
    p.set_defaults(run=run, param_flags={"out_dir": "--out", "images": "--data"})


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mdesign.config import GANConfig, config_from_dict, load_config, read_yaml
    from mdesign.errors import InputError
    from mdesign.gan.training import CHECKPOINT, data_provenance, train
    from mdesign.io import read_images

    data = Path(args.data)
    if data.suffix.lower() != ".npz":
        raise InputError(f"--data {data}: expected a .npz label stack")
    if args.epochs is not None and args.epochs < 1:
        raise InputError(f"--epochs: must be at least 1, got {args.epochs}")
    check_outputs([("--out", args.out, None)], inputs=[("--data", data), ("--config", args.config)])
    ckpt = Path(args.out) / CHECKPOINT
    if args.resume and not ckpt.is_file():
        raise InputError(f"--resume: {ckpt} does not exist; nothing to resume")
    if not args.resume and ckpt.exists():
        raise InputError(
            f"--out {args.out}: already holds {CHECKPOINT}; use --resume to continue it, or a "
            "new --out"
        )
    stack = read_images(data)
    config = None
    if args.config is not None or args.seed is not None or not args.resume:
        config = load_config(GANConfig, args.config)
        raw = config.model_dump()
        if args.seed is not None:
            raw["train"]["seed"] = args.seed
        given = read_yaml(args.config) if args.config is not None else {}
        side = stack.images.shape[-1]
        if (
            "latent_size" not in (given.get("generator") or {})
            and stack.images.ndim == 3
            and side % config.scale == 0
            and side // config.scale != config.generator.latent_size
        ):
            # the latent map that makes the data's tiles: derived from them, not a default
            raw["generator"]["latent_size"] = side // config.scale
            note(
                args,
                f"note: generator.latent_size {side // config.scale} (images of {side} x "
                f"{side}, {config.scale} pixels per latent cell)",
            )
        config = config_from_dict(GANConfig, raw, source="--seed")
    meta = data_provenance(stack.images, source=str(data), meta=stack.extras.get("meta"))
    res = train(
        stack.images,
        args.out,
        config,
        epochs=args.epochs,
        resume=args.resume,
        data_meta=meta,
        device=parse_device(args.device),
        progress=not args.quiet,
    )
    last = res.metrics[-1] if res.metrics else None
    if last is None:
        note(args, f"{res.checkpoint} has already reached epoch {res.epoch}; nothing to do")
    else:
        note(
            args,
            f"trained to epoch {res.epoch} ({last['seconds']:.1f} s for the last epoch); "
            f"wrote {res.checkpoint}, {res.model} and {res.out_dir / 'metrics.jsonl'}",
        )
    return 0
