"""What a training run returns: :class:`TrainResult` (the same for one model and per member).

``history`` is a list of rows, one per logged step, e.g.
``{"step": 100, "epoch": 0, "train_loss": 0.41, "train_acc": 0.88, "valid_loss": 0.39,
"valid_acc": 0.89}``. ``step`` counts the optimizer updates done before the row was measured
(the training loss of row ``t`` is that of the minibatch of update ``t``; evaluation metrics
at ``t`` are measured after ``t`` updates), so a curve starts at the initialization.
``probe_records`` are plain dicts of contract (c):
``{"step", "layer", "kind", "stats", "histogram"}`` (plus ``"member"`` from the batched
engine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from torch import Tensor

from initlab.errors import InitlabError

RunStatus = Literal["done", "diverged"]
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)


def _json_number(value: Any) -> Any:
    """Python numbers as they are, non-finite floats as None (JSON has no NaN or Inf)."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    number = float(value)
    return number if math.isfinite(number) else None


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Tensor):
        return _json_safe(value.tolist()) if value.numel() <= 1 else None
    return _json_number(value)


@dataclass
class TrainResult:
    """The outcome of one training run (one model, or one member of a batched ensemble)."""

    status: RunStatus  # "done", or "diverged" when the loss became NaN/Inf
    steps_done: int  # optimizer updates applied
    history: list[dict[str, Any]] = field(default_factory=list)  # metric rows, by step
    probe_records: list[dict[str, Any]] = field(default_factory=list)  # contract (c) dicts
    final_state: dict[str, Tensor] = field(default_factory=dict)  # state_dict at the end (CPU)
    diverged_at: int | None = None  # the step whose loss was not finite
    wall_time: float = 0.0  # seconds spent in the training loop
    member: int | None = None  # index in a batched ensemble; None for a single model
    config: dict[str, Any] = field(default_factory=dict)  # the settings, JSON-safe

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise InitlabError(
                f"unknown run status {self.status!r}; valid: {', '.join(RUN_STATUSES)}"
            )

    @property
    def diverged(self) -> bool:
        """True when the run stopped on a NaN/Inf loss."""
        return self.status == "diverged"

    def metric(self, name: str) -> list[tuple[int, float]]:
        """``(step, value)`` for every row that has ``name``, in step order."""
        return [(int(row["step"]), float(row[name])) for row in self.history if name in row]

    def last(self, name: str) -> float | None:
        """The last recorded value of metric ``name`` (None if it was never recorded)."""
        values = self.metric(name)
        return values[-1][1] if values else None

    def best(self, name: str, mode: Literal["max", "min"] = "max") -> float | None:
        """The best finite value of ``name`` (``max`` for accuracies, ``min`` for losses)."""
        values = [v for _, v in self.metric(name) if math.isfinite(v)]
        if not values:
            return None
        return max(values) if mode == "max" else min(values)

    @property
    def final_loss(self) -> float | None:
        """The last training loss (NaN or Inf for a diverged run)."""
        return self.last("train_loss")

    @property
    def final_valid_acc(self) -> float | None:
        """The last validation accuracy, if the run evaluated."""
        return self.last("valid_acc")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of everything but the tensors (NaN/Inf become None)."""
        return {
            "status": self.status,
            "steps_done": self.steps_done,
            "diverged_at": self.diverged_at,
            "wall_time": _json_number(self.wall_time),
            "member": self.member,
            "config": _json_safe(self.config),
            "history": _json_safe(self.history),
            "probe_records": _json_safe(self.probe_records),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        """Inverse of :meth:`to_dict` (``final_state`` comes back empty; None stays None)."""
        return cls(
            status=data["status"],
            steps_done=int(data["steps_done"]),
            history=[dict(row) for row in data.get("history", [])],
            probe_records=[dict(rec) for rec in data.get("probe_records", [])],
            diverged_at=data.get("diverged_at"),
            wall_time=float(data.get("wall_time") or 0.0),
            member=data.get("member"),
            config=dict(data.get("config", {})),
        )
