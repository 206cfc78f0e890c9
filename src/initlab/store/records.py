"""What the store holds and hands back: statuses, probe kinds, run and experiment infos.

Also the checks that turn user values into stored ones (metric numbers, steps, histograms).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from initlab.errors import InitlabError

RunStatus = Literal["running", "done", "diverged", "failed", "interrupted"]
FinalStatus = Literal["done", "diverged", "failed", "interrupted"]
ProbeKind = Literal["activation", "preactivation", "gradient", "weight", "weight_grad", "update"]

RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
FINAL_STATUSES: tuple[str, ...] = get_args(FinalStatus)
PROBE_KINDS: tuple[str, ...] = get_args(ProbeKind)
SKIPPED_ON_RESUME: tuple[str, ...] = ("done", "diverged")
"""Statuses that are final results: resume does not run them again."""


@dataclass(frozen=True)
class ExperimentInfo:
    """One experiment as listed by :meth:`RunStore.list_experiments`."""

    id: int
    name: str
    spec: dict[str, Any]
    version: str
    created_at: float
    updated_at: float
    counts: dict[str, int] = field(default_factory=dict)  # runs per status

    @property
    def total(self) -> int:
        """Number of runs of the experiment."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class RunInfo:
    """One run as listed by :meth:`RunStore.list_runs` / :meth:`RunStore.get_run`."""

    id: int
    experiment: str
    key: str
    seed: int
    spec: dict[str, Any]
    status: str
    attempt: int
    owner: str
    error: str | None
    summary: dict[str, Any] | None
    version: str
    created_at: float
    started_at: float
    heartbeat_at: float
    finished_at: float | None
    wall_time: float | None
    last_step: int | None  # largest step with a metric, None when nothing was logged
    final_loss: float | None  # the loss metric at its last step

    @property
    def duration(self) -> float:
        """Seconds the run took: the trainer's wall time, else finish (or last write) - start."""
        if self.wall_time is not None:
            return self.wall_time
        return (self.finished_at or self.heartbeat_at) - self.started_at


def json_or_none(text: str | None) -> Any:
    """Parse a nullable JSON column."""
    return None if text is None else json.loads(text)


def to_number(value: Any, what: str, *, nan: float | None = None) -> float | None:
    """A metric or statistic as a float; NaN becomes ``nan`` (default None: SQL NULL)."""
    if isinstance(value, str | bytes) or value is None:
        raise InitlabError(f"{what} is {value!r}; metrics and stats must be numbers")
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise InitlabError(f"{what} is {value!r}; metrics and stats must be numbers") from err
    return nan if math.isnan(number) else number


def to_step(value: Any, what: str) -> int:
    """A step number: an int (or integer scalar) >= 0."""
    if isinstance(value, bool):
        raise InitlabError(f"{what} 'step' is {value!r}; it must be an int >= 0")
    try:
        step = int(value.__index__())
    except (AttributeError, TypeError) as err:
        raise InitlabError(f"{what} 'step' is {value!r}; it must be an int >= 0") from err
    if step < 0:
        raise InitlabError(f"{what} 'step' is {step}; it must be an int >= 0")
    return step


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def histogram_json(hist: Any, what: str) -> str | None:
    """Validate a contract-(c) histogram (None or edges + counts) and encode it as JSON."""
    if hist is None:
        return None
    if not isinstance(hist, Mapping) or "edges" not in hist or "counts" not in hist:
        raise InitlabError(f"{what} histogram must be None or {{'edges': [...], 'counts': [...]}}")
    edges = [float(e) for e in _as_list(hist["edges"])]
    counts = [c if isinstance(c, int) else float(c) for c in _as_list(hist["counts"])]
    if len(edges) != len(counts) + 1:
        raise InitlabError(
            f"{what} histogram has {len(edges)} edges for {len(counts)} counts; "
            "it needs len(counts) + 1 edges"
        )
    return json.dumps({"edges": edges, "counts": counts})
