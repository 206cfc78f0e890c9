"""The depth benchmark (benchmarks/bench_depth.py) keeps running: tiny settings, real table.

Speed is never asserted; what is checked is the FLOP count, that each configuration runs in
its own subprocess and reports its memory, and that the verdict lines are printed.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_depth.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_depth", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_flop_count() -> None:
    bench = _load()
    widths = [784, 256, 256, 10]
    products = 784 * 256 + 256 * 256 + 256 * 10
    useful, executed = bench.flops_per_step(widths, 128, recomputed=1)
    assert useful == 2 * 128 * (3 * products - 784 * 256)
    assert executed - useful == 2 * 128 * 256 * 256


def test_script_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load()
    args = ["--depths", "30", "--width", "16", "--batch", "8", "--steps", "2", "--gemm", "128"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "GEMM peak" in out and "step mem" in out
    assert "depth 30: plain step at" in out and "checkpointed step memory" in out
    lines = [line.split() for line in out.splitlines() if line.strip().startswith("30 ")]
    assert [line[1] for line in lines] == ["off", "on"]  # one subprocess each
    assert int(lines[0][-1]) == 30 and int(lines[1][-1]) == 30 // 5 + 4  # layers stored
