"""CIFAR-10 from tiny python-batch files made here (dicts of arrays, as the real ones)."""

import hashlib
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from initlab.data import cifar10
from initlab.data.cifar10 import load_cifar10
from initlab.errors import InitlabError

NAMES = (*cifar10.TRAIN_FILES, *cifar10.TEST_FILES)


def _batch(seed: int, n: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"tiny batch",
        b"labels": rng.integers(0, 10, n).tolist(),
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }


@pytest.fixture
def batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    made = {}
    for i, name in enumerate(NAMES):
        made[name] = _batch(i, 3 + i)
        # protocol 2 like the real (Python 2) files; str keys for the test batch
        payload = (
            made[name] if name != "test_batch" else {k.decode(): v for k, v in made[name].items()}
        )
        (folder / name).write_bytes(pickle.dumps(payload, protocol=2))
    return tmp_path, made


def test_train_and_test_splits(batches) -> None:
    root, made = batches
    train = load_cifar10("train", root=root, verify=False)
    assert train.x.shape == (3 + 4 + 5 + 6 + 7, 3, 32, 32) and train.x.dtype == torch.float32
    expected = [label for n in cifar10.TRAIN_FILES for label in made[n][b"labels"]]
    assert train.y.tolist() == expected
    assert train.num_classes == 10 and train.classes[0] == "airplane"
    first = made["data_batch_1"][b"data"][0]
    # channel-major layout: 1024 red values, then green, then blue, each row-major 32x32
    assert train.x[0, 0, 0, 0].item() == pytest.approx(first[0] / 255)
    assert train.x[0, 1, 0, 0].item() == pytest.approx(first[1024] / 255)
    assert train.x[0, 2, 31, 31].item() == pytest.approx(first[3071] / 255)
    test = load_cifar10("test", root=root / "cifar-10-batches-py", verify=False, flatten=True)
    assert test.x.shape == (8, 3072)
    assert torch.equal(test.y, torch.tensor(made["test_batch"][b"labels"]))


def test_checksums_are_checked(batches, monkeypatch) -> None:
    root, _ = batches
    with pytest.raises(InitlabError, match="not the official") as err:
        load_cifar10("test", root=root)
    assert "\n" not in str(err.value)
    digest = hashlib.md5((root / "cifar-10-batches-py" / "test_batch").read_bytes()).hexdigest()
    monkeypatch.setitem(cifar10.CIFAR10_MD5, "test_batch", digest)
    assert len(load_cifar10("test", root=root)) == 8


def test_archive_is_read_in_place(batches, tmp_path) -> None:
    root, made = batches
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    os.rename(root / "cifar-10-batches-py", tmp_path / "moved")
    test = load_cifar10("test", root=archive, verify=False)
    assert test.y.tolist() == made["test_batch"][b"labels"]
    assert len(load_cifar10("train", root=tmp_path, verify=False)) == 25  # finds the archive


def test_missing_files_and_malicious_batches(tmp_path) -> None:
    with pytest.raises(InitlabError, match="no CIFAR-10 batch files") as err:
        load_cifar10("train", root=tmp_path)
    assert "cifar.html" in str(err.value)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(InitlabError, match="refusing to unpickle"):
        load_cifar10("test", root=tmp_path, verify=False)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": [1, 2], b"labels": [0]}))
    with pytest.raises(InitlabError, match=r"no uint8 'data' array"):
        load_cifar10("test", root=tmp_path, verify=False)
    with pytest.raises(InitlabError, match="valid: train, test"):
        load_cifar10("valid", root=tmp_path)
