"""Initialization schemes: fans and gains, one general ``variance_scaling_``, the named
schemes on top of it, the edge-of-chaos critical point, a registry of schemes by name and
``initialize(model, scheme)`` to apply one to a whole model.

Every name of ``torch.nn.init`` is here with torch's signature and values (see
:mod:`initlab.init.nn_init` for the few deliberate differences), so ``from initlab import
init`` can replace ``import torch.nn.init as init``.

>>> from initlab.models import mlp
>>> summary = initialize(mlp([784, 100, 10], "relu"), "he_normal", seed=0)
>>> len(summary)
2
"""

from initlab.init import catalog as _catalog  # registers the built-in schemes
from initlab.init.apply import (
    InitSummary,
    LayerInit,
    get_initializer,
    initializable_layers,
    initialize,
    layer_kind,
)
from initlab.init.fans import (
    FAN_MODES,
    GAIN_NAMES,
    FanMode,
    calculate_gain,
    compute_fans,
    fan,
    gain,
)
from initlab.init.meanfield import chi_1, critical_point, gaussian_expectation, variance_map
from initlab.init.nn_init import (
    constant,
    constant_,
    dirac,
    dirac_,
    eye,
    eye_,
    kaiming_normal,
    kaiming_normal_,
    kaiming_uniform,
    kaiming_uniform_,
    normal,
    normal_,
    ones_,
    orthogonal,
    orthogonal_,
    sparse,
    sparse_,
    trunc_normal_,
    uniform,
    uniform_,
    xavier_normal,
    xavier_normal_,
    xavier_uniform,
    xavier_uniform_,
    zeros_,
)
from initlab.init.registry import (
    BIAS_RULES,
    BiasRule,
    Option,
    Scheme,
    get_scheme,
    list_schemes,
    parse_scheme,
    register,
    unregister,
)
from initlab.init.schemes import (
    critical_,
    delta_orthogonal_,
    glorot_normal_,
    glorot_truncated_normal_,
    glorot_uniform_,
    he_normal_,
    he_truncated_normal_,
    he_uniform_,
    identity_,
    lecun_normal_,
    lecun_truncated_normal_,
    lecun_uniform_,
    standard_,
    truncated_normal_,
)
from initlab.init.variance_scaling import DISTRIBUTIONS, Distribution, variance_scaling_

del _catalog

__all__ = [
    "BIAS_RULES",
    "DISTRIBUTIONS",
    "FAN_MODES",
    "GAIN_NAMES",
    "BiasRule",
    "Distribution",
    "FanMode",
    "InitSummary",
    "LayerInit",
    "Option",
    "Scheme",
    "calculate_gain",
    "chi_1",
    "compute_fans",
    "constant",
    "constant_",
    "critical_",
    "critical_point",
    "delta_orthogonal_",
    "dirac",
    "dirac_",
    "eye",
    "eye_",
    "fan",
    "gain",
    "gaussian_expectation",
    "get_initializer",
    "get_scheme",
    "glorot_normal_",
    "glorot_truncated_normal_",
    "glorot_uniform_",
    "he_normal_",
    "he_truncated_normal_",
    "he_uniform_",
    "identity_",
    "initializable_layers",
    "initialize",
    "kaiming_normal",
    "kaiming_normal_",
    "kaiming_uniform",
    "kaiming_uniform_",
    "layer_kind",
    "lecun_normal_",
    "lecun_truncated_normal_",
    "lecun_uniform_",
    "list_schemes",
    "normal",
    "normal_",
    "ones_",
    "orthogonal",
    "orthogonal_",
    "parse_scheme",
    "register",
    "sparse",
    "sparse_",
    "standard_",
    "trunc_normal_",
    "truncated_normal_",
    "uniform",
    "uniform_",
    "unregister",
    "variance_map",
    "variance_scaling_",
    "xavier_normal",
    "xavier_normal_",
    "xavier_uniform",
    "xavier_uniform_",
    "zeros_",
]
