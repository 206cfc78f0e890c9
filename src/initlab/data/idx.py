"""The IDX file format of LeCun's MNIST distribution: read and write, gzip'd or not.

An IDX file is a 4-byte magic number ``0x00 0x00 T D`` (``T`` the element type, ``D`` the
number of dimensions), then ``D`` big-endian uint32 sizes, then the elements in C order,
big-endian. MNIST uses ``T = 0x08`` (unsigned byte): images ``[N, 28, 28]`` (magic 2051) and
labels ``[N]`` (magic 2049). See http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS").
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from initlab.errors import InitlabError

# IDX element type code -> big-endian numpy dtype.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES: dict[str, int] = {dtype.str[1:]: code for code, dtype in IDX_TYPES.items()}
GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes, what: str = "IDX data") -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into a native-endian numpy array."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise InitlabError(
            f"{what} is not an IDX file (bad magic number {data[:4].hex() or 'empty'}); "
            "expected e.g. train-images-idx3-ubyte[.gz]"
        )
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InitlabError(f"{what} is truncated inside its IDX header; fetch it again")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise InitlabError(
            f"{what} has {len(data)} bytes but its IDX header {list(shape)} needs {expected}; "
            "the file is truncated or corrupt, fetch it again"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx_bytes(path: str | Path) -> bytes:
    """The uncompressed bytes of an IDX file, gunzipping when the file is gzip'd."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise InitlabError(f"cannot read {path}: {exc}; check the file or fetch it again") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or not, recognised by content) into a numpy array."""
    return parse_idx(read_idx_bytes(path), str(path))


def _idx_header(array: np.ndarray) -> tuple[bytes, np.dtype]:
    """The IDX header for ``array`` and the big-endian dtype its elements are stored in."""
    dtype = np.dtype(array.dtype)
    code = _CODES.get(dtype.str[1:])
    if code is None:
        valid = ", ".join(sorted(_CODES))
        raise InitlabError(f"IDX cannot store dtype {dtype}; valid: {valid}")
    if array.ndim > 255:
        raise InitlabError(f"IDX stores at most 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header, IDX_TYPES[code]


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as the bytes of an IDX file (the inverse of :func:`parse_idx`)."""
    header, dtype = _idx_header(array)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write_idx(array: np.ndarray, path: str | Path, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip'd when ``compress`` (default: path ends in .gz)."""
    path = Path(path)
    data = idx_bytes(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def idx_sha256(array: np.ndarray) -> str:
    """SHA-256 of the uncompressed IDX file holding ``array`` (without writing it).

    For MNIST these are the well-known digests of the official decompressed files.
    """
    header, dtype = _idx_header(array)
    digest = hashlib.sha256(header)
    digest.update(np.ascontiguousarray(array, dtype=dtype).data)
    return digest.hexdigest()
