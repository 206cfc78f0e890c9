"""The activation vocabulary shared by models, initialization gains and probes.

One table, :data:`ACTIVATIONS`, says for each activation how to build it, its natural
output range (for histograms) and how to recognise a saturated unit. Saturation follows
Glorot & Bengio (2010): a unit is saturated when it sits on a flat part of its curve,
i.e. within 1% of an asymptote of a bounded activation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from initlab.errors import check_choice

ActivationName = Literal[
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "softsign",
    "gelu",
    "silu",
    "identity",
]
ACTIVATION_NAMES: tuple[str, ...] = get_args(ActivationName)


@dataclass(frozen=True)
class ActivationInfo:
    """What the rest of initlab needs to know about one activation function."""

    name: str
    build: Callable[[], nn.Module]  # a fresh module computing the activation
    output_range: tuple[float, float] | None  # natural range for histograms; None: data range
    saturation_bounds: tuple[float, float] | None  # outputs <= lo or >= hi count as saturated
    can_die: bool  # True where a unit can output exactly 0 for every input (ReLU family)


ACTIVATIONS: dict[str, ActivationInfo] = {
    "sigmoid": ActivationInfo("sigmoid", nn.Sigmoid, (0.0, 1.0), (0.01, 0.99), False),
    "tanh": ActivationInfo("tanh", nn.Tanh, (-1.0, 1.0), (-0.99, 0.99), False),
    "relu": ActivationInfo("relu", nn.ReLU, None, None, True),
    "leaky_relu": ActivationInfo("leaky_relu", nn.LeakyReLU, None, None, False),
    "elu": ActivationInfo("elu", nn.ELU, None, None, False),
    "selu": ActivationInfo("selu", nn.SELU, None, None, False),
    # softsign x/(1+|x|) approaches its asymptotes slowly; Glorot & Bengio read saturation
    # of softsign at |y| > 0.9 (the knee of the curve), not 0.99.
    "softsign": ActivationInfo("softsign", nn.Softsign, (-1.0, 1.0), (-0.9, 0.9), False),
    "gelu": ActivationInfo("gelu", nn.GELU, None, None, False),
    "silu": ActivationInfo("silu", nn.SiLU, None, None, False),
    "identity": ActivationInfo("identity", nn.Identity, None, None, False),
}

_MODULE_TO_NAME: dict[type[nn.Module], str] = {
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.ReLU: "relu",
    nn.LeakyReLU: "leaky_relu",
    nn.ELU: "elu",
    nn.SELU: "selu",
    nn.Softsign: "softsign",
    nn.GELU: "gelu",
    nn.SiLU: "silu",
    nn.Identity: "identity",
}


def activation_info(name: str) -> ActivationInfo:
    """Look up an activation by name; unknown names raise an error listing the valid ones."""
    check_choice(name, ACTIVATION_NAMES, "activation")
    return ACTIVATIONS[name]


def make_activation(name: str) -> nn.Module:
    """Build a fresh ``nn.Module`` for the named activation."""
    return activation_info(name).build()


def activation_name_of(module: nn.Module) -> str | None:
    """The vocabulary name of an activation module, or None if it is not one of ours."""
    return _MODULE_TO_NAME.get(type(module))


def apply_activation(name: str, x: torch.Tensor) -> torch.Tensor:
    """Apply the named activation functionally (used by batched code paths)."""
    return activation_info(name).build()(x)
