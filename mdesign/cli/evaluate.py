"""``mdesign evaluate``: property values of a stack or image, one per image."""

from __future__ import annotations

import argparse
import json
import math
import sys

from mdesign.cli._common import add_phases


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="property values of each image (effective_conductivity, optical_absorption, ...)",
        description=(
            "Evaluate a property of every image of INPUT (.npz stack, .npy, .png, .tif; "
            "a .npz or .npy of volumes N x H x W x D for evaluators that take them). "
            "NAME is a registered evaluator (see `mdesign evaluators`) or a module:function "
            "path (the module may be in the current directory; it is imported and run, so "
            "name only code you trust). An image whose evaluation fails (an exception, NaN or "
            "inf) gets null and an entry in `errors`; the others are still evaluated. When "
            "every image fails the report is still printed and the exit code is 2."
        ),
    )
    p.add_argument("input", metavar="INPUT")
    p.add_argument("--evaluator", required=True, metavar="NAME", help="evaluator name or path")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of the evaluator (repeatable; lists comma-separated, e.g. "
        "conductivities=1,10)",
    )
    p.add_argument(
        "--volume",
        action="store_true",
        help="read a multi-page .tif as one volume (pages along H) rather than a stack of "
        "images; a .tif written by `reconstruct --size H W D` is read as a volume without it",
    )
    add_phases(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mdesign.cli._common import note, parse_params
    from mdesign.errors import InputError
    from mdesign.evaluators import evaluate_batch, evaluator_params, get_evaluator
    from mdesign.io import read_images

    params = parse_params(args.param)
    evaluator = get_evaluator(args.evaluator, **params)
    stack = read_images(args.input, phases=args.phases, volumes=True, tiff_volume=args.volume)
    if stack.note:
        note(args, f"note: {stack.note}")
    phases = getattr(evaluator, "phases", None)
    if phases is not None and phases != stack.n_phases:
        key = getattr(evaluator, "phases_parameter", "parameters")
        raise InputError(
            f"--param {key}: {phases} values for {phases} phases, but {args.input} has "
            f"{stack.n_phases} phases (labels 0..{stack.n_phases - 1})"
        )
    check = getattr(evaluator, "check_images", None)
    if check is not None:
        check(stack.images)
    result = evaluate_batch(evaluator, stack.images, progress=not args.quiet)
    values = [None if math.isnan(v) else float(v) for v in result.values]
    report = {
        "evaluator": args.evaluator,
        "params": evaluator_params(evaluator),
        "values": values,
        "errors": [{"index": e.index, "message": e.message} for e in result.errors],
    }
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        lines = [f"{'image':>6}  {evaluator.name}"]
        lines += [f"{i:6d}  {'failed' if v is None else f'{v:.6g}'}" for i, v in enumerate(values)]
        for e in result.errors:
            lines.append(f"error: image {e.index}: {e.message}")
        print("\n".join(lines))
    n_ok = sum(v is not None for v in values)
    if n_ok == 0:
        # nothing evaluated: the report above says why per image; the exit code says it failed
        first = result.errors[0].message if result.errors else "no value"
        raise InputError(
            f"{args.input}: the evaluation failed for every image ({len(values)}); first: {first}"
        )
    note(args, f"{n_ok} of {len(values)} images evaluated in {result.seconds:.2f} s")
    return 0
