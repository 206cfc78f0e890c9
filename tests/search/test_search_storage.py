"""The batched writes of initlab.search.storage against Optuna's own calls, on SQLite and
PostgreSQL: a batch asked in one transaction stores what ``study.ask`` one by one stores,
and a batch told in one transaction what ``study.tell`` stores."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import TrialState
from search_helpers import make_job

from initlab.search import driver
from initlab.search.driver import OWNER_ATTR, RESULT_ATTR
from initlab.search.storage import Finish, NewTrial, create_running_trials, finish_trials
from initlab.search.task import TrialOutcome

SPACE = {
    "lr": {"kind": "log_uniform", "low": 1e-5, "high": 10.0},
    "weight_decay": {"kind": "log_uniform", "low": 1e-8, "high": 1e-4},
}


def _open(database: str, name: str) -> tuple[optuna.Study, Any, Any]:
    return make_job(database, study=name, space=SPACE, seed=7).open()


def _row(t: optuna.trial.FrozenTrial) -> tuple[Any, ...]:
    attrs = {k: v for k, v in t.system_attrs.items()}
    return (
        t.number,
        t.state,
        t.value,
        t.params,
        t.distributions,
        t.user_attrs,
        attrs,
        t.intermediate_values,
    )


def _heartbeats(storage: Any, study: optuna.Study) -> int:
    """The heartbeat rows of the study's trials (what reclaiming a dead worker's reads)."""
    rdb = getattr(storage, "_backend", storage)
    with _create_scoped_session(rdb.scoped_session) as session:
        return (
            session.query(models.TrialHeartbeatModel)
            .join(models.TrialModel)
            .filter(models.TrialModel.study_id == study._study_id)
            .count()
        )


def test_a_retry_queued_meanwhile_is_asked_first(database: str) -> None:
    """A WAITING trial (a retry another worker queued after this one counted) stops the
    one-transaction path with nothing written; ``study.ask`` then pops the retry."""
    study, storage, space = _open(database, "queued")
    study.enqueue_trial({"lr": 0.01, "weight_decay": 1e-6})
    fill = lambda number: NewTrial({}, {}, {}, {})  # noqa: E731 (never called)
    assert create_running_trials(study._storage, study._study_id, 3, fill) is None
    assert [t.state for t in study.get_trials()] == [TrialState.WAITING]
    asked = driver._ask(study, storage, space, 2, 7, waiting=0)  # counted before the retry
    assert [t.number for t in asked] == [0, 1]
    assert asked[0].params == {"lr": 0.01, "weight_decay": 1e-6}


def _outcomes() -> list[TrialOutcome]:
    return [
        TrialOutcome("complete", 0.75, [0.5, 0.75], [0.6, 0.8]),
        TrialOutcome("pruned", 0.25, [0.25], [0.3]),  # stopped by the pruner after epoch 1
        TrialOutcome("diverged", 0.0, [], []),
        TrialOutcome("complete", 1.0, [0.5, 1.0], [0.5, 1.0]),
    ]


def test_a_batch_in_one_transaction_stores_what_ask_and_tell_store(database: str) -> None:
    fast, storage, space = _open(database, "fast")
    slow, _, _ = _open(database, "slow")
    assert isinstance(fast.sampler, driver.TrialSeededRandomSampler)
    asked_fast = driver._ask(fast, storage, space, 4, 7, waiting=0)  # one transaction
    asked_slow = driver._ask(slow, storage, space, 4, 7, waiting=1)  # study.ask one by one
    for study, asked in ((fast, asked_fast), (slow, asked_slow)):
        asked[1].report(0.25, 1)  # what the reporter stores when a pruner is on
        assert _heartbeats(storage, study) == 4  # one heartbeat row a trial
    running_fast = [_row(t) for t in fast.get_trials()]
    running_slow = [_row(t) for t in slow.get_trials()]
    assert running_fast == running_slow
    assert [r[0] for r in running_fast] == [0, 1, 2, 3]
    assert running_fast[0][5] == {"seed": driver.trial_seed(7, 0, "init")}
    assert set(running_fast[0][6]) == {OWNER_ATTR}
    # told: the batch in one transaction against study.tell one by one
    assert driver._tell_all(fast, asked_fast, _outcomes()) == 4
    for trial, outcome in zip(asked_slow, _outcomes(), strict=True):
        driver._tell(slow, trial, outcome)
    told_fast = [_row(t) for t in fast.get_trials()]
    assert told_fast == [_row(t) for t in slow.get_trials()]
    complete, pruned = TrialState.COMPLETE, TrialState.PRUNED
    assert [r[1] for r in told_fast] == [complete, pruned, pruned, complete]
    assert [r[2] for r in told_fast] == [0.75, 0.25, None, 1.0]  # pruned: its last report
    assert told_fast[0][5][RESULT_ATTR]["valid_acc"] == [0.5, 0.75]
    assert all(t.datetime_complete is not None for t in fast.get_trials())
    # the next batch goes on numbering after these, with the draws of its numbers
    again = driver._ask(fast, storage, space, 2, 7, waiting=0)
    assert [t.number for t in again] == [4, 5]
    sampler = fast.sampler
    assert again[1].params["lr"] == sampler.draw(5, "lr", space.distributions()["lr"])


def test_a_trial_taken_over_by_another_worker_is_left_as_it_is(database: str) -> None:
    study, storage, space = _open(database, "s")
    asked = driver._ask(study, storage, space, 3, 7, waiting=0)
    storage.set_trial_state_values(asked[1]._trial_id, state=TrialState.FAIL)  # reclaimed
    done = finish_trials(
        study._storage,
        [Finish(t._trial_id, TrialState.COMPLETE, 0.5, {"k": 1, "seed": 99}) for t in asked],
    )
    assert done == {asked[0]._trial_id, asked[2]._trial_id}
    rows = [(t.state, t.value, t.user_attrs) for t in study.get_trials()]
    assert rows[1] == (TrialState.FAIL, None, {"seed": driver.trial_seed(7, 1, "init")})
    assert rows[0] == rows[2] == (TrialState.COMPLETE, 0.5, {"k": 1, "seed": 99})  # replaced


def test_a_parameter_of_another_kind_is_refused_and_nothing_written(database: str) -> None:
    study, storage, space = _open(database, "s")
    driver._ask(study, storage, space, 1, 7, waiting=0)
    other = optuna.distributions.CategoricalDistribution(["a", "b"])
    with pytest.raises(ValueError, match="different distribution kind"):
        create_running_trials(
            study._storage,
            study._study_id,
            2,
            lambda n: NewTrial({"lr": "a"}, {"lr": other}, {}, {}),
        )
    assert len(study.get_trials()) == 1
