"""The data cache: where it lives, and arrays stored as a checksummed ``.npz`` + manifest.

Folder: the ``cache_dir`` argument, else ``$INITLAB_DATA``, else the platform's cache folder
(``$XDG_CACHE_HOME/initlab`` or ``~/.cache/initlab`` on Linux, ``~/Library/Caches/initlab``
on macOS, ``%LOCALAPPDATA%\\initlab\\Cache`` on Windows).

A cached dataset is one uncompressed ``NAME.npz`` (plain arrays, no pickle: it is read with
``allow_pickle=False``) and ``NAME.json``, a small manifest with the npz's SHA-256 and size
and each array's shape and dtype. Every load checks size, shapes and dtypes; the SHA-256 is
recomputed once per process per file (keyed by path, size and mtime), so a corrupted or
edited cache is caught with a one-line error that names the file and says how to fix it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from initlab.errors import InitlabError

ENV_VAR = "INITLAB_DATA"
MANIFEST_VERSION = 1

# (path, size, mtime_ns, sha256) of npz files whose digest was checked in this process.
_VERIFIED: set[tuple[str, int, int, str]] = set()


def default_cache_dir() -> Path:
    """The platform's per-user cache folder for initlab (no environment override)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "initlab" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "initlab"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "initlab"


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache folder to use: the argument, else ``$INITLAB_DATA``, else the default."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else default_cache_dir()


def cache_dir_origin(cache_dir: str | Path | None = None) -> str:
    """Where :func:`resolve_cache_dir` took the folder from, for ``initlab data info``."""
    if cache_dir is not None:
        return "argument"
    return f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "platform default"


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``sha256`` or ``md5``), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write: Any) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename it in place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_arrays(
    folder: str | Path, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]
) -> dict[str, Any]:
    """Store ``arrays`` as ``folder/name.npz`` with its manifest ``folder/name.json``.

    ``meta`` (JSON-friendly: source, checksums of the originals, ...) is kept in the
    manifest. Both files are written atomically. Returns the manifest.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    npz = folder / f"{name}.npz"
    _atomic_write(npz, lambda fh: np.savez(fh, **arrays))
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "file": npz.name,
        "sha256": file_digest(npz),
        "bytes": npz.stat().st_size,
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
        **meta,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    _atomic_write(folder / f"{name}.json", lambda fh: fh.write(text.encode()))
    st = npz.stat()
    _VERIFIED.add((str(npz.resolve()), st.st_size, st.st_mtime_ns, manifest["sha256"]))
    return manifest


def read_manifest(folder: str | Path, name: str, fix: str) -> dict[str, Any] | None:
    """The manifest of ``folder/name``, or None when neither it nor the npz exists.

    ``fix`` is the advice appended to errors (e.g. how to fetch the dataset again).
    """
    folder = Path(folder)
    manifest_path, npz = folder / f"{name}.json", folder / f"{name}.npz"
    if not manifest_path.exists():
        if npz.exists():
            raise InitlabError(f"cached file {npz} has no manifest {manifest_path.name}; {fix}")
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        if not isinstance(manifest, dict) or not {"sha256", "bytes", "arrays"} <= set(manifest):
            raise ValueError("missing keys")
    except (OSError, ValueError) as exc:
        raise InitlabError(f"cache manifest {manifest_path} is unreadable ({exc}); {fix}") from None
    return manifest


def verify_npz(folder: str | Path, name: str, manifest: dict[str, Any], fix: str) -> Path:
    """Check ``folder/name.npz`` against its manifest (size always, SHA-256 once per process)."""
    npz = Path(folder) / f"{name}.npz"
    try:
        st = npz.stat()
    except OSError:
        raise InitlabError(f"cached file {npz} is missing (its manifest exists); {fix}") from None
    if st.st_size != manifest["bytes"]:
        raise InitlabError(
            f"cached file {npz} is corrupt: {st.st_size} bytes, manifest says "
            f"{manifest['bytes']}; {fix}"
        )
    key = (str(npz.resolve()), st.st_size, st.st_mtime_ns, manifest["sha256"])
    if key not in _VERIFIED:
        actual = file_digest(npz)
        if actual != manifest["sha256"]:
            raise InitlabError(
                f"cached file {npz} is corrupt: sha256 {actual[:16]}... does not match its "
                f"manifest {manifest['sha256'][:16]}...; {fix}"
            )
        _VERIFIED.add(key)
    return npz


def load_arrays(
    folder: str | Path, name: str, fix: str, keys: Sequence[str] | None = None
) -> dict[str, np.ndarray] | None:
    """Load and verify the cached arrays ``folder/name.npz`` (only ``keys``, default all).

    Returns None when nothing is cached; raises :class:`InitlabError` naming the file when
    the cache exists but is corrupt.
    """
    manifest = read_manifest(folder, name, fix)
    if manifest is None:
        return None
    npz = verify_npz(folder, name, manifest, fix)
    wanted = list(manifest["arrays"]) if keys is None else list(keys)
    expected: dict[str, Any] = {k: manifest["arrays"].get(k, {}) for k in wanted}
    try:
        with np.load(npz, allow_pickle=False) as data:
            arrays = {key: data[key] for key in expected}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InitlabError(f"cached file {npz} is unreadable ({exc}); {fix}") from None
    for key, spec in expected.items():
        shape, dtype = list(arrays[key].shape), str(arrays[key].dtype)
        if shape != spec.get("shape") or dtype != spec.get("dtype"):
            raise InitlabError(
                f"cached file {npz} is corrupt: array {key} is {shape} {dtype}, manifest says "
                f"{spec.get('shape')} {spec.get('dtype')}; {fix}"
            )
    return arrays
