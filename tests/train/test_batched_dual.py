"""Layer 1 in the dual form (:mod:`initlab.train.batched_dual`): the same numbers as the
weights' products, to float rounding.

Small problems where the dual form pays (64 input features, 30 training and 12 validation
rows, minibatches of 8). Tolerances: one step agrees to atol 1e-6 / rtol 1e-5 (another
order of the same float32 sums), runs of 20 steps to the engine's 1e-5 / 1e-4.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from batched_checks import assert_same_run, close
from torch import Tensor, nn

from initlab.data.dataset import Dataset
from initlab.errors import InitlabError
from initlab.models.mlp import mlp
from initlab.probes.schedules import every
from initlab.train.batched import fit_batched
from initlab.train.batched_dual import (
    DUAL_SHARE,
    MAX_ELEMENTS,
    RESCALE_BELOW,
    DualFirstLayer,
    dual_pays,
)
from initlab.train.batched_mlp import FusedDecay, StackedMLP
from initlab.train.fit import fit
from initlab.train.result import TrainResult

WIDTHS = [64, 12, 12, 4]


def _data(n: int, seed: int, name: str) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    return Dataset(torch.rand(n, 64, generator=g), torch.randint(0, 4, (n,), generator=g), name)


def _members(n: int = 3) -> list[nn.Module]:
    models = []
    for i in range(n):
        torch.manual_seed(30 + i)
        models.append(mlp(WIDTHS, "relu"))
    return models


# ------------------------------------------------------------------------ the form alone
def _primal_and_dual(keep: list[float] | None) -> tuple[Tensor, Tensor, DualFirstLayer, Tensor]:
    """Ten rank-5 SGD updates (rows drawn with replacement, so some twice in a step) with
    per-member decay ``keep``, applied to the weights and to the dual form."""
    g = torch.Generator().manual_seed(0)
    members, out, fan_in, rows = 3, 6, 20, 9
    basis = torch.randn(rows, fan_in, generator=g)
    w = torch.randn(members * out, fan_in, generator=g)
    primal = w.clone()
    dual = DualFirstLayer(w, members, basis)
    dual.reset()
    for _ in range(10):
        picked = torch.randint(0, rows, (5,), generator=g)
        grad = torch.randn(members * out, 5, generator=g)
        if keep is not None:
            factor = torch.tensor(keep)
            primal.view(members, -1).mul_(factor.view(-1, 1))
            dual.decay(factor)
        primal.addmm_(grad, basis[picked], alpha=-0.1)
        dual.update(picked, grad, -0.1)
    return primal, basis, dual, w


@pytest.mark.parametrize("keep", [None, [0.9, 1.0, 0.5]])
def test_dual_form_computes_what_the_weights_compute(keep: list[float] | None) -> None:
    primal, basis, dual, w = _primal_and_dual(keep)
    bias = torch.randn(18, 1)
    out = torch.empty(18, 4)
    rows = torch.tensor([0, 3, 3, 8])
    dual.forward(rows, bias, out)
    torch.testing.assert_close(out, primal @ basis[rows].t() + bias, atol=1e-5, rtol=1e-5)
    want = primal.view(3, -1).double().square().sum(1)
    torch.testing.assert_close(dual.squared_norms(), want, atol=1e-3, rtol=1e-5)
    assert dual.pending and not torch.equal(w, primal)
    dual.flush()  # the weights are written back; the form goes on from them
    torch.testing.assert_close(w, primal, atol=1e-5, rtol=1e-5)
    assert not dual.pending and dual.valid
    dual.forward(rows, None, out)
    torch.testing.assert_close(out, primal @ basis[rows].t(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("keep", [1e-2, 0.0])
def test_a_vanishing_scale_is_folded_into_the_weights(keep: float) -> None:
    """s falls by 1e-2 a step (below RESCALE_BELOW after three), or to 0 at once (lr * wd =
    1: the primal step zeroes the weights before adding the update)."""
    g = torch.Generator().manual_seed(1)
    basis, w = torch.randn(5, 7, generator=g), torch.randn(4, 7, generator=g)
    primal = w.clone()
    dual = DualFirstLayer(w, 2, basis)
    dual.reset()
    for _ in range(4):
        primal.mul_(keep)
        dual.decay(keep)
        grad = torch.randn(4, 2, generator=g)
        primal.addmm_(grad, basis[:2], alpha=0.5)
        dual.update(torch.tensor([0, 1]), grad, 0.5)
    assert float(dual.scale.min()) >= RESCALE_BELOW  # folded on the way
    out = torch.empty(4, 5)
    dual.forward(torch.arange(5), None, out)
    torch.testing.assert_close(out, primal @ basis.t(), atol=1e-6, rtol=1e-5)
    want = primal.view(2, -1).double().square().sum(1)
    torch.testing.assert_close(dual.squared_norms(), want, atol=1e-5, rtol=1e-5)


def test_invalidate_writes_back_and_reset_starts_from_the_weights() -> None:
    primal, basis, dual, w = _primal_and_dual(None)
    dual.invalidate()
    assert not dual.valid
    torch.testing.assert_close(w, primal, atol=1e-5, rtol=1e-5)
    w.mul_(2.0)  # an optimizer step, outside the form
    dual.reset()
    out = torch.empty(18, 9)
    dual.forward(torch.arange(9), None, out)
    torch.testing.assert_close(out, w @ basis.t(), atol=1e-5, rtol=1e-5)


def test_the_dual_form_is_chosen_where_it_does_less_arithmetic() -> None:
    # C1: 500 images of 784 pixels, batch 100, 500 rows evaluated every 4 steps
    assert dual_pays(500, 784, 100 * 100, 100, 125.0)
    # without evaluation the dual form pays up to rows = DUAL_SHARE * 2 * in
    edge = int(DUAL_SHARE * 2 * 784)
    assert dual_pays(edge, 784, 1000, 100, 0.0) and not dual_pays(edge + 1, 784, 1000, 100, 0.0)
    # full MNIST: 50 000 training images
    assert not dual_pays(50_000, 784, 100, 100, 0.0)
    # small data, but too many members' columns for the buffers
    assert not dual_pays(500, 784, MAX_ELEMENTS // 1000, 100, 125.0)


# ------------------------------------------------------------------- in the engine
def _runs(**settings: Any) -> tuple[list[TrainResult], Any, Any]:
    """Each member alone with ``fit``, and all together with the weights and the dual form."""
    train, valid = _data(30, 0, "train"), _data(12, 1, "valid")
    shared = dict(
        steps=20,
        batch_size=8,
        eval_data=valid,
        eval_every=5,
        eval_train=True,
        **settings,
    )
    per = {"lr": [0.2, 0.05, 0.1], "weight_decay": [0.01, 0.0, 0.05]}
    members = _members()
    singles = [
        fit(copy.deepcopy(m), train, lr=per["lr"][i], weight_decay=per["weight_decay"][i], **shared)
        for i, m in enumerate(members)
    ]
    primal = fit_batched(copy.deepcopy(members), train, first_layer="primal", **per, **shared)
    dual = fit_batched(copy.deepcopy(members), train, first_layer="dual", **per, **shared)
    return singles, primal, dual


def test_fit_batched_in_the_dual_form_equals_fit() -> None:
    """Per-member rates and weight decay (the book's penalty in the logged loss), minibatches
    drawn with replacement, evaluation on the training and validation sets."""
    singles, primal, dual = _runs()
    assert dual.config["first_layer"] == "dual" and primal.config["first_layer"] == "primal"
    for single, a, b in zip(singles, primal, dual, strict=True):
        assert_same_run(single, b)
        assert_same_run(a, b)
    losses = [v for _, v in dual[0].metric("train_loss")]
    assert losses[-1] < losses[0]


def test_auto_uses_the_dual_form_on_small_data_only() -> None:
    train = _data(30, 0, "train")
    small = fit_batched(_members(), train, lr=0.1, steps=3, batch_size=8)
    assert small.config["first_layer"] == "dual"
    big = _data(600, 2, "big")
    assert fit_batched(_members(), big, lr=0.1, steps=3, batch_size=8).config["first_layer"] == (
        "primal"
    )
    adam = fit_batched(_members(), train, optimizer="adam", lr=0.01, steps=3, batch_size=8)
    assert adam.config["first_layer"] == "primal"
    probed = fit_batched(_members(), train, lr=0.1, steps=3, batch_size=8, probe=every(1))
    assert probed.config["first_layer"] == "primal"  # every step would leave the form
    # the same dataset for evaluation: its rows are the training rows, the basis stays 30
    seen: list[int] = []
    original = DualFirstLayer.__init__

    def spy(self: DualFirstLayer, weight: Tensor, members: int, basis: Tensor) -> None:
        seen.append(basis.shape[0])
        original(self, weight, members, basis)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DualFirstLayer, "__init__", spy)
        same = fit_batched(
            _members(), train, lr=0.1, steps=3, batch_size=8, eval_data=train, eval_every=2
        )
    assert same.config["first_layer"] == "dual" and seen == [30]


@pytest.mark.parametrize(
    "settings",
    [
        {"probe": every(3)},  # probed steps go through the optimizer: the form restarts
        {"loss_after_update": True},
    ],
)
def test_probes_and_loss_after_the_update_in_the_dual_form(settings: dict[str, Any]) -> None:
    singles, _, dual = _runs(**settings)
    for single, member in zip(singles, dual, strict=True):
        assert_same_run(single, member)
        if "probe" in settings:
            assert len(member.probe_records) == len(single.probe_records) > 0


def _stopping_member_2_at_step_6(train: Dataset, lrs: list[float]) -> Any:
    """``fit_batched`` in the dual form, 15 steps of 8, its callback stopping member 2 at
    step 6."""

    def stop(row: dict[str, Any]) -> bool:
        return row["member"] == 2 and row["step"] == 6

    return fit_batched(
        _members(), train, lr=lrs, steps=15, batch_size=8, callback=stop, first_layer="dual"
    )


def test_a_diverging_and_a_stopped_member_in_the_dual_form() -> None:
    """Member 1 diverges (lr 1e12), member 2 is stopped by the callback at step 6; member 0
    goes on as alone, through the optimizer's path once the ensemble is no longer whole."""
    train, lrs = _data(30, 0, "train"), [0.1, 1e12, 0.2]
    batched = _stopping_member_2_at_step_6(train, lrs)
    single = fit(_members()[0], train, lr=lrs[0], steps=15, batch_size=8)
    assert_same_run(single, batched[0])
    assert batched.config["first_layer"] == "dual"  # until member 1 diverged
    assert batched.statuses == ["done", "diverged", "done"]
    assert batched[2].steps_done == 7


def test_a_stopped_member_writes_the_pending_updates_back() -> None:
    """A callback stop (no divergence before it) releases the dual form with updates still
    pending: they reach the weights, and the others go on as alone."""
    train, lrs = _data(30, 0, "train"), [0.1, 0.05, 0.2]
    batched = _stopping_member_2_at_step_6(train, lrs)
    assert batched.config["first_layer"] == "dual"
    for m in (0, 1):
        assert_same_run(fit(_members()[m], train, lr=lrs[m], steps=15, batch_size=8), batched[m])
    stopped = fit(_members()[2], train, lr=lrs[2], steps=7, batch_size=8)
    for key, value in stopped.final_state.items():
        close(value, batched[2].final_state[key], f"stopped member {key}")


def test_the_dual_form_needs_fused_sgd() -> None:
    train = _data(30, 0, "train")
    with pytest.raises(InitlabError, match="first_layer='dual' needs plain SGD"):
        fit_batched(_members(), train, optimizer="adam", steps=2, first_layer="dual")
    with pytest.raises(InitlabError, match="first_layer must be 'auto', 'primal' or 'dual'"):
        fit_batched(_members(), train, steps=2, first_layer="kernel")  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("initlab.train.batched.MAX_ELEMENTS", 1000)
        with pytest.raises(InitlabError, match=r"four \[30, 36\] buffers .* limit of 1000"):
            fit_batched(_members(), train, steps=2, first_layer="dual")
        auto = fit_batched(_members(), train, lr=0.1, steps=2, batch_size=8)
        assert auto.config["first_layer"] == "primal"


def test_a_pass_without_rows_reads_the_written_back_weights() -> None:
    """A forward pass on inputs outside the basis (no rows) writes the pending updates back
    first; the next fused step goes on in the dual form."""
    train = _data(30, 0, "train")
    models = _members()
    stacked = StackedMLP(models[0].spec, models)
    reference = StackedMLP(models[0].spec, copy.deepcopy(models))
    stacked.use_dual(train.x)
    lr = torch.tensor([0.1, 0.2, 0.05])
    decay = FusedDecay.of(lr, torch.tensor([0.1, 0.0, 0.2]), [True] * len(stacked.params))
    other = _data(5, 3, "other").x
    for step in range(4):
        rows = torch.arange(step * 6, step * 6 + 8)
        got = stacked.train_step(train.x[rows], train.y[rows], None, lr, decay, rows=rows)
        want = reference.train_step(train.x[rows], train.y[rows], None, lr, decay)
        close(want.loss, got.loss, f"loss {step}", atol=1e-6, rtol=1e-5)
        close(reference.forward(other, False), stacked.forward(other, False), "outside", atol=1e-6)
        assert stacked.dual is not None and stacked.dual.valid and not stacked.dual.pending
    assert stacked.dual.steps == 4 and stacked.dual.resets == 1  # started once, never left
    for m in range(3):
        for key, value in reference.member_state_dict(m).items():
            close(value, stacked.member_state_dict(m)[key], key, atol=1e-6, rtol=1e-5)


def test_a_basis_of_another_width_is_one_line() -> None:
    models = _members()
    stacked = StackedMLP(models[0].spec, models)
    with pytest.raises(InitlabError, match=r"the dual basis must be \[rows, 64\].*got \[5, 63\]"):
        stacked.use_dual(torch.zeros(5, 63))
