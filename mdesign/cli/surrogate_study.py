"""``mdesign surrogate-study``: learning curves of transfer, scratch and S2 + GP surrogates."""

from __future__ import annotations

import argparse

from mdesign.cli._common import add_quiet, apply_threads, check_outputs, note


def add_parser(sub) -> None:
    p = sub.add_parser(
        "surrogate-study",
        help="learning curves of structure-property surrogates (transfer from the GAN "
        "discriminator, scratch, PCA(S2) + GP) and cross-property transfer",
        description=(
            "Label GRF images from the GAN's training distribution (and GAN samples) with each "
            "task's evaluator, train every model on K of them for each K and seed, score on the "
            "held-out images, and write DIR/results.json, DIR/learning_curves.png, "
            "DIR/report.md, DIR/runs.jsonl (one line per run; rerunning on DIR resumes), "
            "DIR/labels/ and the shipped surrogate model for the `surrogate` evaluator. "
            "Settings not given come from --config, else from mdesign.config.SurrogateConfig "
            "(configs/surrogates.yaml)."
        ),
    )
    p.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="the trained GAN: its discriminator is the pretrained trunk, its generator draws "
        "the GAN samples (default: the paper network's artifacts/gan_paper/checkpoint.pt, whose "
        "discriminator transfers best)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--config", metavar="FILE.yaml", help="a SurrogateConfig YAML")
    p.add_argument("--sizes", metavar="K,K,...", help="numbers of labelled images (study.sizes)")
    p.add_argument("--seeds", type=int, metavar="N", help="repetitions (study.seeds)")
    p.add_argument(
        "--threads", type=int, metavar="T", help="torch threads (default: torch's choice)"
    )
    add_quiet(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from mdesign.config import SurrogateConfig, config_from_dict, load_config
    from mdesign.errors import InputError
    from mdesign.gan.checkpoint import PAPER_CHECKPOINT
    from mdesign.runs import run_lock
    from mdesign.surrogates.study import run_study
    from mdesign.surrogates.study.run import study_files

    check_outputs(
        [("--out", args.out, None)],
        inputs=[("--checkpoint", args.checkpoint), ("--config", args.config)],
    )
    config = load_config(SurrogateConfig, args.config)
    raw = config.model_dump()
    if args.sizes is not None:
        try:
            raw["study"]["sizes"] = [int(s) for s in args.sizes.split(",") if s.strip()]
        except ValueError:
            raise InputError(f"--sizes: expected integers K,K,..., got {args.sizes!r}") from None
    if args.seeds is not None:
        raw["study"]["seeds"] = args.seeds
    config = config_from_dict(SurrogateConfig, raw, source="options")
    check_outputs(
        [("--out", args.out, None)],
        inputs=[("--checkpoint", args.checkpoint), ("--config", args.config)],
        writes={"--out": study_files(config)},
    )
    apply_threads(args.threads)
    checkpoint = args.checkpoint or PAPER_CHECKPOINT
    with run_lock(args.out, name="--out", what="surrogate study"):
        res = run_study(
            checkpoint,
            args.out,
            config=config,
            progress=not args.quiet,
            log=lambda msg: note(args, msg),
        )
    note(
        args,
        f"wrote {res.json_path}, {res.figure} and {res.report}"
        + (f"; surrogate model {res.model}" if res.model else "")
        + f" ({res.seconds:.0f} s)",
    )
    sys.stdout.flush()
    return 0
