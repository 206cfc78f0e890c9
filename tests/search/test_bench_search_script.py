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
