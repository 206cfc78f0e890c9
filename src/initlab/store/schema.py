"""The run store's tables (SQLAlchemy Core), small enough to read in one go.

``experiments``
    ``id`` (pk), ``name`` (unique), ``spec`` (canonical JSON of the experiment's settings),
    ``version`` (initlab.__version__ that created it), ``created_at``, ``updated_at``
    (unix seconds).
``runs``
    One row per (experiment, key); ``key`` = sha256 of the canonical JSON of
    ``{"spec": spec, "seed": seed}`` (see :func:`initlab.store.keys.run_key`).
    ``id`` (pk), ``experiment_id`` (fk), ``key``, ``seed``, ``spec`` (canonical JSON),
    ``status`` (running / done / diverged / failed / interrupted), ``attempt`` (1 for the
    first start, +1 per restart), ``owner`` ("host:pid" of the process running it),
    ``error`` (one line, for failed / interrupted), ``summary`` (JSON), ``version``,
    ``created_at``, ``started_at`` (this attempt), ``heartbeat_at`` (last write),
    ``finished_at``, ``wall_time`` (seconds, as measured by the trainer when it says so).
``metrics``
    Long format, one row per (run, metric name, step): ``run_id``, ``name``, ``step``,
    ``value`` (double; NULL stands for NaN because SQLite stores NaN as NULL).
``probes``
    One row per contract-(c) probe record: ``id`` (pk), ``run_id``, ``step``, ``layer``,
    ``kind``, ``member`` (NULL unless a batched trainer wrote it), ``stats`` (JSON object)
    and ``histogram`` (JSON ``{"edges": [...], "counts": [...]}`` or NULL).
``params``
    At most one row per run: the final parameters, ``torch.save`` of a ``dict[str, Tensor]``
    (read back with ``torch.load(..., weights_only=True)``), ``created_at``.

JSON columns are plain text (portable across SQLite and PostgreSQL, and they keep NaN,
which PostgreSQL's JSON types refuse).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("spec", Text, nullable=False),
    Column("version", String(50), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("key", String(64), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("spec", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("owner", String(300), nullable=False),
    Column("error", Text),
    Column("summary", Text),
    Column("version", String(50), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("heartbeat_at", Double, nullable=False),
    Column("finished_at", Double),
    Column("wall_time", Double),
    UniqueConstraint("experiment_id", "key", name="uq_runs_experiment_key"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("step", Integer, nullable=False),
    Column("value", Double),
    PrimaryKeyConstraint("run_id", "name", "step", name="pk_metrics"),
)

probes = Table(
    "probes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("step", Integer, nullable=False),
    Column("layer", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("member", Integer),
    Column("stats", Text, nullable=False),
    Column("histogram", Text),
    Index("ix_probes_run_layer_kind", "run_id", "layer", "kind", "step"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Double, nullable=False),
)

TABLES: tuple[Table, ...] = (experiments, runs, metrics, probes, params)
"""Every table of the store, in creation order."""
