"""Gaussian quadrature, the length map and the edge-of-chaos critical point."""

import math

import numpy as np
import pytest
import torch

from initlab.errors import InitlabError
from initlab.init.meanfield import chi_1, critical_point, gaussian_expectation, variance_map


def _trapezoid(f, q: float, n: int = 400_001) -> float:
    """E[f(sqrt(q) z)] by a fine trapezoid rule in z (independent check, spectrally accurate
    for smooth integrands)."""
    z = np.linspace(-12.0, 12.0, n)
    values = f(torch.from_numpy(math.sqrt(q) * z)).numpy()
    return float(np.trapezoid(values * np.exp(-z * z / 2) / math.sqrt(2 * math.pi), z))


def _sech4(u: torch.Tensor) -> torch.Tensor:
    return torch.cosh(u) ** -4


@pytest.mark.parametrize("q", [1e-4, 0.3, 1.0, 10.0, 400.0])
def test_gaussian_expectation_moments_and_peaked_integrands(q: float) -> None:
    assert gaussian_expectation(lambda u: u**2, q) == pytest.approx(q, rel=1e-12)
    assert gaussian_expectation(lambda u: u**4, q) == pytest.approx(3 * q * q, rel=1e-12)
    assert gaussian_expectation(lambda u: torch.relu(u) ** 2, q) == pytest.approx(q / 2, 1e-12)
    # tanh'(u)^2 is much narrower than the Gaussian when q is large
    assert gaussian_expectation(_sech4, q) == pytest.approx(_trapezoid(_sech4, q), rel=1e-9)


def test_gaussian_expectation_with_a_kink() -> None:
    softsign2 = lambda u: (u / (1 + u.abs())) ** 2  # noqa: E731
    assert gaussian_expectation(softsign2, 2.0) == pytest.approx(_trapezoid(softsign2, 2.0), 1e-9)
    assert gaussian_expectation(torch.cos, 0.0) == 1.0
    with pytest.raises(InitlabError, match="variance"):
        gaussian_expectation(torch.cos, -1.0)


def test_sigma_b_zero_gives_sigma_w_one() -> None:
    assert critical_point(0.0) == (1.0, 0.0)
    assert critical_point(0.0, "softsign") == (1.0, 0.0)


@pytest.mark.parametrize("sigma_b2", [1e-3, 0.05, 0.3, 2.0])
def test_critical_point_solves_both_equations(sigma_b2: float) -> None:
    sigma_w2, q_star = critical_point(sigma_b2)
    # chi_1 = 1, checked with an independent quadrature, within 1e-6 (we see ~1e-15)
    assert sigma_w2 * _trapezoid(_sech4, q_star) == pytest.approx(1.0, abs=1e-6)
    # q* is the fixed point of the length map, within 1e-9 relative
    length_map = sigma_w2 * _trapezoid(lambda u: torch.tanh(u) ** 2, q_star) + sigma_b2
    assert length_map == pytest.approx(q_star, rel=1e-9)


def test_critical_line_for_softsign() -> None:
    sigma_w2, q_star = critical_point(0.1, "softsign")
    assert chi_1(q_star, sigma_w2, "softsign") == pytest.approx(1.0, abs=1e-9)
    assert variance_map(q_star, sigma_w2, 0.1, "softsign") == pytest.approx(q_star, rel=1e-9)


def test_critical_line_rises_with_bias_variance() -> None:
    values = [critical_point(b) for b in (0.0, 0.05, 0.3, 2.0)]
    assert [w for w, _ in values] == sorted(w for w, _ in values)
    assert values[1][0] == pytest.approx(1.760954639606736, rel=1e-9)  # documented value


def _fixed_point(sigma_w2: float, sigma_b2: float) -> float:
    q = 1.0
    for _ in range(300):
        q = variance_map(q, sigma_w2, sigma_b2)
    return q


def test_ordered_and_chaotic_phases_either_side_of_the_line() -> None:
    sigma_w2, _ = critical_point(0.05)
    below, above = sigma_w2 - 0.3, sigma_w2 + 0.3
    assert chi_1(_fixed_point(below, 0.05), below) < 0.99
    assert chi_1(_fixed_point(above, 0.05), above) > 1.01


def test_variance_map_matches_he_for_relu() -> None:
    assert variance_map(2.5, 2.0, 0.0, "relu") == pytest.approx(2.5, rel=1e-12)
    assert variance_map(1.0, 1.0, 0.3, "identity") == pytest.approx(1.3, rel=1e-12)


def test_critical_point_errors() -> None:
    with pytest.raises(InitlabError, match="valid: tanh, softsign"):
        critical_point(0.1, "relu")
    with pytest.raises(InitlabError, match="sigma_b2"):
        critical_point(-0.1)


@pytest.mark.parametrize("activation", ["tanh", "relu", "softsign", "gelu", "selu", "identity"])
def test_gaussian_moments_equal_the_three_expectations(activation: str) -> None:
    from initlab.activations import make_activation
    from initlab.init.meanfield import _derivative_fn, gaussian_expectation, gaussian_moments

    phi, dphi = make_activation(activation), _derivative_fn(activation)
    for variance in (0.0, 0.3, 2.0, 40.0):
        first, second, slope = gaussian_moments(activation, variance)
        assert first == pytest.approx(gaussian_expectation(phi, variance), rel=1e-13, abs=1e-15)
        assert second == pytest.approx(gaussian_expectation(lambda u: phi(u) ** 2, variance), 1e-13)
        assert slope == pytest.approx(gaussian_expectation(lambda u: dphi(u) ** 2, variance), 1e-13)
    assert gaussian_moments(activation, 1.0)[1] > 0.1  # E[phi^2] of a unit Gaussian
