"""variance_scaling_: variance scale / fan for every mode and distribution, and the
truncated-normal sampler.

Statistical tolerances: with N = 500_000 samples the relative standard error of an
empirical std is about 1 / sqrt(2N) = 0.1% (less for the uniform); we allow 1% (10 SE).
Means are held to 6 standard errors (6 std / sqrt(N)).
"""

import math

import pytest
import torch

from initlab.errors import InitlabError
from initlab.init.variance_scaling import (
    DISTRIBUTIONS,
    TRUNCATED_NORMAL_STD,
    sample_truncated_normal_,
    truncated_normal_std,
    variance_scaling_,
)

SHAPE = (1000, 500)  # fan_in 500, fan_out 1000, fan_avg 750
FANS = {"fan_in": 500, "fan_out": 1000, "fan_avg": 750}
N = SHAPE[0] * SHAPE[1]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("mode", list(FANS))
def test_variance_is_scale_over_fan(mode: str, distribution: str) -> None:
    scale = 2.0
    w = variance_scaling_(torch.empty(SHAPE), scale, mode, distribution, generator=_gen())
    expected_std = math.sqrt(scale / FANS[mode])
    assert w.std().item() == pytest.approx(expected_std, rel=0.01)
    assert abs(w.mean().item()) < 6 * expected_std / math.sqrt(N)


def test_uniform_bound_is_reached_not_exceeded() -> None:
    w = variance_scaling_(torch.empty(SHAPE), 3.0, "fan_in", "uniform", generator=_gen())
    bound = math.sqrt(3 * 3.0 / 500)
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.999 * bound


def test_truncated_normal_cuts_at_two_parent_stds() -> None:
    w = variance_scaling_(torch.empty(SHAPE), 1.0, "fan_in", "truncated_normal", generator=_gen())
    parent_std = math.sqrt(1 / 500) / TRUNCATED_NORMAL_STD
    assert w.abs().max().item() <= 2 * parent_std * (1 + 1e-6)
    assert w.abs().max().item() > 1.99 * parent_std


def test_jax_truncation_constant() -> None:
    assert truncated_normal_std(-2.0, 2.0) == pytest.approx(TRUNCATED_NORMAL_STD, abs=1e-15)
    assert truncated_normal_std(-math.inf, math.inf) == pytest.approx(1.0, abs=1e-15)


def test_convolution_weights_use_the_receptive_field() -> None:
    w = variance_scaling_(torch.empty(256, 64, 3, 3), 2.0, "fan_in", "normal", generator=_gen())
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / (64 * 9)), rel=0.01)


def test_same_generator_state_same_values() -> None:
    for distribution in DISTRIBUTIONS:
        a = variance_scaling_(torch.empty(50, 40), distribution=distribution, generator=_gen(3))
        b = variance_scaling_(torch.empty(50, 40), distribution=distribution, generator=_gen(3))
        c = variance_scaling_(torch.empty(50, 40), distribution=distribution, generator=_gen(4))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_empty_tensor_is_a_no_op_with_torchs_warning() -> None:
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        assert variance_scaling_(torch.empty(0, 5)).shape == (0, 5)


def test_in_place_without_autograd() -> None:
    w = torch.nn.Parameter(torch.empty(20, 30))
    out = variance_scaling_(w, generator=_gen())
    assert out is w and w.grad_fn is None and w.requires_grad


@pytest.mark.parametrize(("a", "b"), [(-2.0, 2.0), (-1.0, 3.0), (0.5, 1.5), (-4.0, -3.5)])
def test_truncated_sampler_moments(a: float, b: float) -> None:
    # analytic mean of N(0,1) truncated to [a, b]: (phi(a) - phi(b)) / Z
    phi = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))  # noqa: E731
    mass = cdf(b) - cdf(a)
    mean = (phi(a) - phi(b)) / mass
    std = truncated_normal_std(a, b)
    x = sample_truncated_normal_(torch.empty(N, dtype=torch.float64), generator=_gen(), a=a, b=b)
    assert x.min().item() >= a and x.max().item() <= b
    assert x.mean().item() == pytest.approx(mean, abs=6 * std / math.sqrt(N))
    assert x.std().item() == pytest.approx(std, rel=0.01)


def test_truncated_sampler_scales_and_shifts() -> None:
    x = sample_truncated_normal_(torch.empty(N), mean=3.0, std=0.5, generator=_gen())
    assert x.min().item() >= 2.0 and x.max().item() <= 4.0
    assert x.std().item() == pytest.approx(0.5 * TRUNCATED_NORMAL_STD, rel=0.01)


def test_errors_are_one_line_and_list_valid_values() -> None:
    w = torch.empty(10, 10)
    cases = [
        (dict(mode="fan_sum"), "valid: fan_in, fan_out, fan_avg"),
        (dict(distribution="cauchy"), "valid: normal, truncated_normal, uniform"),
        (dict(scale=-1.0), "scale must be a finite number >= 0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InitlabError, match=message) as err:
            variance_scaling_(w, **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(InitlabError, match="at least 2 dimensions"):
        variance_scaling_(torch.empty(10))
    with pytest.raises(InitlabError, match="a < b"):
        sample_truncated_normal_(w, a=1.0, b=-1.0)
