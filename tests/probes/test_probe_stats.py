"""initlab.probes.stats against numpy / torch references on known tensors."""

import math

import numpy as np
import pytest
import torch

from initlab.errors import InitlabError
from initlab.probes import stats


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(300, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_mean_std_match_numpy(x: torch.Tensor) -> None:
    ref = x.numpy()
    assert stats.mean(x) == pytest.approx(ref.mean(), rel=1e-12, abs=1e-15)
    assert stats.std(x) == pytest.approx(ref.std(), rel=1e-12)  # population std (ddof=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_percentiles_match_numpy(x: torch.Tensor, dtype: torch.dtype) -> None:
    got = stats.percentiles(x.to(dtype), q=(0, 2, 25, 50, 98, 100))
    ref = np.percentile(x.to(dtype).numpy().astype(np.float64), [0, 2, 25, 50, 98, 100])
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    assert list(got) == ["p0", "p2", "p25", "p50", "p98", "p100"]
    np.testing.assert_allclose(list(got.values()), ref, rtol=tol, atol=tol)


def test_device_implementation_agrees_with_the_cpu_one(x: torch.Tensor) -> None:
    # the sync-free torch code used off the CPU, run here on CPU tensors
    y = (3 * x).clone()
    y[::7, 0] = math.nan
    y[3::11, 5] = math.inf
    y[:, 7] = 0.0  # one dead unit
    y = torch.tanh(y).float()
    y[1, 2] = -math.inf
    device = stats._torch_summary(y, "tanh").numpy()
    cpu = stats.summary_tensor(y, "tanh").numpy()
    np.testing.assert_allclose(device, cpu, rtol=1e-5, atol=1e-7)
    assert cpu[-1] == int((~torch.isfinite(y)).sum()) and cpu[-2] == 1 / 40
    q = (0, 2, 50, 98, 100)
    finite = y[torch.isfinite(y)].double().numpy()
    got = stats._torch_percentiles(y.double(), q).numpy()
    np.testing.assert_allclose(got, np.percentile(finite, q), rtol=1e-12)
    lo, hi = stats._range_tensors(y, None)
    edges, counts = stats._torch_histogram(y, 12, lo, hi)
    ref_counts, ref_edges = np.histogram(finite.astype(np.float32), bins=12)
    assert counts.tolist() == ref_counts.tolist()
    np.testing.assert_allclose(edges.numpy(), ref_edges, rtol=1e-6)
    empty = stats._torch_summary(torch.full((2, 2), math.nan), None).numpy()
    assert np.isnan(empty[:7]).all() and empty[-1] == 4


def test_percentiles_of_a_small_known_tensor() -> None:
    got = stats.percentiles(torch.tensor([4.0, 1.0, 3.0, 2.0]), q=(0, 50, 100, 2, 98))
    # numpy linear rule: position q/100 * (n - 1) in the sorted [1, 2, 3, 4]
    assert got == pytest.approx({"p0": 1.0, "p50": 2.5, "p100": 4.0, "p2": 1.06, "p98": 3.94})


def test_percentiles_subsample_big_tensors_within_tolerance() -> None:
    big = torch.randn(600_000, generator=torch.Generator().manual_seed(2))
    got = stats.percentiles(big)  # subsampled to MAX_SAMPLES with a fixed generator
    ref = np.percentile(big.numpy(), [2, 50, 98])
    # rank error <= ~3 sqrt(p(1-p)/n) = 0.0008 -> value error <= 0.0008 / pdf(z_0.02) ~ 0.02
    np.testing.assert_allclose(list(got.values()), ref, atol=0.02)
    assert stats.percentiles(big) == got  # deterministic


def test_histogram_matches_numpy_and_counts_sum(x: torch.Tensor) -> None:
    edges, counts = stats.histogram(x, bins=30)
    ref_counts, ref_edges = np.histogram(x.numpy(), bins=30)
    assert counts == ref_counts.tolist()
    np.testing.assert_allclose(edges, ref_edges, rtol=1e-12)
    assert sum(counts) == x.numel()


def test_histogram_with_range_drops_outside_values_like_numpy(x: torch.Tensor) -> None:
    edges, counts = stats.histogram(x, bins=7, range=(-1.0, 0.5))
    ref_counts, ref_edges = np.histogram(x.numpy(), bins=7, range=(-1.0, 0.5))
    assert counts == ref_counts.tolist()
    assert sum(counts) == int(((x >= -1.0) & (x <= 0.5)).sum())
    np.testing.assert_allclose(edges, ref_edges, rtol=1e-12)


def test_histogram_uses_the_activations_natural_range() -> None:
    y = torch.tanh(torch.linspace(-0.5, 0.5, 101))  # data range is about (-0.46, 0.46)
    edges, counts = stats.histogram(y, bins=4, activation="tanh")
    assert edges == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert counts == [0, 50, 51, 0]  # tanh(0) = 0 falls in [0, 0.5)
    assert stats.histogram_range(torch.sigmoid(y), "sigmoid") == (0.0, 1.0)
    assert stats.histogram_range(y, "relu") == pytest.approx((y.min().item(), y.max().item()))


def test_histogram_of_constant_and_empty_tensors() -> None:
    assert stats.histogram(torch.full((4,), 2.0), bins=2) == ([1.5, 2.0, 2.5], [0, 4])
    assert stats.histogram(torch.tensor([math.nan, math.inf]), bins=2) == ([0.0, 0.5, 1.0], [0, 0])
    with pytest.raises(InitlabError, match="bins"):
        stats.histogram(torch.zeros(3), bins=0)


def test_saturated_fraction() -> None:
    y = torch.sigmoid(torch.tensor([10.0, -10.0]))
    assert stats.saturated_fraction(y, "sigmoid") == 1.0
    assert stats.saturated_fraction(torch.tensor([0.5, 0.995, 0.005, 0.3]), "sigmoid") == 0.5
    t = torch.tanh(torch.tensor([-5.0, 0.0, 0.1, 5.0, 2.0]))  # |tanh(2)| = 0.964 < 0.99
    assert stats.saturated_fraction(t, "tanh") == pytest.approx(0.4)
    assert stats.saturated_fraction(torch.tensor([0.95, 0.5]), "softsign") == 0.5
    assert stats.saturated_fraction(torch.tensor([100.0, 0.0]), "relu") == 0.0
    assert stats.saturated_fraction(torch.tensor([100.0]), None) == 0.0
    with pytest.raises(InitlabError, match="valid: sigmoid"):
        stats.saturated_fraction(torch.zeros(2), "sigmoidd")


def test_dead_fraction_of_relu_with_negative_bias_is_one() -> None:
    layer = torch.nn.Linear(10, 20)
    torch.nn.init.normal_(layer.weight, std=0.01)
    torch.nn.init.constant_(layer.bias, -1.0)
    out = torch.relu(layer(torch.randn(64, 10)))
    assert stats.dead_fraction(out) == 1.0


def test_dead_fraction_counts_units_not_entries() -> None:
    a = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])  # units 0 and 3 are dead
    assert stats.dead_fraction(a) == 0.5
    conv = torch.zeros(2, 4, 3, 3)  # units are channels
    conv[1, 2, 0, 1] = 1.0
    assert stats.dead_fraction(conv) == 0.75
    assert stats.dead_fraction(torch.tensor([[math.nan, 0.0]])) == 0.5  # NaN is not dead


def test_nan_and_inf_do_not_crash_and_are_counted() -> None:
    y = torch.tensor([[0.5, math.nan], [math.inf, -2.0], [-math.inf, 3.0]])
    s = stats.summarize(y, "tanh")
    assert list(s) == list(stats.SUMMARY_KEYS)
    assert s["nonfinite"] == 3.0
    assert stats.nonfinite_count(y) == 3
    finite = np.array([0.5, -2.0, 3.0])
    assert s["mean"] == pytest.approx(finite.mean())
    assert s["std"] == pytest.approx(finite.std())
    assert (s["min"], s["max"]) == (-2.0, 3.0)
    assert s["p50"] == pytest.approx(0.5)
    assert s["saturated"] == pytest.approx(2 / 3)  # -2 and 3 are beyond tanh's bounds
    all_nan = stats.summarize(torch.full((2, 3), math.nan))
    assert all_nan["nonfinite"] == 6.0
    assert math.isnan(all_nan["mean"]) and math.isnan(all_nan["p98"])
    assert math.isnan(stats.summarize(torch.empty(0))["std"])


def test_summarize_matches_the_single_functions(x: torch.Tensor) -> None:
    y = torch.sigmoid(3 * x.float())
    s = stats.summarize(y, "sigmoid")
    assert s["mean"] == pytest.approx(stats.mean(y), rel=1e-6)
    assert s["std"] == pytest.approx(stats.std(y), rel=1e-6)
    assert s["p98"] == pytest.approx(stats.percentiles(y)["p98"], rel=1e-6)
    assert s["saturated"] == pytest.approx(stats.saturated_fraction(y, "sigmoid"))
    assert 0.0 < s["saturated"] < 1.0
    assert s["dead"] == 0.0 and s["nonfinite"] == 0.0


def test_half_precision_and_integer_inputs_are_promoted() -> None:
    assert stats.mean(torch.tensor([1, 2, 3, 4])) == 2.5
    assert stats.std(torch.tensor([1.0, 3.0], dtype=torch.bfloat16)) == 1.0
