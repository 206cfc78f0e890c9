"""The search benchmark (benchmarks/bench_search.py) keeps running: a tiny synthetic run.

Speed is never asserted; what is checked is that the batched search and the same trials
one by one give the same validation accuracies, and that the lines the README quotes are
printed.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

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


def _c1_task() -> Any:
    """C1's task shape: 400 training and 100 validation images of 784 pixels, 50 epochs of
    minibatches of 100 (the hidden layers are SearchTask's default, 100 x 6)."""
    from initlab.data.dataset import Dataset
    from initlab.search.task import SearchTask

    train = Dataset(torch.zeros(400, 784), torch.arange(400) % 10, "t")
    valid = Dataset(torch.zeros(100, 784), torch.arange(100) % 10, "v")
    return SearchTask(train=train, valid=valid, epochs=50, batch_size=100)


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
    assert "equal within float rounding (no run's largest difference above fit's own" in out
    assert "or one image): True" in out
    assert "layer 1 from its weights" in out and "fit from weights one ulp up" in out
    assert "the study alone (search, no training)" in out
    assert "whole C1 experiment" in out and "4 trials x 1 epochs on synthetic data" in out
    assert "arithmetic floor:" in out and "target: >= 4x:" in out
    assert "at the rates of the engine's products of layers 2 and up on 4 members' blocks" in out
    assert "GFLOP/s; layer 1 at the peak; a lower bound)" in out


def test_the_floor_counts_c1s_training_and_evaluation_products() -> None:
    """C1 at 100 trials x 50 epochs: 784-100x6-10 (129,400 multiply-adds per image), 400
    training images in minibatches of 100 (4 steps an epoch, 61.96 MFLOP a step), and the
    400 + 100 images evaluated 51 times: 100 * (200 * 61.96e6 + 51 * 500 * 2 * 129400)."""
    bench, task = _load(), _c1_task()
    expected = 100 * (200 * 100 * (6 * 129400 - 2 * 78400) + 51 * 500 * 2 * 129400)
    assert bench.trial_flops(task, 100) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.9e12, rel=0.01)


def test_the_dual_floor_replaces_layer_1s_products() -> None:
    """With layer 1 in the dual form over the 500 images: its forward, update and evaluation
    products (2 * (2 * 100 * 200 + 51 * 500) * 78400 a trial) give way to the update of its
    outputs (2 * 500 * 100 * 100 a step), the start and the write-back (2 * 500 * 78400
    each) and the Gram matrix (2 * 500 * 500 * 784, once)."""
    bench, task = _load(), _c1_task()
    primal_first = 2 * (2 * 100 * 200 + 51 * 500) * 78400
    dual_first = 200 * 2 * 500 * 100 * 100 + 2 * 2 * 500 * 78400
    expected = bench.trial_flops(task, 100) + 100 * (dual_first - primal_first) + 2 * 500**2 * 784
    assert bench.trial_flops(task, 100, dual=True) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.09e12, rel=0.01)


def test_the_later_layers_share_is_the_floor_without_layer_1s_products() -> None:
    """Layers 2-7 of 784-100x6-10 (5 * 100 * 100 + 100 * 10 = 51,000 multiply-adds per
    image): 2 * 100 * 51000 FLOPs a step for each of the forward, input-gradient and update
    products, and 2 * 51000 per evaluated image; with layer 1's forward and weight-gradient
    products (4 * 100 * 78400 a step, 2 * 78400 an image) they make up the whole primal
    floor."""
    bench, task = _load(), _c1_task()
    step, evaluation = 100 * 200 * 2 * 100 * 51000, 100 * 51 * 500 * 2 * 51000
    later = bench.later_layer_flops(task, 100)
    assert later == pytest.approx(
        {"forward": step, "input_grad": step, "update": step, "evaluation": evaluation},
        rel=1e-12,
    )
    first = 100 * (200 * 4 * 100 * 78400 + 51 * 500 * 2 * 78400)
    assert sum(later.values()) + first == pytest.approx(bench.trial_flops(task, 100), rel=1e-12)
