"""CIFAR-10 (Krizhevsky 2009) from its standard python-batch files on disk.

The "CIFAR-10 python version" (https://www.cs.toronto.edu/~kriz/cifar.html) is the archive
``cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/`` with ``data_batch_1`` ..
``data_batch_5`` (10k training images each), ``test_batch`` and ``batches.meta``. Each batch
is a Python 2 pickle of a dict: ``data`` a uint8 array ``[10000, 3072]`` (the 1024 red, then
green, then blue values of a 32x32 image, row-major) and ``labels`` a list of ints 0-9.
initlab does not download it; point ``root`` at the folder, its parent or the ``.tar.gz``
(read in place, nothing is extracted). Files are checked against the MD5s that torchvision
uses and read with the restricted unpickler of :mod:`initlab.data.safe_pickle`.

``x`` is float32 ``[N, 3, 32, 32]`` = byte / 255 (``[N, 3072]`` with ``flatten``), ``y`` int64.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch

from initlab.data import cache
from initlab.data.dataset import Dataset
from initlab.data.safe_pickle import safe_unpickle
from initlab.errors import InitlabError, check_choice

Cifar10Split = Literal["train", "test"]
CIFAR10_SPLITS: tuple[str, ...] = get_args(Cifar10Split)
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
BATCHES_DIR = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_FILES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES: tuple[str, ...] = ("test_batch",)
# MD5 of each batch file, as torchvision checks them (torchvision/datasets/cifar.py).
CIFAR10_MD5: dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
_HINT = (
    "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and "
    "pass its path (or the unpacked cifar-10-batches-py folder) as root"
)


def default_cifar10_root(cache_dir: str | Path | None = None) -> Path:
    """Where :func:`load_cifar10` looks when no root is given: ``<cache>/cifar10``."""
    return cache.resolve_cache_dir(cache_dir) / "cifar10"


@dataclass(frozen=True)
class _Location:
    """Where the batch files are: a folder, or members of a tar archive."""

    folder: Path | None = None
    archive: Path | None = None

    def describe(self) -> str:
        return str(self.archive or self.folder)


def locate_cifar10(root: str | Path | None = None) -> _Location:
    """Find the batch files under ``root`` (folder, its parent, or the .tar.gz) or explain."""
    base = Path(root).expanduser() if root is not None else default_cifar10_root()
    if base.is_file():
        return _Location(archive=base)
    for folder in (base, base / BATCHES_DIR):
        if (folder / TEST_FILES[0]).is_file() or (folder / TRAIN_FILES[0]).is_file():
            return _Location(folder=folder)
    if (base / ARCHIVE).is_file():
        return _Location(archive=base / ARCHIVE)
    raise InitlabError(f"no CIFAR-10 batch files in {base}; {_HINT}")


def _read_member(location: _Location, name: str) -> bytes:
    if location.folder is not None:
        path = location.folder / name
        if not path.is_file():
            raise InitlabError(f"CIFAR-10 file {path} is missing; {_HINT}")
        return path.read_bytes()
    archive = location.archive or Path(ARCHIVE)
    try:
        with tarfile.open(archive, "r:*") as tar:
            member = tar.getmember(f"{BATCHES_DIR}/{name}")
            fh = tar.extractfile(member)
            if fh is None:
                raise KeyError(name)
            return fh.read()
    except KeyError:
        raise InitlabError(f"{archive} has no {BATCHES_DIR}/{name}; {_HINT}") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InitlabError(f"cannot read {archive} ({exc}); fetch it again") from None


def parse_cifar10_batch(data: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one batch pickle into (uint8 images ``[N, 3, 32, 32]``, int64 labels ``[N]``)."""
    batch = safe_unpickle(io.BytesIO(data), what=what)
    if not isinstance(batch, dict):
        raise InitlabError(f"{what} is not a CIFAR-10 batch (a dict of data and labels)")
    fields: dict[str, Any] = {
        (k.decode("latin-1") if isinstance(k, bytes) else str(k)): v for k, v in batch.items()
    }
    images, labels = fields.get("data"), fields.get("labels")
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 2
        or images.shape[1] != 3 * 32 * 32
    ):
        raise InitlabError(f"{what} has no uint8 'data' array of shape [N, 3072]")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise InitlabError(f"{what} has no list of integer 'labels'") from None
    if y.shape != (images.shape[0],) or (y.size and (y.min() < 0 or y.max() > 9)):
        raise InitlabError(f"{what}: 'labels' must be {images.shape[0]} integers in 0-9")
    return images.reshape(-1, 3, 32, 32), y


def load_cifar10(
    split: Cifar10Split = "train",
    *,
    root: str | Path | None = None,
    verify: bool = True,
    flatten: bool = False,
) -> Dataset:
    """CIFAR-10 ``train`` (data_batch_1..5, 50k) or ``test`` (test_batch, 10k) from disk.

    With ``verify`` each file's MD5 must match the official one (turn it off for a copy you
    made yourself; the restricted unpickler still refuses anything but arrays and lists).
    """
    check_choice(split, CIFAR10_SPLITS, "CIFAR-10 split")
    location = locate_cifar10(root)
    xs, ys = [], []
    for name in TRAIN_FILES if split == "train" else TEST_FILES:
        raw = _read_member(location, name)
        what = f"{location.describe()}:{name}" if location.archive else str(location.folder / name)
        if verify and hashlib.md5(raw).hexdigest() != CIFAR10_MD5[name]:
            raise InitlabError(
                f"{what} has md5 {hashlib.md5(raw).hexdigest()}, not the official "
                f"{CIFAR10_MD5[name]}; fetch it again (or pass verify=False for your own copy)"
            )
        images, labels = parse_cifar10_batch(raw, what)
        xs.append(images)
        ys.append(labels)
    x = torch.from_numpy(np.concatenate(xs)).to(torch.float32).div_(255.0)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    return Dataset(x, torch.from_numpy(np.concatenate(ys)), f"cifar10-{split}", CIFAR10_CLASSES)


def cifar10_status(root: str | Path | None = None) -> tuple[str, str]:
    """(where, what) for ``initlab data info``: the location found, or why none was."""
    try:
        location = locate_cifar10(root)
    except InitlabError as exc:
        return "-", str(exc)
    if location.folder is None:
        return str(location.archive), "archive (read in place)"
    present = [n for n in (*TRAIN_FILES, *TEST_FILES) if (location.folder / n).is_file()]
    return str(location.folder), f"{len(present)} of 6 batch files"
