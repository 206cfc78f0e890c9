"""Write access to one claimed run: metrics, probe records, final parameters, status.

Every write is one transaction that first checks, in the same transaction, that this
handle still owns the run (same attempt, still "running"), so two processes never
interleave rows of one run.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, insert, update
from sqlalchemy.exc import IntegrityError

from initlab.errors import InitlabError, check_choice
from initlab.store import schema
from initlab.store.records import (
    FINAL_STATUSES,
    PROBE_KINDS,
    FinalStatus,
    RunStatus,
    histogram_json,
    to_number,
    to_step,
)

if TYPE_CHECKING:
    import torch

    from initlab.store.runstore import RunStore

_MAX_ERROR_CHARS = 2000


def _jsonable(value: Any) -> Any:
    """JSON fallback for summaries: tensors and numpy values via ``tolist()``."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise InitlabError(
        f"summary value {value!r} ({type(value).__name__}) cannot be stored as JSON; "
        "use numbers, strings, lists or dicts"
    )


class RunHandle:
    """Write access to one claimed run; obtained from :meth:`RunStore.start_run`.

    As a context manager: leaving the block normally finishes the run as "done" unless
    :meth:`finish` was called; an ``Exception`` marks it "failed" with a one-line error; a
    ``KeyboardInterrupt`` (or other BaseException) marks it "interrupted". The exception
    always propagates. Resume restarts failed and interrupted runs.
    """

    def __init__(
        self,
        store: RunStore,
        run_id: int,
        experiment_id: int,
        key: str,
        seed: int,
        spec: dict[str, Any],
        attempt: int,
        started_at: float,
    ) -> None:
        self.store = store
        self.id = run_id
        self.experiment_id = experiment_id
        self.key = key
        self.seed = seed
        self.spec = spec
        self.attempt = attempt
        self.started_at = started_at
        self.status: RunStatus = "running"

    def __repr__(self) -> str:
        return f"RunHandle(id={self.id}, seed={self.seed}, attempt={self.attempt}, {self.status})"

    @contextmanager
    def _owned(self) -> Iterator[Connection]:
        """A write transaction that first checks this handle still owns the running run."""
        r = schema.runs.c
        with self.store._tx(write=True) as conn:
            touched = conn.execute(
                update(schema.runs)
                .where(r.id == self.id, r.attempt == self.attempt, r.status == "running")
                .values(heartbeat_at=time.time())
            )
            if touched.rowcount != 1:
                raise InitlabError(
                    f"run {self.id} (attempt {self.attempt}) is no longer running in this "
                    "process: it was finished or restarted elsewhere; stop writing to it"
                )
            yield conn

    def log_metrics(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Store metric rows ``{"step": int, name: number, ...}`` in one transaction.

        Each (name, step) is stored once per run; logging it again is an error. Returns
        the number of values stored.
        """
        values: list[dict[str, Any]] = []
        seen: set[tuple[str, int]] = set()
        for row in rows:
            if "step" not in row:
                raise InitlabError(f"metric row {dict(row)!r} has no 'step'; add the step number")
            step = to_step(row["step"], "metric row")
            for name, value in row.items():
                if name == "step":
                    continue
                if (name, step) in seen:
                    raise InitlabError(f"metric {name!r} appears twice at step {step} in one call")
                seen.add((name, step))
                number = to_number(value, f"metric {name!r} at step {step}")
                values.append({"run_id": self.id, "name": name, "step": step, "value": number})
        if not values:
            return 0
        try:
            with self._owned() as conn:
                conn.execute(insert(schema.metrics), values)
        except IntegrityError as err:
            raise InitlabError(
                f"run {self.id}: a metric was logged again at a step it already has; "
                "each (metric, step) is stored once"
            ) from err
        return len(values)

    def log_probes(self, records: Sequence[Mapping[str, Any] | Any]) -> int:
        """Store probe records in one transaction; returns how many.

        A record is a contract-(c) dict or an object whose ``to_dict()`` gives one.
        """
        values: list[dict[str, Any]] = []
        for item in records:
            record = item.to_dict() if hasattr(item, "to_dict") else item
            missing = [k for k in ("step", "layer", "kind", "stats") if k not in record]
            if missing:
                raise InitlabError(f"probe record lacks {', '.join(missing)}; see contract (c)")
            step = to_step(record["step"], "probe record")
            kind = check_choice(str(record["kind"]), PROBE_KINDS, "probe kind")
            what = f"probe {record['layer']}/{kind} at step {step}"
            stats = {
                str(k): None if v is None else to_number(v, f"{what} stat {k!r}", nan=math.nan)
                for k, v in record["stats"].items()
            }
            member = record.get("member")
            values.append(
                {
                    "run_id": self.id,
                    "step": step,
                    "layer": str(record["layer"]),
                    "kind": kind,
                    "member": None if member is None else int(member),
                    "stats": json.dumps(stats),
                    "histogram": histogram_json(record.get("histogram"), what),
                }
            )
        if values:
            with self._owned() as conn:
                conn.execute(insert(schema.probes), values)
        return len(values)

    def save_params(self, params: Mapping[str, torch.Tensor]) -> int:
        """Store the final parameters (``dict[str, Tensor]``, replacing earlier ones); bytes."""
        import torch  # lazily: listing and reading runs does not need torch

        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu().contiguous() for k, v in params.items()}, buffer)
        data = buffer.getvalue()
        with self._owned() as conn:
            conn.execute(delete(schema.params).where(schema.params.c.run_id == self.id))
            conn.execute(
                insert(schema.params).values(run_id=self.id, data=data, created_at=time.time())
            )
        return len(data)

    def finish(
        self,
        status: FinalStatus = "done",
        summary: Mapping[str, Any] | None = None,
        *,
        error: str | None = None,
        wall_time: float | None = None,
    ) -> None:
        """Mark the run ``status`` with an optional JSON ``summary`` and one-line ``error``.

        ``wall_time`` is the trainer's own measure in seconds; by default, now - start.
        """
        check_choice(status, FINAL_STATUSES, "final run status")
        now = time.time()
        summary_json = None if summary is None else json.dumps(dict(summary), default=_jsonable)
        if error is not None:
            error = " ".join(error.split())[:_MAX_ERROR_CHARS]
        with self._owned() as conn:
            conn.execute(
                update(schema.runs)
                .where(schema.runs.c.id == self.id)
                .values(
                    status=status,
                    summary=summary_json,
                    error=error,
                    finished_at=now,
                    heartbeat_at=now,
                    wall_time=now - self.started_at if wall_time is None else float(wall_time),
                )
            )
        self.status = status

    def __enter__(self) -> RunHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.status != "running":
            return
        if exc is None:
            self.finish("done")
            return
        status: FinalStatus = "failed" if isinstance(exc, Exception) else "interrupted"
        message = str(exc)
        error = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        with suppress(InitlabError):  # the store is unusable too: let the original error speak
            self.finish(status, error=error)
