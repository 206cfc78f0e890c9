"""diagnose() on the classic failures: each gives its verdict and the right advice."""

from collections.abc import Callable

import pytest
import torch
from rich.console import Console
from torch import nn

from initlab.errors import InitlabError
from initlab.models import deep_mlp
from initlab.probes import diagnose
from initlab.probes.diagnose import DEAD_FRACTION, SATURATED_FRACTION


def _net(activation: str, init: Callable[[torch.Tensor], object], depth: int = 10) -> nn.Module:
    torch.manual_seed(0)
    net = deep_mlp(depth, 128, activation, in_features=64, out_features=10)
    for module in net.modules():
        if isinstance(module, nn.Linear):
            init(module.weight)
            nn.init.zeros_(module.bias)
    return net


def _inputs() -> torch.Tensor:
    return torch.randn(128, 64, generator=torch.Generator().manual_seed(1))


def test_tanh_with_std_001_vanishes() -> None:
    result = diagnose(_net("tanh", lambda w: nn.init.normal_(w, std=0.01)), _inputs())
    assert result.verdict == "vanishing"
    last_hidden = result.layers[-2]
    assert last_hidden.verdict == "vanishing"
    # each layer multiplies the std by about 0.01 * sqrt(128) = 0.11
    assert last_hidden.act_std < 1e-6 * result.layers[0].act_std
    assert "xavier_uniform" in result.recommendation


def test_sigmoid_with_std_1_saturates() -> None:
    result = diagnose(_net("sigmoid", lambda w: nn.init.normal_(w, std=1.0)), _inputs())
    assert result.verdict == "saturated"
    hidden = result.layers[:-1]
    assert all(d.verdict == "saturated" for d in hidden)
    assert min(d.saturated for d in hidden) > SATURATED_FRACTION
    assert "xavier_uniform" in result.recommendation and "tanh" in result.recommendation


def test_relu_with_he_init_is_ok_on_every_layer() -> None:
    net = _net("relu", lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))
    result = diagnose(net, _inputs())
    assert [d.verdict for d in result.layers] == ["ok"] * 11
    assert result.verdict == "ok"
    stds = [d.act_std for d in result.layers[:-1]]
    assert max(stds) / min(stds) < 2.0  # He keeps the std of ReLU activations
    assert max(d.dead for d in result.layers) < DEAD_FRACTION


def test_relu_with_std_001_vanishes_and_names_he_normal() -> None:
    result = diagnose(_net("relu", lambda w: nn.init.normal_(w, std=0.01)), _inputs())
    assert result.verdict == "vanishing"
    assert result.recommendation.startswith("ReLU with std 0.01")
    assert "he_normal" in result.recommendation


def test_relu_with_std_1_explodes() -> None:
    result = diagnose(_net("relu", lambda w: nn.init.normal_(w, std=1.0)), _inputs())
    assert result.verdict == "exploding"
    assert "he_normal" in result.recommendation


@pytest.mark.parametrize("value", [0.0, 0.05])
def test_constant_init_is_symmetric(value: float) -> None:
    result = diagnose(_net("tanh", lambda w: nn.init.constant_(w, value), depth=3), _inputs())
    assert result.verdict == "symmetric"
    assert [d.verdict for d in result.layers[:-1]] == ["symmetric"] * 3
    assert "random init" in result.recommendation


def test_identical_activations_are_symmetric_even_with_different_next_weights() -> None:
    net = _net("tanh", lambda w: nn.init.xavier_uniform_(w), depth=3)
    with torch.no_grad():
        net.linear2.weight.copy_(net.linear2.weight[:1].expand_as(net.linear2.weight))
    verdicts = [d.verdict for d in diagnose(net, _inputs()).layers]
    assert verdicts[1] == "symmetric"  # rows equal, next columns differ: rule 4 catches it
    assert verdicts[0] == "ok"


def test_relu_with_negative_bias_is_dead() -> None:
    net = _net("relu", lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"), depth=3)
    with torch.no_grad():
        net.linear2.bias.fill_(-100.0)
    result = diagnose(net, _inputs())
    assert result.layers[1].verdict == "dead" and result.layers[1].dead == 1.0
    assert result.verdict == "dead"
    assert "leaky_relu" in result.recommendation


def test_nonfinite_is_exploding() -> None:
    net = _net("tanh", lambda w: nn.init.xavier_uniform_(w), depth=2)
    with torch.no_grad():
        net.linear2.weight[0, 0] = float("inf")
    result = diagnose(net, _inputs())
    assert result.layers[1].verdict == "exploding" and result.layers[1].nonfinite > 0
    assert "non-finite" in result.recommendation


def test_model_is_left_unchanged_and_outputs_are_plain() -> None:
    net = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = diagnose(net, _inputs(), targets=torch.randint(10, (128,)))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats restored
    assert all(p.grad is None for p in net.parameters())
    assert net.training
    assert [d.name for d in result.layers] == ["0", "3"]
    assert result.layers[0].activation == "relu" and result.layers[1].activation is None
    rows = result.to_dicts()
    assert rows[0]["name"] == "0" and set(rows[0]) >= {"act_std", "grad_std", "verdict"}
    console = Console(width=120, record=True)
    console.print(result.render())
    text = console.export_text()
    assert "diagnosis: ok" in text and "recommendation:" in text


def test_loss_defaults() -> None:
    net = nn.Sequential(nn.Linear(64, 1))
    x = _inputs()
    result = diagnose(net, x)  # one output column: 0.5 * sum(out^2) / batch
    expected = 0.5 * net(x).pow(2).sum().item() / 128
    assert result.loss == pytest.approx(expected, rel=1e-5)
    # with a 0.5 * sum of squares loss the output gradient is output / batch
    assert result.layers[0].grad_std == pytest.approx(
        net(x).std(correction=0).item() / 128, rel=1e-4
    )


def test_user_mistakes_are_one_line_errors() -> None:
    net = nn.Sequential(nn.Linear(64, 3))
    with pytest.raises(InitlabError, match="scalar loss that depends on the parameters"):
        diagnose(net, _inputs(), loss_fn=lambda out, y: out.detach().sum())
    with pytest.raises(InitlabError, match="no Linear or Conv layer"):
        diagnose(nn.Sequential(nn.Flatten(), nn.BatchNorm1d(64)), _inputs())
