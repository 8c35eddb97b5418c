"""A GAN training set cut from a user's labelled images (``mdesign dataset``).

Square tiles of side ``T`` (a multiple of the generator's 32) are drawn at random positions
from each image's training region; a band at the end of its longer axis is held out, and no
training tile overlaps it. The held-out tiles are cut from the band only: they are real images
the GAN never saw, for validation (:func:`mdesign.gan.validation.reference_sets`) and for the
memorisation check (:func:`nearest_distances`). Random tiles overlap one another, so their
number says little about how much data there is: the **independent** count is the number of
non-overlapping tiles the training regions hold, and a warning says when it is too small for a
GAN. The file records the sources' sha256, the regions and the settings in its ``meta``, and a
checkpoint trained on it records that (:func:`mdesign.gan.data_provenance`), so validation and
campaigns find the held-out and training tiles again (:func:`find_training_data`).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdesign.config import DatasetConfig, config_from_dict
from mdesign.errors import InputError
from mdesign.io import MAX_PHASES
from mdesign.memory import check_memory

__all__ = [
    "TileDataset",
    "TrainingData",
    "dihedral",
    "find_training_data",
    "labels_sha256",
    "make_dataset",
    "memorisation",
    "nearest_distances",
]


@dataclass(frozen=True)
class TileDataset:
    """Training and held-out tiles, and what made them.

    Attributes
    ----------
    images : ndarray of uint8, ``N x T x T``
        Training tiles (with their 8 dihedral transforms when ``augment``: ``N = 8 n_tiles``).
    holdout : ndarray of uint8, ``M x T x T``
        Tiles from the held-out regions.
    positions : ndarray of int, ``n_tiles x 3``
        ``(source, y, x)`` of each training tile's top-left corner.
    holdout_positions : ndarray of int, ``M x 3``
    meta : dict
        Settings, sources (path, sha256, shape, training and held-out regions), counts.
    independent : int
        Non-overlapping tiles the training regions of the real images hold (the independent
        data; reconstructions are counted apart, in ``meta``).
    warning : str or None
        Set when ``independent`` is below ``min_independent``.
    """

    images: np.ndarray
    holdout: np.ndarray
    positions: np.ndarray
    holdout_positions: np.ndarray
    meta: dict[str, Any]
    independent: int
    warning: str | None = None


def dihedral(tiles: np.ndarray) -> np.ndarray:
    """The 8 rotations and mirrors of each tile, ``N x T x T -> 8N x T x T`` (tile-major)."""
    out = []
    for t in np.asarray(tiles):
        for k in range(4):
            r = np.rot90(t, k)
            out.extend((r, r[:, ::-1]))
    return np.stack(out) if out else np.zeros((0, *np.shape(tiles)[1:]), np.uint8)


def _regions(shape: tuple[int, int], cfg: DatasetConfig, *, source: str):
    """Training and held-out regions ``(y0, y1, x0, x1)`` of an image (held-out None)."""
    h, w = shape
    t = cfg.tile
    if h < t or w < t:
        raise InputError(f"{source}: {h} x {w} pixels is smaller than a tile of {t} x {t}")
    if cfg.holdout == 0 or cfg.holdout_tiles == 0:
        return (0, h, 0, w), None
    along_x = w >= h
    length = w if along_x else h
    band = max(math.ceil(cfg.holdout * length), t)
    if length - band < t:
        raise InputError(
            f"{source}: {h} x {w} pixels cannot hold a training tile of {t} beside a held-out "
            f"band of {band} px (holdout {cfg.holdout:g}, at least one tile wide); use a "
            "larger image or a smaller --tile"
        )
    if along_x:
        return (0, h, 0, w - band), (0, h, w - band, w)
    return (0, h - band, 0, w), (h - band, h, 0, w)


def _tiles(img, region, n, t, rng) -> tuple[np.ndarray, np.ndarray]:
    y0, y1, x0, x1 = region
    ys = rng.integers(y0, y1 - t + 1, n)
    xs = rng.integers(x0, x1 - t + 1, n)
    tiles = np.stack([img[y : y + t, x : x + t] for y, x in zip(ys, xs, strict=True)])
    return tiles, np.stack([ys, xs], 1)


def make_dataset(
    images: Sequence[np.ndarray],
    config: DatasetConfig | dict[str, Any] | None = None,
    *,
    tile: int | None = None,
    n_tiles: int | None = None,
    augment: bool | None = None,
    holdout: float | None = None,
    holdout_tiles: int | None = None,
    seed: int | None = None,
    sources: Sequence[dict[str, Any]] | None = None,
    **settings: Any,
) -> TileDataset:
    """Cut training and held-out tiles from labelled images.

    Parameters
    ----------
    images : sequence of ndarray, each ``H_i x W_i``
        Phase labels (``0..K-1``), of any sizes at least one tile.
    config : DatasetConfig or dict, optional
        Settings (:class:`~mdesign.config.DatasetConfig`); its defaults where omitted.
    tile : int, optional
        Tile side, a multiple of 32.
    n_tiles : int, optional
        Training tiles drawn (before augmentation).
    augment : bool, optional
        Add the 8 dihedral transforms of each training tile (isotropic materials only).
    holdout : float, optional
        Share of each real image's longer axis held out (a band at its end, at least a tile).
    holdout_tiles : int, optional
        Held-out tiles cut from the bands.
    seed : int, optional
        Seed of the tile positions.
    sources : sequence of dict, optional
        One record per image (path, sha256, segmentation, ...), stored in ``meta``. A record
        with ``reconstruction`` (the ``meta`` of ``mdesign reconstruct``) marks a synthetic
        image: training tiles only, no held-out band, counted apart
        (``reconstruction_independent_tiles``), and a warning if its exemplar was a whole real
        source (its held-out band included).
    **settings
        Any other field of :class:`~mdesign.config.DatasetConfig` (``min_independent``). Each
        keyword given overrides ``config``.

    Returns
    -------
    TileDataset

    Raises
    ------
    InputError
        No images, an image that is not 2D labels, or one smaller than a tile (or than a tile
        beside its held-out band).
    """
    base = config.model_dump() if isinstance(config, DatasetConfig) else dict(config or {})
    named = {
        "tile": tile,
        "n_tiles": n_tiles,
        "augment": augment,
        "holdout": holdout,
        "holdout_tiles": holdout_tiles,
        "seed": seed,
    }
    given = {k: v for k, v in named.items() if v is not None}
    cfg = config_from_dict(DatasetConfig, {**base, **given, **settings}, source="dataset settings")
    if not len(images):
        raise InputError("no images", param="images")
    sources = list(sources) if sources is not None else [{} for _ in images]
    if len(sources) != len(images):
        raise InputError(
            f"one record per image: {len(sources)} for {len(images)} images", param="sources"
        )
    t = cfg.tile
    # the tiles (8 per draw with augmentation), the held-out tiles and their positions, at once
    draws = cfg.n_tiles * (8 if cfg.augment else 1) + cfg.holdout_tiles
    check_memory(
        2 * draws * (t * t + 24),
        what=f"{draws} tiles of {t} x {t}",
        param="n_tiles",
    )
    train_regions, held_regions, arrays = [], [], []
    synthetic = [bool(src.get("reconstruction")) for src in sources]
    if all(synthetic):
        raise InputError("only reconstructions: give at least one real image", param="images")
    for i, img in enumerate(images):
        arr = np.asarray(img)
        name = str(sources[i].get("path", f"images[{i}]"))
        if arr.ndim != 2 or arr.dtype.kind not in "biu":
            raise InputError(f"{name}: expected 2D integer labels, got {arr.dtype} {arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() >= MAX_PHASES):
            raise InputError(
                f"{name}: expected phase labels 0..{MAX_PHASES - 1}, got values "
                f"{arr.min()}..{arr.max()}",
                param="images",
            )
        if synthetic[i]:
            # a reconstruction enlarges the training set; it is never held out (validation is
            # against real images only)
            tr, ho = _regions(arr.shape, cfg.model_copy(update={"holdout": 0}), source=name)
        else:
            tr, ho = _regions(arr.shape, cfg, source=name)
        train_regions.append(tr)
        held_regions.append(ho)
        arrays.append(arr.astype(np.uint8, copy=False))
    rng = np.random.default_rng([cfg.seed, 0xDA7A])
    # tiles per image in proportion to its training positions
    room = np.array([(r[1] - r[0] - t + 1) * (r[3] - r[2] - t + 1) for r in train_regions], float)
    counts = np.floor(cfg.n_tiles * room / room.sum()).astype(int)
    counts[: cfg.n_tiles - counts.sum()] += 1
    tiles, pos = [], []
    for i, (arr, reg, n) in enumerate(zip(arrays, train_regions, counts, strict=True)):
        if n:
            tl, p = _tiles(arr, reg, int(n), t, rng)
            tiles.append(tl)
            pos.append(np.column_stack([np.full(int(n), i), p]))
    held, hpos = [], []
    with_band = [i for i, r in enumerate(held_regions) if r is not None]
    if with_band:
        hroom = np.array(
            [
                (held_regions[i][1] - held_regions[i][0] - t + 1)
                * (held_regions[i][3] - held_regions[i][2] - t + 1)
                for i in with_band
            ],
            float,
        )
        hcounts = np.floor(cfg.holdout_tiles * hroom / hroom.sum()).astype(int)
        hcounts[: cfg.holdout_tiles - hcounts.sum()] += 1
        for i, n in zip(with_band, hcounts, strict=True):
            if n:
                tl, p = _tiles(arrays[i], held_regions[i], int(n), t, rng)
                held.append(tl)
                hpos.append(np.column_stack([np.full(int(n), i), p]))
    train = np.concatenate(tiles)
    positions = np.concatenate(pos)
    holdout = np.concatenate(held) if held else np.zeros((0, t, t), np.uint8)
    holdout_positions = np.concatenate(hpos) if hpos else np.zeros((0, 3), int)
    if cfg.augment:
        train = dihedral(train)
    per_image = [(r[1] - r[0]) // t * ((r[3] - r[2]) // t) for r in train_regions]
    independent = int(sum(n for n, syn in zip(per_image, synthetic, strict=True) if not syn))
    from_reconstructions = int(sum(n for n, syn in zip(per_image, synthetic, strict=True) if syn))
    held_independent = int(
        sum((r[1] - r[0]) // t * ((r[3] - r[2]) // t) for r in held_regions if r is not None)
    )
    warning = None
    if independent < cfg.min_independent:
        warning = (
            f"the real images' training regions hold {independent} non-overlapping tiles of "
            f"{t} x {t}, below "
            f"{cfg.min_independent:g}: too little independent data for a GAN, which can "
            "memorise it (check with `mdesign sample --report`); add images, or use smaller "
            "tiles"
        )
    real_digests = {labels_sha256(a) for a, syn in zip(arrays, synthetic, strict=True) if not syn}
    leaks = [
        str(src.get("path", f"images[{i}]"))
        for i, src in enumerate(sources)
        if synthetic[i]
        and (src.get("reconstruction") or {}).get("exemplar_labels_sha256") in real_digests
    ]
    if leaks:
        leak = (
            f"{', '.join(leaks)}: reconstructed from a whole source image, held-out band "
            "included, so the held-out tiles are not unseen by the GAN's data; reconstruct from "
            "the training region only (segment with --crop)"
        )
        warning = leak if warning is None else f"{warning}; {leak}"
    records = []
    for i, arr in enumerate(arrays):
        rec = dict(sources[i])
        rec.update(
            shape=list(arr.shape),
            labels_sha256=labels_sha256(arr),
            training_region=list(train_regions[i]),
            holdout_region=None if held_regions[i] is None else list(held_regions[i]),
            tiles=int(counts[i]),
        )
        records.append(rec)
    meta = {
        "config": cfg.model_dump(mode="json"),
        "sources": records,
        "n_images": int(train.shape[0]),
        "n_tiles": int(positions.shape[0]),
        "n_holdout": int(holdout.shape[0]),
        "independent_tiles": independent,
        "reconstruction_independent_tiles": from_reconstructions,
        "holdout_independent_tiles": held_independent,
        "tiles_per_independent": float(positions.shape[0] / max(independent, 1)),
        "holdout_sha256": labels_sha256(holdout),
        "warning": warning,
    }
    return TileDataset(train, holdout, positions, holdout_positions, meta, independent, warning)


@dataclass(frozen=True)
class TrainingData:
    """A GAN's training tiles and held-out tiles, found again from its checkpoint.

    Attributes
    ----------
    images : ndarray of uint8, ``N x T x T``
    holdout : ndarray of uint8, ``M x T x T`` (``M = 0`` for a set without held-out tiles)
    path : Path
    """

    images: np.ndarray
    holdout: np.ndarray
    path: Path


def labels_sha256(images: np.ndarray) -> str:
    """The sha256 of a label array's bytes (uint8, C order): what the meta of ``mdesign
    dataset`` and ``mdesign reconstruct`` records and compares."""
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes()).hexdigest()


def find_training_data(
    data_meta: dict[str, Any],
    *,
    data: str | os.PathLike | None = None,
    near: str | os.PathLike | None = None,
) -> TrainingData:
    """The training set a checkpoint records, read and checked against its digest.

    Looked for at ``data`` when given (a dataset that has moved), else at the recorded
    absolute path, the recorded path (from the working directory), and the file's name beside
    ``near`` (the checkpoint's folder).

    Parameters
    ----------
    data_meta : dict
        A checkpoint's ``data_meta`` (:func:`mdesign.gan.data_provenance`).
    data : path-like, optional
        Where the training set is now.
    near : path-like, optional
        A folder to look in as well.

    Raises
    ------
    InputError
        ``data`` is missing or holds other images than the GAN was trained on, or the training
        set is nowhere to be found (with the remedy).
    """
    from mdesign.io import read_images

    meta = data_meta or {}
    want = meta.get("sha256")
    if data is not None:
        candidates = [Path(data)]
        if not candidates[0].is_file():
            raise InputError(f"{data}: no such file", param="data")
    else:
        recorded = [meta.get("path"), meta.get("source")]
        candidates = [Path(p) for p in recorded if p]
        if near is not None and meta.get("source"):
            candidates.append(Path(near) / Path(str(meta["source"])).name)
    for cand in candidates:
        if not cand.is_file():
            continue
        stack = read_images(cand)
        if want and labels_sha256(stack.images) != want:
            if data is not None:
                raise InputError(
                    f"{data}: not the images the GAN was trained on (their sha256 differs from "
                    "the one its checkpoint records)",
                    param="data",
                )
            continue
        holdout = stack.extras.get("holdout")
        if holdout is None:
            holdout = np.zeros((0, *stack.images.shape[1:]), np.uint8)
        return TrainingData(stack.images, np.asarray(holdout, dtype=np.uint8), cand)
    where = meta.get("path") or meta.get("source") or "(not recorded)"
    raise InputError(
        f"the GAN's training data cannot be found: not at {where} (moved or deleted?); give "
        "its path",
        param="data",
    )


def nearest_distances(images: np.ndarray, reference: np.ndarray, *, chunk: int = 256) -> np.ndarray:
    """Hamming distance from each image to its nearest reference image.

    The share of pixels whose phase differs, minimised over the reference set (aligned, no
    shift): 0 for an exact copy, about ``2 phi (1 - phi)`` for two unrelated images of
    fraction ``phi``.

    Parameters
    ----------
    images : ndarray, ``N x H x W``
        Two-phase labels.
    reference : ndarray, ``M x H x W``
        Two-phase labels of the same size.

    Returns
    -------
    ndarray, ``N``
    """
    import torch

    a = np.asarray(images)
    b = np.asarray(reference)
    if a.shape[1:] != b.shape[1:]:
        raise InputError(
            f"images of {a.shape[1:]} and reference of {b.shape[1:]} differ in size",
            param="reference",
        )
    if len(b) == 0:
        raise InputError("no reference images", param="reference")
    pixels = math.prod(a.shape[1:])
    bt = torch.from_numpy(b.reshape(len(b), -1).astype(np.float32))
    bs = bt.sum(1)
    out = np.empty(len(a))
    for lo in range(0, len(a), chunk):
        at = torch.from_numpy(a[lo : lo + chunk].reshape(-1, pixels).astype(np.float32))
        d = at.sum(1)[:, None] + bs[None] - 2 * at @ bt.T
        out[lo : lo + chunk] = (d.min(1).values / pixels).numpy()
    return out


def memorisation(samples: np.ndarray, data: TrainingData) -> dict[str, Any]:
    """Nearest-training-tile distances of the samples and of the held-out tiles.

    A GAN that memorised its training tiles makes samples closer to them than real images it
    never saw (the held-out tiles) are. ``goal_met``: the samples' median distance is at least
    the held-out tiles' lower quartile, and at most 5% of the samples are nearer to a training
    tile than the nearest held-out tile is.

    Returns
    -------
    dict
        ``samples`` and ``holdout``: ``min``, ``q05``, ``median``, ``q95`` and ``values``; the
        share of samples nearer than the nearest held-out tile; ``goal_met``.
    """
    s = nearest_distances(samples, data.images)
    h = nearest_distances(data.holdout, data.images)

    def stats(v: np.ndarray) -> dict[str, Any]:
        return {
            "min": float(v.min()),
            "q05": float(np.quantile(v, 0.05)),
            "median": float(np.median(v)),
            "q95": float(np.quantile(v, 0.95)),
            "values": [float(x) for x in v],
        }

    below = float((s < h.min()).mean())
    return {
        "metric": "share of pixels differing from the nearest training tile",
        "samples": stats(s),
        "holdout": stats(h),
        "share_of_samples_nearer_than_any_holdout": below,
        "goal_met": bool(np.median(s) >= np.quantile(h, 0.25) and below <= 0.05),
    }
