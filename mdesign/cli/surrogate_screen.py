"""``mdesign surrogate-screen``: rank designs by a surrogate, confirm the best with the truth."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "surrogate-screen",
        help="rank the images of a stack by a surrogate and confirm the top ones with the "
        "true evaluator",
        description=(
            "Predict every image of INPUT with a surrogate model (mean and uncertainty), rank "
            "them by mean + kappa * std (mean - kappa * std with --minimize), and evaluate the "
            "top K with the true evaluator (--evaluator NAME --param KEY=VALUE). Settings not "
            "given come from --config, else from mdesign.config.SurrogateConfig "
            "(configs/surrogates.yaml, its screen section)."
        ),
    )
    p.add_argument("input", metavar="INPUT", help="candidate designs (.npz stack, image)")
    p.add_argument("--model", required=True, metavar="MODEL.pt", help="a surrogate model")
    p.add_argument("--evaluator", required=True, metavar="NAME", help="the true evaluator")
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="of --evaluator"
    )
    p.add_argument("--top", type=int, metavar="K", help="designs to confirm (screen.top_k)")
    p.add_argument("--kappa", type=float, metavar="W", help="weight of the std (screen.kappa)")
    p.add_argument("--minimize", action="store_true", help="smaller values are better")
    p.add_argument("--config", metavar="FILE.yaml", help="a SurrogateConfig YAML (its screen)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument(
        "-o", "--output", metavar="TOP.npz", help="write the confirmed images with their values"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    import numpy as np

    from mdesign.cli._common import check_outputs, note, parse_params, run_meta
    from mdesign.config import SurrogateConfig, load_config
    from mdesign.errors import InputError
    from mdesign.evaluators import get_evaluator
    from mdesign.io import read_images, write_images
    from mdesign.surrogates import load_surrogate
    from mdesign.surrogates.screening import screen

    cfg = load_config(SurrogateConfig, args.config).screen
    top = cfg.top_k if args.top is None else args.top
    kappa = cfg.kappa if args.kappa is None else args.kappa
    if top < 1:
        raise InputError(f"--top: must be at least 1, got {top}")
    if not (kappa >= 0 and np.isfinite(kappa)):
        raise InputError(f"--kappa: must be finite and >= 0, got {kappa}")
    check_outputs(
        [("-o", args.output, (".npz",))],
        inputs=[("INPUT", args.input), ("--model", args.model), ("--config", args.config)],
    )
    model = load_surrogate(args.model)
    evaluator = get_evaluator(args.evaluator, **parse_params(args.param))
    stack = read_images(args.input)
    if stack.n_phases != 2:
        raise InputError(f"{args.input}: surrogates take two-phase images")
    res = screen(
        stack.images,
        model,
        evaluator,
        top_k=top,
        kappa=kappa,
        maximize=not args.minimize,
        progress=not args.quiet,
    )
    report = {"model": args.model, "evaluator": args.evaluator, "kappa": kappa, **res.as_dict()}
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        lines = [f"{'image':>6}  {'predicted':>10}  {'std':>8}  {'true':>10}"]
        for i, v in zip(res.confirmed, res.values, strict=True):
            true = "failed" if not np.isfinite(v) else f"{v:.6g}"
            lines.append(f"{int(i):6d}  {res.mean[i]:10.6g}  {res.std[i]:8.3g}  {true:>10}")
        print("\n".join(lines))
    if args.output:
        extra = {}
        latents = stack.extras.get("latents")
        if latents is not None and len(latents) == len(stack.images):
            extra["latents"] = np.asarray(latents)[res.confirmed]
        write_images(
            args.output,
            stack.images[res.confirmed],
            meta=run_meta("surrogate-screen", model=args.model, evaluator=args.evaluator),
            index=res.confirmed.astype(np.int64),
            value=res.values,
            predicted=res.mean[res.confirmed],
            predicted_std=res.std[res.confirmed],
            **extra,
        )
    best = "none (all failed)" if res.best is None else f"image {res.best} = {res.best_value:.6g}"
    note(
        args,
        f"screened {len(stack.images)} images in {res.seconds_screen:.2f} s, confirmed "
        f"{len(res.confirmed)} in {res.seconds_confirm:.2f} s; best confirmed: {best}",
    )
    return 0
