"""One general initializer, ``variance_scaling_``; the named schemes are specializations of it.

Modelled on JAX's ``jax.nn.initializers.variance_scaling``: the weights get variance
``scale / fan`` where ``fan`` is the fan-in, the fan-out, their mean or their geometric mean,
drawn from a normal, a truncated normal or a uniform distribution with that variance::

    normal            N(0, scale / fan)
    truncated_normal  N(0, s^2) truncated to [-2 s, 2 s], s = sqrt(scale / fan) / 0.8796...
    uniform           U(-sqrt(3 scale / fan), sqrt(3 scale / fan))

Glorot/Xavier is ``scale = gain^2, fan_avg``; He/Kaiming ``scale = gain^2, fan_in`` (or
fan_out); LeCun ``scale = 1, fan_in``; the 2010 "standard" init ``scale = 1/3, fan_in,
uniform``. The truncated normal's parent std is divided by the std of a standard normal
truncated to [-2, 2] (0.87962566103423978, as JAX does) so that the *drawn* values have
variance ``scale / fan``.

Complex weights are drawn as JAX draws them, with ``E|w|^2 = scale / fan``: normal is a
circular complex normal (real and imaginary parts independent, each of variance
``scale / (2 fan)``; PyTorch's ``normal_`` on a complex tensor does exactly this), uniform
is uniform on the disk of radius ``sqrt(2 scale / fan)`` (JAX's ``_complex_uniform``), and
the truncated normal is a circular complex normal whose modulus is cut at 2 parent stds
(JAX's ``_complex_truncated_normal``). For that last one we divide by the exact std of the
cut distribution, ``sqrt(1 - 4 e^-4 / (1 - e^-4)) = 0.96196``; JAX divides by 0.95311, which
gives its complex truncated normals 1.9% more variance than ``scale / fan``.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal, get_args

import torch

from initlab.errors import InitlabError, check_choice
from initlab.init.fans import FAN_MODES, compute_fans, fan

Distribution = Literal["normal", "truncated_normal", "uniform"]
DISTRIBUTIONS: tuple[str, ...] = get_args(Distribution)

# Standard deviation of N(0, 1) truncated to [-2, 2] (JAX's constant); equals
# truncated_normal_std(-2.0, 2.0).
TRUNCATED_NORMAL_STD = 0.87962566103423978
# Standard deviation (sqrt of E|z|^2) of a unit circular complex normal whose modulus is
# cut at 2: |z|^2 ~ Exp(1) conditioned on |z|^2 <= 4, mean 1 - 4 e^-4 / (1 - e^-4).
COMPLEX_TRUNCATED_NORMAL_STD = math.sqrt(1.0 - 4.0 * math.exp(-4.0) / (1.0 - math.exp(-4.0)))


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi) if math.isfinite(x) else 0.0


def truncated_normal_std(a: float = -2.0, b: float = 2.0) -> float:
    """Standard deviation of ``N(0, 1)`` truncated to ``[a, b]``.

    With ``Z = Phi(b) - Phi(a)``: ``Var = 1 + (a phi(a) - b phi(b)) / Z
    - ((phi(a) - phi(b)) / Z)^2`` (Johnson, Kotz & Balakrishnan 1994, section 10.1).

    >>> round(truncated_normal_std(-2.0, 2.0), 15) == round(TRUNCATED_NORMAL_STD, 15)
    True
    """
    _check_interval(a, b)
    mass = _normal_cdf(b) - _normal_cdf(a)
    pa, pb = _normal_pdf(a), _normal_pdf(b)
    a_pa = a * pa if math.isfinite(a) else 0.0
    b_pb = b * pb if math.isfinite(b) else 0.0
    variance = 1.0 + (a_pa - b_pb) / mass - ((pa - pb) / mass) ** 2
    return math.sqrt(variance)


def _check_interval(a: float, b: float) -> None:
    if math.isnan(a) or math.isnan(b) or not a < b:
        raise InitlabError(f"truncation interval needs a < b (in std units), got a={a}, b={b}")
    if _normal_cdf(b) - _normal_cdf(a) < 1e-12:
        raise InitlabError(
            f"truncation interval [{a}, {b}] (in std units) holds almost no probability mass"
        )


def sample_truncated_normal_(
    tensor: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``tensor`` in place with ``mean + std * x``, ``x ~ N(0, 1)`` truncated to [a, b].

    ``a`` and ``b`` are in units of ``std`` around ``mean``. Sampling is by inversion:
    ``x = Phi^-1(Phi(a) + U (Phi(b) - Phi(a)))``, ``U ~ U(0, 1)``, computed in float64 (one
    uniform draw per element, so the result is a fixed function of the generator state).
    Intervals in the upper tail are reflected to the lower tail, where the inverse CDF is
    accurate.

    >>> g = torch.Generator().manual_seed(0)
    >>> w = sample_truncated_normal_(torch.empty(10_000), 1.0, 0.5, generator=g)
    >>> bool(w.min() >= 0.0), bool(w.max() <= 2.0)
    (True, True)
    """
    _check_interval(a, b)
    if tensor.is_complex():
        raise InitlabError(
            f"a truncated normal cut at [a, b] needs a real tensor, got {tensor.dtype}; for "
            "complex weights use variance_scaling_(..., distribution='truncated_normal') "
            "(modulus cut, as JAX does)"
        )
    if not math.isfinite(std) or std < 0 or not math.isfinite(mean):
        raise InitlabError(f"truncated normal needs finite mean and std >= 0, got {mean}, {std}")
    flip = a >= 0  # both bounds in the upper tail: sample -x on [-b, -a] instead
    lo, hi = (-b, -a) if flip else (a, b)
    cdf_lo, cdf_hi = _normal_cdf(lo), _normal_cdf(hi)
    with torch.no_grad():
        u = torch.empty(tensor.shape, dtype=torch.float64, device=tensor.device)
        u.uniform_(cdf_lo, cdf_hi, generator=generator)
        x = torch.special.ndtri(u).clamp_(lo, hi)
        if flip:
            x.neg_()
        tensor.copy_(x.mul_(std).add_(mean))
    return tensor


def warn_if_empty(tensor: torch.Tensor) -> bool:
    """Warn as ``torch.nn.init.kaiming_*`` do when ``tensor`` has no elements; True if so."""
    if tensor.numel() == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


def _complex_disk_(
    tensor: torch.Tensor, radius_squared: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """``tensor = r exp(i theta)``, ``r = sqrt(radius_squared)``, theta ~ U(0, 2 pi), in float64."""
    theta = torch.empty(tensor.shape, dtype=radius_squared.dtype, device=tensor.device)
    theta.uniform_(0.0, 2.0 * math.pi, generator=generator)
    return tensor.copy_(torch.polar(radius_squared.sqrt_(), theta))


def draw_scaled_(
    tensor: torch.Tensor,
    std: float,
    distribution: str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``tensor`` with zero-mean values of standard deviation ``std`` (``E|w|^2 = std^2``).

    Real tensors: ``normal_(0, std)``, ``uniform_(-sqrt(3) std, sqrt(3) std)`` (the bound
    computed as ``torch.nn.init`` does, so xavier and kaiming match it bit for bit) or a
    normal of parent std ``std / 0.8796`` cut at 2 parent stds. Complex tensors: as JAX
    (see the module docstring): circular normal, uniform on the disk of radius
    ``sqrt(2) std`` (``|w|^2 = 2 std^2 U``), or a circular normal of parent std
    ``std / 0.96196`` with the modulus cut at 2 parent stds
    (``|w|^2 = -s^2 log(1 - (1 - e^-4) U)``).

    >>> g = torch.Generator().manual_seed(0)
    >>> w = draw_scaled_(torch.empty(100_000, dtype=torch.complex64), 0.5, "uniform", g)
    >>> round(w.abs().square().mean().item(), 2), bool(w.abs().max() <= 0.5 * 2**0.5)
    (0.25, True)
    """
    check_choice(distribution, DISTRIBUTIONS, "distribution")
    with torch.no_grad():
        if distribution == "normal":
            return tensor.normal_(0.0, std, generator=generator)
        if not tensor.is_complex():
            if distribution == "uniform":
                bound = math.sqrt(3.0) * std
                return tensor.uniform_(-bound, bound, generator=generator)
            return sample_truncated_normal_(
                tensor, 0.0, std / TRUNCATED_NORMAL_STD, -2.0, 2.0, generator
            )
        u = torch.empty(tensor.shape, dtype=torch.float64, device=tensor.device)
        u.uniform_(0.0, 1.0, generator=generator)
        if distribution == "uniform":
            radius_squared = u.mul_(2.0 * std * std)
        else:
            parent = std / COMPLEX_TRUNCATED_NORMAL_STD
            radius_squared = u.mul_(-math.expm1(-4.0)).neg_().log1p_().mul_(-parent * parent)
        return _complex_disk_(tensor, radius_squared, generator)


def variance_scaling_(
    tensor: torch.Tensor,
    scale: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "normal",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill a weight in place with zero-mean values of variance ``scale / fan``.

    ``fan`` is ``fan_in``, ``fan_out``, ``(fan_in + fan_out) / 2`` (``fan_avg``) or
    ``sqrt(fan_in * fan_out)`` (``fan_geo_avg``) (``mode``; see
    :func:`initlab.init.fans.fan`); ``distribution`` is one of::

        normal            std = sqrt(scale / fan)
        truncated_normal  parent std = sqrt(scale / fan) / 0.87962566103423978, cut at 2 std
        uniform           bound = sqrt(3) * sqrt(scale / fan)

    Complex tensors are drawn as JAX does (see :func:`draw_scaled_`). A zero-element tensor
    is left as it is, with torch's "no-op" warning.

    >>> g = torch.Generator().manual_seed(0)
    >>> w = variance_scaling_(torch.empty(400, 500), 2.0, "fan_in", "uniform", generator=g)
    >>> bool(w.abs().max() <= (3 * 2.0 / 500) ** 0.5), round(w.std().item(), 2)
    (True, 0.06)
    """
    check_choice(mode, FAN_MODES, "fan mode")
    check_choice(distribution, DISTRIBUTIONS, "distribution")
    if (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not math.isfinite(scale)
        or scale < 0
    ):
        raise InitlabError(f"variance scale must be a finite number >= 0, got {scale!r}")
    compute_fans(tensor)  # validates the shape before anything is drawn
    if warn_if_empty(tensor):
        return tensor
    return draw_scaled_(tensor, math.sqrt(scale / fan(tensor, mode)), distribution, generator)


__all__ = [
    "COMPLEX_TRUNCATED_NORMAL_STD",
    "DISTRIBUTIONS",
    "TRUNCATED_NORMAL_STD",
    "Distribution",
    "draw_scaled_",
    "sample_truncated_normal_",
    "truncated_normal_std",
    "variance_scaling_",
    "warn_if_empty",
]
