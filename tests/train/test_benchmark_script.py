"""The speed benchmark (benchmarks/bench_init_compare.py) keeps running: a tiny synthetic run.

Speed itself is never asserted here; what is checked is that the engine and the plain loop,
interleaved step by step, train the same members to the same losses, and that the table the
README quotes is printed.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_init_compare.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_init_compare", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_flop_count_of_the_b1_network_is_63_9_mflop() -> None:
    bench = _load()
    # 128 * (6 * (78400 + 3 * 10000 + 1000) - 2 * 78400) = 63,948,800
    assert bench.flops_per_member_step(bench.WIDTHS, 128) == 63_948_800


def test_interleaved_run_gives_equal_losses_and_one_duration_per_step() -> None:
    bench = _load()
    data = bench.load_data(synthetic=True)
    row = bench.measure(2, data, steps=12, loop_steps=12, envelope=True)
    assert row.first_diff <= 1e-5  # relative, over the first 10 steps
    assert row.max_diff <= 1e-4  # 12 steps: rounding has not grown yet
    assert row.envelope is not None and row.envelope < 1e-3
    assert row.engine_rate > 0 and row.loop_rate > 0


def test_script_prints_the_table_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load()
    assert bench.main(["--members", "2", "--steps", "12", "--synthetic"]) == 0
    out = capsys.readouterr().out
    assert "speedup" in out and "GEMM peak" in out
    assert "agree (first 10 steps <= 1e-5 relative, late <= 5e-3): True" in out
