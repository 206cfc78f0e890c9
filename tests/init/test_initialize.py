"""initialize(): every Linear/Conv layer, overrides, bias rules, seeds, clear errors."""

import math

import pytest
import torch
from torch import nn

from initlab.errors import InitlabError
from initlab.init import critical_point, get_initializer, get_scheme, initialize
from initlab.models import cnn, deep_cnn, deep_mlp, mlp


class AllLayers(nn.Module):
    """One of every layer type initialize() handles, plus some it must skip."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 5)
        self.c1 = nn.Conv1d(2, 3, 3)
        self.c2 = nn.Conv2d(2, 3, 3, bias=False)
        self.c3 = nn.Conv3d(2, 3, 3)
        self.blocks = nn.Sequential(nn.ConvTranspose1d(3, 2, 3), nn.ReLU(), nn.BatchNorm1d(2))
        self.t2 = nn.ConvTranspose2d(3, 2, 3)
        self.t3 = nn.ConvTranspose3d(3, 2, 3)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_touches_every_linear_and_conv_layer() -> None:
    model = AllLayers()
    norm_before = _state(model.blocks[2])
    summary = initialize(model, "constant:value=0.5")
    names = ["fc", "c1", "c2", "c3", "blocks.0", "t2", "t3"]
    assert [row.name for row in summary] == names
    for name in names:
        layer = model.get_submodule(name)
        assert torch.equal(layer.weight, torch.full_like(layer.weight, 0.5))
        if layer.bias is not None:
            assert torch.count_nonzero(layer.bias).item() == 0
    assert all(torch.equal(v, model.blocks[2].state_dict()[k]) for k, v in norm_before.items())
    row = summary["blocks.0"]
    assert (row.kind, row.shape, row.fan_in, row.fan_out) == ("ConvTranspose1d", (3, 2, 3), 6, 9)
    assert summary["c2"].bias == "-" and summary["fc"].bias == "zeros"
    assert row.weight_std == 0.0 and row.scheme == "constant:value=0.5"


def test_overrides_first_match_wins_and_options_apply() -> None:
    model = cnn(channels=(4, 8))
    summary = initialize(
        model,
        "he_normal",
        overrides={"conv2": "zeros", "conv*": "constant:value=2", "linear": "orthogonal:gain=0.5"},
        mode="fan_out",
        seed=0,
    )
    assert torch.count_nonzero(model.conv2.weight).item() == 0
    assert torch.equal(model.conv1.weight, torch.full_like(model.conv1.weight, 2.0))
    w = model.linear.weight  # (10, 392): rows orthonormal times 0.5
    assert torch.allclose(w @ w.T, 0.25 * torch.eye(10), atol=1e-5)
    assert [row.scheme for row in summary] == ["constant:value=2", "zeros", "orthogonal:gain=0.5"]


def test_keyword_options_reach_the_main_scheme() -> None:
    model = mlp([1000, 1000, 10])
    summary = initialize(model, "he_normal", mode="fan_out", negative_slope=0.1, seed=0)
    expected = math.sqrt(2 / (1.01 * 1000))
    assert model.linear1.weight.std().item() == pytest.approx(expected, rel=0.01)  # 1e6 draws
    assert summary["linear1"].scheme == "he_normal:negative_slope=0.1,mode=fan_out"
    assert summary["linear1"].weight_std == pytest.approx(expected, rel=0.01)


def test_same_seed_same_weights() -> None:
    a, b, c = (deep_cnn(3, 8) for _ in range(3))
    initialize(
        a, "delta_orthogonal", overrides={"conv1": "he_normal", "linear": "xavier_normal"}, seed=4
    )
    initialize(
        b, "delta_orthogonal", overrides={"conv1": "he_normal", "linear": "xavier_normal"}, seed=4
    )
    initialize(
        c, "delta_orthogonal", overrides={"conv1": "he_normal", "linear": "xavier_normal"}, seed=5
    )
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not torch.equal(state_a["conv2.weight"], state_c["conv2.weight"])
    d = deep_cnn(3, 8)
    initialize(
        d,
        "delta_orthogonal",
        overrides={"conv1": "he_normal", "linear": "xavier_normal"},
        generator=torch.Generator().manual_seed(4),
    )
    assert all(torch.equal(state_a[k], d.state_dict()[k]) for k in state_a)


def test_standard_with_a_seed_reproduces_pytorch_default_construction() -> None:
    torch.manual_seed(3)
    default = mlp([50, 40, 30, 10])
    ours = mlp([50, 40, 30, 10])
    summary = initialize(ours, seed=3)  # scheme "standard", bias rule "standard"
    for key, value in default.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    assert {row.bias for row in summary} == {"standard"}


def test_bias_rules() -> None:
    model = mlp([400, 300, 10])
    initialize(model, "he_normal", bias=0.1, seed=0)
    assert torch.equal(model.linear1.bias, torch.full((300,), 0.1))
    initialize(model, "he_normal", bias="keep", seed=1)
    assert torch.equal(model.linear1.bias, torch.full((300,), 0.1))
    initialize(model, "he_normal", bias="standard", seed=0)
    assert model.linear1.bias.abs().max().item() <= 1 / math.sqrt(400)
    assert model.linear1.bias.abs().max().item() > 0.9 / math.sqrt(400)
    with pytest.raises(InitlabError, match="unknown bias rule 'ones'; valid: zeros, standard"):
        initialize(model, bias="ones")
    with pytest.raises(InitlabError, match="'critical' needs a scheme with a sigma_b2"):
        initialize(model, "he_normal", bias="critical")


def test_critical_draws_biases_with_sigma_b2() -> None:
    model = deep_mlp(2, 1000, "tanh")
    summary = initialize(model, "critical:sigma_b2=0.5", seed=0)
    sigma_w2, _ = critical_point(0.5)
    biases = torch.cat([model.linear1.bias, model.linear2.bias, model.linear3.bias])
    # 3000 draws of N(0, 0.5): std within 10% (about 8 standard errors)
    assert biases.std().item() == pytest.approx(math.sqrt(0.5), rel=0.1)
    assert model.linear2.weight.var().item() == pytest.approx(sigma_w2 / 1000, rel=0.02)
    assert summary["linear2"].bias == "critical(sigma_b2=0.5)"


def test_critical_init_holds_the_variance_at_q_star_through_depth() -> None:
    # mean-field prediction: with input pre-activations at q*, every layer stays at q*.
    # Width 500, batch 500, 20 layers. Single layers fluctuate by up to ~10% at this width
    # (seen over seeds), so each is held to 20% and the mean of layers 6-20 to 5%.
    # (LeCun's sigma_w^2 = 1 would settle at q = 0.37 q*.)
    sigma_b2 = 0.1
    _, q_star = critical_point(sigma_b2)
    model = deep_mlp(20, 500, "tanh")
    initialize(model, "critical", sigma_b2=sigma_b2, seed=0)
    z = torch.randn(500, 500, generator=torch.Generator().manual_seed(1))
    x = torch.tanh(math.sqrt(q_star) * z)
    ratios = []
    with torch.no_grad():
        for layer in list(model)[:-1]:
            x = layer(x)
            if isinstance(layer, nn.Linear):
                ratios.append(x.pow(2).mean().item() / q_star)
    assert len(ratios) == 20
    assert all(r == pytest.approx(1.0, abs=0.2) for r in ratios)
    assert sum(ratios[5:]) / 15 == pytest.approx(1.0, abs=0.05)


def test_dirac_takes_the_layer_groups() -> None:
    model = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2))
    summary = initialize(model, "dirac")
    expected = nn.init.dirac_(torch.empty(8, 2, 3, 3), groups=2)
    assert torch.equal(model[0].weight, expected)
    assert summary["0"].scheme == "dirac:groups=2"


def test_errors_name_the_layer_and_change_nothing() -> None:
    model = deep_cnn(2, 4, in_channels=8)  # conv1 has in 8 > out 4
    before = _state(model)
    with pytest.raises(InitlabError) as err:
        initialize(model, "delta_orthogonal", overrides={"linear": "xavier_normal"})
    message = str(err.value)
    assert message.startswith("layer 'conv1' (Conv2d, weight [4, 8, 3, 3]): delta_orthogonal")
    assert "in_channels <= out_channels" in message and "\n" not in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(InitlabError, match=r"layer 'linear' .*applies to conv layers only"):
        initialize(deep_cnn(2, 4), "delta_orthogonal")
    with pytest.raises(InitlabError, match=r"layer 'conv1' .*applies to linear layers only"):
        initialize(deep_cnn(2, 4), "identity")
    with pytest.raises(InitlabError, match=r"layer 'linear1' .*needs nonlinearity='leaky_relu'"):
        initialize(mlp([3, 3]), "he_normal:negative_slope=0.2,nonlinearity=relu")


def test_usage_errors() -> None:
    model = mlp([3, 4, 2])
    with pytest.raises(InitlabError, match="not both"):
        initialize(model, seed=0, generator=torch.Generator())
    with pytest.raises(
        InitlabError, match=r"override pattern 'lin\*9' matches no layer; layers: linear1, linear2"
    ):
        initialize(model, overrides={"lin*9": "zeros"})
    with pytest.raises(InitlabError, match="no Linear or Conv layer"):
        initialize(nn.Sequential(nn.ReLU()))
    with pytest.raises(InitlabError, match="lazy and not built yet"):
        initialize(nn.Sequential(nn.LazyLinear(3)))
    with pytest.raises(InitlabError, match="unknown option 'std' for scheme he_normal"):
        initialize(model, "he_normal", std=0.1)


def test_summary_table() -> None:
    summary = initialize(mlp([8, 4, 2]), "normal:std=0.01", seed=0)
    lines = str(summary).splitlines()
    assert lines[0].split() == [
        "layer",
        "kind",
        "shape",
        "scheme",
        "bias",
        "fan_in",
        "fan_out",
        "w",
        "std",
    ]
    assert lines[1].split()[:7] == [
        "linear1",
        "Linear",
        "4x8",
        "normal:std=0.01",
        "zeros",
        "8",
        "4",
    ]
    assert len(summary) == 2


def test_get_initializer_and_scheme_objects() -> None:
    fill = get_initializer("uniform:a=0.3")
    w = fill(torch.empty(100, 100), torch.Generator().manual_seed(0))
    assert 0.29 < w.abs().max().item() <= 0.3
    model = mlp([4, 3])
    initialize(model, get_scheme("constant"), value=0.7)
    assert torch.equal(model.linear1.weight, torch.full((3, 4), 0.7))


def test_summary_weight_std_is_the_population_std_in_float64() -> None:
    from initlab.models import mlp

    model = mlp([30, 20, 5], "relu")
    summary = initialize(model, "normal:mean=0.3,std=0.2", seed=4)
    for row in summary:
        weight = getattr(model, row.name).weight.detach().double()
        assert row.weight_std == pytest.approx(float(weight.std(correction=0)), rel=1e-13)
        assert row.weight_std > 0.1
