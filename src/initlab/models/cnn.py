"""Convolutional networks from the same vocabulary as :mod:`initlab.models.mlp`.

``cnn`` is a small image classifier: blocks of Conv2d ('same' padding) -> [BatchNorm2d] ->
activation -> [Dropout] -> MaxPool2d(2), then a Linear classifier. ``deep_cnn`` is a deep
vanilla stack of equal-width convolutions without pooling, normalization or residuals,
followed by global average pooling, as used to study delta-orthogonal initialization
(Xiao et al. 2018, "Dynamical Isometry and a Mean Field Theory of CNNs").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from initlab.activations import make_activation
from initlab.errors import InitlabError


def cnn(
    in_channels: int = 1,
    channels: Sequence[int] = (16, 32),
    num_classes: int = 10,
    image_size: int = 28,
    kernel_size: int = 3,
    activation: str = "relu",
    batchnorm: bool = False,
    dropout: float = 0.0,
    bias: bool = True,
) -> nn.Sequential:
    """A small CNN: one conv block per entry of ``channels``, each halving the image size.

    Modules are named ``conv{i}``, ``norm{i}``, ``act{i}``, ``dropout{i}``, ``pool{i}``,
    then ``flatten`` and ``linear`` (the classifier).
    """
    if kernel_size % 2 != 1:
        raise InitlabError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
    if image_size < 2 ** len(channels):
        raise InitlabError(
            f"image_size {image_size} is too small for {len(channels)} pooling blocks"
        )
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    size, c_in = image_size, in_channels
    for i, c_out in enumerate(channels, 1):
        layers[f"conv{i}"] = nn.Conv2d(
            c_in, c_out, kernel_size, padding=kernel_size // 2, bias=bias
        )
        if batchnorm:
            layers[f"norm{i}"] = nn.BatchNorm2d(c_out)
        layers[f"act{i}"] = make_activation(activation)
        if dropout > 0:
            layers[f"dropout{i}"] = nn.Dropout(dropout)
        layers[f"pool{i}"] = nn.MaxPool2d(2)
        size, c_in = size // 2, c_out
    layers["flatten"] = nn.Flatten()
    layers["linear"] = nn.Linear(c_in * size * size, num_classes, bias=bias)
    return nn.Sequential(layers)


def deep_cnn(
    depth: int,
    channels: int,
    activation: str = "tanh",
    in_channels: int = 1,
    num_classes: int = 10,
    kernel_size: int = 3,
    bias: bool = True,
) -> nn.Sequential:
    """A deep vanilla CNN: ``depth`` convolutions of ``channels`` maps, then average pooling.

    The first convolution maps ``in_channels`` to ``channels``; the other ``depth - 1`` keep
    the width, so delta-orthogonal kernels (which need in <= out channels) apply to all.
    """
    if depth < 1:
        raise InitlabError(f"depth must be at least 1, got {depth}")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    c_in = in_channels
    for i in range(1, depth + 1):
        layers[f"conv{i}"] = nn.Conv2d(
            c_in, channels, kernel_size, padding=kernel_size // 2, bias=bias
        )
        layers[f"act{i}"] = make_activation(activation)
        c_in = channels
    layers["pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    layers["linear"] = nn.Linear(channels, num_classes, bias=bias)
    return nn.Sequential(layers)
