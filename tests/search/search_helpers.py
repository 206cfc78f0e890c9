"""Helpers of the search tests: a tiny synthetic task and jobs on it (importable by the
worker processes the tests spawn, which is why they are not in conftest.py)."""

from __future__ import annotations

from typing import Any

from initlab.experiments.search.common import build_task
from initlab.search.driver import SearchJob, SearchSettings

LR_SPACE = {"lr": {"kind": "log_uniform", "low": 1e-5, "high": 10.0}}
TASK = {
    "dataset": "synthetic",
    "train_size": 300,
    "valid_fraction": 0.2,
    "hidden": [32],
    "activation": "relu",
    "init": "he_normal",
    "epochs": 6,
    "batch_size": 30,
    "seed": 0,
}
"""A task that trains in a few ms per member-epoch; its best lr is about 0.1 (measured:
validation accuracy 1.0 at lr 0.1, 0.92 at 0.03, 0.65 at 0.3, chance below 1e-3 and above 1)."""


def make_job(
    storage: str, study: str = "s", space: dict[str, Any] | None = None, **settings: Any
) -> SearchJob:
    """A search job on the tiny task."""
    return SearchJob(
        storage=storage,
        study=study,
        space=space or LR_SPACE,
        settings=SearchSettings(**settings),
        task_factory=build_task,
        task_args=dict(TASK),
    )
