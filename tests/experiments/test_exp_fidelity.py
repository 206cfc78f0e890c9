"""Fidelity to the sources (issue 13): seed streams, A1's ReLU verdict, A4's hand-written pass."""

import math
from pathlib import Path

import pytest
import torch

from initlab.experiments import run_experiment
from initlab.experiments.seeds import STREAMS, stream_seed
from initlab.experiments.signal import activation_histograms, depth_scan


def _max_row_correlation(weight: torch.Tensor, x: torch.Tensor) -> float:
    """Largest |corr| between a weight row and the input row of the same index."""
    rows = min(weight.shape[0], x.shape[0])
    w, v = weight[:rows].double(), x[:rows].double()
    w = (w - w.mean(1, keepdim=True)) / w.std(1, keepdim=True)
    v = (v - v.mean(1, keepdim=True)) / v.std(1, keepdim=True)
    return float((w * v).mean(1).abs().max())


def test_streams_are_distinct_and_reproducible() -> None:
    seeds = {stream: stream_seed(7, stream) for stream in STREAMS}
    assert seeds["weights"] == 7  # the run seed itself, as initialize(model, seed=7)
    assert len(set(seeds.values())) == len(STREAMS)
    assert seeds == {stream: stream_seed(7, stream) for stream in STREAMS}
    assert all(0 <= s < 2**31 for s in seeds.values())
    assert {stream_seed(s, "inputs") for s in range(100)}.isdisjoint(range(100))


@pytest.mark.parametrize("module", [activation_histograms, depth_scan])
def test_inputs_are_independent_of_the_first_layer_weights(module) -> None:  # type: ignore[no-untyped-def]
    # the bug: one seed for weights and inputs made x rows = rescaled W1 rows (corr 1.0)
    spec = {
        "activation": "relu",
        "init": "he_normal",
        "samples": 200,
        "width": 100,
        "layers": 2,
        "bias": False,
        "depth": 2,
        "dtype": "float32",
    }
    built = module.network_and_inputs(spec, 3)
    model, x = built[0], built[1]
    corr = _max_row_correlation(model.linear1.weight.detach(), x)
    # 100 pairs of 100 independent values: |corr| has std 0.1, max of 100 below 0.45
    assert corr < 0.45
    if module is depth_scan:  # the loss weighting r is a third independent stream
        assert _max_row_correlation(built[2], x) < 0.45


def test_a1_relu_first_layer_std_and_verdict_against_the_gain(tmp_path: Path) -> None:
    result = run_experiment(
        "activation-histograms",
        ["activations=[relu]", 'inits=["lecun_normal", "he_normal"]'],
        out_dir=tmp_path,
        progress=False,
    )
    lecun, he = result.summary["relu/lecun_normal"], result.summary["relu/he_normal"]
    # layer 1 of N(0, 1/n) weights on N(0, 1) inputs: relu of N(0, 1), std sqrt(1/2 - 1/2pi)
    assert lecun["std_first"] == pytest.approx(math.sqrt(0.5 - 0.5 / math.pi), rel=0.05)
    # (the old seeding gave 0.66: inputs equal to the weights push layer 1 up)
    # per layer the std is multiplied by std(W) sqrt(n) / gain = 1 / sqrt(2) with LeCun
    assert lecun["per_layer_ratio"] == pytest.approx(2**-0.5, rel=0.08)
    assert he["per_layer_ratio"] == pytest.approx(1.0, abs=0.08)
    (line,) = result.verdicts
    assert "√(1/n) LeCun: spread shrinks x0.69 per layer" in line
    assert "√(2/n) He: spread kept" in line


def test_a4_hand_written_pass_equals_autograd() -> None:
    depth = depth_scan.STATS_CHUNK + 6  # a chunk boundary inside
    for activation in ("tanh", "gelu"):
        spec = {"depth": depth, "width": 24, "samples": 16, "activation": activation,
                "init": "he_normal", "dtype": "float64"}  # fmt: skip
        model, x, r = depth_scan.network_and_inputs(spec, 0)
        act, grad = depth_scan.propagate(model, x, r, activation, depth)
        z, hs, zs = x.clone().requires_grad_(True), [], []
        for layer in range(1, depth + 1):
            h = getattr(model, f"linear{layer}")(z)
            h.retain_grad()
            z = getattr(model, f"act{layer}")(h)
            hs.append(h)
            zs.append(z)
        (getattr(model, f"linear{depth + 1}")(z) * r).sum().backward()
        for layer in range(depth):
            z_l, g_l = zs[layer].detach(), hs[layer].grad
            assert act[layer]["std"] == pytest.approx(float(z_l.std(correction=0)), 1e-10)
            assert act[layer]["mean"] == pytest.approx(float(z_l.mean()), 1e-8, abs=1e-12)
            assert grad[layer]["std"] == pytest.approx(float(g_l.std(correction=0)), 1e-10)
            assert act[layer]["nonfinite"] == grad[layer]["nonfinite"] == 0


def test_a4_layer_stats_skip_nonfinite_entries() -> None:
    stack = torch.randn(3, 40, 10, dtype=torch.float64)
    stack[1, 2, 3] = float("nan")
    stack[2] = float("inf")
    first, second, third = depth_scan.layer_stats(stack)
    assert first["std"] == pytest.approx(float(stack[0].std(correction=0)), 1e-12)
    finite = stack[1][torch.isfinite(stack[1])]
    assert second["mean"] == pytest.approx(float(finite.mean()), 1e-12)
    assert (second["nonfinite"], third["nonfinite"]) == (1, 400)
    assert math.isnan(third["std"])
