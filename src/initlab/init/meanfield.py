"""Mean-field signal propagation through deep random networks, and the edge of chaos.

For a wide fully connected network with weights ``N(0, sigma_w^2 / fan_in)`` and biases
``N(0, sigma_b^2)``, the variance ``q`` of a unit's pre-activation evolves layer by layer
through the *length map* (Poole et al. 2016, "Exponential expressivity in deep neural
networks through transient chaos", eq. 3)::

    q_{l+1} = sigma_w^2 E[phi(sqrt(q_l) z)^2] + sigma_b^2,    z ~ N(0, 1)

and a small perturbation of the input (equivalently, a back-propagated gradient) is
multiplied per layer by (Poole et al. 2016, eq. 7; Schoenholz et al. 2017, "Deep
Information Propagation", eq. 5)::

    chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]

at the fixed point ``q*`` of the length map. ``chi_1 < 1`` is the ordered phase (signals
and gradients vanish), ``chi_1 > 1`` the chaotic phase (they explode); ``chi_1 = 1`` is the
*edge of chaos* where very deep networks remain trainable. :func:`critical_point` finds,
for a bias variance ``sigma_b^2``, the weight variance ``sigma_w^2`` on that edge.

Depth scales (Schoenholz et al. 2017, sections 3-4): two inputs whose pre-activations
have correlation ``c`` move, layer by layer, through the *correlation map* (eq. 4)::

    c_{l+1} = (sigma_w^2 E[phi(u_1) phi(u_2)] + sigma_b^2) / q*,
    u_1 = sqrt(q*) z_1,  u_2 = sqrt(q*) (c z_1 + sqrt(1 - c^2) z_2),  z_1, z_2 ~ N(0, 1)

towards its fixed point ``c*`` (``c* = 1`` in the ordered phase), geometrically:
``|c_l - c*| ~ exp(-l / xi_c)`` with ``xi_c^{-1} = -log chi_c`` and
``chi_c = sigma_w^2 E[phi'(u_1) phi'(u_2)]`` at ``c*`` (eqs. 7-9; ``chi_c = chi_1`` when
``c* = 1``). Back-propagated gradients change by ``chi_1`` per layer in variance,
``E[delta_l^2] ~ exp(-(L - l) / xi_delta)`` with ``xi_delta^{-1} = -log chi_1`` (eq. 14;
negative in the chaotic phase: gradients grow). Both diverge at the edge of chaos, and
networks train up to depths of about ``6 xi_c`` (their Figure 5):
:func:`depth_scales` computes them.

Gaussian expectations are computed by composite Gauss-Legendre quadrature on the real line
(see :func:`gaussian_expectation`; in two dimensions a product rule,
:func:`gaussian_expectation_2d`); numpy supplies the nodes, no scipy is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Literal, NamedTuple, get_args

import numpy as np
import torch

from initlab.activations import ACTIVATION_NAMES, make_activation
from initlab.errors import InitlabError, check_choice

CriticalActivation = Literal["tanh", "softsign"]
CRITICAL_ACTIVATIONS: tuple[str, ...] = get_args(CriticalActivation)

_NODES_PER_PANEL = 16  # Gauss-Legendre order on every panel: exact for degree-31 polynomials
_TAIL_STDS = 10.0  # integrate over |u| <= 10 std: the Gaussian mass left out is 1.5e-23
_MAX_PANELS = 4096  # per half-line; bounds the cost when the variance is huge


@cache
def _legendre(order: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(order)
    return nodes, weights


def gaussian_expectation(f: Callable[[torch.Tensor], torch.Tensor], variance: float = 1.0) -> float:
    """``E[f(u)]`` for ``u ~ N(0, variance)``, by composite Gauss-Legendre quadrature.

    ``f`` maps a float64 tensor of points to a tensor of values, elementwise. The half-lines
    ``[-L, 0]`` and ``[0, L]`` (``L = 10 std``) are cut into panels of width at most
    ``min(std, 1) / 4`` (at most 4096 panels each), and a 16-point Gauss-Legendre rule runs
    on every panel. Splitting at 0 keeps full accuracy for functions with a kink there
    (ReLU, softsign, ELU), and panels no wider than a quarter unit resolve integrands that
    are much narrower than the Gaussian (``tanh'(u)^2`` when the variance is large) - the
    two cases where a single Gauss-Hermite rule loses digits (1e-5 for softsign with 201
    nodes; 0.1% for ``E[tanh'(sqrt(10) z)^2]``).

    >>> round(gaussian_expectation(lambda u: u**2, variance=3.0), 12)
    3.0
    >>> round(gaussian_expectation(lambda u: torch.relu(u) ** 2), 12)
    0.5
    """
    _check_variance(variance)
    if variance == 0:
        return float(f(torch.zeros(1, dtype=torch.float64))[0])
    points, weights = _gaussian_rule(variance)
    return _integrate(weights, f(torch.from_numpy(points)))


def _check_variance(variance: float) -> None:
    if not math.isfinite(variance) or variance < 0:
        raise InitlabError(f"variance must be a finite number >= 0, got {variance!r}")


def _gaussian_rule(variance: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (the Gaussian density included) of :func:`gaussian_expectation`'s
    composite rule for ``N(0, variance)``, ``variance > 0``."""
    std = math.sqrt(variance)
    length = _TAIL_STDS * std
    panels = min(_MAX_PANELS, math.ceil(length / (min(std, 1.0) / 4.0)))
    edges = np.linspace(0.0, length, panels + 1)
    nodes, weights = _legendre(_NODES_PER_PANEL)
    half_width = (edges[1] - edges[0]) / 2.0
    centres = (edges[:-1] + edges[1:]) / 2.0
    right = (centres[:, None] + half_width * nodes[None, :]).ravel()
    points = np.concatenate([-right[::-1], right])
    # the density is even (x^2 is exact under negation): computed on the right half only
    density = np.exp(-0.5 * right**2 / variance) / math.sqrt(2.0 * math.pi * variance)
    half = np.broadcast_to(weights * half_width, (panels, nodes.size)).ravel() * density
    return points, np.concatenate([half[::-1], half])


def _integrate(weights: np.ndarray, values: torch.Tensor) -> float:
    return float(np.sum(weights * values.detach().to(torch.float64).numpy()))


def gaussian_moments(activation: str, variance: float) -> tuple[float, float, float]:
    """``(E[phi(u)], E[phi(u)^2], E[phi'(u)^2])`` for ``u ~ N(0, variance)``: the three
    expectations of the length map and of ``chi_1`` on one quadrature grid.

    ``phi`` and ``phi'`` come from the batched engine's kernels
    (:mod:`initlab.train.batched_ops`: the ATen kernels autograd itself calls, so the values
    are those of an autograd pass, float64), the three integrals from one weighted row sum.
    The numbers are those of :func:`gaussian_expectation` on each integrand (the same nodes,
    weights and values), at a fraction of the cost: the mean-field prediction of a
    1000-layer network (:mod:`initlab.experiments.signal.depth_scan`) needs them at every
    layer (0.56 ms a call with an autograd pass, 0.1 ms without; measured).

    >>> [round(m, 12) for m in gaussian_moments("relu", 2.0)]
    [0.564189583548, 1.0, 0.5]
    """
    from initlab.train.batched_ops import activation_kernels

    _check_variance(variance)
    check_choice(activation, ACTIVATION_NAMES, "activation")
    kernels = activation_kernels(activation)
    if variance == 0:
        points, weights = np.zeros(1), None
    else:
        points, weights = _gaussian_rule(variance)
    u = torch.from_numpy(points)
    values = torch.empty((3, u.numel()), dtype=torch.float64)
    phi, square, slope = values.unbind(0)
    kernels.forward(u, phi)
    kernels.backward(torch.ones_like(u), u, phi, slope)  # phi'(u)
    torch.mul(phi, phi, out=square)
    slope.square_()
    if weights is None:
        first, second, third = values[:, 0].tolist()
        return first, second, third
    first, second, third = (weights * values.numpy()).sum(axis=1).tolist()
    return first, second, third


def _activation_fn(activation: str) -> Callable[[torch.Tensor], torch.Tensor]:
    check_choice(activation, ACTIVATION_NAMES, "activation")
    return make_activation(activation)


def _derivative_fn(activation: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The elementwise derivative of an activation, by autograd (float64)."""
    module = _activation_fn(activation)

    def derivative(u: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = u.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(module(x).sum(), x)
        return grad

    return derivative


def variance_map(q: float, sigma_w2: float, sigma_b2: float, activation: str = "tanh") -> float:
    """One step of the length map: ``sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2``.

    Iterating it from the input's variance predicts the pre-activation variance of every
    layer of a wide random network (Poole et al. 2016, eq. 3).

    >>> round(variance_map(1.0, 2.0, 0.0, "relu"), 12)  # He init keeps q for ReLU
    1.0
    """
    phi = _activation_fn(activation)
    return sigma_w2 * gaussian_expectation(lambda u: phi(u) ** 2, q) + sigma_b2


def chi_1(q: float, sigma_w2: float, activation: str = "tanh") -> float:
    """The per-layer gain of perturbations and gradients: ``sigma_w^2 E[phi'(sqrt(q) z)^2]``.

    Evaluated at the fixed point ``q*`` it separates the ordered (< 1) from the chaotic
    (> 1) phase (Poole et al. 2016, eq. 7; Schoenholz et al. 2017, eq. 5).

    >>> round(chi_1(0.0, 1.0, "tanh"), 12)
    1.0
    """
    dphi = _derivative_fn(activation)
    return sigma_w2 * gaussian_expectation(lambda u: dphi(u) ** 2, q)


@lru_cache(maxsize=256)
def critical_point(sigma_b2: float, activation: str = "tanh") -> tuple[float, float]:
    """The edge of chaos: ``(sigma_w^2, q*)`` with ``chi_1 = 1`` for a bias variance.

    Solves, for a given ``sigma_b^2 >= 0`` (Schoenholz et al. 2017, section 2)::

        q*   = sigma_w^2 E[phi(sqrt(q*) z)^2] + sigma_b^2      (fixed point of the length map)
        1    = sigma_w^2 E[phi'(sqrt(q*) z)^2]                 (chi_1 = 1)

    Steps: (1) the second equation gives ``sigma_w^2(q) = 1 / E[phi'(sqrt(q) z)^2]``;
    (2) substituting it, ``q*`` is the root of
    ``g(q) = E[phi^2] / E[phi'^2] + sigma_b^2 - q``, which is ``sigma_b^2 > 0`` at ``q = 0``
    and negative for large ``q`` (the ratio grows like ``sqrt(q)``); (3) bracket the root by
    doubling and bisect it to a relative width of 1e-13; (4) return ``sigma_w^2(q*)``.
    With ``sigma_b^2 = 0`` the fixed point is ``q* = 0`` and ``sigma_w^2 = 1 / phi'(0)^2``
    (1 for tanh and softsign).

    Supported activations are odd with ``phi(0) = 0`` (tanh, softsign), for which the
    critical line exists for every ``sigma_b^2``.

    >>> critical_point(0.0)
    (1.0, 0.0)
    >>> w2, q = critical_point(0.05)
    >>> round(w2, 4), round(q, 4)
    (1.761, 0.57)
    """
    check_choice(activation, CRITICAL_ACTIVATIONS, "activation for the critical point")
    if isinstance(sigma_b2, bool) or not math.isfinite(sigma_b2) or sigma_b2 < 0:
        raise InitlabError(f"sigma_b2 must be a finite number >= 0, got {sigma_b2!r}")
    phi, dphi = _activation_fn(activation), _derivative_fn(activation)

    def mean_dphi2(q: float) -> float:
        return gaussian_expectation(lambda u: dphi(u) ** 2, q)

    if sigma_b2 == 0:
        return 1.0 / mean_dphi2(0.0), 0.0

    def g(q: float) -> float:
        return gaussian_expectation(lambda u: phi(u) ** 2, q) / mean_dphi2(q) + sigma_b2 - q

    lo, hi = 0.0, max(1.0, 2.0 * sigma_b2)
    for _ in range(200):
        if g(hi) < 0:
            break
        lo, hi = hi, 2.0 * hi
    else:
        raise InitlabError(f"no critical point found for sigma_b2={sigma_b2} ({activation})")
    while hi - lo > 1e-13 * hi:
        mid = 0.5 * (lo + hi)
        if g(mid) > 0:
            lo = mid
        else:
            hi = mid
    q_star = 0.5 * (lo + hi)
    return 1.0 / mean_dphi2(q_star), q_star


_Z_HALF_WIDTH = 8.5  # 2-D rule: |z| <= 8.5 in each standard normal coordinate (mass 1e-17)
_Z_PANEL = 0.5  # panel width in z of the 2-D product rule
_Z_ORDER = 10  # Gauss-Legendre nodes per panel of the 2-D rule


@cache
def _standard_normal_rule() -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights (density included) of E[f(z)], z ~ N(0, 1), on |z| <= 8.5."""
    panels = round(2 * _Z_HALF_WIDTH / _Z_PANEL)
    edges = np.linspace(-_Z_HALF_WIDTH, _Z_HALF_WIDTH, panels + 1)
    nodes, weights = _legendre(_Z_ORDER)
    half = (edges[1] - edges[0]) / 2.0
    centres = (edges[:-1] + edges[1:]) / 2.0
    points = (centres[:, None] + half * nodes[None, :]).ravel()
    w = np.tile(weights * half, panels) * np.exp(-0.5 * points**2) / math.sqrt(2.0 * math.pi)
    return torch.from_numpy(points), torch.from_numpy(w)


def gaussian_expectation_2d(
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], q: float, c: float
) -> float:
    """``E[f(u_1, u_2)]`` for a centred Gaussian pair of variance ``q`` and correlation ``c``.

    Written as ``u_1 = sqrt(q) z_1``, ``u_2 = sqrt(q) (c z_1 + sqrt(1 - c^2) z_2)`` with
    independent standard normal ``z_1, z_2`` (Schoenholz et al. 2017, eq. 4), the
    expectation is a product rule: composite 10-point Gauss-Legendre on panels of width
    1/2 over ``|z| <= 8.5`` in each coordinate (340 x 340 nodes). Accurate to ~1e-12 for
    smooth ``f`` of moderate ``q`` (the tanh maps at ``q <= 10``).

    >>> round(gaussian_expectation_2d(lambda a, b: a * b, 2.0, 0.3), 10)
    0.6
    """
    if not (math.isfinite(q) and q >= 0):
        raise InitlabError(f"variance q must be a finite number >= 0, got {q!r}")
    if not -1.0 <= c <= 1.0:
        raise InitlabError(f"correlation c must be in [-1, 1], got {c!r}")
    z, w = _standard_normal_rule()
    s = math.sqrt(q)
    u1 = (s * z)[:, None]
    u2 = s * (c * z[:, None] + math.sqrt(max(1.0 - c * c, 0.0)) * z[None, :])
    values = f(u1.expand_as(u2), u2).detach().to(torch.float64)
    return float(w @ values @ w)


def length_fixed_point(sigma_w2: float, sigma_b2: float, activation: str = "tanh") -> float:
    """``q*``, the stable fixed point of the length map, by iteration from ``q = 1``.

    ``q_{l+1} = sigma_w^2 E[phi(sqrt(q_l) z)^2] + sigma_b^2`` (Poole et al. 2016, eq. 3),
    iterated until the relative change is below 1e-13 (at most 10,000 steps; near
    ``sigma_b^2 = 0`` and ``sigma_w^2 <= 1`` for tanh the approach to ``q* = 0`` is slow,
    like ``1 / l``, and the last iterate is returned).

    >>> round(length_fixed_point(1.761, 0.05), 3)
    0.57
    """
    _check_variances(sigma_w2, sigma_b2)
    q = 1.0
    for _ in range(10_000):
        new = variance_map(q, sigma_w2, sigma_b2, activation)
        if abs(new - q) <= 1e-13 * max(new, 1e-300):
            return new
        q = new
    return q


def correlation_map(
    c: float, q_star: float, sigma_w2: float, sigma_b2: float, activation: str = "tanh"
) -> float:
    """One step of the correlation map at the length fixed point ``q*`` (see module doc).

    ``c_{l+1} = (sigma_w^2 E[phi(u_1) phi(u_2)] + sigma_b^2) / q*`` (Schoenholz et al. 2017,
    eq. 4). ``c = 1`` maps to 1 exactly when ``q*`` is the fixed point.
    """
    phi = _activation_fn(activation)
    if q_star <= 0:
        return 1.0
    e = gaussian_expectation_2d(lambda a, b: phi(a) * phi(b), q_star, c)
    return (sigma_w2 * e + sigma_b2) / q_star


class DepthScales(NamedTuple):
    """The mean-field quantities of one ``(sigma_w^2, sigma_b^2)`` (Schoenholz et al. 2017)."""

    q_star: float  # fixed point of the length map
    c_star: float  # fixed point of the correlation map (1 in the ordered phase)
    chi_1: float  # sigma_w^2 E[phi'(sqrt(q*) z)^2]: per-layer gradient variance factor
    chi_c: float  # sigma_w^2 E[phi'(u_1) phi'(u_2)] at c*: slope of the correlation map
    xi_c: float  # correlation depth scale -1 / log chi_c (inf at chi_c = 1)
    xi_delta: float  # gradient depth scale -1 / log chi_1 (negative: gradients explode)


def depth_scales(sigma_w2: float, sigma_b2: float, activation: str = "tanh") -> DepthScales:
    """``q*``, ``c*``, ``chi_1``, ``chi_c`` and the depth scales ``xi_c``, ``xi_delta``.

    Schoenholz et al. 2017 (eqs. 7-9 and 14)::

        chi_1     = sigma_w^2 E[phi'(sqrt(q*) z)^2]
        chi_c     = sigma_w^2 E[phi'(u_1) phi'(u_2)]  at c = c*   (= chi_1 when c* = 1)
        xi_c      = -1 / log chi_c      |c_l - c*|   ~ exp(-l / xi_c)
        xi_delta  = -1 / log chi_1      E[delta_l^2] ~ exp(-(L - l) / xi_delta)

    Steps: (1) ``q*`` by iterating the length map; (2) ``chi_1``; (3) ordered phase
    (``chi_1 <= 1``): ``c* = 1``, ``chi_c = chi_1``; chaotic phase: ``c*`` is the root of
    ``C(c) - c`` in ``[0, 1)`` (positive at 0 since ``C(0) >= 0``, negative just below 1
    since ``C'(1) = chi_1 > 1``), found by bisection to 1e-12, then ``chi_c`` there;
    (4) the depth scales (``inf`` when the factor is exactly 1).

    >>> s = depth_scales(1.3, 0.05)
    >>> s.c_star, round(s.xi_c, 2) == round(s.xi_delta, 2)
    (1.0, True)
    """
    _check_variances(sigma_w2, sigma_b2)
    dphi = _derivative_fn(activation)
    # 1-2. the length fixed point and the gradient factor
    q_star = length_fixed_point(sigma_w2, sigma_b2, activation)
    g1 = chi_1(q_star, sigma_w2, activation)
    # 3. the correlation fixed point and the slope of the correlation map there
    if g1 <= 1.0 or q_star <= 0:
        c_star, chi_c = 1.0, g1
    else:
        lo, hi = 0.0, 1.0 - 1e-9
        while hi - lo > 1e-12:
            mid = 0.5 * (lo + hi)
            if correlation_map(mid, q_star, sigma_w2, sigma_b2, activation) > mid:
                lo = mid
            else:
                hi = mid
        c_star = 0.5 * (lo + hi)
        chi_c = sigma_w2 * gaussian_expectation_2d(lambda a, b: dphi(a) * dphi(b), q_star, c_star)
    # 4. depth scales
    return DepthScales(q_star, c_star, g1, chi_c, _scale(chi_c), _scale(g1))


def _scale(factor: float) -> float:
    """-1 / log(factor): inf at 1, negative above 1."""
    if factor <= 0:
        return 0.0
    log = math.log(factor)
    return math.inf if log == 0 else -1.0 / log


def _check_variances(sigma_w2: float, sigma_b2: float) -> None:
    for name, value in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2)):
        if isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise InitlabError(f"{name} must be a finite number >= 0, got {value!r}")
    if sigma_w2 == 0:
        raise InitlabError("sigma_w2 must be positive for depth scales")


__all__ = [
    "CRITICAL_ACTIVATIONS",
    "CriticalActivation",
    "DepthScales",
    "chi_1",
    "correlation_map",
    "critical_point",
    "depth_scales",
    "gaussian_expectation",
    "gaussian_expectation_2d",
    "gaussian_moments",
    "length_fixed_point",
    "variance_map",
]
