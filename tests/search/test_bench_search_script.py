"""The search benchmark (benchmarks/bench_search.py) keeps running: a tiny synthetic run.

Speed is never asserted; what is checked is that the batched search and the same trials
one by one give the same validation accuracies, and that the lines the README quotes are
printed.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_search.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_search", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_batched_and_one_by_one_agree_and_the_script_prints_its_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench = _load()
    assert (
        bench.main(["--trials", "4", "--epochs", "1", "--synthetic", "--experiment", "--overhead"])
        == 0
    )
    out = capsys.readouterr().out
    assert "speedup, search vs one by one" in out and "speedup in CPU time" in out
    assert "equal within float rounding (<= one image): True" in out
    assert "the study alone (search, no training)" in out
    assert "whole C1 experiment" in out and "4 trials x 1 epochs on synthetic data" in out
    assert "arithmetic floor:" in out and "target: >= 4x:" in out


def test_the_floor_counts_c1s_training_and_evaluation_products() -> None:
    """C1 at 100 trials x 50 epochs: 784-100x6-10 (129,400 multiply-adds per image), 400
    training images in minibatches of 100 (4 steps an epoch, 61.96 MFLOP a step), and the
    400 + 100 images evaluated 51 times: 100 * (200 * 61.96e6 + 51 * 500 * 2 * 129400)."""
    from initlab.data.dataset import Dataset
    from initlab.search.task import SearchTask

    bench = _load()
    train = Dataset(torch.zeros(400, 784), torch.arange(400) % 10, "t")
    valid = Dataset(torch.zeros(100, 784), torch.arange(100) % 10, "v")
    task = SearchTask(train=train, valid=valid, epochs=50, batch_size=100)
    expected = 100 * (200 * 100 * (6 * 129400 - 2 * 78400) + 51 * 500 * 2 * 129400)
    assert bench.trial_flops(task, 100) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.9e12, rel=0.01)
