"""Searches end to end on a tiny task: finding the lr, kill -9 and resume, two workers,
pruning, and the one-line errors. The multi-process tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import time
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from search_helpers import make_job

from initlab.errors import InitlabError
from initlab.search import driver
from initlab.search.driver import (
    OWNER_ATTR,
    RESULT_ATTR,
    RETRY_ATTR,
    SURPLUS_ATTR,
    finished_trials,
    run_search,
    worker_threads,
)
from initlab.search.storage import open_storage

CTX = mp.get_context("spawn")


def _load(storage: str, name: str = "s") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage))


def _finished(storage: str) -> dict[int, tuple[float | None, float]]:
    return {t.number: (t.value, t.params["lr"]) for t in finished_trials(_load(storage))}


def test_random_search_finds_the_learning_rate_in_the_right_decade(tmp_path: Any) -> None:
    study, report = run_search(make_job(str(tmp_path / "runs.db"), trials=24, seed=3))
    assert report.finished == 24 and len(finished_trials(study)) == 24
    best = study.best_trial
    # measured on this task: accuracy 1.0 at lr 0.1, 0.92 at 0.03, 0.65 at 0.3, chance
    # below 1e-3 and above 1; the search spans 6 decades, 1e-5 to 10
    assert 10**-1.6 <= best.params["lr"] <= 10**-0.4, best.params
    assert best.value >= 0.9
    assert len(best.user_attrs[RESULT_ATTR]["valid_acc"]) == 6  # one accuracy per epoch
    assert best.user_attrs[RESULT_ATTR]["valid_acc"][-1] == best.value
    # the random sampler draws per trial number: the same trials again in a fresh study
    again, _ = run_search(make_job(str(tmp_path / "again.db"), trials=24, seed=3, batch=5))
    first = {t.number: t.params["lr"] for t in finished_trials(study)}
    assert {t.number: t.params["lr"] for t in finished_trials(again)} == first
    assert [t.value for t in finished_trials(again)] == [t.value for t in finished_trials(study)]


def test_without_batch_writes_the_same_trials_are_stored(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Optuna whose row models moved (``BATCH_WRITES`` False) asks and tells one by one:
    the same trial numbers, parameters, seeds, values, states and curves."""

    def stored(path: str) -> list[tuple[Any, ...]]:
        return [
            (t.number, t.state, t.params, t.value, t.user_attrs["seed"], t.user_attrs[RESULT_ATTR])
            for t in _load(path).get_trials()
        ]

    batched = str(tmp_path / "batched.db")
    run_search(make_job(batched, trials=6, seed=1, batch=3))
    monkeypatch.setattr(driver, "BATCH_WRITES", False)
    alone = str(tmp_path / "alone.db")
    run_search(make_job(alone, trials=6, seed=1, batch=3))
    assert len(stored(batched)) == 6
    assert stored(alone) == stored(batched)


def test_threads_per_worker_share_out_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from initlab.experiments import common

    monkeypatch.setattr(common, "machine_cores", lambda: 4)
    assert [worker_threads(w) for w in (1, 2, 3, 8)] == [4, 2, 1, 1]
    assert worker_threads(2, threads=3) == 3
    with pytest.raises(InitlabError, match="threads must be >= 0"):
        worker_threads(1, threads=-1)
    with pytest.raises(InitlabError, match="workers must be positive"):
        worker_threads(0)


def _search(storage: str, trials: int, batch: int, barrier: Any = None) -> None:
    if barrier is not None:
        barrier.wait(120)
    run_search(make_job(storage, trials=trials, batch=batch))


def test_kill_9_then_resume_loses_and_repeats_no_finished_trial(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the kill may land between creating a trial and tagging it with its worker (two
    # commits); such a trial is taken over once it is UNTAGGED_GRACE seconds old
    monkeypatch.setattr(driver, "UNTAGGED_GRACE", 0.5)
    trials = 40
    open_storage(database)  # the tables exist before the worker and the polling start
    proc = CTX.Process(target=_search, args=(database, trials, 2))
    proc.start()
    try:
        deadline, done = time.monotonic() + 120, 0
        while done < 6 and time.monotonic() < deadline and proc.is_alive():
            time.sleep(0.1)
            try:
                done = len(_finished(database))
            except (InitlabError, KeyError):  # storage or study not created yet
                done = 0
    finally:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    before = _finished(database)
    assert 6 <= len(before) < trials, "the search should be killed half-way"
    time.sleep(0.6)
    study, report = run_search(make_job(database, trials=trials, batch=trials))  # resume
    after = _finished(database)
    assert len(after) == trials
    assert all(after[n] == before[n] for n in before)  # none lost, none changed
    assert len({lr for _, lr in after.values()}) == trials  # no trial finished twice
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert report.reclaimed == len(failed) <= 2  # the batch the kill interrupted
    retried = {t.system_attrs.get(RETRY_ATTR): t for t in finished_trials(study)}
    for trial in failed:  # ... was trained again with the same parameters and seed (a
        copy = retried[trial.number]  # trial killed before its parameters were drawn
        for name, value in trial.params.items():  # has none: its copy draws them)
            assert copy.params[name] == value
        if "seed" in trial.user_attrs:
            assert copy.user_attrs["seed"] == trial.user_attrs["seed"]


def test_two_worker_processes_share_one_study(database: str) -> None:
    trials = 18
    run_search(make_job(database, trials=1))  # create the study (and the tables) first
    barrier = CTX.Barrier(2)
    workers = [CTX.Process(target=_search, args=(database, trials, 3, barrier)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(180)
        assert worker.exitcode == 0
    study = _load(database)
    finished = finished_trials(study)
    assert [t.number for t in finished if t.number < trials] == list(range(len(finished)))[:trials]
    assert len(finished) == trials  # every trial accounted for, none beyond the budget
    owners = {t.system_attrs[OWNER_ATTR] for t in finished}
    assert len(owners) == 3  # the first trial's process and both workers
    others = study.get_trials(states=(TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING))
    assert all(t.state == TrialState.FAIL and t.system_attrs.get(SURPLUS_ATTR) for t in others)
    assert len({t.params["lr"] for t in finished}) == trials


def test_the_median_pruner_stops_a_diverging_trial(tmp_path: Any) -> None:
    job = make_job(
        str(tmp_path / "runs.db"), trials=4, batch=1, pruner="median", startup=2, warmup=2
    )
    study, _, _ = job.open()
    for lr in (0.1, 0.05, 9.0, 0.08):  # the third one's loss blows up
        study.enqueue_trial({"lr": lr})
    study, _ = run_search(job)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
    ]
    diverging = trials[2]
    assert diverging.user_attrs[RESULT_ATTR]["status"] == "pruned"
    assert len(diverging.intermediate_values) == 2  # stopped at the first epoch allowed
    assert max(diverging.intermediate_values.values()) < 0.3 < trials[0].value


def test_grid_and_tpe_samplers_run(tmp_path: Any) -> None:
    grid, _ = run_search(make_job(str(tmp_path / "g.db"), trials=9, sampler="grid", grid_points=5))
    lrs = sorted(t.params["lr"] for t in finished_trials(grid))
    assert lrs == pytest.approx([10.0**k for k in (-5.0, -3.5, -2.0, -0.5, 1.0)], rel=1e-9)
    assert grid.trials[-1].number == 4  # the grid has 5 points: 5 trials, not 9
    tpe, _ = run_search(make_job(str(tmp_path / "t.db"), trials=14, sampler="tpe", batch=4))
    assert len(finished_trials(tpe)) == 14 and tpe.best_value > 0.5


def test_an_unreachable_server_is_one_line_within_seconds() -> None:
    start = time.monotonic()
    with pytest.raises(InitlabError) as err:
        make_job("postgresql+psycopg://nobody@127.0.0.1:9/nowhere").open()
    message = str(err.value)
    assert message.startswith("cannot reach study storage postgresql+psycopg://nobody@127.0.0.1:9")
    assert "refused" in message.lower() and "\n" not in message
    assert time.monotonic() - start < 10


def test_a_study_name_with_another_space_is_refused_and_left_alone(tmp_path: Any) -> None:
    path = str(tmp_path / "runs.db")
    run_search(make_job(path, trials=2))
    other = {"lr": {"kind": "log_uniform", "low": 1e-4, "high": 1.0}}
    with pytest.raises(InitlabError) as err:
        make_job(path, space=other, trials=2).open()
    assert "study 's' exists with another space" in str(err.value)
    assert "--study s-2" in str(err.value)
    with pytest.raises(InitlabError, match=r"exists with another settings \(sampler"):
        make_job(path, trials=2, sampler="tpe").open()
    study = _load(path)
    assert len(study.trials) == 2 and study.user_attrs["initlab_space"]["lr"]["low"] == 1e-5
    with pytest.raises(InitlabError, match="unknown sampler 'bayes'; valid: random, tpe, grid"):
        make_job(path, sampler="bayes")
    assert math.isfinite(study.best_value)


def test_ctrl_c_fails_the_batch_and_queues_it_again(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_job(str(tmp_path / "runs.db"), trials=6, batch=3)
    study, storage, space = job.open()
    task = job.task_factory(**job.task_args)
    real = type(task).train_batched
    calls = {"n": 0}

    def interrupted(self: Any, plans: Any, report: Any = None) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # Ctrl-C during the second batch
            raise KeyboardInterrupt
        return real(self, plans, report)

    monkeypatch.setattr(type(task), "train_batched", interrupted)
    with pytest.raises(KeyboardInterrupt):
        driver.run_worker(study, storage, task, space, job.settings)
    states = [t.state for t in study.get_trials()]
    assert states.count(TrialState.COMPLETE) == 3 and states.count(TrialState.FAIL) == 3
    assert states.count(TrialState.WAITING) == 3  # the interrupted batch, queued again
    monkeypatch.setattr(type(task), "train_batched", real)
    report = driver.run_worker(study, storage, task, space, job.settings)  # resume
    assert report.finished == 3 and len(finished_trials(study)) == 6
    failed = {t.number: t.params for t in study.get_trials(states=(TrialState.FAIL,))}
    retried = {t.system_attrs[RETRY_ATTR]: t.params for t in finished_trials(study)[3:]}
    assert retried == failed
