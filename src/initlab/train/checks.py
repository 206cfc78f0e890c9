"""Checks at the entry of ``fit`` and ``fit_batched``: a mistake in the data or the settings
is one line naming what was given and what is expected, before any training starts (not a
ZeroDivisionError, an IndexError from the loss, or a shape of the engine's internals).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from initlab.data.dataset import Dataset
from initlab.errors import InitlabError


def _named(data: Dataset, what: str) -> str:
    """The data set's name after the argument's (" 'mnist-train'"), or "" when it has none."""
    return "" if data.name == what else f" {data.name!r}"


def as_dataset(data: Any, what: str = "data") -> Dataset:
    """``data`` as a :class:`Dataset`: a Dataset, or an ``(x, y)`` pair of tensors."""
    if isinstance(data, Dataset):
        return data
    if (
        isinstance(data, tuple | list)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        x, y = data
        if y.dim() != 1 or x.dim() == 0 or x.shape[0] != y.shape[0]:
            raise InitlabError(
                f"{what}: (x, y) must be inputs [N, ...] and labels [N], got x "
                f"{list(x.shape)} and y {list(y.shape)}"
            )
        return Dataset(x, y, what)
    kinds = (
        f"({', '.join(type(v).__name__ for v in data)})"
        if isinstance(data, tuple | list)
        else type(data).__name__
    )
    raise InitlabError(
        f"{what} must be an initlab Dataset or an (x, y) pair of tensors (inputs [N, ...], "
        f"int64 labels [N]), got {kinds}"
    )


def check_positive(**values: int | None) -> None:
    """Each given integer setting is at least 1 (None: not given)."""
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise InitlabError(f"{name} must be a positive integer, got {value!r}")


def check_examples(data: Dataset, what: str = "data") -> None:
    """Float inputs, integer labels that are class indices (>= 0), at least one example."""
    if len(data) == 0:
        raise InitlabError(f"{what}{_named(data, what)} has no examples")
    if not data.x.is_floating_point():
        raise InitlabError(
            f"{what}{_named(data, what)}: inputs must be floating point, got {data.x.dtype}; "
            "use x.float()"
        )
    if data.y.is_floating_point() or data.y.is_complex() or data.y.dtype == torch.bool:
        raise InitlabError(
            f"{what}{_named(data, what)}: labels must be integer class indices, got "
            f"{data.y.dtype}; use y.long()"
        )
    if int(data.y.min()) < 0:
        raise InitlabError(
            f"{what}{_named(data, what)}: labels must be class indices >= 0, got "
            f"{int(data.y.min())}"
        )


def check_classes(data: Dataset, outputs: int, what: str = "data") -> None:
    """Every label indexes one of the model's ``outputs`` class scores."""
    top = int(data.y.max())
    if top >= outputs:
        raise InitlabError(
            f"{what}{_named(data, what)} has labels up to {top}, but the model has {outputs} "
            f"outputs (classes 0..{outputs - 1}); give the output layer {top + 1} units"
        )


def model_outputs(model: nn.Module) -> int | None:
    """The number of class scores ``model`` gives, read from its last ``nn.Linear`` when that
    is the model's last module with weights (None when it cannot be told without running it)."""
    weighted = [m for m in model.modules() if isinstance(getattr(m, "weight", None), nn.Parameter)]
    if weighted and isinstance(weighted[-1], nn.Linear):
        return int(weighted[-1].out_features)
    return None


def model_inputs(model: nn.Module) -> int | None:
    """The input width of ``model`` when its first leaf module is an ``nn.Linear``."""
    first = next((m for m in model.modules() if not list(m.children())), None)
    return int(first.in_features) if isinstance(first, nn.Linear) else None


def check_features(data: Dataset, in_features: int, what: str = "data") -> None:
    """The inputs have ``in_features`` values per example (an MLP's input width)."""
    if data.num_features != in_features:
        raise InitlabError(
            f"{what}{_named(data, what)} has {data.num_features} values per example "
            f"(shape {list(data.x.shape[1:])}), but the network's input layer takes "
            f"{in_features}"
        )
