"""``mdesign dataset``: a GAN training set of tiles cut from labelled (or grayscale) images."""

from __future__ import annotations

import argparse

from mdesign.cli._common import SEED_HELP, add_quiet, check_outputs, note, run_meta, seed_type


def add_parser(sub) -> None:
    p = sub.add_parser(
        "dataset",
        help="cut a GAN training set (tiles, held-out region) from labelled images",
        description=(
            "Cut square tiles of side --tile (a multiple of 32) at random positions from one or "
            "several labelled images (the .npz of `mdesign segment`, or any labels), or from "
            "grayscale images, segmented here with --segment-config / --phases. A band at the "
            "end of each image's longer axis (--holdout of it, at least a tile wide) is held "
            "out: no training tile overlaps it, and the held-out tiles ('holdout' in the "
            "file) are what `mdesign sample --report` validates against. --augment adds the 8 "
            "rotations and mirrors of each tile (isotropic materials only). The file's meta "
            "records the sources' sha256, the regions and the settings; the command reports "
            "the independent data (non-overlapping tiles in the training regions) and warns "
            "when it is too little for a GAN. The output of `mdesign reconstruct` may be given "
            "too, to enlarge a small set: its tiles are training tiles only (never held out), "
            "counted apart from the real data and stated in the provenance. Settings not "
            "given come from --config, else from mdesign.config.DatasetConfig."
        ),
    )
    p.add_argument("images", metavar="IMAGE", nargs="+", help="labels or grayscale images")
    p.add_argument("-o", "--output", required=True, metavar="TRAIN.npz")
    p.add_argument("--config", metavar="FILE.yaml", help="a DatasetConfig YAML")
    p.add_argument("--tile", type=int, metavar="T", help="tile side, a multiple of 32 (tile)")
    p.add_argument("-n", "--n-tiles", type=int, metavar="N", help="training tiles (n_tiles)")
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the 8 dihedral transforms of each tile (isotropic materials only)",
    )
    p.add_argument(
        "--holdout", type=float, metavar="F", help="share of each image held out (holdout)"
    )
    p.add_argument(
        "--holdout-tiles", type=int, metavar="M", help="held-out tiles cut (holdout_tiles)"
    )
    p.add_argument("--seed", type=seed_type, metavar="S", help=f"tile positions, {SEED_HELP}")
    p.add_argument(
        "--segment-config",
        metavar="FILE.yaml",
        help="how grayscale inputs are segmented (a SegmentConfig YAML; default its defaults)",
    )
    p.add_argument("--phases", type=int, metavar="K", help="phases of grayscale inputs")
    add_quiet(p)
    p.set_defaults(
        run=run, param_flags={"n_tiles": "--n-tiles", "holdout_tiles": "--holdout-tiles"}
    )


def _read_labels(path, seg_cfg):
    """Labels of one input and its source record (path, sha256, how it was segmented)."""
    import hashlib
    from pathlib import Path

    import numpy as np

    from mdesign.cli.segment import read_gray
    from mdesign.errors import InputError
    from mdesign.io import MAX_PHASES, labels_from_values, read_images
    from mdesign.segment import segment

    path = Path(path)
    record = {"path": str(path.resolve())}
    if path.suffix.lower() == ".npz":
        stack = read_images(path)
        if stack.images.shape[0] != 1:
            raise InputError(f"{path}: a stack of {stack.images.shape[0]} images; give images")
        meta = stack.extras.get("meta") or {}
        record["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        if isinstance(meta, dict) and meta.get("command") == "reconstruct":
            # a reconstruction (`mdesign reconstruct`): training tiles only, never held out
            record["reconstruction"] = {
                "exemplar": meta.get("exemplar"),
                "exemplar_labels_sha256": meta.get("exemplar_labels_sha256"),
                "weights": (meta.get("config") or {}).get("weights"),
                "seed": (meta.get("config") or {}).get("seed"),
            }
        if isinstance(meta, dict) and meta.get("command") == "segment":
            record["segmented_from"] = {
                "path": meta.get("source"),
                "sha256": meta.get("source_sha256"),
                "segment": meta.get("segment"),
            }
        return stack.images[0], record
    image, digest = read_gray(path)
    record["sha256"] = digest
    gray = image if image.ndim == 2 else image[..., 0]
    if np.unique(gray).size <= MAX_PHASES and (
        image.ndim == 2 or (image[..., :3] == image[..., :1]).all()
    ):
        return labels_from_values(gray, source=str(path)), record
    res = segment(image, seg_cfg, source=str(path))
    record["segment"] = res.meta()
    return res.labels, record


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from mdesign.config import DatasetConfig, SegmentConfig, load_config
    from mdesign.dataset import make_dataset
    from mdesign.io import write_images

    check_outputs(
        [("-o", args.output, (".npz",))],
        inputs=[
            *[("IMAGE", p) for p in args.images],
            ("--config", args.config),
            ("--segment-config", args.segment_config),
        ],
    )
    cfg = load_config(
        DatasetConfig,
        args.config,
        tile=args.tile,
        n_tiles=args.n_tiles,
        augment=args.augment,
        holdout=args.holdout,
        holdout_tiles=args.holdout_tiles,
        seed=args.seed,
    )
    seg_cfg = load_config(SegmentConfig, args.segment_config, phases=args.phases)
    labels, records = [], []
    for path in args.images:
        lab, rec = _read_labels(path, seg_cfg)
        labels.append(lab)
        records.append(rec)
    ds = make_dataset(labels, cfg, sources=records)
    meta = run_meta("dataset", **ds.meta)
    write_images(
        args.output,
        ds.images,
        meta=meta,
        holdout=ds.holdout,
        positions=ds.positions.astype(np.int64),
        holdout_positions=ds.holdout_positions.astype(np.int64),
    )
    t = cfg.tile
    note(
        args,
        f"wrote {ds.images.shape[0]} training tiles of {t} x {t}"
        + (" (8 dihedral transforms of each)" if cfg.augment else "")
        + f" and {ds.holdout.shape[0]} held-out tiles to {args.output}",
    )
    note(
        args,
        f"independent data: {ds.independent} non-overlapping tiles in the training regions "
        f"({ds.meta['tiles_per_independent']:.1f} random tiles per independent one), "
        f"{ds.meta['holdout_independent_tiles']} in the held-out regions"
        + (
            f", and {ds.meta['reconstruction_independent_tiles']} in reconstructions (not "
            "independent data: they repeat their exemplar's statistics)"
            if any("reconstruction" in r for r in ds.meta["sources"])
            else ""
        ),
    )
    if ds.warning:
        note(args, f"warning: {ds.warning}")
    return 0
