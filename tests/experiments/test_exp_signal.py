"""Signal-propagation experiments at init: A1 histograms, A3 products, A4 depth scan."""

import itertools
import math
from pathlib import Path

import pytest
import torch

from initlab.experiments import run_experiment
from initlab.experiments.signal.depth_scan import mean_field_prediction
from initlab.experiments.signal.exploding_product import lyapunov_exponent
from initlab.store import RunStore


def test_a1_sigmoid_std1_saturates_and_relu_needs_he(tmp_path: Path) -> None:
    settings = [
        "activations=[sigmoid, relu]",
        'inits=["normal:std=1", "normal:std=0.01", "he_normal"]',
        "samples=500",
    ]
    result = run_experiment("activation-histograms", settings, out_dir=tmp_path, progress=False)
    s = result.summary
    # sigmoid, std 1: in every layer most values lie within 0.05 of 0 or of 1
    assert s["sigmoid/normal:std=1"]["near_ends_min"] > 0.5
    assert all(f > 0.5 for f in s["sigmoid/normal:std=1"]["near_ends_per_layer"])
    # ... and with He init far fewer do (spread around 0.5)
    assert max(s["sigmoid/he_normal"]["near_ends_per_layer"]) < 0.1
    # ReLU with He: per-layer std within a factor 2 across the 5 layers
    he = s["relu/he_normal"]["std_per_layer"]
    assert max(he) / min(he) < 2.0
    # ReLU with std 0.01: shrinks by orders of magnitude (x ~0.07 per layer)
    small = s["relu/normal:std=0.01"]["std_per_layer"]
    assert small[-1] / small[0] < 1e-3
    assert all(b < a for a, b in itertools.pairwise(small))
    # per-layer histograms were stored as probe records over the activation's real range
    with RunStore(tmp_path / "runs.db") as store:
        runs = store.list_runs("activation-histograms")
        run = next(r for r in runs if r.spec["key"] == "sigmoid/normal:std=1")
        records = store.probes(run.id, kind="activation")
    assert [r["layer"] for r in records] == ["act1", "act2", "act3", "act4", "act5"]
    edges, counts = records[0]["histogram"]["edges"], records[0]["histogram"]["counts"]
    assert (edges[0], edges[-1], len(counts), sum(counts)) == (0.0, 1.0, 30, 500 * 100)
    assert any("sigmoid: std 1: saturated" in v for v in result.verdicts)
    names = sorted(p.name for p in (tmp_path / "activation-histograms").glob("*.png"))
    assert names == ["histograms-relu.png", "histograms-sigmoid.png"]


def test_a1_tanh_histograms_cover_the_negative_half(tmp_path: Path) -> None:
    result = run_experiment(
        "activation-histograms",
        ["activations=[tanh]", "inits=[lecun_normal]", "samples=200", "layers=2"],
        out_dir=tmp_path,
        progress=False,
    )
    with RunStore(tmp_path / "runs.db") as store:
        (run,) = store.list_runs("activation-histograms")
        record = store.probes(run.id, layer="act1")[0]
    edges, counts = record["histogram"]["edges"], record["histogram"]["counts"]
    assert (edges[0], edges[-1]) == (-1.0, 1.0)
    negative = sum(c for c, e in zip(counts, edges, strict=False) if e < 0)
    assert 0.4 < negative / sum(counts) < 0.6  # tanh is odd: half the mass below 0
    assert result.statuses == {"tanh/lecun_normal": "done"}


def test_a3_log_norm_grows_linearly_at_the_lyapunov_rate(tmp_path: Path) -> None:
    result = run_experiment("exploding-product", ["seeds=6"], out_dir=tmp_path, progress=False)
    s = result.summary
    # theory for 4x4 N(0,1): (ln 2 + psi(2)) / 2 = (ln 2 + 1 - Euler's gamma) / 2 nats
    assert lyapunov_exponent(4) == pytest.approx(0.5 * (math.log(2) + 1 - 0.5772156649), 1e-9)
    assert s["slope_theory"] == pytest.approx(0.2423, abs=1e-4)
    assert s["r2_min"] > 0.95  # linear in the number of multiplications
    assert s["slope_decades_per_product"] == pytest.approx(s["slope_theory"], rel=0.15)
    assert s["log10_norm_final_min"] > 15  # the norm exploded
    assert s["sigmoid_slope_max"] == pytest.approx(0.25, abs=1e-3)
    assert s["sigmoid_slope_at_edge"] == pytest.approx(math.exp(-8) / (1 + math.exp(-8)) ** 2)


def test_a4_mean_field_recursion_known_values() -> None:
    # ReLU, sigma_w^2 = 2, no bias, input variance 1/2: q_1 = 2 * 1/2 = 1, and He keeps q = 1,
    # so every layer has std(relu(z)) = sqrt(1/2 - 1/(2 pi)) for z ~ N(0, 1)
    act, grad = mean_field_prediction("relu", 2.0, 0.0, 0.5, 5)
    assert act == pytest.approx([math.sqrt(0.5 - 1 / (2 * math.pi))] * 5, rel=1e-9)
    assert grad == pytest.approx([1.0] * 5, rel=1e-9)  # chi = 2 * E[1{z>0}] = 1 per layer
    # linear network: the variance is multiplied by sigma_w^2 per layer, gradients likewise
    act, grad = mean_field_prediction("identity", 0.5, 0.0, 1.0, 3)
    assert act == pytest.approx([0.5**0.5, 0.5, 0.5**1.5], rel=1e-9)
    assert grad == pytest.approx([0.5**1.5, 0.5, 0.5**0.5], rel=1e-9)


def test_a4_critical_tanh_is_steady_while_small_init_vanishes(tmp_path: Path) -> None:
    settings = [
        "activations=[tanh]",
        'inits=["critical", "variance_scaling:scale=0.25"]',
        "depth=40",
        "width=128",
        "samples=128",
    ]
    result = run_experiment("depth-scan", settings, out_dir=tmp_path, progress=False)
    crit = result.summary["tanh/critical"]
    small = result.summary["tanh/variance_scaling:scale=0.25"]
    assert 0.5 < crit["act_ratio"] < 2.0 and 0.5 < crit["grad_ratio"] < 2.0
    assert crit["act_std_last"] == pytest.approx(crit["meanfield_act_std_last"], rel=0.15)
    assert crit["sigma_w2"] == pytest.approx(1.761, rel=0.05)  # edge of chaos, sigma_b^2 0.05
    # std 0.5/sqrt(n): each layer multiplies the std by about 0.5 -> 2^-39 ~ 1e-12
    assert small["act_ratio"] < 1e-9 and small["grad_ratio"] < 1e-9
    assert small["meanfield_max_log10_error"] < 0.3  # the mean field tracks it within 2x
    assert any("critical: activations stay steady" in v for v in result.verdicts)
    assert (tmp_path / "depth-scan" / "depth-scan.png").exists()


def test_a4_overflow_is_recorded_as_diverged(tmp_path: Path) -> None:
    result = run_experiment(
        "depth-scan",
        ["activations=[relu]", 'inits=["normal:std=1"]', "depth=60", "width=64", "samples=16"],
        out_dir=tmp_path,
        progress=False,
    )
    # ReLU with std 1 and 64 units multiplies the std by ~5.7 per layer: float32 overflows
    assert result.statuses == {"relu/normal:std=1": "diverged"}
    assert torch.finfo(torch.float32).max < 5.7**60
