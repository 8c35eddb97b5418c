"""``mdesign segment``: phase labels of a grayscale micrograph, and a figure to check them."""

from __future__ import annotations

import argparse

from mdesign.cli._common import add_quiet, check_outputs, note, run_meta


def add_parser(sub) -> None:
    p = sub.add_parser(
        "segment",
        help="segment a grayscale micrograph into phases (background, denoising, Otsu)",
        description=(
            "Segment a grayscale micrograph (.png, .tif, .npy, or the first image of a .npz) "
            "into K phases: crop (a scale bar or data bar away; an image that still holds one "
            "is refused), optionally denoise (median, bilateral, non-local means), correct the "
            "uneven illumination (a smooth background fitted with the phases), Otsu's or "
            "multi-Otsu (or minimum-error) thresholds, then a Potts relabelling and one under "
            "a Markov random field learned from the labels. Writes the labels (a .npz stack "
            "of one image whose meta states every choice, the thresholds and the input's "
            "sha256) and, with --plot, a figure to check them by eye. Settings not given come "
            "from --config, else from mdesign.config.SegmentConfig (configs/segment.yaml)."
        ),
    )
    p.add_argument("image", metavar="IMAGE", help="grayscale micrograph")
    p.add_argument(
        "-o", "--output", required=True, metavar="LABELS.npz", help="labels (.npz, .png, ...)"
    )
    p.add_argument("--plot", metavar="OVERLAY.png", help="input, processed image, overlay")
    p.add_argument("--config", metavar="FILE.yaml", help="a SegmentConfig YAML")
    p.add_argument("--phases", type=int, metavar="K", help="number of phases (phases)")
    p.add_argument(
        "--crop",
        metavar="Y0:Y1,X0:X1",
        help="keep image[Y0:Y1, X0:X1] (Python slices; 0:-60,: drops 60 rows at the bottom)",
    )
    p.add_argument(
        "--denoise", choices=["none", "median", "bilateral", "nl_means"], help="(denoise)"
    )
    p.add_argument("--background", choices=["none", "polynomial", "gaussian"], help="(background)")
    p.add_argument("--background-mode", choices=["divide", "subtract"], help="(background_mode)")
    p.add_argument(
        "--threshold",
        choices=["otsu", "min_error"],
        help="Otsu / multi-Otsu, or Kittler-Illingworth's minimum error (threshold)",
    )
    p.add_argument(
        "--regularize",
        choices=["none", "potts", "learned"],
        help="Potts relabelling, then (learned) one with a prior learned from the labels "
        "(regularize)",
    )
    add_quiet(p)
    p.set_defaults(run=run)


def parse_crop(text: str, *, option: str = "--crop") -> tuple[int | None, ...]:
    """``"Y0:Y1,X0:X1"`` (empty ends allowed, ``:`` for a whole axis) to ``(y0, y1, x0, x1)``."""
    from mdesign.errors import InputError

    parts = text.split(",")
    if len(parts) != 2:
        raise InputError(f"{option}: expected Y0:Y1,X0:X1, got {text!r}")
    out: list[int | None] = []
    for part in parts:
        ends = part.split(":")
        if len(ends) != 2:
            raise InputError(f"{option}: expected Y0:Y1,X0:X1, got {text!r}")
        for e in ends:
            try:
                out.append(int(e) if e.strip() else None)
            except ValueError:
                raise InputError(f"{option}: expected integers, got {text!r}") from None
    return tuple(out)


def read_gray(path) -> tuple:
    """The pixels of a grayscale image file, unconverted (a colour image stays RGB, so that
    :func:`mdesign.segment.segment` can refuse it), and the file's sha256."""
    import hashlib
    from pathlib import Path

    import numpy as np

    from mdesign.errors import InputError
    from mdesign.io import peek_images, read_memory
    from mdesign.memory import check_memory

    path = Path(path)
    suffix = path.suffix.lower()
    shape, dtype = peek_images(path)  # a missing file or an unknown suffix fails here
    check_memory(read_memory(shape, dtype), what=f"reading {path}")
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arr = data["images"]
            arr = arr[0] if arr.ndim == 3 else arr
        elif suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as img:
                if img.mode == "P":
                    arr = np.asarray(img.convert("RGB"))
                elif img.mode in ("1", "L", "I", "I;16", "I;16B", "F", "RGB", "RGBA"):
                    arr = np.asarray(img)
                else:
                    arr = np.asarray(img.convert("RGB"))
    except Exception as exc:  # any parser failure means the file is not what it claims
        raise InputError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        raise InputError(f"{path}: a stack of {arr.shape[0]} images; segment takes one image")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return arr, digest


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from mdesign.config import SegmentConfig, load_config
    from mdesign.errors import InputError
    from mdesign.io import MAX_PHASES, WRITE_SUFFIXES, atomic_paths, write_images
    from mdesign.plotting import plot_segmentation
    from mdesign.segment import segment

    check_outputs(
        [("-o", args.output, WRITE_SUFFIXES), ("--plot", args.plot, (".png",))],
        inputs=[("IMAGE", args.image), ("--config", args.config)],
    )
    cfg = load_config(
        SegmentConfig,
        args.config,
        phases=args.phases,
        crop=parse_crop(args.crop) if args.crop else None,
        denoise=args.denoise,
        background=args.background,
        background_mode=args.background_mode,
        regularize=args.regularize,
        threshold=args.threshold,
    )
    image, digest = read_gray(args.image)
    gray = image if image.ndim == 2 else image[..., 0]
    levels = np.unique(gray).size
    if levels <= MAX_PHASES and (image.ndim == 2 or (image[..., :3] == image[..., :1]).all()):
        raise InputError(
            f"IMAGE {args.image}: {levels} distinct values, already phase labels; give it to "
            "the other commands as it is"
        )
    res = segment(image, cfg, source=str(args.image))
    meta = run_meta(
        "segment",
        source=str(args.image),
        source_sha256=digest,
        source_shape=list(image.shape),
        segment=res.meta(),
    )
    with atomic_paths(args.output, args.plot) as (out, plot):
        write_images(out, res.labels, meta=meta)
        if plot is not None:
            plot_segmentation(image, res, plot, title=str(args.image))
    note(args, f"{args.image}: {res.describe()}")
    note(
        args,
        f"wrote {res.labels.shape[0]}x{res.labels.shape[1]} labels to {args.output}"
        + (f" and the overlay to {args.plot}" if args.plot else ""),
    )
    return 0
