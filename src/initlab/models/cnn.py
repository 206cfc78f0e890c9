"""Convolutional networks from the same vocabulary as :mod:`initlab.models.mlp`.

``cnn`` is a small image classifier: blocks of Conv2d ('same' padding) -> [BatchNorm2d] ->
activation -> [Dropout] -> MaxPool2d(2), then a Linear classifier. ``deep_cnn`` is a deep
vanilla stack of equal-width convolutions without pooling, normalization or residuals
(optionally strided at the start), followed by global average pooling or a flattening
readout, as used to study delta-orthogonal initialization (Xiao et al. 2018, "Dynamical
Isometry and a Mean Field Theory of CNNs").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal, get_args

from torch import nn

from initlab.activations import make_activation
from initlab.errors import InitlabError

DeepCNNReadout = Literal["avgpool", "flatten"]
DEEP_CNN_READOUTS: tuple[DeepCNNReadout, ...] = get_args(DeepCNNReadout)


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
    strides: Sequence[int] = (),
    readout: DeepCNNReadout = "avgpool",
    image_size: int | None = None,
) -> nn.Sequential:
    """A deep vanilla CNN: ``depth`` convolutions of ``channels`` maps, then a Linear classifier.

    The first convolution maps ``in_channels`` to ``channels``; the other ``depth - 1`` keep
    the width, so delta-orthogonal kernels (which need in <= out channels) apply to all.
    ``strides`` gives the strides of the first ``len(strides)`` convolutions (the rest have
    stride 1; padding ``kernel_size // 2``, so with an odd kernel a stride ``s`` maps a side
    ``n`` to ``ceil(n / s)``), e.g. ``(1, 2, 2)``: Xiao et al.'s downsampling before the deep stack.

    ``readout`` is what the classifier sees: ``"avgpool"`` (the default) the global average
    of each map (modules ``pool``, ``flatten``, ``linear``), ``"flatten"`` every map at every
    position (``flatten``, ``linear`` on ``channels * side^2`` inputs; needs ``image_size``,
    the input's side). Global average pooling forgets where the features are: at init a
    delta-orthogonal stack is a 1x1 convolution, so the pooled output is a function of the
    input's pixel histogram alone, until its off-centre taps have grown from zero.
    """
    if depth < 1:
        raise InitlabError(f"depth must be at least 1, got {depth}")
    if len(strides) > depth or any(s < 1 for s in strides):
        raise InitlabError(
            f"strides must be at most depth={depth} positive numbers, got {list(strides)}"
        )
    if readout not in DEEP_CNN_READOUTS:
        raise InitlabError(f"readout must be one of {list(DEEP_CNN_READOUTS)}, got {readout!r}")
    if readout == "flatten" and (image_size is None or image_size < 1):
        raise InitlabError(f"readout 'flatten' needs the input's side image_size, got {image_size}")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    c_in, side = in_channels, image_size or 0
    for i in range(1, depth + 1):
        stride = strides[i - 1] if i <= len(strides) else 1
        layers[f"conv{i}"] = nn.Conv2d(
            c_in, channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias
        )
        layers[f"act{i}"] = make_activation(activation)
        c_in, side = channels, (side + 2 * (kernel_size // 2) - kernel_size) // stride + 1
    if readout == "avgpool":
        layers["pool"] = nn.AdaptiveAvgPool2d(1)
        features = channels
    else:
        features = channels * side * side
    layers["flatten"] = nn.Flatten()
    layers["linear"] = nn.Linear(features, num_classes, bias=bias)
    return nn.Sequential(layers)
