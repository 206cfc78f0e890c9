"""Initialization schemes: fans and gains, one general ``variance_scaling_``, the named
schemes on top of it, the edge-of-chaos critical point, a registry of schemes by name and
``initialize(model, scheme)`` to apply one to a whole model.

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
from initlab.init.fans import FAN_MODES, GAIN_NAMES, FanMode, compute_fans, fan, gain
from initlab.init.lsuv import LSUVSummary, lsuv_
from initlab.init.meanfield import chi_1, critical_point, gaussian_expectation, variance_map
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
    constant_,
    critical_,
    delta_orthogonal_,
    dirac_,
    glorot_normal_,
    glorot_uniform_,
    he_normal_,
    he_uniform_,
    identity_,
    kaiming_normal_,
    kaiming_uniform_,
    lecun_normal_,
    lecun_uniform_,
    normal_,
    orthogonal_,
    standard_,
    truncated_normal_,
    uniform_,
    xavier_normal_,
    xavier_uniform_,
    zeros_,
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
    "Distribution",
    "FanMode",
    "InitSummary",
    "LSUVSummary",
    "LayerInit",
    "Option",
    "RBMConfig",
    "Scheme",
    "chi_1",
    "compute_fans",
    "constant_",
    "critical_",
    "critical_point",
    "delta_orthogonal_",
    "dirac_",
    "fan",
    "gain",
    "gaussian_expectation",
    "get_initializer",
    "get_scheme",
    "glorot_normal_",
    "glorot_uniform_",
    "he_normal_",
    "he_uniform_",
    "identity_",
    "initializable_layers",
    "initialize",
    "kaiming_normal_",
    "kaiming_uniform_",
    "layer_kind",
    "lecun_normal_",
    "lecun_uniform_",
    "list_schemes",
    "lsuv_",
    "normal_",
    "orthogonal_",
    "parse_scheme",
    "pretrain_dbn",
    "register",
    "standard_",
    "train_rbm",
    "truncated_normal_",
    "uniform_",
    "unregister",
    "variance_map",
    "variance_scaling_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]
