"""Model builders: structure, names, shapes and clear errors."""

import pytest
import torch
from torch import nn

from initlab.activations import ACTIVATION_NAMES, activation_name_of, make_activation
from initlab.errors import InitlabError
from initlab.models import cnn, deep_cnn, deep_mlp, mlp


def test_mlp_layout_and_names() -> None:
    model = mlp([784, 100, 50, 10], "tanh", batchnorm=True, dropout=0.3)
    assert list(dict(model.named_children())) == [
        "linear1", "norm1", "act1", "dropout1",
        "linear2", "norm2", "act2", "dropout2",
        "linear3",
    ]  # fmt: skip
    assert isinstance(model.norm1, nn.BatchNorm1d) and model.norm1.num_features == 100
    assert model.dropout2.p == pytest.approx(0.3)
    assert model.spec.depth == 3
    assert model(torch.randn(4, 784)).shape == (4, 10)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_every_activation_builds_and_is_recognised(name: str) -> None:
    model = mlp([5, 7, 3], name)
    assert activation_name_of(model.act1) == name
    assert torch.isfinite(model(torch.randn(2, 5))).all()


def test_mlp_without_bias_has_no_bias_parameters() -> None:
    model = mlp([10, 10, 2], bias=False)
    assert all(layer.bias is None for layer in model if isinstance(layer, nn.Linear))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"widths": [10]}, "at least an input and an output"),
        ({"widths": [10, 0, 2]}, "positive"),
        ({"widths": [10, 2], "activation": "swish"}, "valid: sigmoid, tanh"),
        ({"widths": [10, 2], "dropout": 1.0}, "dropout must be in"),
    ],
)
def test_mlp_bad_input_is_one_clear_line(kwargs: dict, message: str) -> None:
    with pytest.raises(InitlabError, match=message) as info:
        mlp(**kwargs)
    assert "\n" not in str(info.value)


def test_unknown_activation_lists_valid_names() -> None:
    with pytest.raises(InitlabError, match=r"unknown activation 'swish'; valid: .*softsign"):
        make_activation("swish")


def test_deep_mlp_depth_and_widths() -> None:
    model = deep_mlp(depth=50, width=32, in_features=784, out_features=10)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert len(linears) == 51
    assert linears[0].in_features == 784 and linears[-1].out_features == 10
    assert model(torch.randn(3, 784)).shape == (3, 10)


def test_deep_mlp_in_the_thousands_builds() -> None:
    model = deep_mlp(depth=2000, width=8)
    assert sum(isinstance(m, nn.Linear) for m in model) == 2001


def test_cnn_shapes_and_pooling() -> None:
    model = cnn(in_channels=3, channels=(8, 16), image_size=32, num_classes=9, batchnorm=True)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 9)
    assert model.linear.in_features == 16 * 8 * 8


def test_cnn_rejects_even_kernels_and_tiny_images() -> None:
    with pytest.raises(InitlabError, match="odd"):
        cnn(kernel_size=4)
    with pytest.raises(InitlabError, match="too small"):
        cnn(image_size=2, channels=(4, 4))


def test_deep_cnn_keeps_width_after_first_layer() -> None:
    model = deep_cnn(depth=6, channels=12)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6
    assert convs[0].in_channels == 1
    assert all(c.in_channels == c.out_channels == 12 for c in convs[1:])
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_deep_cnn_strides_and_readouts() -> None:
    # strides (1, 2, 2) take 28x28 to 7x7; the flattening readout sees every position
    model = deep_cnn(5, 4, strides=(1, 2, 2), readout="flatten", image_size=28)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(1, 1), (2, 2), (2, 2), (1, 1), (1, 1)]
    assert model.linear.in_features == 4 * 7 * 7 and "pool" not in dict(model.named_children())
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert deep_cnn(3, 4, strides=(2,), readout="flatten", image_size=15).linear.in_features == (
        4 * 8 * 8
    )  # ceil(15 / 2)
    pooled = deep_cnn(4, 4, strides=(2, 2))  # the default readout: global average pooling
    assert pooled.linear.in_features == 4 and pooled(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_deep_cnn_rejects_bad_strides_and_readouts() -> None:
    with pytest.raises(InitlabError, match="strides"):
        deep_cnn(2, 4, strides=(1, 2, 2))
    with pytest.raises(InitlabError, match="strides"):
        deep_cnn(3, 4, strides=(0,))
    with pytest.raises(InitlabError, match="readout must be one of"):
        deep_cnn(3, 4, readout="max")  # type: ignore[arg-type]
    with pytest.raises(InitlabError, match="image_size"):
        deep_cnn(3, 4, readout="flatten")
