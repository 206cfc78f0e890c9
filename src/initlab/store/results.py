"""Store a whole training result (contract (d)) as one run.

The result is duck-typed, so the store does not depend on the trainers:
``status`` ("done" or "diverged"), ``history`` (a list of ``{"step": int, metric: float}``),
and optionally ``probe_records`` (contract (c) dicts) and ``wall_time`` (seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from initlab.errors import InitlabError, check_choice
from initlab.store.runstore import RunStore

if TYPE_CHECKING:
    import torch

RESULT_STATUSES: tuple[str, ...] = ("done", "diverged")

METRIC_BATCH = 5000
"""Metric rows written per transaction (bounds the time one writer holds the lock)."""


class TrainResultLike(Protocol):
    """What :func:`save_result` reads from a training result."""

    status: str
    history: Sequence[Mapping[str, Any]]


def save_result(
    store: RunStore,
    experiment: str | int,
    spec: Mapping[str, Any],
    seed: int,
    result: TrainResultLike,
    *,
    summary: Mapping[str, Any] | None = None,
    params: Mapping[str, torch.Tensor] | None = None,
) -> int | None:
    """Store ``result`` as the run (experiment, spec, seed); return its id, None if done already.

    Metrics go in batches of :data:`METRIC_BATCH` rows, then the probe records, then
    ``params`` (the final parameters, when given), then the status; an error on the way
    marks the run "failed" (see :class:`~initlab.store.runstore.RunHandle`).
    """
    missing = [name for name in ("status", "history") if not hasattr(result, name)]
    if missing:
        raise InitlabError(
            f"cannot store a {type(result).__name__}: it lacks {', '.join(missing)}; "
            "a result needs status, history (and optionally probe_records, wall_time)"
        )
    status = check_choice(str(result.status), RESULT_STATUSES, "result status")
    history = list(result.history)
    records = list(getattr(result, "probe_records", None) or [])
    wall_time = getattr(result, "wall_time", None)
    run = store.start_run(experiment, spec, seed)
    if run is None:
        return None
    with run:
        for start in range(0, len(history), METRIC_BATCH):
            run.log_metrics(history[start : start + METRIC_BATCH])
        run.log_probes(records)
        if params is not None:
            run.save_params(params)
        run.finish(status, summary, wall_time=None if wall_time is None else float(wall_time))
    return run.id
