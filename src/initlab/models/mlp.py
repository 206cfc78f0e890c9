"""Fully connected networks from one small vocabulary.

``mlp([784, 100, 100, 10], "relu")`` builds Linear -> [BatchNorm1d] -> activation ->
[Dropout] for every hidden layer and a plain Linear output layer (logits; the loss applies
the softmax). Batch norm sits between the affine map and the nonlinearity, as in Ioffe &
Szegedy (2015). Modules are named ``linear1 .. linearL`` (``linearL`` is the output layer),
``norm{i}``, ``act{i}`` and ``dropout{i}``, so that probes and per-layer init overrides can
address them by name.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from initlab.activations import ACTIVATION_NAMES, make_activation
from initlab.errors import InitlabError, check_choice

DropoutMode = Literal["inverted", "scale_at_test"]
"""How dropout keeps the expected activation: ``inverted`` (PyTorch's ``nn.Dropout``: kept
units are scaled by ``1 / (1 - p)`` in training, nothing at test time) or
``scale_at_test`` (Srivastava et al. 2014 and the from-scratch book's ``Dropout``: kept
units are unscaled in training, every unit is multiplied by ``1 - p`` at test time)."""
DROPOUT_MODES: tuple[str, ...] = get_args(DropoutMode)


@dataclass(frozen=True)
class MLPSpec:
    """Everything needed to rebuild an MLP (and to run it in the batched engine)."""

    widths: tuple[int, ...]  # layer widths, input first and output last: (784, 100, 10)
    activation: str = "relu"  # hidden-layer activation, one of ACTIVATION_NAMES
    batchnorm: bool = False  # BatchNorm1d after every hidden affine map
    dropout: float = 0.0  # dropout probability after every hidden activation
    bias: bool = True  # affine maps have a bias
    bn_eps: float = 1e-5  # batch norm's eps in sqrt(var + eps) (torch's 1e-5; the book 1e-6)
    dropout_mode: DropoutMode = "inverted"  # see DropoutMode

    def __post_init__(self) -> None:
        if len(self.widths) < 2:
            raise InitlabError(
                f"an MLP needs at least an input and an output width, got {list(self.widths)}"
            )
        if any(int(w) < 1 for w in self.widths):
            raise InitlabError(f"MLP widths must be positive integers, got {list(self.widths)}")
        check_choice(self.activation, ACTIVATION_NAMES, "activation")
        if not 0.0 <= self.dropout < 1.0:
            raise InitlabError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.bn_eps > 0:
            raise InitlabError(f"bn_eps must be positive, got {self.bn_eps}")
        check_choice(self.dropout_mode, DROPOUT_MODES, "dropout mode")

    @property
    def depth(self) -> int:
        """Number of affine layers (hidden layers + the output layer)."""
        return len(self.widths) - 1

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly form of the spec."""
        data = asdict(self)
        data["widths"] = list(self.widths)
        return data


class ScaledAtTestDropout(nn.Module):
    """Dropout as Srivastava et al. (2014) and the from-scratch book's ``Dropout`` layer:
    training ``y = x * m`` with ``m ~ Bernoulli(1 - p)`` (no rescaling), test ``y = (1 - p) x``.

    The mask is drawn as ``torch.nn.functional.dropout`` draws it on the CPU (one
    ``bernoulli_(1 - p)`` of the input's shape from the global generator), so the same seed
    drops the same units as ``nn.Dropout``.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        keep = 1.0 - self.p
        if not self.training:
            return x * keep
        return x * torch.empty_like(x).bernoulli_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MLP(nn.Sequential):
    """An ``nn.Sequential`` that remembers the :class:`MLPSpec` it was built from."""

    def __init__(self, spec: MLPSpec) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (n_in, n_out) in enumerate(zip(spec.widths[:-1], spec.widths[1:], strict=True), 1):
            layers[f"linear{i}"] = nn.Linear(n_in, n_out, bias=spec.bias)
            if i == spec.depth:
                break
            if spec.batchnorm:
                layers[f"norm{i}"] = nn.BatchNorm1d(n_out, eps=spec.bn_eps)
            layers[f"act{i}"] = make_activation(spec.activation)
            if spec.dropout > 0:
                inverted = spec.dropout_mode == "inverted"
                layers[f"dropout{i}"] = (
                    nn.Dropout(spec.dropout) if inverted else ScaledAtTestDropout(spec.dropout)
                )
        super().__init__(layers)
        self.spec = spec


def mlp(
    widths: Sequence[int],
    activation: str = "relu",
    batchnorm: bool = False,
    dropout: float = 0.0,
    bias: bool = True,
    bn_eps: float = 1e-5,
    dropout_mode: DropoutMode = "inverted",
) -> MLP:
    """Build a fully connected network.

    Args:
        widths: input width, hidden widths, output width, e.g. ``[784, 100, 100, 10]``.
        activation: hidden activation (see :data:`initlab.activations.ACTIVATION_NAMES`).
        batchnorm: insert ``BatchNorm1d`` before every hidden activation.
        dropout: dropout probability after every hidden activation (0 disables it).
        bias: give affine layers a bias.
        bn_eps: batch norm's eps (the from-scratch book uses 1e-6, torch 1e-5).
        dropout_mode: ``"inverted"`` (``nn.Dropout``) or ``"scale_at_test"`` (the book's).

    >>> mlp([784, 100, 10], "tanh")
    MLP(
      (linear1): Linear(in_features=784, out_features=100, bias=True)
      (act1): Tanh()
      (linear2): Linear(in_features=100, out_features=10, bias=True)
    )
    """
    spec = MLPSpec(
        tuple(int(w) for w in widths),
        activation,
        batchnorm,
        float(dropout),
        bias,
        float(bn_eps),
        dropout_mode,
    )
    return MLP(spec)


def deep_mlp(
    depth: int,
    width: int,
    activation: str = "tanh",
    in_features: int | None = None,
    out_features: int | None = None,
    bias: bool = True,
) -> MLP:
    """A deep vanilla MLP for signal-propagation work: ``depth`` hidden layers of ``width``.

    No residual connections and no normalization, so whatever reaches the last layer is
    what the initialization lets through (Poole et al. 2016, Schoenholz et al. 2017).
    ``in_features`` and ``out_features`` default to ``width``.
    """
    if depth < 1:
        raise InitlabError(f"depth must be at least 1, got {depth}")
    widths = [in_features or width, *([width] * depth), out_features or width]
    return mlp(widths, activation, bias=bias)
