"""The batched engine: each member equals the same model trained alone with ``fit``.

Tiny problems (20-16-16-5 MLPs on Gaussian blobs, ~20 steps) so the whole file runs in
seconds. Tolerances: float32 results agree to atol 1e-5 / rtol 1e-4 (the engine sums in
another order than autograd); probe statistics to rtol 1e-4.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from batched_checks import assert_same_run, close
from torch import Tensor, nn

from initlab.activations import ACTIVATION_NAMES
from initlab.data.dataset import Dataset
from initlab.errors import InitlabError
from initlab.init.apply import initialize
from initlab.models.mlp import MLPSpec, mlp
from initlab.probes.schedules import every
from initlab.train.batched import build_members, evaluate_batched, fit_batched, per_member
from initlab.train.batched_mlp import StackedMLP
from initlab.train.fit import evaluate, fit
from initlab.train.optim import make_optimizer
from initlab.train.result import TrainResult

WIDTHS = [20, 16, 16, 5]


def _blobs(n: int = 192, seed: int = 0, name: str = "blobs") -> Dataset:
    """Five Gaussian blobs in 20 dimensions."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(5, 20, generator=torch.Generator().manual_seed(99)) * 1.5
    y = torch.randint(0, 5, (n,), generator=g)
    return Dataset(centers[y] + torch.randn(n, 20, generator=g), y, name)


def _members(n: int = 3, **kwargs: Any) -> list[nn.Module]:
    models = []
    for i in range(n):
        torch.manual_seed(100 + i)
        model = mlp(WIDTHS, **kwargs)
        for module in model.modules():  # non-trivial batch-norm affine parameters
            if isinstance(module, nn.BatchNorm1d):
                nn.init.uniform_(module.weight, 0.5, 1.5)
                nn.init.uniform_(module.bias, -0.5, 0.5)
        models.append(model)
    return models


def _fit_each(
    models: list[nn.Module], data: Dataset, per: dict[str, list[Any]], **shared: Any
) -> list[TrainResult]:
    """``fit`` every member alone with its own values of the per-member settings."""
    out = []
    for i, model in enumerate(models):
        own = {k: v[i] for k, v in per.items() if k != "hparams"}
        if "hparams" in per:
            own["hparams"] = {k: v[i] for k, v in per["hparams"].items()}
        dropout = own.pop("dropout", None)
        if dropout is not None:  # fit trains the member's own architecture
            clone = mlp(**{**model.spec.to_dict(), "dropout": dropout})
            clone.load_state_dict(model.state_dict())
            model = clone
        out.append(fit(model, data, **shared, **own))
    return out


def _compare(models: list[nn.Module], data: Dataset, per: dict[str, list[Any]], **shared: Any):
    reference = [copy.deepcopy(m) for m in models]
    batched = fit_batched(models, data, **per, **shared)
    singles = _fit_each(reference, data, per, **shared)
    for single, member in zip(singles, batched, strict=True):
        assert_same_run(single, member, probes=shared.get("probe") is not None)
    return batched, singles


@pytest.mark.parametrize(
    ("optimizer", "per"),
    [
        ("sgd", {"lr": [0.2, 0.05, 0.1]}),
        ("momentum", {"lr": [0.05, 0.02, 0.1], "hparams": {"momentum": [0.9, 0.5, 0.0]}}),
        ("adam", {"lr": [0.01, 0.003, 0.03], "hparams": {"beta1": [0.9, 0.8, 0.9]}}),
    ],
)
def test_members_equal_separate_fits(optimizer: str, per: dict[str, Any]) -> None:
    data, valid = _blobs(), _blobs(60, seed=1, name="valid")
    batched, _ = _compare(
        _members(activation="tanh"),
        data,
        per,
        optimizer=optimizer,
        steps=20,
        batch_size=32,
        eval_data=valid,
        eval_every=6,
    )
    losses = [[v for _, v in r.metric("train_loss")] for r in batched]
    assert all(seq[-1] < seq[0] for seq in losses)  # they do learn
    assert batched[0].history[-1]["step"] == 20 and "valid_acc" in batched[0].history[-1]


def test_unfused_sgd_reproduces_fit_to_the_last_bits() -> None:
    """Without fusion every update is the optimizer's: after 60 steps the losses still agree
    to ~1e-6 (the fused update differs by an ulp per step, within the tolerance above)."""
    data = _blobs()
    reference = [copy.deepcopy(m) for m in _members()]
    batched = fit_batched(_members(), data, lr=0.3, steps=60, batch_size=32, fuse_sgd=False)
    for model, member in zip(reference, batched, strict=True):
        single = fit(model, data, lr=0.3, steps=60, batch_size=32)
        got = torch.tensor([v for _, v in member.metric("train_loss")])
        want = torch.tensor([v for _, v in single.metric("train_loss")])
        torch.testing.assert_close(got, want, atol=2e-6, rtol=0)


def test_batchnorm_train_and_eval_modes_and_running_stats() -> None:
    data, valid = _blobs(), _blobs(70, seed=2, name="valid")
    batched, _ = _compare(
        _members(batchnorm=True),
        data,
        {"lr": [0.1, 0.3, 0.03]},
        steps=20,
        batch_size=40,  # 192 examples: every fifth batch is a short one of 32
        batch_mode="epoch",
        eval_data=valid,
        eval_every=7,
        eval_train=True,
        eval_batch_size=25,
    )
    state = batched[1].final_state
    assert int(state["norm1.num_batches_tracked"]) == 20
    assert not torch.allclose(state["norm2.running_var"], torch.ones(16))
    assert [r["epoch"] for r in batched[0].history if "valid_acc" in r] == [0, 1, 2, 4]


def test_l2_weight_decay_per_member_and_adamw() -> None:
    data = _blobs()
    per = {"weight_decay": [0.1, 0.0, 0.02], "lr": [0.1, 0.1, 0.05]}
    decayed, _ = _compare(_members(), data, per, steps=20, batch_size=32)
    # the logged loss includes the book's 0.5 * lambda * ||W||^2 on the weights only
    plain = fit_batched(_members(), data, lr=[0.1, 0.1, 0.05], steps=1, batch_size=32)
    weights = [p.detach() for k, p in _members()[0].named_parameters() if k.endswith("weight")]
    penalty = 0.5 * 0.1 * sum(float(w.pow(2).sum()) for w in weights)
    gap = decayed[0].history[0]["train_loss"] - plain[0].history[0]["train_loss"]
    assert gap == pytest.approx(penalty, rel=1e-4) and penalty > 0.1
    _compare(_members(), data, {"weight_decay": [0.1, 0.01, 0.0]}, optimizer="adamw", steps=15)


def test_dropout_masks_equal_fits_own() -> None:
    data = _blobs()
    batched, _ = _compare(
        _members(dropout=0.3), data, {"dropout": [0.3, 0.0, 0.5]}, steps=15, batch_size=32
    )
    assert [r.config["dropout"] for r in batched] == [0.3, 0.0, 0.5]
    # by default each member keeps its own model's rate
    mixed = [*_members(1), *_members(1, dropout=0.5)]
    result = fit_batched(mixed, data, steps=2, batch_size=32)
    assert [r.config["dropout"] for r in result] == [0.0, 0.5]


def test_probe_stats_equal_probe_on_the_separate_model() -> None:
    data = _blobs()
    _compare(
        _members(activation="sigmoid"),
        data,
        {"lr": [0.5, 0.1, 1.0]},
        steps=9,
        batch_size=32,
        probe=every(4),
        histograms=True,
    )
    fixed = _blobs(40, seed=5, name="fixed")
    _compare(
        _members(batchnorm=True, dropout=0.2),
        data,
        {"lr": [0.1, 0.2, 0.05]},
        steps=7,
        batch_size=32,
        probe=3,
        probe_data=fixed,
        probe_layers=["linear*", "norm2", "act*", "dropout1"],
    )


def test_diverging_member_is_frozen_and_others_unaffected() -> None:
    data = _blobs()
    lrs = [0.1, 1e5, 0.2]
    batched, _ = _compare(_members(), data, {"lr": lrs}, steps=20, batch_size=32, probe=5)
    bad = batched[1]
    assert bad.status == "diverged" and bad.diverged_at is not None and bad.diverged_at < 20
    assert bad.steps_done == bad.diverged_at
    assert not math.isfinite(bad.history[-1]["train_loss"])
    assert all(torch.isfinite(v).all() for v in bad.final_state.values())  # frozen before NaN
    assert max(r["step"] for r in bad.probe_records) <= bad.diverged_at
    # the two others give the same numbers with and without the diverging member
    without = fit_batched(
        [m for i, m in enumerate(_members()) if i != 1],
        data,
        lr=[lrs[0], lrs[2]],
        steps=20,
        batch_size=32,
        probe=5,
    )
    for alone, member in zip(without, [batched[0], batched[2]], strict=True):
        assert alone.status == member.status == "done"
        assert_same_run(alone, member)


def test_diverged_member_params_do_not_change_after_divergence() -> None:
    data = _blobs()
    short = fit_batched(_members(), data, lr=[0.1, 1e5, 0.2], steps=20, batch_size=32)
    t = short[1].diverged_at
    assert t is not None
    longer = fit_batched(_members(), data, lr=[0.1, 1e5, 0.2], steps=40, batch_size=32)
    for key, value in short[1].final_state.items():
        assert torch.equal(value, longer[1].final_state[key]), key
    before = fit_batched(_members(), data, lr=[0.1, 1e5, 0.2], steps=t, batch_size=32)
    assert before[1].status == "done"
    for key, value in before[1].final_state.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, short[1].final_state[key]), key


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
@pytest.mark.parametrize("batchnorm", [False, True])
def test_hand_written_backward_equals_autograd(activation: str, batchnorm: bool) -> None:
    models = _members(activation=activation, batchnorm=batchnorm)
    stacked = StackedMLP(models[0].spec, models)
    data = _blobs(48)
    loss, logits, updated = stacked.train_step(data.x, data.y)
    assert not updated
    for n, model in enumerate(models):
        model.train()
        out = model(data.x)
        expected = F.cross_entropy(out, data.y)
        expected.backward()
        close(float(expected.detach()), float(loss[n]), f"{activation} loss")
        torch.testing.assert_close(logits[n].t(), out.detach(), atol=1e-5, rtol=1e-5)
        for (name, p), grad in zip(model.named_parameters(), stacked.grads, strict=True):
            torch.testing.assert_close(grad[n], p.grad, atol=1e-6, rtol=1e-4, msg=name)
        for name, buffer in model.named_buffers():
            torch.testing.assert_close(stacked.buffers[name][n], buffer, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_fused_sgd_equals_gradients_then_update(batchnorm: bool) -> None:
    data = _blobs(48)
    lr = torch.tensor([0.1, 0.5, 0.02])
    models = _members(batchnorm=batchnorm)
    plain = StackedMLP(models[0].spec, models)
    fused = StackedMLP(models[0].spec, models)
    loss, _, updated = plain.train_step(data.x, data.y)
    assert not updated
    for p, g in zip(plain.params, plain.grads, strict=True):
        p.sub_(lr.view(-1, *[1] * (p.ndim - 1)) * g)
    loss_f, _, updated = fused.train_step(data.x, data.y, sgd_lr=lr)
    assert updated and torch.equal(loss, loss_f)
    for p, q in zip(plain.params, fused.params, strict=True):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=1e-5)
    # a non-finite loss turns the fused update off (a diverging member must stay as it was)
    with torch.no_grad():
        fused.params[0][1].fill_(float("inf"))
    before = [p.clone() for p in fused.params]
    _, _, updated = fused.train_step(data.x, data.y, sgd_lr=0.1)
    assert not updated
    assert all(torch.equal(p, q) for p, q in zip(before, fused.params, strict=True))


def test_eval_mode_forward_and_evaluate_equal_fits() -> None:
    models = _members(batchnorm=True)
    for model in models:  # running statistics that differ from the defaults
        model.train()
        model(_blobs(64, seed=8).x)
    stacked = StackedMLP(models[0].spec, models)
    valid = _blobs(90, seed=4)
    losses, accs = evaluate_batched(stacked, valid.x, valid.y, batch_size=40)
    for n, model in enumerate(models):
        loss, acc = evaluate(model, valid.x, valid.y, batch_size=40)
        assert losses[n] == pytest.approx(loss, rel=1e-5) and accs[n] == acc


def test_scheme_seed_pairs_build_initialized_members() -> None:
    spec = MLPSpec((20, 16, 5), "relu")
    built = build_members(spec, [("he_normal", 3), ("normal:std=0.01", 4)])
    expected = mlp(spec.widths, "relu")
    initialize(expected, "he_normal", seed=3)
    for key, value in expected.state_dict().items():
        assert torch.equal(built[0].state_dict()[key], value)
    assert float(built[1].state_dict()["linear1.weight"].std()) == pytest.approx(0.01, rel=0.1)
    result = fit_batched(
        [("he_normal", 3), ("normal:std=0.01", 4)], _blobs(), spec=spec, lr=0.0, steps=2
    )
    for key, value in expected.state_dict().items():
        assert torch.equal(result[0].final_state[key], value), key
    assert result.model(0)(torch.zeros(1, 20)).shape == (1, 5)


def test_global_rng_is_left_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    spec = MLPSpec(tuple(WIDTHS), "relu", dropout=0.5)
    result = fit_batched([("he_normal", 0), ("lecun_normal", 1)], _blobs(), spec=spec, steps=3)
    result.model(1)
    assert torch.equal(torch.rand(3), expected)


def test_callback_stops_one_member() -> None:
    seen: list[dict] = []

    def stop_member_0(row: dict) -> bool:
        seen.append(row)
        return row["member"] == 0 and row["step"] >= 3

    result = fit_batched(_members(2), _blobs(), steps=10, batch_size=32, callback=stop_member_0)
    assert (result[0].status, result[0].steps_done) == ("done", 4)
    assert result[1].steps_done == 10 and len(result[1].history) == 10
    assert {row["member"] for row in seen} == {0, 1}


def test_per_member_values_and_bad_settings() -> None:
    assert per_member("lr", [0.1, 0.1], 2) == 0.1  # all alike: a float, torch's fast path
    values = per_member("lr", torch.tensor([0.1, 0.2]), 2)
    assert isinstance(values, Tensor) and values.dtype == torch.float32
    data = _blobs(32)
    with pytest.raises(InitlabError, match="lr has 3 values for 2 members"):
        fit_batched(_members(2), data, lr=[0.1, 0.2, 0.3], steps=1)
    with pytest.raises(InitlabError, match="need the same widths, activation"):
        fit_batched([*_members(1), mlp(WIDTHS, "tanh")], data, steps=1)
    with pytest.raises(InitlabError, match="does not match the architecture"):
        fit_batched([*_members(1), nn.Sequential(nn.Linear(20, 5))], data, steps=1)
    with pytest.raises(InitlabError, match="give steps or epochs"):
        fit_batched(_members(2), data)
    with pytest.raises(InitlabError, match="loss 'cross_entropy'"):
        fit_batched(_members(2), data, steps=1, loss="nll")
    with pytest.raises(InitlabError, match="give spec"):
        fit_batched([("he_normal", 0)], data, steps=1)
    with pytest.raises(InitlabError, match="unknown hyperparameter 'betas'"):
        fit_batched(_members(2), data, optimizer="adam", hparams={"betas": 0.9}, steps=1)
    with pytest.raises(InitlabError, match="dropout needs one probability in"):
        fit_batched(_members(2), data, dropout=[0.1, 1.0], steps=1)
    opt = make_optimizer("sgd", lr=torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(InitlabError, match="3 values for 2 members"):
        fit_batched(_members(2), data, optimizer=opt, steps=1)


def test_stopped_member_batchnorm_statistics_equal_fits() -> None:
    """A member stopped by the callback keeps its batch-norm running statistics from then on,
    as fit's model (which is simply not trained further) does."""
    data = _blobs()
    models = _members(2, batchnorm=True)
    reference = copy.deepcopy(models[0])

    def stop_member_0(row: dict) -> bool:
        return row["member"] == 0 and row["step"] >= 2

    batched = fit_batched(models, data, steps=6, batch_size=32, callback=stop_member_0)
    single = fit(reference, data, steps=6, batch_size=32, callback=lambda row: row["step"] >= 2)
    assert batched[0].steps_done == single.steps_done == 3
    for key in ("norm1.running_mean", "norm1.running_var", "norm1.num_batches_tracked"):
        close(single.final_state[key], batched[0].final_state[key], key)


def test_fixed_set_gradient_records_of_a_diverging_step_are_kept() -> None:
    """With probe_data, fit probes the fixed set before the training step; a member that
    diverges on that step keeps those records, as in fit."""
    data, fixed = _blobs(), _blobs(40, seed=5, name="fixed")
    batched, _ = _compare(
        _members(2), data, {"lr": [0.1, 1e37]}, steps=6, batch_size=32, probe=1, probe_data=fixed
    )
    bad = batched[1]
    assert bad.status == "diverged" and bad.diverged_at is not None
    at_divergence = [r for r in bad.probe_records if r["step"] == bad.diverged_at]
    assert any(r["kind"] == "gradient" for r in at_divergence)


def test_member_dropout_when_the_shared_spec_has_none() -> None:
    """Members built without dropout but trained with it: the members that drop have their
    dropout probe records (equal to fit's on their own architecture), the one that does not
    has none, and result.model(n) carries each member's own rate."""
    data = _blobs()
    models = _members()
    reference = [copy.deepcopy(m) for m in models]
    shared: dict[str, Any] = {"steps": 6, "batch_size": 32, "probe": 3}
    layers = ["linear1", "act1", "drop*"]
    batched = fit_batched(models, data, dropout=[0.0, 0.4, 0.2], probe_layers=layers, **shared)
    singles = _fit_each(reference[1:], data, {"dropout": [0.4, 0.2]}, probe_layers=layers, **shared)
    for single, member in zip(singles, batched.results[1:], strict=True):
        assert_same_run(single, member, probes=True)
    seen = [{r["layer"] for r in member.probe_records} for member in batched]
    assert seen == [{"linear1", "act1"}, *[{"linear1", "act1", "dropout1", "dropout2"}] * 2]
    rates = [
        [m.p for m in batched.model(n).modules() if isinstance(m, nn.Dropout)] for n in range(3)
    ]
    assert rates == [[], [0.4, 0.4], [0.2, 0.2]]
