"""The classic experiments as named, parameterized, resumable presets (PROTOCOLS.md).

``run_experiment("activation-histograms", out_dir="initlab-runs")`` runs one; every run is
stored in ``OUT/runs.db`` and figures plus ``summary.json`` land in ``OUT/NAME/``.
:func:`list_experiments` / :func:`get_experiment` give the registered ones; each is an
:class:`Experiment` (one module per experiment).
"""

from initlab.experiments.base import (
    Experiment,
    ExperimentData,
    GroupExperiment,
    Progress,
    Recorder,
    RunData,
    RunOutcome,
    RunSpec,
)
from initlab.experiments.config import build_config, field_help, parse_literal
from initlab.experiments.registry import (
    experiment_names,
    get_experiment,
    list_experiments,
    register,
)
from initlab.experiments.runner import (
    ExperimentResult,
    load_experiment_data,
    resolve_config,
    run_experiment,
)
from initlab.experiments.suite import SUITE, run_suite

__all__ = [
    "SUITE",
    "Experiment",
    "ExperimentData",
    "ExperimentResult",
    "GroupExperiment",
    "Progress",
    "Recorder",
    "RunData",
    "RunOutcome",
    "RunSpec",
    "build_config",
    "experiment_names",
    "field_help",
    "get_experiment",
    "list_experiments",
    "load_experiment_data",
    "parse_literal",
    "register",
    "resolve_config",
    "run_experiment",
    "run_suite",
]
