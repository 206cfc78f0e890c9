"""Fans follow PyTorch's convention; gains match torch.nn.init.calculate_gain or the
second-moment rule 1 / sqrt(E[f(z)^2])."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from initlab.errors import InitlabError
from initlab.init.fans import GAIN_NAMES, compute_fans, fan, gain, resolve_gain

LAYERS = [
    nn.Linear(784, 100),
    nn.Conv1d(3, 8, 5),
    nn.Conv2d(16, 32, 3),
    nn.Conv2d(16, 32, (3, 5), groups=4),
    nn.Conv3d(2, 4, (1, 2, 3)),
    nn.ConvTranspose1d(6, 10, 3),
    nn.ConvTranspose2d(16, 32, 3),
    nn.ConvTranspose3d(4, 2, 3),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda m: type(m).__name__)
def test_fans_agree_with_torch(layer: nn.Module) -> None:
    expected = nn.init._calculate_fan_in_and_fan_out(layer.weight)
    assert compute_fans(layer.weight) == expected
    assert compute_fans(layer.weight.shape) == expected


def test_fans_by_hand() -> None:
    assert compute_fans(torch.empty(100, 784)) == (784, 100)
    assert compute_fans(torch.empty(32, 16, 3, 3)) == (16 * 9, 32 * 9)
    # ConvTranspose2d(16, 32, 3): weight (in=16, out=32, 3, 3); torch reads dim 1 as fan-in
    assert compute_fans(nn.ConvTranspose2d(16, 32, 3).weight) == (32 * 9, 16 * 9)


def test_fan_modes() -> None:
    w = torch.empty(100, 300)
    assert (fan(w, "fan_in"), fan(w, "fan_out"), fan(w, "fan_avg")) == (300.0, 100.0, 200.0)
    with pytest.raises(InitlabError, match="valid: fan_in, fan_out, fan_avg"):
        fan(w, "fan_sum")


def test_fans_need_two_dimensions() -> None:
    with pytest.raises(InitlabError, match="at least 2 dimensions"):
        compute_fans(torch.empty(10))


@pytest.mark.parametrize(
    ("name", "param"),
    [
        ("linear", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("leaky_relu", 0.0),
        ("selu", None),
    ],
)
def test_gain_matches_torch_where_torch_defines_it(name: str, param: float | None) -> None:
    assert gain(name, param) == nn.init.calculate_gain(name, param)


def _second_moment(f, n: int = 400_001) -> float:
    """E[f(z)^2] by the trapezoid rule on [-12, 12] (independent of the library's quadrature)."""
    z = np.linspace(-12.0, 12.0, n)
    values = f(torch.from_numpy(z)).numpy() ** 2
    return float(np.trapezoid(values * np.exp(-z * z / 2) / math.sqrt(2 * math.pi), z))


@pytest.mark.parametrize(
    ("name", "module", "documented"),
    [
        ("softsign", nn.Softsign(), 2.33753),
        ("gelu", nn.GELU(), 1.53353),
        ("silu", nn.SiLU(), 1.67653),
        ("elu", nn.ELU(), 1.24520),
    ],
)
def test_second_moment_gains(name: str, module: nn.Module, documented: float) -> None:
    # the rule: gain^2 * E[f(z)^2] = 1 (unit-variance input keeps unit second moment), to 1e-8
    assert gain(name) ** 2 * _second_moment(module) == pytest.approx(1.0, abs=1e-8)
    assert gain(name) == pytest.approx(documented, abs=5e-6)  # the numbers in the docstring


def test_second_moment_rule_reproduces_the_relu_gains() -> None:
    # the rule used for softsign/gelu/silu/elu gives exactly torch's ReLU and leaky-ReLU gains
    assert 1 / math.sqrt(_second_moment(torch.relu)) == pytest.approx(gain("relu"), rel=1e-8)
    leaky = nn.LeakyReLU(0.2)
    assert 1 / math.sqrt(_second_moment(leaky)) == pytest.approx(gain("leaky_relu", 0.2), 1e-8)


def test_elu_alpha_changes_the_gain() -> None:
    assert gain("elu", 0.5) ** 2 * _second_moment(nn.ELU(0.5)) == pytest.approx(1.0, abs=1e-8)
    assert gain("elu", 0.5) > gain("elu")


def test_gain_preserves_second_moment_through_a_gelu_layer() -> None:
    # statistical check of the meaning: x with E[x^2] = 1 -> GELU -> W ~ N(0, gain^2/n)
    # -> pre-activations with variance 1. n = 1000, batch 2000; tolerance 5% (about 5 sigma
    # of the fluctuation from one random W: sqrt(2 / n)).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 1000, generator=g)
    w = torch.randn(1000, 1000, generator=g) * gain("gelu") / math.sqrt(1000)
    h = nn.functional.gelu(x) @ w.T
    assert h.pow(2).mean().item() == pytest.approx(1.0, rel=0.05)


def test_every_gain_name_is_positive_and_finite() -> None:
    for name in GAIN_NAMES:
        assert 0 < gain(name) < 3


def test_gain_errors_are_one_line() -> None:
    with pytest.raises(InitlabError, match="valid: linear, identity, sigmoid") as err:
        gain("swish")
    assert "\n" not in str(err.value)
    with pytest.raises(InitlabError, match="takes no parameter"):
        gain("tanh", 0.1)
    with pytest.raises(InitlabError, match=">= 0"):
        gain("leaky_relu", -0.1)


def test_resolve_gain() -> None:
    assert resolve_gain("tanh") == pytest.approx(5 / 3)
    assert resolve_gain(0.5) == 0.5
    with pytest.raises(InitlabError, match="activation name"):
        resolve_gain(-1.0)
