"""DBN pretraining: the RBMs' weights land in the MLP's layers, bottom up, and bad input is
one line. Tiny binary data (16 pixels, 4 noisy prototypes), seeded."""

import math

import pytest
import torch
from torch import nn

from initlab.errors import InitlabError
from initlab.init import DBNSummary, initialize, pretrain_dbn
from initlab.init.dbn import LAYER_SEED_STRIDE
from initlab.init.rbm import RBM, SEED_OFFSETS, RBMConfig, train_rbm
from initlab.models import cnn, mlp


def _data(n: int = 300) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    prototypes = (torch.rand(4, 16, generator=torch.Generator().manual_seed(99)) < 0.4).float()
    flips = (torch.rand(n, 16, generator=gen) < 0.05).float()
    return (prototypes[torch.randint(0, 4, (n,), generator=gen)] - flips).abs()


CONFIG = RBMConfig(epochs=4, batch_size=20)


def test_rbm_weights_and_hidden_biases_land_in_the_layers() -> None:
    x = _data()
    model = mlp([16, 12, 8, 4], "sigmoid")
    summary = pretrain_dbn(model, x, CONFIG, held_out=_data(50), seed=7)
    assert isinstance(summary, DBNSummary) and len(summary.pretrained) == 2
    first, second = summary.pretrained
    assert torch.equal(model.linear1.weight.detach(), first.rbm.weight)
    assert torch.equal(model.linear1.bias.detach(), first.rbm.hidden_bias)
    assert torch.equal(model.linear2.weight.detach(), second.rbm.weight)
    assert torch.equal(model.linear2.bias.detach(), second.rbm.hidden_bias)
    # the second RBM is the one trained on the first one's hidden probabilities, seeded
    # from seed + 1 * stride: retrain it by hand and get the same numbers
    features = first.rbm.hidden_probs(x)
    again = RBM(12, 8, generator=torch.Generator().manual_seed(7 + LAYER_SEED_STRIDE))
    train_rbm(again, features, CONFIG, seed=7 + LAYER_SEED_STRIDE)
    assert SEED_OFFSETS["weights"] == 0
    assert torch.allclose(again.weight, second.rbm.weight, atol=1e-6)
    # the output layer is a small random classifier, not an RBM
    assert model.linear3.weight.std().item() == pytest.approx(0.01, rel=0.5)
    assert torch.count_nonzero(model.linear3.bias).item() == 0
    assert [row.scheme for row in summary] == ["dbn (RBM)", "dbn (RBM)", "normal:std=0.01"]
    assert "free-energy gap" in summary.table() and "recon error" in summary.table()
    assert len(first.history.rows) == 5


def test_initialize_dbn_equals_pretrain_dbn_and_is_seeded() -> None:
    x = _data()
    a, b, c = (mlp([16, 10, 4], "sigmoid") for _ in range(3))
    initialize(a, "dbn:epochs=4,batch_size=20", data=x, seed=3)
    pretrain_dbn(b, x, CONFIG, seed=3)
    initialize(c, "dbn", data=x, seed=3, epochs=4, batch_size=20, pretrain_output=True)
    for name, param in a.named_parameters():
        assert torch.equal(param, dict(b.named_parameters())[name]), name
    assert torch.equal(a.linear1.weight, c.linear1.weight)
    assert not torch.equal(a.linear2.weight, c.linear2.weight)  # c pretrains its output too
    # pretraining learns: the reconstruction error of the first RBM falls
    summary = pretrain_dbn(mlp([16, 10, 4], "sigmoid"), x, RBMConfig(epochs=15, batch_size=20))
    recon = summary.pretrained[0].history.series("recon_error")
    assert recon[-1] < 0.6 * recon[0]


def test_gaussian_first_layer_on_standardized_data() -> None:
    x = _data()
    x = (x - x.mean(0)) / x.std(0)
    model = mlp([16, 10, 4], "sigmoid")
    summary = initialize(model, "dbn:visible=gaussian,lr=0.01,epochs=3", data=x, seed=0)
    assert summary.pretrained[0].visible == "gaussian"  # type: ignore[attr-defined]
    assert torch.isfinite(model.linear1.weight).all()


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        (mlp([16, 8, 4]), None, "data-dependent and needs a batch"),
        (mlp([16, 8, 4]), torch.zeros(10, 15), "15 values per example"),
        (mlp([16, 8, 4]), torch.full((10, 16), math.nan), "NaN or infinite"),
        (mlp([16, 8, 4]), torch.zeros(1, 16), "at least 2 examples"),
        (mlp([16, 8, 4]), torch.full((10, 16), 3.0), "need data in \\[0, 1\\]"),
        (mlp([16, 4]), torch.zeros(10, 16), "one Linear layer"),
        (cnn(1, (4,), 10, 8), torch.zeros(10, 1, 8, 8), "Linear layers only"),
        (nn.Sequential(nn.ReLU()), torch.zeros(10, 16), "no Linear or Conv layer"),
        (nn.Sequential(nn.Linear(16, 8), nn.Linear(6, 2)), torch.zeros(10, 16), "chain"),
    ],
)
def test_bad_input_is_one_line(model: nn.Module, data: torch.Tensor | None, message: str) -> None:
    with pytest.raises(InitlabError, match=message) as info:
        initialize(model, "dbn:epochs=1", data=data)
    assert "\n" not in str(info.value)


def test_bad_options_are_one_line() -> None:
    for text in ("dbn:k=0", "dbn:sampling=gibbs", "dbn:epochs=0"):
        with pytest.raises(InitlabError):
            initialize(mlp([16, 8, 4]), text, data=_data(20))
    with pytest.raises(InitlabError, match="leave bias unset"):
        initialize(mlp([16, 8, 4]), "dbn", data=_data(20), bias="zeros")
    with pytest.raises(InitlabError, match="does not use data"):
        initialize(mlp([16, 8, 4]), "he_normal", data=_data(20))
