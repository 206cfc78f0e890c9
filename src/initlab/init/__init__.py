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
from initlab.init import data_schemes as _data_schemes  # registers lsuv and dbn
from initlab.init.apply import (
    InitSummary,
    LayerInit,
    get_initializer,
    initializable_layers,
    initialize,
    layer_kind,
)
from initlab.init.dbn import DBNSummary, pretrain_dbn
from initlab.init.fans import (
    FAN_MODES,
    GAIN_NAMES,
    FanMode,
    calculate_gain,
    compute_fans,
    fan,
    gain,
)
from initlab.init.lsuv import LSUVSummary, lsuv_
from initlab.init.meanfield import (
    DepthScales,
    chi_1,
    critical_point,
    depth_scales,
    gaussian_expectation,
    variance_map,
)
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
from initlab.init.rbm import RBM, RBMConfig, train_rbm
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
    critical_orthogonal_,
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

del _catalog, _data_schemes

__all__ = [
    "BIAS_RULES",
    "DISTRIBUTIONS",
    "FAN_MODES",
    "GAIN_NAMES",
    "RBM",
    "BiasRule",
    "DBNSummary",
    "DepthScales",
    "Distribution",
    "FanMode",
    "InitSummary",
    "LSUVSummary",
    "LayerInit",
    "Option",
    "RBMConfig",
    "Scheme",
    "calculate_gain",
    "chi_1",
    "compute_fans",
    "constant",
    "constant_",
    "critical_",
    "critical_orthogonal_",
    "critical_point",
    "delta_orthogonal_",
    "depth_scales",
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
    "lsuv_",
    "normal",
    "normal_",
    "ones_",
    "orthogonal",
    "orthogonal_",
    "parse_scheme",
    "pretrain_dbn",
    "register",
    "sparse",
    "sparse_",
    "standard_",
    "train_rbm",
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
