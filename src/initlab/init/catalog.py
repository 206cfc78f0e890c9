"""The built-in, data-free schemes, registered on import (``import initlab.init`` does it).

Each entry names a function of :mod:`initlab.init.schemes`, :mod:`initlab.init.nn_init`
(or :func:`~initlab.init.variance_scaling.variance_scaling_`), says in one line what it
draws (and where it comes from), and lists the options a scheme string may set. Option
names are the functions' keywords. Two scheme strings keep the meaning they had before the
torch-named functions took torch's signatures: ``uniform:a=X`` is the symmetric
``U(-X, X)`` and ``constant:value=X`` fills X (torch's keyword is ``val``).
"""

from __future__ import annotations

import torch

from initlab.init import nn_init, schemes
from initlab.init.fans import FAN_MODES
from initlab.init.meanfield import CRITICAL_ACTIVATIONS
from initlab.init.registry import Option, Scheme, register
from initlab.init.schemes import HE_MODES, HE_NONLINEARITIES
from initlab.init.variance_scaling import DISTRIBUTIONS, variance_scaling_

GAIN = Option("gain", "gain", 1.0, "multiplier: a number or an activation name", low=0.0)
STD = Option("std", "float", 1.0, "standard deviation", low=0.0)
MEAN = Option("mean", "float", 0.0, "mean")
HE_OPTIONS = (
    Option("negative_slope", "float", 0.0, "leaky ReLU slope (0: ReLU)", low=0.0),
    Option("mode", "choice", "fan_in", "fan_in keeps forward variance", choices=HE_MODES),
    Option("nonlinearity", "choice", "leaky_relu", "relu needs slope 0", choices=HE_NONLINEARITIES),
)


def symmetric_uniform_(
    tensor: torch.Tensor, a: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``w ~ U(-a, a)``, variance ``a^2 / 3``, whatever the layer's size: the registry's
    ``uniform`` scheme, ``initlab.init.uniform_(tensor, -a, a)``.

    >>> g = torch.Generator().manual_seed(0)
    >>> bool(symmetric_uniform_(torch.empty(100, 100), 0.1, generator=g).abs().max() <= 0.1)
    True
    """
    half_width = nn_init.finite_number("a", a, low=0.0)
    return nn_init.uniform_(tensor, -half_width, half_width, generator=generator)


def fill_constant_(tensor: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """``w = value`` everywhere: the registry's ``constant`` scheme,
    ``initlab.init.constant_(tensor, value)``; units stay identical as with zeros.

    >>> fill_constant_(torch.empty(2, 2), 0.5).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    return nn_init.constant_(tensor, nn_init.finite_number("value", value))


BUILTIN_SCHEMES: tuple[Scheme, ...] = (
    Scheme(
        "zeros",
        "all weights 0: every unit stays identical (the symmetry problem)",
        nn_init.zeros_,
        random=False,
    ),
    Scheme(
        "constant",
        "all weights one value: units stay identical like zeros",
        fill_constant_,
        options=(Option("value", "float", 0.0, "the value"),),
        random=False,
    ),
    Scheme(
        "normal",
        "N(mean, std^2) whatever the layer size",
        nn_init.normal_,
        options=(STD, MEAN),
    ),
    Scheme(
        "uniform",
        "U(-a, a) whatever the layer size (torch's uniform_(t, a, b) is U(a, b))",
        symmetric_uniform_,
        options=(Option("a", "float", 1.0, "half-width", low=0.0),),
    ),
    Scheme(
        "truncated_normal",
        "N(mean, std^2) cut at [a, b] std",
        schemes.truncated_normal_,
        options=(
            STD,
            MEAN,
            Option("a", "float", -2.0, "lower cut, in std"),
            Option("b", "float", 2.0, "upper cut, in std"),
        ),
    ),
    Scheme(
        "standard",
        "U[-1/sqrt(fan_in), 1/sqrt(fan_in)] (Glorot & Bengio 2010 eq. 1; PyTorch's default)",
        schemes.standard_,
        bias="standard",
    ),
    Scheme(
        "xavier_normal",
        "N(0, gain^2 2/(fan_in+fan_out)) (Glorot & Bengio 2010)",
        nn_init.xavier_normal_,
        options=(GAIN,),
        aliases=("glorot_normal",),
    ),
    Scheme(
        "xavier_uniform",
        "U[-+ gain sqrt(6/(fan_in+fan_out))] (Glorot & Bengio 2010 eq. 16)",
        nn_init.xavier_uniform_,
        options=(GAIN,),
        aliases=("glorot_uniform",),
    ),
    Scheme(
        "he_normal",
        "N(0, 2/((1+slope^2) fan)) (He et al. 2015)",
        schemes.he_normal_,
        options=HE_OPTIONS,
        aliases=("kaiming_normal",),
    ),
    Scheme(
        "he_uniform",
        "U[-+ sqrt(6/((1+slope^2) fan))] (He et al. 2015)",
        schemes.he_uniform_,
        options=HE_OPTIONS,
        aliases=("kaiming_uniform",),
    ),
    Scheme("lecun_normal", "N(0, 1/fan_in) (LeCun et al. 1998)", schemes.lecun_normal_),
    Scheme("lecun_uniform", "U[-+ sqrt(3/fan_in)] (LeCun et al. 1998)", schemes.lecun_uniform_),
    Scheme(
        "glorot_truncated_normal",
        "truncated N, variance gain^2 2/(fan_in+fan_out) after the cut (JAX glorot_normal, "
        "Keras GlorotNormal)",
        schemes.glorot_truncated_normal_,
        options=(GAIN,),
    ),
    Scheme(
        "he_truncated_normal",
        "truncated N, variance 2/((1+slope^2) fan) after the cut (JAX he_normal, Keras HeNormal)",
        schemes.he_truncated_normal_,
        options=HE_OPTIONS,
    ),
    Scheme(
        "lecun_truncated_normal",
        "truncated N, variance 1/fan_in after the cut (JAX lecun_normal, Keras LecunNormal)",
        schemes.lecun_truncated_normal_,
    ),
    Scheme(
        "variance_scaling",
        "variance scale/fan (fan_in, fan_out, fan_avg or fan_geo_avg) from a normal, truncated "
        "normal or uniform (JAX's variance_scaling)",
        variance_scaling_,
        options=(
            Option("scale", "float", 1.0, "variance times fan", low=0.0),
            Option("mode", "choice", "fan_in", "which fan", choices=FAN_MODES),
            Option("distribution", "choice", "normal", "shape", choices=DISTRIBUTIONS),
        ),
    ),
    Scheme(
        "orthogonal",
        "random (semi-)orthogonal W, W W^T = gain^2 I (Saxe et al. 2014)",
        nn_init.orthogonal_,
        options=(GAIN,),
    ),
    Scheme(
        "identity",
        "W = gain I for Linear layers (rectangular: main diagonal)",
        schemes.identity_,
        options=(Option("gain", "float", 1.0, "diagonal value", low=0.0),),
        random=False,
        applies_to=("linear",),
        aliases=("eye",),
    ),
    Scheme(
        "sparse",
        "per column, a fraction sparsity of zeros, the rest N(0, std^2) (Martens 2010)",
        nn_init.sparse_,
        options=(
            Option("sparsity", "float", 0.5, "fraction of zeros per column", low=0.0),
            Option("std", "float", 0.01, "standard deviation of the others", low=0.0),
        ),
        applies_to=("linear",),
    ),
    Scheme(
        "dirac",
        "convolution that copies its input channels (gain at the kernel centre)",
        nn_init.dirac_,
        options=(
            Option("gain", "float", 1.0, "centre value", low=0.0),
            Option("groups", "int", 1, "conv groups (default: the layer's)", low=1),
        ),
        random=False,
        applies_to=("conv",),
    ),
    Scheme(
        "delta_orthogonal",
        "orthogonal matrix at the kernel centre, zeros elsewhere (Xiao et al. 2018)",
        schemes.delta_orthogonal_,
        options=(GAIN,),
        applies_to=("conv",),
    ),
    Scheme(
        "critical",
        "edge of chaos: N(0, sigma_w^2/fan_in), biases N(0, sigma_b2) (Schoenholz et al. 2017)",
        schemes.critical_,
        bias="critical",
        options=(
            Option("sigma_b2", "float", 0.05, "bias variance", low=0.0),
            Option("activation", "choice", "tanh", "network nonlinearity", CRITICAL_ACTIVATIONS),
        ),
    ),
    Scheme(
        "critical_orthogonal",
        "edge of chaos with orthogonal W (delta-orthogonal kernels), biases N(0, sigma_b2)",
        schemes.critical_orthogonal_,
        bias="critical",
        options=(
            Option("sigma_b2", "float", 0.05, "bias variance", low=0.0),
            Option("activation", "choice", "tanh", "network nonlinearity", CRITICAL_ACTIVATIONS),
        ),
    ),
)

for _scheme in BUILTIN_SCHEMES:
    register(_scheme)
