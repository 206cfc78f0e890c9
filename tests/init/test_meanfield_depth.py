"""Mean-field depth scales (Schoenholz et al. 2017) against a simulated wide tanh network."""

import math

import numpy as np
import pytest
import torch

from initlab.errors import InitlabError
from initlab.init.meanfield import (
    chi_1,
    correlation_map,
    critical_point,
    depth_scales,
    gaussian_expectation,
    gaussian_expectation_2d,
    length_fixed_point,
    variance_map,
)

WIDTH = 1000
LAYERS = 32
PAIRS = 24  # input pairs averaged per layer
C0 = 0.98  # start close to c* = 1, where the map is linear: 1 - c_l ~ chi_c^l (1 - c_0)
TOLERANCE = 0.12  # relative error allowed between the measured and the mean-field depth scale


def _simulate(sigma_w2: float, sigma_b2: float, seed: int = 0) -> tuple[list[float], list[float]]:
    """1 - c_l (mean over input pairs) forward and E[delta_l^2] backward, layers in order."""
    q_star = length_fixed_point(sigma_w2, sigma_b2)
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(WIDTH, PAIRS, generator=gen, dtype=torch.float64)
    z2 = torch.randn(WIDTH, PAIRS, generator=gen, dtype=torch.float64)
    pair = torch.stack([z1, C0 * z1 + math.sqrt(1 - C0 * C0) * z2], -1)
    h = pair.reshape(WIDTH, -1) * math.sqrt(q_star)  # pre-activations at the fixed point q*
    one_minus_c, hs, ws = [], [], []
    for _ in range(LAYERS):
        w = torch.randn(WIDTH, WIDTH, generator=gen).double() * math.sqrt(sigma_w2 / WIDTH)
        b = torch.randn(WIDTH, 1, generator=gen, dtype=torch.float64) * math.sqrt(sigma_b2)
        h = w @ torch.tanh(h) + b
        ws.append(w)
        hs.append(h)
        hp = h.reshape(WIDTH, PAIRS, 2)
        c = (hp[..., 0] * hp[..., 1]).mean(0) / hp.pow(2).mean(0).prod(-1).sqrt()
        one_minus_c.append(1.0 - float(c.mean()))
    delta = torch.randn(WIDTH, 2 * PAIRS, generator=gen, dtype=torch.float64)
    grad = [float(delta.pow(2).mean())]
    for layer in range(LAYERS - 1, 0, -1):  # delta_l = phi'(h_l) * W_{l+1}^T delta_{l+1}
        delta = (1 - torch.tanh(hs[layer - 1]) ** 2) * (ws[layer].t() @ delta)
        grad.append(float(delta.pow(2).mean()))
    return one_minus_c, grad[::-1]


def _decay_length(values: list[float]) -> float:
    """-1 / slope of log(values) against the layer index (least squares)."""
    slope = np.polyfit(np.arange(len(values)), np.log(values), 1)[0]
    return -1.0 / slope


def test_correlation_and_gradient_depth_scales_match_simulation_ordered_phase() -> None:
    scales = depth_scales(1.3, 0.05)
    assert scales.c_star == 1.0 and scales.chi_c == scales.chi_1 < 1
    one_minus_c, grad = _simulate(1.3, 0.05)
    assert _decay_length(one_minus_c) == pytest.approx(scales.xi_c, rel=TOLERANCE)
    # gradients shrink towards the input: E[delta_l^2] ~ exp(-(L - l) / xi_delta)
    assert -_decay_length(grad) == pytest.approx(scales.xi_delta, rel=TOLERANCE)


def test_gradient_depth_scale_matches_simulation_chaotic_phase() -> None:
    scales = depth_scales(3.0, 0.05)
    assert scales.chi_1 > 1 and scales.xi_delta < 0  # gradients grow towards the input
    assert 0 < scales.c_star < 1 and scales.chi_c < 1  # correlations converge to c* < 1
    _, grad = _simulate(3.0, 0.05, seed=1)
    assert -_decay_length(grad) == pytest.approx(scales.xi_delta, rel=TOLERANCE)


def test_depth_scales_diverge_at_the_edge_of_chaos() -> None:
    sigma_w2, q_star = critical_point(0.05)
    at = depth_scales(sigma_w2, 0.05)
    assert at.q_star == pytest.approx(q_star, rel=1e-6)
    assert at.chi_1 == pytest.approx(1.0, abs=1e-6)
    assert at.xi_c > 1e4
    below, above = depth_scales(0.8 * sigma_w2, 0.05), depth_scales(1.25 * sigma_w2, 0.05)
    assert below.xi_c < 30 and above.xi_c < 30


def test_fixed_points_satisfy_their_maps() -> None:
    s = depth_scales(2.5, 0.05)
    assert variance_map(s.q_star, 2.5, 0.05) == pytest.approx(s.q_star, rel=1e-10)
    assert correlation_map(s.c_star, s.q_star, 2.5, 0.05) == pytest.approx(s.c_star, abs=1e-9)
    assert correlation_map(1.0, s.q_star, 2.5, 0.05) == pytest.approx(1.0, abs=1e-10)
    assert s.chi_1 == pytest.approx(chi_1(s.q_star, 2.5), rel=1e-12)


def test_two_dimensional_rule_against_one_dimensional() -> None:
    # c = 1: E[tanh(u)^2] of the 1-D rule; c = 0: E[tanh(u)]^2 = 0, E[u1^2 u2^2] = q^2
    one_d = gaussian_expectation(lambda u: torch.tanh(u) ** 2, 1.7)
    assert gaussian_expectation_2d(lambda a, b: torch.tanh(a) * torch.tanh(b), 1.7, 1.0) == (
        pytest.approx(one_d, abs=1e-12)
    )
    assert gaussian_expectation_2d(lambda a, b: a**2 * b**2, 1.7, 0.0) == pytest.approx(
        1.7**2, rel=1e-12
    )
    # E[u1^2 u2^2] = q^2 (1 + 2 c^2) for a correlated pair
    assert gaussian_expectation_2d(lambda a, b: a**2 * b**2, 2.0, 0.5) == pytest.approx(
        4.0 * 1.5, rel=1e-12
    )


def test_depth_scale_errors() -> None:
    with pytest.raises(InitlabError, match="sigma_w2"):
        depth_scales(-1.0, 0.05)
    with pytest.raises(InitlabError, match="sigma_b2"):
        depth_scales(1.0, math.nan)
    with pytest.raises(InitlabError, match="correlation"):
        gaussian_expectation_2d(lambda a, b: a, 1.0, 1.5)
