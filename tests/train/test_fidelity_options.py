"""Engine options for the sources' protocols (issue 13): batch norm eps, the loss after the
update, the book's non-inverted dropout and float64, in fit and fit_batched alike.

Tiny MLPs on Gaussian blobs; fit and fit_batched agree to float32 rounding (atol 1e-5,
rtol 1e-4), as in test_batched.py.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from initlab.data.batches import minibatches
from initlab.data.dataset import Dataset
from initlab.init import initialize
from initlab.models.mlp import MLPSpec, ScaledAtTestDropout, mlp
from initlab.train.batched import fit_batched
from initlab.train.fit import fit
from initlab.train.losses import make_loss

WIDTHS = [20, 16, 16, 5]


def _blobs(n: int = 160) -> Dataset:
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(5, 20, generator=torch.Generator().manual_seed(99)) * 1.5
    y = torch.randint(0, 5, (n,), generator=g)
    return Dataset(centers[y] + torch.randn(n, 20, generator=g), y, "blobs")


def _model(seed: int = 0, std: float | None = None, **kwargs) -> nn.Module:  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    model = mlp(WIDTHS, **kwargs)
    if std is not None:
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, std)
                nn.init.zeros_(module.bias)
    return model


def _same_history(single, member, keys) -> None:  # type: ignore[no-untyped-def]
    assert [sorted(r) for r in single.history] == [sorted(r) for r in member.history]
    for a, b in zip(single.history, member.history, strict=True):
        for key in (k for k in keys if k in a):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (a["step"], key)


def test_bn_eps_matters_for_tiny_weights_and_both_engines_agree() -> None:
    data = _blobs()
    # weights std 1e-4: hidden pre-activations have variance ~1e-7, below eps = 1e-5, so
    # sqrt(var + eps) is mostly eps and batch norm cannot rescale them to unit variance
    base = _model(std=1e-4, batchnorm=True)
    settings = {"optimizer": "sgd", "lr": 0.1, "steps": 12, "batch_size": 32}
    runs = {}
    for eps in (1e-5, 1e-6):
        single = fit(copy.deepcopy(base), data, bn_eps=eps, **settings)
        batched = fit_batched([copy.deepcopy(base)], data, bn_eps=eps, **settings)[0]
        _same_history(single, batched, ("train_loss", "train_acc"))
        runs[eps] = single
    # the first step's normalized activations: with eps 1e-6 about 3x larger
    model = copy.deepcopy(base).train()
    model.norm1.eps = 1e-6
    x = data.x[:32]
    z = model.linear1(x)
    want = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-6)
    torch.testing.assert_close(model.norm1(z), want, rtol=1e-4, atol=1e-5)
    first = {eps: r.history[-1]["train_loss"] for eps, r in runs.items()}
    assert first[1e-5] != pytest.approx(first[1e-6], rel=1e-3)
    assert fit_batched([base], data, bn_eps=1e-6, **settings).model(0).norm1.eps == 1e-6


def test_loss_after_update_is_the_updated_models_loss_on_the_same_batch() -> None:
    data = _blobs()
    base = _model(seed=1)
    settings = {"optimizer": "adam", "lr": 0.01, "steps": 5, "batch_size": 32, "seed": 4}
    single = fit(copy.deepcopy(base), data, loss_after_update=True, **settings)
    batched = fit_batched([copy.deepcopy(base)], data, loss_after_update=True, **settings)[0]
    _same_history(single, batched, ("train_loss", "train_loss_after"))
    # after the last update, on the last step's minibatch
    idx = list(minibatches(len(data), 32, steps=5, mode="replacement",
                           generator=torch.Generator().manual_seed(4)))[-1]  # fmt: skip
    trained = _model(seed=1)
    trained.load_state_dict(single.final_state)
    with torch.no_grad():
        want = float(make_loss("cross_entropy")(trained.eval()(data.x[idx]), data.y[idx]))
    assert single.history[-1]["train_loss_after"] == pytest.approx(want, rel=1e-6)
    # Adam moves the weights: the loss after the update is below the one before
    assert all(r["train_loss_after"] < r["train_loss"] for r in single.history)
    assert "train_loss_after" not in fit(copy.deepcopy(base), data, **settings).history[0]


def test_scale_at_test_dropout_is_the_books_and_both_engines_agree() -> None:
    torch.manual_seed(3)
    layer = ScaledAtTestDropout(0.25)
    x = torch.rand(400, 50) + 0.5
    torch.manual_seed(7)
    dropped = layer(x)
    torch.manual_seed(7)
    inverted = nn.functional.dropout(x, 0.25)
    # same units dropped as nn.Dropout, kept ones not rescaled; test time: x * (1 - p)
    torch.testing.assert_close(dropped, inverted * 0.75)
    assert set(torch.unique(dropped / x).tolist()) == {0.0, 1.0}
    torch.testing.assert_close(layer.eval()(x), x * 0.75)
    data = _blobs()
    base = _model(seed=2, dropout=0.3, dropout_mode="scale_at_test")
    assert isinstance(base.dropout1, ScaledAtTestDropout)
    settings = {"optimizer": "sgd", "lr": 0.1, "steps": 10, "batch_size": 32, "seed": 1}
    evals = {"eval_data": data, "eval_every": 5}
    single = fit(copy.deepcopy(base), data, **settings, **evals)
    batched = fit_batched([copy.deepcopy(base)], data, **settings, **evals)
    _same_history(single, batched[0], ("train_loss", "valid_loss", "valid_acc"))
    inverted_run = fit_batched([base], data, dropout_mode="inverted", **settings)[0]
    assert inverted_run.history[-1]["train_loss"] != pytest.approx(
        single.history[-2]["train_loss"], rel=1e-3
    )
    assert isinstance(batched.model(0).dropout1, ScaledAtTestDropout)


def test_float64_members_equal_float32_to_rounding() -> None:
    data = _blobs()
    # std 3 through 3 ReLU layers of 16: logits ~1e3, large steps
    base = _model(seed=5, std=3.0)
    settings = {"optimizer": "sgd", "lr": 0.01, "steps": 8, "batch_size": 32}
    f64 = fit_batched([copy.deepcopy(base)], data, dtype=torch.float64, **settings)[0]
    f32 = fit_batched([copy.deepcopy(base)], data, **settings)[0]
    assert f64.final_state["linear1.weight"].dtype == torch.float64
    assert f64.config["dtype"] == "float64"
    # float64 and float32 agree to float32 rounding while both are finite
    a, b = f32.history[0]["train_loss"], f64.history[0]["train_loss"]
    assert math.isfinite(b) and b == pytest.approx(a, rel=1e-5)
    got, want = f64.final_state["linear3.bias"].float(), f32.final_state["linear3.bias"]
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("mode", ["inverted", "scale_at_test"])
def test_probe_records_equal_fit_s_with_dropout(mode: str) -> None:
    """Fixed-set probe records (eval mode) of both engines agree, the dropout module's
    gradient included: with scale_at_test it is the one before the (1 - p) scaling."""
    torch.manual_seed(0)
    x, y = torch.randn(100, 20), torch.randint(0, 5, (100,))
    data = Dataset(x, y, "t")
    spec = MLPSpec((20, 30, 5), "relu", dropout=0.3, dropout_mode=mode)
    model = mlp(**spec.to_dict())
    initialize(model, "he_normal", seed=0)
    layers = ["linear1", "act1", "dropout1", "linear2"]
    kw = dict(steps=2, batch_size=32, probe=1, probe_data=data, seed=3, probe_layers=layers)
    batched = fit_batched([copy.deepcopy(model)], data, spec=spec, dropout_seeds=[3], **kw)
    single = fit(model, data, **kw)

    def records(rows: list[dict]) -> dict:
        return {
            (r["step"], r["layer"], r["kind"], name): value
            for r in rows
            for name, value in r["stats"].items()
            if isinstance(value, float)
        }

    want, got = records(single.probe_records), records(batched[0].probe_records)
    assert set(want) == set(got) and (1, "dropout1", "gradient", "std") in want
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-8), key


def test_fit_bn_eps_is_kept_in_the_model_s_spec() -> None:
    """A model rebuilt or stacked from its spec after fit(bn_eps=...) keeps that eps."""
    model = mlp([10, 8, 3], "relu", batchnorm=True)
    data = (torch.randn(32, 10), torch.randint(0, 3, (32,)))
    fit(model, data, steps=1, bn_eps=1e-6)
    assert model.spec.bn_eps == 1e-6
    assert all(m.eps == 1e-6 for m in model.modules() if isinstance(m, nn.BatchNorm1d))
