"""The run store: experiments, runs, metrics, probe snapshots and final parameters.

Life of a run::

    store = RunStore("runs.db")                      # or a database URL
    store.begin_experiment("init-compare", preset)
    run = store.start_run("init-compare", spec, seed)
    if run is not None:                              # None: already done, skip it
        with run:                                    # an escaping error marks it "failed"
            run.log_metrics([{"step": 0, "train_loss": 2.3}, ...])
            run.log_probes(records)
            run.finish("done", {"test_acc": 0.97})

Statuses: ``running`` -> ``done`` | ``diverged`` (final results: resume skips them) |
``failed`` (an exception escaped the ``with`` block; the message is kept in ``error``) |
``interrupted`` (KeyboardInterrupt or another BaseException escaped). Resume
(:meth:`RunStore.start_run` on the same experiment, spec and seed) restarts failed and
interrupted runs, and "running" runs whose process is gone (see
:mod:`initlab.store.owner`); a run still running in a live process is skipped (another
worker has it).

A restart **replaces** the partial data: the run keeps its id, its ``attempt`` goes up by
one and its metrics, probes and parameters are deleted in the same transaction that claims
it, because the trainer starts again from step 0 (no optimizer state is stored) and
keeping the old rows would mix two attempts. Until that restart, everything committed
before a crash stays readable.

Every write is one transaction; a write to a run first checks, in the same transaction,
that this handle still owns the run (same attempt, still running), so two processes never
interleave rows of one run.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, delete, func, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError

from initlab import __version__
from initlab.errors import InitlabError, check_choice
from initlab.store import schema
from initlab.store.engine import (
    WRITE_OPTION,
    default_store,
    display_url,
    make_engine,
    resolve_url,
    translate_errors,
)
from initlab.store.handle import RunHandle
from initlab.store.keys import canonical_json, run_key
from initlab.store.owner import current_owner, owner_alive
from initlab.store.records import (
    PROBE_KINDS,
    SKIPPED_ON_RESUME,
    ExperimentInfo,
    RunInfo,
    json_or_none,
)

if TYPE_CHECKING:
    import torch


SCHEMA_LOCK_KEY = 0x1A17_5C4E  # PostgreSQL advisory lock taken while creating the tables


def _table_problem(inspector: Any, table: Any) -> str | None:
    """What is wrong with ``table`` in the database (missing, lacks columns), or None."""
    if not inspector.has_table(table.name):
        return f"it has no table {table.name!r}"
    found = {c["name"] for c in inspector.get_columns(table.name)}
    missing = [c.name for c in table.columns if c.name not in found]
    return f"table {table.name!r} lacks {', '.join(missing)}" if missing else None


class RunStore:
    """A store of experiments and their runs, in SQLite (default) or a SQL server.

    Args:
        url: a file path (SQLite, created with its folder when missing), a SQLAlchemy
            database URL, or None for ``$INITLAB_STORE`` / ``./initlab-runs/runs.db``.
        create: create a missing SQLite file and the tables; False raises an InitlabError
            for a missing file (for read-only tools such as ``initlab store runs``).
        busy_timeout: seconds a SQLite writer waits for another writer's lock.
        stale_after: seconds without a write after which a "running" run owned by a
            process on another host counts as abandoned (same-host owners are checked).
    """

    def __init__(
        self,
        url: str | Path | None = None,
        *,
        create: bool = True,
        busy_timeout: float = 60.0,
        stale_after: float = 600.0,
    ) -> None:
        self._url = resolve_url(default_store() if url is None else url)
        self.address = display_url(self._url)
        self.stale_after = stale_after
        self._engine = make_engine(self._url, create=create, busy_timeout=busy_timeout)
        self._pid = os.getpid()
        self._create_schema(create)

    # -- plumbing ---------------------------------------------------------------------
    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[Connection]:
        """One transaction; database errors become one-line InitlabErrors."""
        if os.getpid() != self._pid:  # forked: never reuse the parent's connections
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        with translate_errors(self.address), self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: write})
            with conn.begin():
                yield conn

    def _create_schema(self, create: bool) -> None:
        """Create missing tables (under the write lock) if asked, then check the tables."""
        try:
            for attempt in range(2):
                try:
                    if create:
                        with self._tx(write=True) as conn:
                            if conn.dialect.name == "postgresql":
                                # processes that start together would race to CREATE the
                                # same tables ("relation already exists"): one at a time
                                conn.exec_driver_sql(
                                    f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})"
                                )
                            schema.metadata.create_all(conn, checkfirst=True)
                    break
                except IntegrityError:  # a concurrent creator on a server database: look again
                    if attempt:
                        raise
            with self._tx(write=False) as conn:
                inspector = inspect(conn)
                problems = [_table_problem(inspector, table) for table in schema.TABLES]
        except InitlabError:
            self.close()
            raise
        problem = next((p for p in problems if p is not None), None)
        if problem is not None:
            self.close()
            raise InitlabError(
                f"{self.address} is not an initlab run store: {problem}; use another store "
                "(initlab run ... --out DIR or --store URL)"
            )

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The store's full database URL (a SQLite file as ``sqlite:///PATH``)."""
        return self._url.render_as_string(hide_password=False)

    def __repr__(self) -> str:
        return f"RunStore({self.address!r})"

    # -- experiments ------------------------------------------------------------------
    def begin_experiment(self, name: str, spec: Mapping[str, Any] | None = None) -> int:
        """Create the experiment ``name`` (or find it) and return its id.

        The stored spec is replaced by ``spec`` when they differ: runs keep their own
        specs, the experiment's is the latest description of it.
        """
        if not isinstance(name, str) or not name.strip():
            raise InitlabError(f"experiment name must be a non-empty string, got {name!r}")
        spec_json = canonical_json(dict(spec or {}))
        for _ in range(3):
            now = time.time()
            try:
                with self._tx(write=True) as conn:
                    row = conn.execute(
                        select(schema.experiments.c.id, schema.experiments.c.spec).where(
                            schema.experiments.c.name == name
                        )
                    ).first()
                    if row is None:
                        return int(
                            conn.execute(
                                insert(schema.experiments).values(
                                    name=name,
                                    spec=spec_json,
                                    version=__version__,
                                    created_at=now,
                                    updated_at=now,
                                )
                            ).inserted_primary_key[0]
                        )
                    if row.spec != spec_json:
                        conn.execute(
                            update(schema.experiments)
                            .where(schema.experiments.c.id == row.id)
                            .values(spec=spec_json, updated_at=now)
                        )
                    return int(row.id)
            except IntegrityError:  # created concurrently (server databases): look again
                continue
        raise InitlabError(f"could not create experiment {name!r} in {self.address}")

    def _experiment_id(self, conn: Connection, experiment: str | int) -> int:
        col = schema.experiments.c
        if isinstance(experiment, int) and not isinstance(experiment, bool):
            found = conn.execute(select(col.id).where(col.id == experiment)).scalar()
        else:
            found = conn.execute(select(col.id).where(col.name == experiment)).scalar()
        if found is None:
            names = conn.execute(select(col.name).order_by(col.id)).scalars().all()
            raise InitlabError(
                f"unknown experiment {experiment!r} in {self.address}; "
                f"valid: {', '.join(names) or '(none yet: call begin_experiment)'}"
            )
        return int(found)

    def list_experiments(self) -> list[ExperimentInfo]:
        """All experiments, oldest first, with their number of runs per status."""
        e, r = schema.experiments.c, schema.runs.c
        with self._tx(write=False) as conn:
            rows = conn.execute(select(schema.experiments).order_by(e.id)).all()
            counted = conn.execute(
                select(r.experiment_id, r.status, func.count()).group_by(r.experiment_id, r.status)
            ).all()
        counts: dict[int, dict[str, int]] = {}
        for exp_id, status, n in counted:
            counts.setdefault(exp_id, {})[status] = int(n)
        return [
            ExperimentInfo(
                id=row.id,
                name=row.name,
                spec=json.loads(row.spec),
                version=row.version,
                created_at=row.created_at,
                updated_at=row.updated_at,
                counts=counts.get(row.id, {}),
            )
            for row in rows
        ]

    # -- runs -------------------------------------------------------------------------
    @staticmethod
    def run_key(spec: Mapping[str, Any], seed: int) -> str:
        """The run's stable key: sha256 of canonical JSON of spec and seed (see keys.py)."""
        return run_key(dict(spec), seed)

    def start_run(
        self, experiment: str | int, spec: Mapping[str, Any], seed: int
    ) -> RunHandle | None:
        """Claim the run (experiment, spec, seed) for this process, or return None to skip it.

        None means the run is done or diverged already, or is running in a live process.
        A new run is created; a failed, interrupted or abandoned one is restarted (its
        partial data is deleted, ``attempt`` + 1).
        """
        spec = dict(spec)
        key = run_key(spec, seed)
        spec_json = canonical_json(spec)
        owner = current_owner()
        for _ in range(5):
            try:
                with self._tx(write=True) as conn:
                    exp_id = self._experiment_id(conn, experiment)
                    claimed = self._claim(conn, exp_id, key, spec_json, seed, owner)
            except IntegrityError:  # inserted concurrently (server databases): look again
                continue
            if claimed is None:
                return None
            if claimed == "raced":
                continue
            run_id, attempt, started_at = claimed
            return RunHandle(self, run_id, exp_id, key, seed, spec, attempt, started_at)
        raise InitlabError(f"could not claim run {key[:12]} of {experiment!r}: too much contention")

    def _claim(
        self, conn: Connection, exp_id: int, key: str, spec_json: str, seed: int, owner: str
    ) -> tuple[int, int, float] | Literal["raced"] | None:
        r = schema.runs.c
        now = time.time()
        row = conn.execute(
            select(r.id, r.status, r.attempt, r.owner, r.heartbeat_at).where(
                r.experiment_id == exp_id, r.key == key
            )
        ).first()
        running = {"status": "running", "owner": owner, "version": __version__}
        times = {"started_at": now, "heartbeat_at": now, "finished_at": None, "wall_time": None}
        if row is None:
            new_id = conn.execute(
                insert(schema.runs).values(
                    experiment_id=exp_id,
                    key=key,
                    seed=seed,
                    spec=spec_json,
                    attempt=1,
                    created_at=now,
                    **running,
                    **times,
                )
            ).inserted_primary_key[0]
            return int(new_id), 1, now
        if row.status in SKIPPED_ON_RESUME:
            return None
        if row.status == "running" and owner_alive(
            row.owner, row.heartbeat_at, now, self.stale_after
        ):
            return None
        claimed = conn.execute(
            update(schema.runs)
            .where(r.id == row.id, r.attempt == row.attempt)
            .values(attempt=row.attempt + 1, error=None, summary=None, **running, **times)
        )
        if claimed.rowcount != 1:
            return "raced"
        for table in (schema.metrics, schema.probes, schema.params):
            conn.execute(delete(table).where(table.c.run_id == row.id))
        return int(row.id), row.attempt + 1, now

    def get_run(self, run_id: int, *, loss: str = "train_loss") -> RunInfo:
        """One run by id (``loss``: the metric reported as ``final_loss``)."""
        runs = self._run_infos(run_id=run_id, loss=loss)
        if not runs:
            raise InitlabError(
                f"no run with id {run_id} in {self.address}; list them with `initlab store runs`"
            )
        return runs[0]

    def list_runs(
        self, experiment: str | int | None = None, *, loss: str = "train_loss"
    ) -> list[RunInfo]:
        """The runs of ``experiment`` (all runs when None), oldest first."""
        return self._run_infos(experiment=experiment, loss=loss)

    def _run_infos(
        self,
        *,
        experiment: str | int | None = None,
        run_id: int | None = None,
        loss: str,
    ) -> list[RunInfo]:
        r, e, m = schema.runs.c, schema.experiments.c, schema.metrics.c
        with self._tx(write=False) as conn:
            where = []
            if experiment is not None:
                where.append(r.experiment_id == self._experiment_id(conn, experiment))
            if run_id is not None:
                where.append(r.id == run_id)
            rows = conn.execute(
                select(schema.runs, e.name.label("experiment"))
                .join(schema.experiments, e.id == r.experiment_id)
                .where(*where)
                .order_by(r.id)
            ).all()
            chosen = m.run_id.in_(select(r.id).where(*where))
            last_steps = dict(
                conn.execute(
                    select(m.run_id, func.max(m.step)).where(chosen).group_by(m.run_id)
                ).all()
            )
            last = (
                select(m.run_id, func.max(m.step).label("step"))
                .where(chosen, m.name == loss)
                .group_by(m.run_id)
                .subquery()
            )
            losses = {
                rid: math.nan if value is None else value
                for rid, value in conn.execute(
                    select(m.run_id, m.value)
                    .join(last, (m.run_id == last.c.run_id) & (m.step == last.c.step))
                    .where(m.name == loss)
                ).all()
            }
        return [
            RunInfo(
                id=row.id,
                experiment=row.experiment,
                key=row.key,
                seed=row.seed,
                spec=json.loads(row.spec),
                status=row.status,
                attempt=row.attempt,
                owner=row.owner,
                error=row.error,
                summary=json_or_none(row.summary),
                version=row.version,
                created_at=row.created_at,
                started_at=row.started_at,
                heartbeat_at=row.heartbeat_at,
                finished_at=row.finished_at,
                wall_time=row.wall_time,
                last_step=last_steps.get(row.id),
                final_loss=losses.get(row.id),
            )
            for row in rows
        ]

    def _check_run(self, conn: Connection, run_id: int) -> None:
        if conn.execute(select(schema.runs.c.id).where(schema.runs.c.id == run_id)).first() is None:
            raise InitlabError(
                f"no run with id {run_id} in {self.address}; list them with `initlab store runs`"
            )

    # -- reading a run's data ---------------------------------------------------------
    def metrics(self, run_id: int, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The run's metrics, one dict per step: ``{"step": int, name: float, ...}``.

        Values come back as floats (NaN where NaN was logged); a step lists only the
        metrics logged at it. ``names`` keeps only those metrics.
        """
        m = schema.metrics.c
        query = select(m.step, m.name, m.value).where(m.run_id == run_id)
        if names is not None:
            query = query.where(m.name.in_(list(names)))
        with self._tx(write=False) as conn:
            self._check_run(conn, run_id)
            rows = conn.execute(query.order_by(m.step, m.name)).all()
        out: list[dict[str, Any]] = []
        for step, name, value in rows:
            if not out or out[-1]["step"] != step:
                out.append({"step": step})
            out[-1][name] = math.nan if value is None else value
        return out

    def probes(
        self, run_id: int, layer: str | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """The run's probe records (contract (c) dicts), by step then logging order."""
        p = schema.probes.c
        query = select(p.step, p.layer, p.kind, p.member, p.stats, p.histogram).where(
            p.run_id == run_id
        )
        if layer is not None:
            query = query.where(p.layer == layer)
        if kind is not None:
            query = query.where(p.kind == check_choice(kind, PROBE_KINDS, "probe kind"))
        with self._tx(write=False) as conn:
            self._check_run(conn, run_id)
            rows = conn.execute(query.order_by(p.step, p.id)).all()
        records = []
        for row in rows:
            record: dict[str, Any] = {
                "step": row.step,
                "layer": row.layer,
                "kind": row.kind,
                "stats": json.loads(row.stats),
                "histogram": json_or_none(row.histogram),
            }
            if row.member is not None:
                record["member"] = row.member
            records.append(record)
        return records

    def params(self, run_id: int) -> dict[str, torch.Tensor] | None:
        """The run's saved final parameters (``torch.load(weights_only=True)``), or None."""
        with self._tx(write=False) as conn:
            self._check_run(conn, run_id)
            data = conn.execute(
                select(schema.params.c.data).where(schema.params.c.run_id == run_id)
            ).scalar()
        if data is None:
            return None
        import torch  # lazily: listing and reading runs does not need torch

        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
