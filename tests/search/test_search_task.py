"""A trial's training: batched trials equal trials trained one by one with fit; pruning."""

from __future__ import annotations

from typing import Any

import pytest

from initlab.search.task import TrialPlan

PLANS = [
    TrialPlan(0, {"lr": 0.1, "weight_decay": 1e-4}, 11),
    TrialPlan(1, {"lr": 0.03, "weight_decay": 0.0}, 12),
    TrialPlan(2, {"lr": 1e-4, "weight_decay": 1e-2}, 13),
]


def test_batched_trials_equal_one_by_one_fit(tiny_task: Any) -> None:
    batched = tiny_task.train_batched(PLANS)
    for plan, together in zip(PLANS, batched, strict=True):
        alone = tiny_task.train_one(plan)
        assert together.status == alone.status == "complete"
        assert together.epochs == alone.epochs == tiny_task.epochs
        # accuracies on 60 validation images: equal up to float rounding (one image = 0.017)
        assert together.valid_acc == pytest.approx(alone.valid_acc, abs=1e-9)
        assert together.train_acc == pytest.approx(alone.train_acc, abs=1e-9)
    assert batched[0].value > 0.9 > batched[2].value  # lr 0.1 learns, lr 1e-4 does not


def test_a_pruned_member_is_frozen_and_the_others_go_on(tiny_task: Any) -> None:
    calls: list[tuple[int, int]] = []

    def report(member: int, epoch: int, value: float) -> bool:
        calls.append((member, epoch))
        return member == 2 and epoch == 2  # prune the third trial after its second epoch

    outcomes = tiny_task.train_batched(PLANS, report)
    assert [o.status for o in outcomes] == ["complete", "complete", "pruned"]
    assert [o.epochs for o in outcomes] == [6, 6, 2]
    assert max(e for m, e in calls if m == 2) == 2  # never reported again
    alone = tiny_task.train_batched(PLANS[:2])  # the others are unaffected by the pruning
    for pruned_group, alone_group in zip(outcomes[:2], alone, strict=True):
        assert pruned_group.valid_acc == pytest.approx(alone_group.valid_acc, abs=1e-9)


def test_a_trial_whose_loss_goes_nan_is_marked_diverged(tiny_task: Any) -> None:
    plans = [TrialPlan(0, {"lr": 1e36, "activation": "tanh"}, 0), TrialPlan(1, {"lr": 0.1}, 1)]
    nan, fine = tiny_task.train_batched(plans)  # two architectures: two batched groups
    assert (nan.status, nan.epochs) == ("diverged", 0)  # the update overflows at once
    assert (fine.status, fine.epochs) == ("complete", tiny_task.epochs) and fine.value > 0.9
    assert tiny_task.train_one(plans[0]).status == "diverged"
