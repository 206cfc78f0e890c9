"""The IDX format: round trips, gzip by content, corrupt files."""

import gzip
import hashlib

import numpy as np
import pytest

from initlab.data.idx import idx_bytes, idx_sha256, parse_idx, read_idx, write_idx
from initlab.errors import InitlabError


def test_idx_header_matches_the_mnist_layout() -> None:
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    data = idx_bytes(images)
    # magic 0x00000803 = 2051 for ubyte images, then big-endian sizes 2, 28, 28
    assert data[:16] == bytes.fromhex("00000803000000020000001c0000001c")
    assert len(data) == 16 + 2 * 28 * 28
    labels = idx_bytes(np.array([5, 0, 4], dtype=np.uint8))
    assert labels == bytes.fromhex("0000080100000003050004")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, dtype) -> None:
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = write_idx(array, tmp_path / "a-idx3")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=") and np.array_equal(back, array)
    assert idx_sha256(array) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_gzip_is_recognised_by_content_not_name(tmp_path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(array, tmp_path / "x.gz")
    assert gzip.decompress((tmp_path / "x.gz").read_bytes()) == idx_bytes(array)
    write_idx(array, tmp_path / "named-plain", compress=True)
    assert np.array_equal(read_idx(tmp_path / "named-plain"), array)
    assert np.array_equal(read_idx(tmp_path / "x.gz"), array)


def test_corrupt_idx_gives_one_line_errors(tmp_path) -> None:
    good = idx_bytes(np.arange(10, dtype=np.uint8))
    with pytest.raises(InitlabError, match="bad magic") as bad_magic:
        parse_idx(b"PK\x03\x04" + good[4:], "f.idx")
    with pytest.raises(InitlabError, match="truncated or corrupt") as truncated:
        parse_idx(good[:-1], "f.idx")
    for err in (bad_magic, truncated):
        assert "\n" not in str(err.value)
    (tmp_path / "broken.gz").write_bytes(gzip.compress(good)[:-5])
    with pytest.raises(InitlabError, match="cannot read"):
        read_idx(tmp_path / "broken.gz")
    with pytest.raises(InitlabError, match="IDX cannot store dtype"):
        idx_bytes(np.zeros(3, dtype=np.uint16))
