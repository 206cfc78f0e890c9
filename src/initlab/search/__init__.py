"""Hyperparameter search on Optuna: spaces, samplers, pruners, batched trials, storage.

The from-scratch book's recipe (sec. 6.5): random search on a log scale, on a validation
split, giving up on bad values early, then narrowing the ranges; plus Bergstra et al.'s TPE.

    space = SearchSpace.from_dict({"lr": {"kind": "log_uniform", "low": 1e-6, "high": 1e-2}})
    job = SearchJob("runs.db", "my-study", space.to_dict(), SearchSettings(trials=100),
                    task_factory=my_task, task_args={...})
    study, report = run_search(job, workers=2)   # resumable; any number of machines

Modules: :mod:`~initlab.search.space` (spaces from a spec or TOML, narrowing),
:mod:`~initlab.search.samplers` (random, tpe, grid), :mod:`~initlab.search.pruners`
(median, halving), :mod:`~initlab.search.storage` (Optuna's RDB storage, checked),
:mod:`~initlab.search.task` (what a trial trains, batched with ``fit_batched``),
:mod:`~initlab.search.driver` (ask, train, tell; resume and several workers),
:mod:`~initlab.search.analysis` (top trials, narrowed ranges, importances).
"""

from initlab.search.analysis import importances, narrowed, top_rows
from initlab.search.driver import (
    SearchJob,
    SearchSettings,
    WorkerReport,
    reclaim_abandoned,
    run_search,
    run_worker,
    study_trials,
)
from initlab.search.pruners import PRUNERS, PrunerName, make_pruner
from initlab.search.samplers import SAMPLERS, SamplerName, make_sampler, trial_seed
from initlab.search.space import KINDS, PARAMETERS, Param, SearchSpace, load_space
from initlab.search.storage import open_storage, open_study, study_names
from initlab.search.task import SearchTask, TrialOutcome, TrialPlan

__all__ = [
    "KINDS",
    "PARAMETERS",
    "PRUNERS",
    "SAMPLERS",
    "Param",
    "PrunerName",
    "SamplerName",
    "SearchJob",
    "SearchSettings",
    "SearchSpace",
    "SearchTask",
    "TrialOutcome",
    "TrialPlan",
    "WorkerReport",
    "importances",
    "load_space",
    "make_pruner",
    "make_sampler",
    "narrowed",
    "open_storage",
    "open_study",
    "reclaim_abandoned",
    "run_search",
    "run_worker",
    "study_names",
    "study_trials",
    "top_rows",
    "trial_seed",
]
