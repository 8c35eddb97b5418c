"""``mdesign characterize``: descriptors of a stack or image."""

from __future__ import annotations

import argparse
import json
import sys

from mdesign.cli._common import add_phases, add_quiet, check_outputs, note


def add_parser(sub) -> None:
    p = sub.add_parser(
        "characterize",
        help="volume fractions, S2, lineal path, chord lengths and specific surface",
        description=(
            "Descriptors averaged over the images of INPUT (.npz stack, .npy, .png, .tif), or "
            "over the volumes of an (N, H, W, D) .npz/.npy. "
            "s2[r] is the periodic two-point probability of phase P averaged over displacements "
            "with round(|d|) = r (3D displacements for volumes); lineal_path[r] the probability "
            "that r+1 consecutive pixels along an axis all lie in P (periodic, averaged over x "
            "and y, or x, y and z)."
        ),
    )
    p.add_argument("input", metavar="INPUT")
    p.add_argument(
        "--phase",
        type=int,
        default=1,
        metavar="P",
        help="the phase the correlation functions describe (default 1)",
    )
    p.add_argument(
        "--max-distance",
        type=int,
        metavar="R",
        help="largest distance in pixels (default: a quarter of the smallest side)",
    )
    p.add_argument(
        "--volume",
        action="store_true",
        help="read a multi-page .tif as one volume (pages along H) rather than a stack of "
        "images; a .tif written by `reconstruct --size H W D` is read as a volume without it",
    )
    add_phases(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--plot", metavar="OUT.png", help="write a figure of the descriptors")
    add_quiet(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mdesign.descriptors import characterize, characterize_memory
    from mdesign.io import peek_images, read_images
    from mdesign.memory import check_memory

    check_outputs([("--plot", args.plot, (".png",))], inputs=[("INPUT", args.input)])
    # refuse, from the file's header, an image too large to characterize before reading it
    shape, _ = peek_images(args.input)
    dims = " x ".join(map(str, shape))
    check_memory(
        characterize_memory(shape, max_distance=args.max_distance),
        what=f"characterizing {args.input} ({dims})",
    )
    stack = read_images(args.input, phases=args.phases, volumes=True, tiff_volume=args.volume)
    if stack.note:
        note(args, f"note: {stack.note}")
    char = characterize(stack.images, phase=args.phase, max_distance=args.max_distance)
    report = char.summary()
    if args.plot:
        from mdesign.plotting import plot_characterization

        plot_characterization(char, stack.images, args.plot, title=str(args.input))
        note(args, f"wrote {args.plot}")
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_table(report)
    return 0


def _print_table(report: dict) -> None:
    fr = ", ".join(f"{f:.4f}" for f in report["volume_fractions"])
    lines = [
        f"images            {report['n_images']} of {'x'.join(map(str, report['shape']))}",
        f"volume fractions  {fr}",
        f"specific surface  {report['specific_surface']:.4f} /px (phase {report['phase']}, "
        f"{'area per volume' if len(report['shape']) == 3 else 'length per area'})",
        f"mean chord        {report['mean_chord_length']} px",
        "   r      S2       L",
    ]
    step = max(1, len(report["s2"]) // 8)
    for r in range(0, len(report["s2"]), step):
        lines.append(f"{r:4d}  {report['s2'][r]:.4f}  {report['lineal_path'][r]:.4f}")
    print("\n".join(lines))
