"""The classic experiments as named, parameterized, resumable presets (PROTOCOLS.md).

``run_experiment("activation-histograms", out_dir="initlab-runs")`` runs one; every run is
stored in ``OUT/runs.db`` and figures plus ``summary.json`` land in ``OUT/NAME/``.
:func:`list_experiments` / :func:`get_experiment` give the registered ones; each is an
:class:`Experiment` (one module per experiment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # at run time every name loads on first use (torch, matplotlib)
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

_LAZY = {
    "Experiment": "initlab.experiments.base",
    "ExperimentData": "initlab.experiments.base",
    "GroupExperiment": "initlab.experiments.base",
    "Progress": "initlab.experiments.base",
    "Recorder": "initlab.experiments.base",
    "RunData": "initlab.experiments.base",
    "RunOutcome": "initlab.experiments.base",
    "RunSpec": "initlab.experiments.base",
    "build_config": "initlab.experiments.config",
    "field_help": "initlab.experiments.config",
    "parse_literal": "initlab.experiments.config",
    "experiment_names": "initlab.experiments.registry",
    "get_experiment": "initlab.experiments.registry",
    "list_experiments": "initlab.experiments.registry",
    "register": "initlab.experiments.registry",
    "ExperimentResult": "initlab.experiments.runner",
    "load_experiment_data": "initlab.experiments.runner",
    "resolve_config": "initlab.experiments.runner",
    "run_experiment": "initlab.experiments.runner",
    "SUITE": "initlab.experiments.suite",
    "run_suite": "initlab.experiments.suite",
}


def __getattr__(name: str) -> Any:
    """Load a public name on first use, so that ``initlab list`` and the help answer at once."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'initlab.experiments' has no attribute {name!r}")


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
