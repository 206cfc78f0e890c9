"""The small-minibatch benchmark (benchmarks/bench_small_batch.py) keeps running: tiny runs.

Speed is never asserted; what is checked is that the engine (batch-major layout, member
chunks) and the plain loop, interleaved step by step, train the same members to the same
losses, and that the tables the READMEs quote are printed.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_small_batch.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_small_batch", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_flop_count_of_the_glorot_network_is_281_5_mflop() -> None:
    bench = _load()
    # 10 * (6 * (1024*1000 + 4 * 1000*1000 + 1000*9) - 2 * 1024*1000) = 281,500,000
    assert bench.flops_per_member_step(bench.WIDTHS, 10) == 281_500_000


def test_weight_traffic_of_the_glorot_network_is_46_2_mb_a_step() -> None:
    bench = _load()
    products = (1024 * 1000, *[1000 * 1000] * 4, 1000 * 9)
    total = sum(products)
    # two reads of every weight but layer 1's (one), a read and a write every 4 steps
    expected = 4 * (2 * total - 1024 * 1000) + 8 * total / 4
    assert bench.weight_bytes_per_step(bench.WIDTHS, defer=4) == pytest.approx(expected)
    assert expected == 46_234_000
    assert bench.weight_bytes_per_step(bench.WIDTHS, defer=1) == pytest.approx(expected + 6 * total)
    assert bench.read_bandwidth(1, (64, 32, 8)) > 0


def test_engine_and_loop_agree_with_per_member_rates() -> None:
    bench = _load()
    data = bench.load_data(synthetic=True, n=200)
    row = bench.measure(4, data, steps=12, widths=(1024, 48, 48, 48, 48, 48, 9))
    assert row.first_diff <= 1e-5 and row.max_diff <= 1e-4
    assert row.engine_rate > 0 and row.loop_rate > 0


def test_script_prints_its_tables(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load()
    argv = ["--members", "2", "--steps", "12", "--synthetic", "--width", "48", "--peak-size", "256"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "speedup" in out and "GEMM peak" in out and "target: never slower" in out
    assert "roof GF/s" in out and "weight traffic per member-step" in out
    assert "agree (first 10 steps <= 1e-5 relative, all <= 1e-2): True" in out
    assert bench.main(["--products", "--members", "1", "--width", "32", "--peak-size", "256"]) == 0
    assert "dH bm" in capsys.readouterr().out
