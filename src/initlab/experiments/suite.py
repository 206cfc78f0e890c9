"""The quick suite ("initlab demo"): the classic lessons in a few minutes, then the report.

Runs each experiment of :data:`SUITE` that is registered, in quick mode by default, in one
workspace, and builds the workspace's HTML report (every experiment found there). This is
the README's quick start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from initlab.experiments.registry import experiment_names
from initlab.experiments.runner import ExperimentResult, run_experiment

SUITE: tuple[str, ...] = (
    "activation-histograms",
    "symmetry",
    "exploding-product",
    "optimizer-paths",
    "init-compare",
)
"""The suite's experiments, in order; those not registered (yet) are left out."""


def run_suite(
    out_dir: str | Path = "initlab-runs",
    *,
    quick: bool = True,
    seed: int = 0,
    progress: bool = True,
    names: Sequence[str] | None = None,
    on_done: Callable[[ExperimentResult], None] | None = None,
    store: str | Path | None = None,
    figure_workers: int = 1,
) -> tuple[list[ExperimentResult], Path]:
    """Run the suite's experiments, then build the report; return the results and its path.

    ``names`` defaults to :data:`SUITE`; ``on_done`` is called after each experiment (the
    CLI prints its verdicts there); ``store`` is the run store (None: ``OUT/runs.db``);
    ``figure_workers`` the processes that draw each experiment's figures at once.
    """
    from initlab.report import build_report

    available = set(experiment_names())
    results = []
    for name in SUITE if names is None else names:
        if name not in available:
            continue
        result = run_experiment(
            name,
            out_dir=out_dir,
            seed=seed,
            quick=quick,
            progress=progress,
            store=store,
            figure_workers=figure_workers,
        )
        results.append(result)
        if on_done is not None:
            on_done(result)
    report = build_report(out_dir)
    return results, report
