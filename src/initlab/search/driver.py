"""Running a search: workers that ask for trials in batches, train them together, tell.

One worker's loop (any number of workers, on any machines that reach the storage, run it
on one study at once)::

    reclaim trials left running by dead workers  # failed, their parameters queued again
    k = min(batch, trials - finished - running)  # nothing left: stop
    ask k trials (Optuna's ask-and-tell)         # queued retries first
    train them in fit_batched                    # per-member lr, weight decay, seed
        after every epoch: report valid_acc, ask the pruner; a pruned member is frozen
    tell each its value (or PRUNED)

With the random sampler the batch is asked and told in one transaction each
(:func:`~initlab.search.storage.create_running_trials`,
:func:`~initlab.search.storage.finish_trials`; the same rows as ``study.ask`` and
``study.tell``): asking 100 trials one by one re-read the study's running trials at every
``ask`` and committed ~6 times per trial: 8.5 CPU s of study work for C1's 100 trials x 50
epochs, now 1.5 s, most of it opening the storage (benchmarks/bench_search.py --overhead).

Resume: a finished trial (complete or pruned) is in the storage the moment it is told,
and is never trained again; a trial that was running when its worker died (Ctrl-C, kill
-9, a power cut) is failed by the next worker, on this machine at once (its process is
gone), on another machine once its heartbeat is :data:`~initlab.search.storage.GRACE_PERIOD`
seconds old, and a copy with the same parameters and seed is queued. So a search stopped
at any point and started again ends with exactly ``trials`` finished trials, none lost and
none twice.

Several workers: ``finished + running`` is read before asking; two workers that ask at the
same time may both take the last slots, so after asking each trial checks its rank (how
many counted trials have a smaller number) and a trial beyond the budget is told FAIL with
``initlab_surplus`` instead of being trained.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from initlab.errors import InitlabError, check_choice
from initlab.search.pruners import PRUNERS, PrunerName, make_pruner
from initlab.search.samplers import (
    SAMPLERS,
    SamplerName,
    TrialSeededRandomSampler,
    grid_size,
    make_sampler,
    trial_seed,
)
from initlab.search.space import SearchSpace
from initlab.search.storage import (
    BATCH_WRITES,
    HEARTBEAT_INTERVAL,
    Finish,
    NewTrial,
    create_running_trials,
    finish_trials,
    open_storage,
    open_study,
)
from initlab.search.task import SearchTask, TrialOutcome, TrialPlan
from initlab.store.owner import current_owner, owner_alive

OWNER_ATTR = "initlab_owner"  # system attr: host:pid:start of the worker training the trial
RETRY_ATTR = "initlab_retry_of"  # system attr: the number of the failed trial this repeats
SURPLUS_ATTR = "initlab_surplus"  # system attr: asked beyond the budget, never trained
RESULT_ATTR = "initlab_result"  # user attr: status, epochs and the per-epoch accuracies
UNTAGGED_GRACE = 30.0  # seconds after which a running trial without an owner is abandoned
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

AUTO_BATCH: dict[str, int] = {"random": 100, "grid": 100, "tpe": 10}
"""Trials asked at once when ``batch`` is 0. Random and grid trials do not depend on each
other, so all of them go into one batched computation: C1's 100 trials in one
``fit_batched`` took 1.5-1.6x less time than one by one with ``fit`` on the shared 2-core
reference machine (benchmarks/bench_search.py; the products dominate both). TPE learns
from finished trials: batches of 10 keep 10 rounds of learning in 100 trials."""

ProgressFn = Callable[[float, float, float | None], None]
"""``progress(finished, total, best)``: trials finished (fractions for running ones)."""


def _no_progress(done: float, total: float, best: float | None) -> None:
    """A :data:`ProgressFn` that shows nothing."""


@dataclass(frozen=True)
class SearchSettings:
    """How to search: budget, sampler, pruner, batch size, seed."""

    trials: int = 100
    sampler: SamplerName = "random"
    pruner: PrunerName = "none"
    batch: int = 0  # trials trained together; 0: AUTO_BATCH[sampler]
    seed: int = 0  # the sampler's seed and the root of every trial's seeds
    grid_points: int = 5  # grid sampler: values per numeric parameter
    startup: int = 5  # pruners: finished trials before pruning starts
    warmup: int = 5  # pruners: epochs before a trial can be pruned
    timeout: float | None = None  # seconds; no new batch is started after it

    def __post_init__(self) -> None:
        check_choice(self.sampler, SAMPLERS, "sampler")
        check_choice(self.pruner, PRUNERS, "pruner")
        if self.trials < 1:
            raise InitlabError(f"trials must be positive, got {self.trials}")
        if self.batch < 0:
            raise InitlabError(f"batch must be >= 0 (0: automatic), got {self.batch}")
        if self.timeout is not None and not self.timeout > 0:
            raise InitlabError(f"timeout must be positive seconds, got {self.timeout}")

    @property
    def batch_size(self) -> int:
        """Trials asked at once."""
        return self.batch or AUTO_BATCH.get(self.sampler, 10)

    def setup(self) -> dict[str, Any]:
        """What a study is bound to (a study reopened with another setup is refused)."""
        return {"sampler": self.sampler, "pruner": self.pruner, "seed": self.seed}


@dataclass
class WorkerReport:
    """What one worker did."""

    finished: int = 0  # trials it told complete or pruned
    surplus: int = 0  # trials it asked beyond the budget and gave back
    reclaimed: int = 0  # trials of dead workers it failed and queued again
    stopped_by_timeout: bool = False


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state name (``COMPLETE``, ``PRUNED``, ``RUNNING``, ``FAIL``, ``WAITING``)."""
    out = {s.name: 0 for s in TrialState}
    for trial in study.get_trials(deepcopy=False):
        out[trial.state.name] += 1
    return out


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The complete and pruned trials, by number."""
    return sorted(study.get_trials(deepcopy=False, states=FINISHED), key=lambda t: t.number)


def best_value(study: optuna.Study) -> float | None:
    """The best value of a complete trial so far (None before the first)."""
    done = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    return max((v for v in done if v is not None), default=None)


def _retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a copy of a failed trial: same parameters, same seed (its user attrs)."""
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs={k: v for k, v in trial.user_attrs.items() if k == "seed"},
            system_attrs={RETRY_ATTR: trial.number},
        )
    )


def _fail(storage: Any, study: optuna.Study, trial: FrozenTrial, retry: bool) -> bool:
    """Fail a running trial (True) unless another process finished or failed it first."""
    try:
        changed = storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    if changed and retry:
        _retry(study, trial)
    return bool(changed)


def reclaim_abandoned(study: optuna.Study, storage: Any) -> int:
    """Fail the running trials whose worker is gone and queue them again; return how many.

    A worker on this host is gone when its process is (checked at once); a worker on
    another host when its heartbeat is older than the storage's grace period. A trial
    with no owner tag was left by a worker killed between creating it and tagging it (two
    commits); it is abandoned once it is :data:`UNTAGGED_GRACE` seconds old."""
    host, now, reclaimed = socket.gethostname(), time.time(), 0
    stale_ids = set(storage._get_stale_trial_ids(study._study_id))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(trial.system_attrs.get(OWNER_ATTR, ""))
        if owner:
            same_host = owner.rsplit(":", 2)[0] == host
            gone = same_host and not owner_alive(owner, now, now, math.inf)
        else:
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            gone = now - started > UNTAGGED_GRACE
        if (gone or trial._trial_id in stale_ids) and _fail(storage, study, trial, True):
            reclaimed += 1
    return reclaimed


def _ask(
    study: optuna.Study, storage: Any, space: SearchSpace, k: int, seed: int, waiting: int
) -> list[Any]:
    """Ask ``k`` trials; tag each with this worker and its seed, record a heartbeat.

    With the trial-seeded random sampler and no queued retries (``waiting``) the batch is
    created in one transaction (:func:`~initlab.search.storage.create_running_trials`):
    its draws depend on the trial number only, so they are the ones ``study.ask`` would
    give. Otherwise trials are asked one by one (TPE and grid read the study; a queued
    retry is popped by ``study.ask``)."""
    if _writes_batches(study) and not waiting:
        batch = _ask_batch(study, space, k, seed)
        if batch is not None:
            return batch
    owner = current_owner()
    trials = []
    for _ in range(k):
        with warnings.catch_warnings():  # heartbeats without study.optimize: on purpose
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            trial = study.ask(space.distributions())
        storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, owner)
        storage.record_heartbeat(trial._trial_id)
        if "seed" not in trial.user_attrs:
            trial.set_user_attr("seed", trial_seed(seed, trial.number, "init"))
        trials.append(trial)
    return trials


def _writes_batches(study: optuna.Study) -> bool:
    """Whether a batch is asked and told in one transaction each: with Optuna's row models
    at hand (:data:`~initlab.search.storage.BATCH_WRITES`) and the trial-seeded random
    sampler, whose draws depend on the trial number only and which learns nothing."""
    return BATCH_WRITES and isinstance(study.sampler, TrialSeededRandomSampler)


def _ask_batch(study: optuna.Study, space: SearchSpace, k: int, seed: int) -> list[Any] | None:
    """``k`` new trials of the random sampler, written in one transaction (None: a retry
    was queued meanwhile, nothing was written)."""
    sampler, owner, dists = study.sampler, current_owner(), space.distributions()

    def fill(number: int) -> NewTrial:
        params = {name: sampler.draw(number, name, dist) for name, dist in dists.items()}
        seed_attr = {"seed": trial_seed(seed, number, "init")}
        return NewTrial(params, dists, seed_attr, {OWNER_ATTR: owner})

    made = create_running_trials(study._storage, study._study_id, k, fill)
    if made is None:
        return None
    return [optuna.trial.Trial(study, trial_id) for trial_id, _ in made]


def _over_budget(study: optuna.Study, trials: Sequence[Any], budget: int) -> set[int]:
    """Numbers of the asked trials ranked beyond the budget (another worker was first)."""
    counted = sorted(t.number for t in study.get_trials(deepcopy=False, states=COUNTED))
    rank = {number: i for i, number in enumerate(counted)}
    return {t.number for t in trials if rank.get(t.number, 0) >= budget}


class _Heartbeat:
    """Records the heartbeat of the running trials at most every ``interval`` seconds."""

    def __init__(self, storage: Any, interval: float) -> None:
        self.storage, self.interval, self.last = storage, interval, time.monotonic()

    def beat(self, trials: Sequence[Any]) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            for trial in trials:
                self.storage.record_heartbeat(trial._trial_id)
            self.last = now


class _BatchReporter:
    """The reporter of one batch: intermediate values, pruning, heartbeats, progress."""

    def __init__(
        self,
        trials: Sequence[Any],
        heartbeat: _Heartbeat,
        progress: ProgressFn,
        done: int,
        budget: int,
        epochs: int,
    ) -> None:
        self.trials, self.heartbeat, self.progress = list(trials), heartbeat, progress
        self.done, self.budget, self.epochs = done, budget, epochs
        self.seen = [0] * len(self.trials)
        self.best: float | None = None
        self.pruning = True  # report intermediate values and ask the pruner

    def __call__(self, member: int, epoch: int, value: float) -> bool:
        self.seen[member] = epoch
        self.heartbeat.beat(self.trials)
        live = sum(self.seen) / self.epochs
        self.progress(self.done + live, float(self.budget), self.best)
        if not self.pruning:
            return False
        trial = self.trials[member]
        try:
            trial.report(value, epoch)
        except optuna.exceptions.UpdateFinishedTrialError:
            return True  # another worker took it over as abandoned: stop training it
        return bool(trial.should_prune())


def _result_attr(outcome: TrialOutcome) -> dict[str, Any]:
    """The :data:`RESULT_ATTR` of an outcome: status, epochs and the per-epoch curves."""
    return {
        "status": outcome.status,
        "epochs": outcome.epochs,
        "valid_acc": outcome.valid_acc,
        "train_acc": outcome.train_acc,
    }


def _finish_of(trial: Any, outcome: TrialOutcome) -> Finish:
    """What ``study.tell`` stores for an outcome: COMPLETE with its value, or PRUNED with the
    last reported intermediate value (when there is one and it is not NaN)."""
    attrs = {RESULT_ATTR: _result_attr(outcome)}
    if outcome.status == "complete":
        return Finish(trial._trial_id, TrialState.COMPLETE, float(outcome.value), attrs)
    steps = trial._cached_frozen_trial.intermediate_values  # what trial.report stored
    last = steps[max(steps)] if steps else None
    value = last if last is not None and not math.isnan(last) else None  # as study.tell
    return Finish(trial._trial_id, TrialState.PRUNED, value, attrs)


def _tell_all(study: optuna.Study, trials: Sequence[Any], outcomes: Sequence[TrialOutcome]) -> int:
    """Tell a batch its outcomes; return how many were told (a trial taken over as
    abandoned by another worker, which trains its copy, is skipped).

    With the trial-seeded random sampler (whose ``after_trial`` does nothing) the batch is
    finished in one transaction (:func:`~initlab.search.storage.finish_trials`); other
    samplers learn from each trial in ``study.tell``."""
    pairs = list(zip(trials, outcomes, strict=True))
    valid = all(o.status != "complete" or math.isfinite(o.value) for o in outcomes)
    if _writes_batches(study) and valid:
        return len(finish_trials(study._storage, [_finish_of(t, o) for t, o in pairs]))
    told = 0
    for trial, outcome in pairs:
        try:
            _tell(study, trial, outcome)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        told += 1
    return told


def _tell(study: optuna.Study, trial: Any, outcome: TrialOutcome) -> None:
    """Store the outcome: its curves in one user attribute, then the state.

    The per-epoch validation accuracies go to Optuna's intermediate values only when a
    pruner reads them (one commit per member and epoch); the curves are always in the
    :data:`RESULT_ATTR` attribute, in one commit."""
    trial.set_user_attr(RESULT_ATTR, _result_attr(outcome))
    if outcome.status == "complete":
        study.tell(trial, outcome.value)
    else:  # pruned by the pruner, or diverged (NaN/Inf, frozen by the engine): stopped early
        study.tell(trial, state=TrialState.PRUNED)


def run_worker(
    study: optuna.Study,
    storage: Any,
    task: SearchTask,
    space: SearchSpace,
    settings: SearchSettings,
    progress: ProgressFn = _no_progress,
) -> WorkerReport:
    """Work on ``study`` until it has ``settings.trials`` finished trials (or the timeout).

    Returns what this worker did. A KeyboardInterrupt or an error while training fails the
    batch's trials, queues them again (a resume trains them) and propagates.
    """
    report = WorkerReport()
    started = time.monotonic()
    budget = settings.trials
    if settings.sampler == "grid":  # every point once
        budget = min(budget, grid_size(space, settings.grid_points))
    heartbeat = _Heartbeat(storage, HEARTBEAT_INTERVAL / 2)
    while True:
        # 1. what is left
        report.reclaimed += reclaim_abandoned(study, storage)
        state = counts(study)
        done = state["COMPLETE"] + state["PRUNED"]
        progress(float(done), float(budget), best_value(study))
        remaining = budget - done - state["RUNNING"]
        if remaining <= 0:
            return report
        if settings.timeout is not None and time.monotonic() - started > settings.timeout:
            report.stopped_by_timeout = True
            return report
        # 2. ask, give back what another worker took first
        k = min(settings.batch_size, remaining)
        trials = _ask(study, storage, space, k, settings.seed, state["WAITING"])
        surplus = _over_budget(study, trials, budget)
        for trial in [t for t in trials if t.number in surplus]:
            storage.set_trial_system_attr(trial._trial_id, SURPLUS_ATTR, True)
            study.tell(trial, state=TrialState.FAIL)
            report.surplus += 1
        trials = [t for t in trials if t.number not in surplus]
        if not trials:
            continue
        # 3. train together, pruning as we go; 4. tell
        plans = [TrialPlan(t.number, dict(t.params), int(t.user_attrs["seed"])) for t in trials]
        on_epoch = _BatchReporter(trials, heartbeat, progress, done, budget, task.epochs)
        on_epoch.best = best_value(study)
        on_epoch.pruning = settings.pruner != "none"
        try:
            outcomes = task.train_batched(plans, on_epoch)
        except BaseException:
            for trial in trials:
                _fail(storage, study, study._storage.get_trial(trial._trial_id), True)
            raise
        report.finished += _tell_all(study, trials, outcomes)


@dataclass(frozen=True)
class SearchJob:
    """Everything a worker process needs to join a search (picklable for ``spawn``)."""

    storage: str  # a file path or a database URL
    study: str
    space: dict[str, dict[str, Any]]
    settings: SearchSettings
    task_factory: Callable[..., SearchTask]  # a module-level function
    task_args: dict[str, Any] = field(default_factory=dict)

    def open(self) -> tuple[optuna.Study, Any, SearchSpace]:
        """The study (created or checked), its storage and the space."""
        space = SearchSpace.from_dict(self.space)
        storage = open_storage(self.storage)
        s = self.settings
        sampler = make_sampler(s.sampler, s.seed, space, grid_points=s.grid_points)
        pruner = make_pruner(s.pruner, startup=s.startup, warmup=s.warmup)
        setup = {**s.setup(), **{k: v for k, v in self.task_args.items() if k != "quiet"}}
        study = open_study(storage, self.study, space, _jsonable(setup), sampler, pruner)
        return study, storage, space


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _worker_process(job: SearchJob, threads: int) -> None:
    from initlab.experiments.common import intra_op_threads

    study, storage, space = job.open()
    task = job.task_factory(**job.task_args)
    with intra_op_threads(threads):
        run_worker(study, storage, task, space, job.settings)


def worker_threads(workers: int, threads: int = 0) -> int:
    """Intra-op threads per worker: ``threads``, or (0) this machine's cores shared out
    among the ``workers`` processes (at least one each)."""
    from initlab.experiments.common import machine_cores

    if workers < 1:
        raise InitlabError(f"workers must be positive, got {workers}")
    if threads < 0:
        raise InitlabError(f"threads must be >= 0 (0: the cores / workers), got {threads}")
    return threads or max(1, machine_cores() // workers)


def run_search(
    job: SearchJob,
    *,
    workers: int = 1,
    threads: int = 0,
    progress: ProgressFn = _no_progress,
    wait: bool = False,
) -> tuple[optuna.Study, WorkerReport]:
    """Run (or resume) a search with ``workers`` processes on this machine: this one and
    ``workers - 1`` spawned ones, each on ``threads`` intra-op threads (0: the machine's
    cores shared out among them; batched trials are large products that use them all).
    ``wait``: when nothing is left to ask, also wait for the trials other workers
    (elsewhere) are still training. Returns the study and this process's report."""
    from initlab.experiments.common import intra_op_threads

    if workers < 1:
        raise InitlabError(f"workers must be positive, got {workers}")
    per_worker = worker_threads(workers, threads)
    study, storage, space = job.open()
    task = job.task_factory(**job.task_args)
    ctx = mp.get_context("spawn")
    others = [
        ctx.Process(target=_worker_process, args=(job, per_worker)) for _ in range(workers - 1)
    ]
    for proc in others:
        proc.start()
    try:
        with intra_op_threads(per_worker):
            report = run_worker(study, storage, task, space, job.settings, progress)
    finally:
        for proc in others:
            proc.join()
    failed = [p.exitcode for p in others if p.exitcode != 0]
    if failed:
        raise InitlabError(f"{len(failed)} worker process(es) failed (exit codes {failed})")
    if wait:
        wait_for_others(study, storage, job.settings.trials)
        state = counts(study)
        if state["WAITING"] and state["COMPLETE"] + state["PRUNED"] < job.settings.trials:
            with intra_op_threads(per_worker):  # trials reclaimed while waiting: train here
                more = run_worker(study, storage, task, space, job.settings, progress)
            report.finished += more.finished
            report.reclaimed += more.reclaimed
    return study, report


def wait_for_others(study: optuna.Study, storage: Any, trials: int, poll: float = 2.0) -> None:
    """Wait until the study has ``trials`` finished trials while other workers still run
    some (trials of workers that die meanwhile are reclaimed and trained here)."""
    while True:
        state = counts(study)
        if state["COMPLETE"] + state["PRUNED"] >= trials or state["RUNNING"] == 0:
            return
        time.sleep(poll)
        if reclaim_abandoned(study, storage):
            return


def study_trials(study: optuna.Study) -> list[dict[str, Any]]:
    """The finished trials as plain rows: number, state, value, params, curves, seed."""
    rows = []
    for t in finished_trials(study):
        result = t.user_attrs.get(RESULT_ATTR, {})
        curve = result.get("valid_acc")
        if curve is None:
            curve = [t.intermediate_values[e] for e in sorted(t.intermediate_values)]
        rows.append(
            {
                "number": t.number,
                "state": result.get("status", t.state.name.lower()),
                "value": t.value if t.value is not None else (curve[-1] if curve else 0.0),
                "params": dict(t.params),
                "seed": t.user_attrs.get("seed"),
                "valid_acc": list(curve),
                "train_acc": list(result.get("train_acc", [])),
            }
        )
    return rows
