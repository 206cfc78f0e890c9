"""Fans and gains: the two numbers every variance-scaling scheme is built from.

The *fan-in* of a weight is the number of inputs that feed one output unit, the *fan-out*
the number of outputs one input feeds. We follow PyTorch's convention
(``torch.nn.init._calculate_fan_in_and_fan_out``) for every weight layout: for a tensor of
shape ``(d0, d1, k1, ..., kn)`` the receptive field is ``r = k1 * ... * kn`` and

    fan_in = d1 * r,    fan_out = d0 * r.

That is exact for ``Linear`` ``(out, in)`` and ``ConvNd`` ``(out, in / groups, *k)``
weights. For ``ConvTransposeNd`` weights ``(in, out / groups, *k)`` the two roles swap,
and PyTorch (and so initlab) still reads dim 1 as fan-in; we keep that convention so that
our schemes agree with ``torch.nn.init`` and with PyTorch's default layer initialization.

The *gain* of an activation ``f`` is the factor by which a scheme multiplies the standard
deviation of the weights so that the activation's effect on the variance is undone
(He et al. 2015, "Delving Deep into Rectifiers", eq. 10). See :func:`gain`.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Literal, get_args

import torch

from initlab.activations import make_activation
from initlab.errors import InitlabError, check_choice
from initlab.init.meanfield import gaussian_expectation

FanMode = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
FAN_MODES: tuple[str, ...] = get_args(FanMode)

GainName = Literal[
    "linear",
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
    "softsign",
    "gelu",
    "silu",
    "elu",
]
GAIN_NAMES: tuple[str, ...] = get_args(GainName)

# The nonlinearity names torch.nn.init.calculate_gain knows; the rest of GAIN_NAMES are ours.
TORCH_GAIN_NAMES: tuple[str, ...] = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
)
CALCULATE_GAIN_NAMES: tuple[str, ...] = (
    *TORCH_GAIN_NAMES,
    *(name for name in GAIN_NAMES if name not in TORCH_GAIN_NAMES),
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compute_fans(tensor: torch.Tensor | torch.Size | tuple[int, ...]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight tensor (or of a shape), PyTorch's convention.

    ``fan_in = shape[1] * prod(shape[2:])`` and ``fan_out = shape[0] * prod(shape[2:])``.

    >>> compute_fans(torch.empty(100, 784))
    (784, 100)
    >>> compute_fans(torch.empty(32, 16, 3, 3))
    (144, 288)
    """
    shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else tuple(tensor)
    if len(shape) < 2:
        raise InitlabError(
            f"fans need a weight with at least 2 dimensions (out, in, *kernel), got shape "
            f"{list(shape)}; biases and norms are initialized by the bias rule"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def fan(tensor: torch.Tensor | torch.Size | tuple[int, ...], mode: str = "fan_in") -> float:
    """The fan a variance-scaling scheme divides by: fan_in, fan_out, their arithmetic mean
    (``fan_avg``, Glorot & Bengio 2010) or their geometric mean (``fan_geo_avg``,
    ``sqrt(fan_in * fan_out)``, JAX's ``variance_scaling`` mode of that name).

    >>> fan(torch.empty(100, 300), "fan_avg"), round(fan(torch.empty(100, 400), "fan_geo_avg"))
    (200.0, 200)
    """
    check_choice(mode, FAN_MODES, "fan mode")
    fan_in, fan_out = compute_fans(tensor)
    if mode == "fan_in":
        return float(fan_in)
    if mode == "fan_out":
        return float(fan_out)
    if mode == "fan_geo_avg":
        return math.sqrt(fan_in * fan_out)
    return (fan_in + fan_out) / 2.0


@cache
def _second_moment_gain(activation: str, param: float | None) -> float:
    """``1 / sqrt(E[f(z)^2])`` for ``z ~ N(0, 1)``, by quadrature (see :mod:`.meanfield`)."""
    module = make_activation(activation)
    if activation == "elu" and param is not None:
        module = torch.nn.ELU(alpha=param)
    second_moment = gaussian_expectation(lambda u: module(u) ** 2, variance=1.0)
    return 1.0 / math.sqrt(second_moment)


def gain(activation: str, param: float | None = None) -> float:
    """The recommended gain for an activation: scale the weights' std by this factor.

    Values shared with ``torch.nn.init.calculate_gain`` are taken from it unchanged:

    ============  ==============================  =======================================
    activation    gain                            origin
    ============  ==============================  =======================================
    linear,       1                               identity map
    identity
    sigmoid       1                               PyTorch's convention
    tanh          5/3                             PyTorch's convention (empirical)
    relu          sqrt(2) = 1.41421               He et al. 2015, eq. 10
    leaky_relu    sqrt(2 / (1 + param^2))         He et al. 2015; param = negative slope,
                                                  default 0.01
    selu          3/4                             PyTorch's convention (empirical; SELU's
                                                  self-normalising init is gain 1, i.e. LeCun)
    ============  ==============================  =======================================

    For the activations PyTorch leaves out we use the rule that gives ReLU and leaky ReLU
    their gains: the next layer's pre-activation variance is ``fan_in * Var(w) * E[f(z)^2]``
    (zero-mean weights; He et al. 2015, eq. 8), so a unit-variance Gaussian input keeps
    unit variance when ``gain = 1 / sqrt(E[f(z)^2])``, ``z ~ N(0, 1)``. The expectation is
    computed by quadrature on first use (see :func:`initlab.init.meanfield.gaussian_expectation`):

    ========  ===============  ========
    name      E[f(z)^2]        gain
    ========  ===============  ========
    softsign  0.183014         2.33753
    gelu      0.425221         1.53353
    silu      0.355776         1.67653
    elu       0.644945         1.24520  (alpha = param, default 1)
    ========  ===============  ========

    (The same rule would give 1.59254 for tanh and 1.84623 for sigmoid; we keep PyTorch's
    values there so that our schemes agree with ``torch.nn.init``.)

    >>> round(gain("relu"), 5), round(gain("leaky_relu", 0.2), 5), round(gain("gelu"), 5)
    (1.41421, 1.38675, 1.53353)
    """
    check_choice(activation, GAIN_NAMES, "activation for a gain")
    takes_param = activation in ("leaky_relu", "elu")
    if param is not None:
        if not takes_param:
            raise InitlabError(
                f"gain for {activation!r} takes no parameter (got {param}); only leaky_relu "
                "(negative slope) and elu (alpha) do"
            )
        if not _is_number(param) or not math.isfinite(param) or param < 0:
            raise InitlabError(f"gain parameter must be a finite number >= 0, got {param!r}")
    if activation in ("linear", "identity", "sigmoid"):
        return 1.0
    if activation == "tanh":
        return 5.0 / 3.0
    if activation == "relu":
        return math.sqrt(2.0)
    if activation == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope**2))
    if activation == "selu":
        return 3.0 / 4.0
    return _second_moment_gain(activation, None if param is None else float(param))


def calculate_gain(nonlinearity: str, param: int | float | None = None) -> float:
    """``torch.nn.init.calculate_gain`` with the same names, values and errors, plus ours.

    Every name torch knows (``linear``, ``conv1d`` .. ``conv3d``, ``conv_transpose1d`` ..
    ``conv_transpose3d``, ``sigmoid``, ``tanh``, ``relu``, ``leaky_relu``, ``selu``) gives
    torch's value (see :func:`gain` for the table); as in torch, ``param`` is the negative
    slope of ``leaky_relu`` (default 0.01, any real number) and is ignored by the others.
    A ``param`` that is not a number (a bool, a list, a dict) raises torch's ``ValueError``
    ("negative_slope ... not a valid number"); an unknown name raises torch's ``ValueError``
    ("Unsupported nonlinearity ...") and lists the valid names. Differences (deliberate):
    the gains initlab adds (``identity``, ``softsign``, ``gelu``, ``silu``, ``elu`` with
    ``param`` = alpha) are accepted; a non-finite slope (nan, inf) is refused instead of
    giving a nan or zero gain; the result is always a float (torch returns the int 1 for
    the linear names and sigmoid).

    >>> calculate_gain("conv2d"), round(calculate_gain("leaky_relu", 0.2), 5)
    (1.0, 1.38675)
    >>> calculate_gain("tanh", 0.3) == 5 / 3  # param ignored, as in torch
    True
    """
    if not isinstance(nonlinearity, str) or nonlinearity not in CALCULATE_GAIN_NAMES:
        raise InitlabError(
            f"Unsupported nonlinearity {nonlinearity}; valid: {', '.join(CALCULATE_GAIN_NAMES)}"
        )
    if nonlinearity in TORCH_GAIN_NAMES[:7]:  # linear and the convolutions
        return 1.0
    if nonlinearity == "leaky_relu":
        if param is None:
            return gain("leaky_relu")
        if not _is_number(param):
            raise InitlabError(f"negative_slope {param} not a valid number")
        if not math.isfinite(param):
            raise InitlabError(f"negative_slope {param} not a valid number (must be finite)")
        return math.sqrt(2.0 / (1 + param**2))
    if nonlinearity == "elu":
        return gain("elu", param)
    return gain(nonlinearity)


def resolve_gain(value: float | str) -> float:
    """A gain given as a number, or as an activation name looked up with :func:`gain`.

    >>> resolve_gain("tanh") == 5 / 3, resolve_gain(2.0)
    (True, 2.0)
    """
    if isinstance(value, str):
        return gain(value)
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise InitlabError(
            f"gain must be a finite number >= 0 or an activation name, got {value!r}; "
            f"activation names: {', '.join(GAIN_NAMES)}"
        )
    return float(value)


__all__ = [
    "CALCULATE_GAIN_NAMES",
    "FAN_MODES",
    "GAIN_NAMES",
    "TORCH_GAIN_NAMES",
    "FanMode",
    "GainName",
    "calculate_gain",
    "compute_fans",
    "fan",
    "gain",
    "resolve_gain",
]
