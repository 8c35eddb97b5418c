"""Images in and out: label stacks (.npz), single images (.npy, .png, .tif).

Reading
-------
* ``.npz``: the contract's microstructure stack, ``images`` of shape ``N x H x W`` (a single
  ``H x W`` image is accepted), with optional arrays beside it (``latents``, ``meta``, ...).
* ``.npy``: ``H x W`` or ``N x H x W``.
* Volumes ``N x H x W x D`` (``.npz``, ``.npy`` or ``.tif``, as ``mdesign grf --size H W D``
  and ``mdesign reconstruct --size H W D`` write them) are read only where the caller asks for
  them (``read_images(..., volumes=True)``). A ``.tif`` is a volume when its metadata says so
  (:data:`TIFF_VOLUME_KEY`, written here for every 4D array), or when the caller reads a
  multi-page TIFF without it as one volume (``tiff_volume=True``: pages along ``H``).
* ``.png`` / ``.tif``: one image (a multi-page TIFF is a stack). Palette PNGs (as written here)
  are read as their palette indices; RGB images as labels (at most 8 colours) or gray levels
  (equal channels); any other colour image is refused.

An array with at most 8 distinct values is read as labels: its sorted values become
``0..k-1``. A grayscale image with more levels is segmented into ``phases`` phases by
:func:`mdesign.segment.segment` with its typed defaults (background correction, Otsu's threshold
for two phases and multi-Otsu above, then Potts and learned-prior relabellings), and the returned
:class:`ImageStack` says so in ``note``. A ``.npz`` stack is labels by contract, so more than 8
values there is an error rather than a segmentation.

Writing
-------
``.npz`` (compressed; ``meta`` is stored as a JSON string), ``.npy``, ``.tif``, and ``.png``: one
image as a palette PNG whose indices are the labels (phase 0 black, phase 1 white, then a fixed
palette), several as a grid of such colours. Every write goes to a temporary file in the target
folder that is renamed over the target only when complete, so a failed or killed write never
leaves a half-written file over a good one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mdesign.errors import InputError
from mdesign.memory import check_memory

__all__ = [
    "MAX_PHASES",
    "PALETTE",
    "TIFF_VOLUME_KEY",
    "ImageStack",
    "atomic_path",
    "atomic_paths",
    "check_free_space",
    "check_output_dir",
    "check_output_path",
    "check_outputs",
    "labels_from_values",
    "npz_member_bytes",
    "peek_images",
    "read_images",
    "read_memory",
    "same_file",
    "save_torch",
    "write_images",
]

MAX_PHASES = 8
TIFF_VOLUME_KEY = "mdesign"
"""The key of a TIFF's shaped (JSON) metadata that marks its array as volumes: ``"volumes"``
there means ``N x H x W x D`` (``H`` pages of ``W x D`` per volume)."""
READ_SUFFIXES = (".npz", ".npy", ".png", ".tif", ".tiff")
WRITE_SUFFIXES = (".npz", ".npy", ".png", ".tif", ".tiff")
VOLUME_WRITE_SUFFIXES = tuple(s for s in WRITE_SUFFIXES if s != ".png")
"""Where volumes (``N x H x W x D``) can be written: a PNG holds pictures of images only."""

# Colours of phases 0..7 in PNG output: black and white for two phases, then distinct hues.
PALETTE = np.array(
    [
        [0, 0, 0],
        [255, 255, 255],
        [230, 97, 1],
        [94, 60, 153],
        [27, 158, 119],
        [253, 184, 99],
        [178, 171, 210],
        [102, 102, 102],
    ],
    dtype=np.uint8,
)


@dataclass(frozen=True)
class ImageStack:
    """Labels read from a file, with what else the file held.

    Attributes
    ----------
    images : ndarray of uint8, ``N x H x W``
        Phase labels ``0..k-1``.
    extras : dict
        Other arrays of a ``.npz`` (``latents``, ``volume_fraction``, ...), ``meta`` decoded
        from JSON into a dict.
    note : str or None
        Set when the input was not labels and was segmented (how, and at which levels).
    """

    images: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    @property
    def n_phases(self) -> int:
        """Number of phases: one more than the largest label (at least 2)."""
        return max(2, int(self.images.max()) + 1) if self.images.size else 2


def labels_from_values(values: np.ndarray, *, source: str, as_labels: bool = False) -> np.ndarray:
    """Map an array of at most 8 distinct values to labels ``0..k-1`` in sorted order.

    With ``as_labels`` (a ``.npz`` stack or a palette PNG, whose values are labels by contract),
    integer values already in ``0..7`` are kept as they are, so a stack in which some phase is
    absent keeps its numbering.
    """
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        raise InputError(f"{source}: contains NaN or infinite values")
    integral = values.dtype.kind in "biu" or np.array_equal(values, np.round(values))
    if as_labels and integral and values.min() >= 0 and values.max() < MAX_PHASES:
        return values.astype(np.uint8, copy=False)
    uniq = np.unique(values)
    if uniq.size > MAX_PHASES:
        raise InputError(f"{source}: {uniq.size} distinct labels; at most {MAX_PHASES} phases")
    return np.searchsorted(uniq, values).astype(np.uint8)


def _segment(gray: np.ndarray, phases: int, *, source: str) -> tuple[np.ndarray, str]:
    """Each grayscale image of a stack segmented by :func:`mdesign.segment.segment` with the
    typed defaults (:data:`~mdesign.config.SEGMENT_DEFAULTS`) and ``phases``."""
    from mdesign.segment import segment

    if gray.ndim != 3:
        raise InputError(
            f"{source}: a grayscale stack of volumes; segment it image by image with "
            "`mdesign segment` first"
        )
    results = [
        segment(img, phases=phases, source=source if len(gray) == 1 else f"{source}[{i}]")
        for i, img in enumerate(gray)
    ]
    labels = np.stack([r.labels for r in results]).astype(np.uint8)
    n_levels = np.unique(gray).size
    note = (
        f"{source}: grayscale with {n_levels} levels, segmented into {phases} phases by "
        f"mdesign.segment with its defaults: {results[0].describe()}"
        + (f" (image 0 of {len(results)})" if len(results) > 1 else "")
        + "; for other choices run `mdesign segment` and pass its labels"
    )
    return labels, note


def _check_array(arr: np.ndarray, *, source: str, volumes: bool = False) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{source}: expected numbers, got an array of dtype {arr.dtype}")
    if arr.ndim not in ((2, 3, 4) if volumes else (2, 3)):
        also = ", or volumes (N x H x W x D)" if volumes else ""
        raise InputError(
            f"{source}: expected a 2D image (H x W) or a stack (N x H x W){also}, "
            f"got shape {arr.shape}"
        )
    if arr.size == 0:
        raise InputError(f"{source}: the image is empty (shape {arr.shape})")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{source}: contains NaN or infinite values")
    return arr[None] if arr.ndim == 2 else arr


def _read_raster(path: Path) -> tuple[np.ndarray, bool]:
    """Pixels of a PNG/TIFF and whether they are palette indices."""
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            arr = series.asarray()
            meta = tf.shaped_metadata or ({},)
            # colour samples: the file says so (axes ending in S); else guess from the shape
            samples = series.axes.endswith("S") or (arr.ndim == 3 and arr.shape[0] not in (3, 4))
        if meta[0].get(TIFF_VOLUME_KEY) == "volumes":
            return arr.reshape(-1, *arr.shape[-3:]), False
        if samples and arr.ndim in (3, 4) and arr.shape[-1] in (3, 4):
            arr = _rgb_to_single(arr, source=path)
        return arr, False
    from PIL import Image

    with Image.open(path) as img:
        if img.mode == "P":
            return np.asarray(img), True
        if img.mode in ("RGB", "RGBA", "LA"):
            arr = np.asarray(img.convert("RGB"))
            return _rgb_to_single(arr, source=path), False
        if img.mode in ("1", "L", "I", "I;16", "I;16B", "F"):
            return np.asarray(img), False
        return np.asarray(img.convert("L")), False


def _rgb_to_single(rgb: np.ndarray, *, source: os.PathLike | str) -> np.ndarray:
    """RGB(A) to one channel: exact when the colours are grays or few (labels); any other
    colour image is refused (its gray levels would depend on a choice of channel weights)."""
    rgb = rgb[..., :3]
    if (rgb == rgb[..., :1]).all():
        return rgb[..., 0]
    flat = rgb.reshape(-1, 3)
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)
    if len(colours) <= MAX_PHASES:
        # few colours: order them by luminance so black < white, as phases 0 < 1
        lum = colours @ np.array([0.299, 0.587, 0.114])
        rank = np.argsort(np.argsort(lum, kind="stable"), kind="stable")
        return rank[inverse.ravel()].reshape(rgb.shape[:-1]).astype(np.uint8)
    raise InputError(
        f"{source}: a colour image ({rgb.shape[-1]} channels that differ, {len(colours)} "
        f"colours); give a grayscale micrograph (save it as grayscale, or one channel of it) "
        f"or labels of at most {MAX_PHASES} colours"
    )


def _npy_header(fh) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return tuple(int(s) for s in shape), np.dtype(dtype)


def peek_images(
    path: str | os.PathLike, *, key: str = "images"
) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the image array of a file, from its header alone (nothing is loaded).

    For ``.npz`` the header of its ``key`` member (``images`` by default), for ``.npy`` the
    file's, for PNG and TIFF the image's dimensions (``H x W`` for a PNG, whatever its colour
    channels). Lets a caller refuse an input too large for memory (:mod:`mdesign.memory`) before
    reading it: a few hundred kilobytes of compressed ``.npz`` can hold gigabytes of pixels.

    Raises
    ------
    InputError
        A missing or unreadable file, or a suffix not listed in :func:`read_images`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if suffix == ".npz":
            import zipfile

            with zipfile.ZipFile(path) as zf:
                if f"{key}.npy" not in zf.namelist():
                    raise InputError(f"{path}: no '{key}' array")
                with zf.open(f"{key}.npy") as fh:
                    return _npy_header(fh)
        if suffix == ".npy":
            with open(path, "rb") as fh:
                return _npy_header(fh)
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tf:
                series = tf.series[0]
                return tuple(int(s) for s in series.shape), np.dtype(series.dtype)
        if suffix == ".png":
            from PIL import Image

            with Image.open(path) as img:
                w, h = img.size
                return (h, w), np.dtype(np.uint8)
    except InputError:
        raise
    except Exception as exc:  # any parser failure means the file is not what it claims
        raise InputError(f"{path}: cannot read as {suffix} ({type(exc).__name__}: {exc})") from None
    raise InputError(
        f"{path}: unsupported format {suffix or '(no suffix)'}; "
        f"expected one of {', '.join(READ_SUFFIXES)}"
    )


def npz_member_bytes(path: str | os.PathLike) -> dict[str, int]:
    """Bytes each member of a ``.npz`` takes once read, from the headers alone (nothing loaded).

    A ``.npy`` member counts its header's shape times its dtype's size (what :func:`numpy.load`
    allocates, whatever the compressed size: a few kilobytes can claim gigabytes); any other
    member counts its uncompressed size in the zip directory (what reading it returns). Keys are
    the names :func:`numpy.load` gives (``.npy`` stripped). For a memory check of every member a
    caller reads (:mod:`mdesign.memory`).

    Raises
    ------
    InputError
        The file is not a zip of readable members.
    """
    import zipfile

    path = Path(path)
    out: dict[str, int] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".npy"):
                    with zf.open(info) as fh:
                        shape, dtype = _npy_header(fh)
                    out[info.filename[:-4]] = math.prod(shape) * dtype.itemsize
                else:
                    out[info.filename] = info.file_size
    except Exception as exc:  # any parser failure means the file is not what it claims
        raise InputError(f"{path}: cannot read as .npz ({type(exc).__name__}: {exc})") from None
    return out


def read_memory(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Estimated peak bytes of :func:`read_images` for an array of this shape and dtype: the
    array, a float64 copy where it is segmented or its distinct values are sorted, the labels."""
    n = math.prod(shape)
    return n * (np.dtype(dtype).itemsize + 8 + 8 + 1)


def read_images(
    path: str | os.PathLike, *, phases: int = 2, volumes: bool = False, tiff_volume: bool = False
) -> ImageStack:
    """Read a microstructure stack or image as phase labels.

    Parameters
    ----------
    path : path-like
        ``.npz``, ``.npy``, ``.png``, ``.tif`` or ``.tiff``.
    phases : int
        Number of phases to segment a grayscale image into (2 to 8); ignored for labels.
    volumes : bool
        Also accept a 4D array (``.npz`` or ``.npy``), a stack of volumes ``N x H x W x D``
        (for callers that handle volumes, such as :func:`mdesign.descriptors.characterize`).
        A ``.tif`` whose metadata marks volumes (:data:`TIFF_VOLUME_KEY`, as
        :func:`write_images` writes them) is read as volumes; without ``volumes`` it is refused.
    tiff_volume : bool
        Read a multi-page TIFF without that metadata (``H`` pages of ``W x D``) as one volume
        ``1 x H x W x D`` instead of a stack of ``H`` images; implies ``volumes``.

    Returns
    -------
    ImageStack
        ``images`` of shape ``N x H x W`` (or ``N x H x W x D`` with ``volumes``; uint8 labels),
        plus the file's other arrays.

    Raises
    ------
    InputError
        A missing or unreadable file, a suffix not listed, a 1D or 4D array (4D allowed with
        ``volumes``), ``tiff_volume`` for a file that is not a multi-page TIFF, NaN, an empty
        image, more than 8 labels in a stack, or a bad ``phases``.
    """
    path = Path(path)
    source = str(path)
    if not 2 <= phases <= MAX_PHASES:
        raise InputError(f"must be between 2 and {MAX_PHASES}, got {phases}", param="phases")
    if not path.exists():
        raise InputError(f"{source}: no such file")
    if path.is_dir():
        raise InputError(f"{source}: is a directory, expected an image file")
    suffix = path.suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise InputError(
            f"{source}: unsupported format {suffix or '(no suffix)'}; "
            f"expected one of {', '.join(READ_SUFFIXES)}"
        )
    if tiff_volume and suffix not in (".tif", ".tiff"):
        raise InputError(f"{source}: only a .tif can be read as a multi-page volume")
    volumes = volumes or tiff_volume
    shape, dtype = peek_images(path)
    dims = " x ".join(map(str, shape))
    need = read_memory(shape, dtype)
    if suffix == ".npz":  # every other member is read too (the extras)
        need += sum(n for k, n in npz_member_bytes(path).items() if k != "images")
    check_memory(need, what=f"reading {source} ({dims}, with its other arrays)")
    extras: dict[str, Any] = {}
    palette = False
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "images" not in data.files:
                    raise InputError(
                        f"{source}: no 'images' array (found: {', '.join(data.files) or 'none'})"
                    )
                arr = data["images"]
                for key in data.files:
                    if key == "images":
                        continue
                    extras[key] = data[key]
            if "meta" in extras:
                try:
                    extras["meta"] = json.loads(str(extras["meta"]))
                except json.JSONDecodeError:
                    raise InputError(f"{source}: 'meta' is not a JSON string") from None
        elif suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr, palette = _read_raster(path)
            if tiff_volume and arr.ndim == 3:
                arr = arr[None]
            elif tiff_volume and arr.ndim != 4:
                raise InputError(
                    f"{source}: one page of shape {arr.shape}; a volume needs several pages"
                )
    except InputError:
        raise
    except Exception as exc:  # any parser failure means the file is not what it claims
        raise InputError(
            f"{source}: cannot read as {suffix} ({type(exc).__name__}: {exc})"
        ) from None

    arr = _check_array(np.asarray(arr), source=source, volumes=volumes)
    if suffix == ".npz" or palette:
        if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
            raise InputError(f"{source}: 'images' must hold integer phase labels")
        return ImageStack(labels_from_values(arr, source=source, as_labels=True), extras)
    if np.unique(arr).size <= MAX_PHASES:
        return ImageStack(labels_from_values(arr, source=source), extras)
    labels, note = _segment(arr, phases, source=source)
    return ImageStack(labels, extras, note)


def check_output_path(
    path: str | os.PathLike,
    *,
    suffixes: tuple[str, ...] = WRITE_SUFFIXES,
    option: str | None = None,
) -> Path:
    """Refuse an output path that cannot be written, before any work is done.

    The suffix must be one of ``suffixes``, the path must not be a directory, and its nearest
    existing ancestor must be a directory in which a file can be created (tried for real: a
    read-only filesystem, a missing ``/proc`` entry or a denied permission fail here, not after
    the work). Missing parent folders are fine: the writers create them. Nothing is left behind.

    Parameters
    ----------
    path : path-like
        The output file.
    suffixes : tuple of str
        Accepted suffixes (lower case, with the dot).
    option : str, optional
        How the caller names this path in messages (a parameter name, or a CLI flag).

    Raises
    ------
    InputError
        With a message naming ``option`` and ``path``.
    """
    path = Path(path)
    label = f"{option} {path}" if option else str(path)
    if path.suffix.lower() not in suffixes:
        raise InputError(
            f"{label}: unsupported output format {path.suffix or '(no suffix)'}; "
            f"expected one of {', '.join(suffixes)}"
        )
    if path.is_dir():
        raise InputError(f"{label}: is a directory")
    _check_creatable(path, label=label)
    return path


def check_output_dir(path: str | os.PathLike, *, option: str | None = None) -> Path:
    """Refuse an output folder that is a file or cannot be created or written, before any work.

    Like :func:`check_output_path` for a folder: an existing ``path`` must be a directory with
    room for new files; a missing one needs a writable nearest existing ancestor.
    """
    path = Path(path)
    label = f"{option} {path}" if option else str(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{label}: is a file, expected a directory")
    _check_creatable(path / "x", label=label)
    return path


def check_free_space(
    path: str | os.PathLike, nbytes: int, *, what: str, param: str | None = None
) -> None:
    """Refuse, before any work, a folder whose filesystem has less than ``nbytes`` free.

    A run that needs room from its start (a campaign's Prefect database and store) would
    otherwise fail after its start-up with an error of the component that ran out. ``path``
    may not exist yet: its nearest existing ancestor's filesystem is asked (``os.statvfs``;
    where that cannot be read, nothing is refused).
    """
    from mdesign.memory import format_bytes

    parent = Path(path)
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    try:
        st = os.statvfs(parent)
    except (OSError, AttributeError):
        return
    free = st.f_bavail * st.f_frsize
    if free < nbytes:
        raise InputError(
            f"{path}: {format_bytes(free)} free on its filesystem; {what} needs at least "
            f"{format_bytes(nbytes)}",
            param=param,
        )


def _check_creatable(path: Path, *, label: str) -> None:
    """A file can be created at ``path`` (after creating its missing parent folders)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{label}: {parent} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".mdesign-probe.", dir=parent)
    except OSError as exc:
        raise InputError(f"{label}: cannot write in {parent} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def check_outputs(
    outputs: Iterable[tuple[str, str | os.PathLike | None, tuple[str, ...] | None]],
    *,
    inputs: Iterable[tuple[str, str | os.PathLike | None]] = (),
    writes: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """Refuse, before any work, outputs that cannot be written or that would overwrite an input.

    Parameters
    ----------
    outputs : iterable of ``(option, path, suffixes)``
        Each output the command will write: its flag (for messages), its path (None: not asked
        for, skipped) and its accepted suffixes, or None for an output folder. A file must have
        one of the suffixes, must not be a directory, and must be creatable (its nearest existing
        ancestor is a writable directory, tried for real); a folder must not be a file.
    inputs : iterable of ``(option, path)``
        Each input file (a config file is an input too); no output may be the same file (same
        resolved path, or a hard link).
    writes : mapping, optional
        For an output folder's option, the names of the files and subfolders the command writes
        in it (``{"--out": ("config.yaml", "samples")}``): no input may be one of them or lie in
        one of those subfolders, so a run never writes over its own config.

    Raises
    ------
    InputError
        Naming the flag and the path.
    """
    outs = [(opt, path, suf) for opt, path, suf in outputs if path is not None]
    ins = [(opt, path) for opt, path in inputs if path is not None]
    owners = {_file_key(path): (opt, path) for opt, path in ins}
    written: dict[Any, str] = {}
    for opt, path, suffixes in outs:
        if suffixes is None:
            check_output_dir(path, option=opt)
        else:
            check_output_path(path, suffixes=suffixes, option=opt)
        key = _file_key(path)
        if key in owners:
            in_opt, in_path = owners[key]
            raise InputError(
                f"{opt} {path}: is the input {in_opt} {in_path}; writing it would destroy "
                "the input, choose another path"
            )
        if key in written:
            raise InputError(f"{opt} {path}: is also the output of {written[key]}")
        written[key] = opt
        for name in (writes or {}).get(opt, ()) if suffixes is None else ():
            target = Path(path) / name
            for in_opt, in_path in ins:
                if same_file(target, in_path) or _inside(in_path, target):
                    raise InputError(
                        f"{in_opt} {in_path}: the run writes {target} into {opt} {path}, "
                        "which would destroy this input; move it out of the folder"
                    )


def _file_key(path: str | os.PathLike) -> Any:
    """What identifies a file: its device and inode if it exists (hard links share them), else
    its resolved path; two paths name one file exactly when their keys are equal."""
    path = Path(path)
    try:
        st = path.stat()
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", str(path.resolve()))


def _inside(path: str | os.PathLike, folder: Path) -> bool:
    """Whether ``path`` lies inside ``folder`` (resolved; a missing folder holds nothing)."""
    try:
        return folder.is_dir() and Path(path).resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: equal once resolved, or one inode (a hard link)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    The temporary file keeps the target's suffix (some writers key on it). On any exception it
    is removed and the target is left as it was. An :class:`OSError` of the write (a full disk,
    a read-only filesystem, ...) is re-raised naming ``path`` rather than the temporary file.
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException as exc:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        ours = getattr(exc, "filename", None) in (None, str(tmp_path), str(path.parent))
        if isinstance(exc, OSError) and exc.errno is not None and ours:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike | None) -> Iterator[list[Path | None]]:
    """:func:`atomic_path` for several outputs at once: all are renamed into place only when
    the whole block succeeds, so a failure while writing any of them replaces none.

    ``None`` entries (an optional output not asked for) yield ``None``.
    """
    with contextlib.ExitStack() as stack:
        yield [None if p is None else stack.enter_context(atomic_path(p)) for p in paths]


def save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """:func:`torch.save` ``obj`` to ``path`` atomically (:func:`atomic_path`).

    The object is serialised in memory and written by Python, so a failing disk (full,
    read-only) is the :class:`OSError` it is, naming ``path``, not the ``RuntimeError`` of
    torch's own file writer.
    """
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(buf.getbuffer())
    return Path(path)


def _grid(images: np.ndarray, *, pad: int = 2) -> np.ndarray:
    """RGB montage of ``N x H x W`` labels, near-square, separated by gray lines."""
    n, h, w = images.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 128, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = PALETTE[img]
    return out


NPZ_DEFLATE_LEVEL = 2
"""zlib level of the ``.npz`` files written: several times faster than numpy's default (6) on
label stacks, for a larger file (the performance page)."""


def _savez(fh, payload: Mapping[str, Any]) -> None:
    """:func:`numpy.savez_compressed` at :data:`NPZ_DEFLATE_LEVEL`: the same ``.npz`` format
    (one deflated ``.npy`` member per key, zip64), read back by :func:`numpy.load`."""
    import zipfile

    from numpy.lib import format as npy_format

    with zipfile.ZipFile(
        fh, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=NPZ_DEFLATE_LEVEL
    ) as zf:
        for key, value in payload.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                npy_format.write_array(member, np.asanyarray(value), allow_pickle=False)


def write_images(
    path: str | os.PathLike,
    images: np.ndarray,
    *,
    meta: dict[str, Any] | None = None,
    **arrays: np.ndarray,
) -> Path:
    """Write labels (and, for ``.npz``, arrays beside them) atomically.

    Parameters
    ----------
    path : path-like
        ``.npz``, ``.npy``, ``.png``, ``.tif``/``.tiff``. Parent folders are created.
    images : ndarray, ``N x H x W``, ``H x W`` or volumes ``N x H x W x D``
        Phase labels ``0..7``. Volumes keep their ``N`` axis in ``.npy``, and in ``.tif`` are
        marked as volumes in the metadata (:data:`TIFF_VOLUME_KEY`), so that
        :func:`read_images` with ``volumes`` reads them back as volumes.
    meta : dict, optional
        What made the file (command, version, seed, parameters); stored in ``.npz`` as JSON.
    **arrays
        Arrays stored beside ``images`` in ``.npz`` (e.g. ``latents``, ``volume_fraction``).

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    if path.suffix.lower() not in WRITE_SUFFIXES:
        raise InputError(
            f"{path}: unsupported output format {path.suffix or '(no suffix)'}; "
            f"expected one of {', '.join(WRITE_SUFFIXES)}"
        )
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 4 and path.suffix.lower() not in VOLUME_WRITE_SUFFIXES:
        raise InputError(
            f"{path}: a PNG holds images, not volumes; expected one of "
            f"{', '.join(VOLUME_WRITE_SUFFIXES)}"
        )
    if images.size and int(images.max()) >= MAX_PHASES:
        raise InputError(f"{path}: labels must be below {MAX_PHASES}")
    images = images.astype(np.uint8, copy=False)
    suffix = path.suffix.lower()
    # one 2D image is written as H x W; a stack of volumes keeps its N axis (1 x H x W x D would
    # else read back as a stack of H images)
    single = images.shape[0] == 1 and images.ndim == 3
    with atomic_path(path) as tmp:
        if suffix == ".npz":
            payload = {"images": images, **{k: np.asarray(v) for k, v in arrays.items()}}
            if meta is not None:
                payload["meta"] = np.array(json.dumps(meta, sort_keys=True, default=str))
            with open(tmp, "wb") as fh:
                _savez(fh, payload)
        elif suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, images[0] if single else images)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            if images.ndim == 4:
                tifffile.imwrite(tmp, images, metadata={TIFF_VOLUME_KEY: "volumes"})
            else:
                tifffile.imwrite(tmp, images[0] if single else images)
        else:
            from PIL import Image

            if images.shape[0] == 1:
                img = Image.fromarray(images[0], mode="P")
                img.putpalette(PALETTE.ravel().tolist())
            else:
                img = Image.fromarray(_grid(images), mode="RGB")
            img.save(tmp, format="PNG")
    return path
