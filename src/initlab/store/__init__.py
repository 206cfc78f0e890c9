"""The run store: experiments, runs, metrics and probe snapshots in SQLite or a SQL server.

See :mod:`initlab.store.schema` for the tables and :mod:`initlab.store.runstore` for the
life of a run (statuses, resume, restarts).
"""

from initlab.store.engine import DEFAULT_STORE_PATH, STORE_ENV, default_store
from initlab.store.handle import RunHandle
from initlab.store.keys import canonical_json, run_key
from initlab.store.records import (
    FINAL_STATUSES,
    PROBE_KINDS,
    RUN_STATUSES,
    ExperimentInfo,
    FinalStatus,
    ProbeKind,
    RunInfo,
    RunStatus,
)
from initlab.store.results import TrainResultLike, save_result
from initlab.store.runstore import RunStore
from initlab.store.tensorboard import export_tensorboard

__all__ = [
    "DEFAULT_STORE_PATH",
    "FINAL_STATUSES",
    "PROBE_KINDS",
    "RUN_STATUSES",
    "STORE_ENV",
    "ExperimentInfo",
    "FinalStatus",
    "ProbeKind",
    "RunHandle",
    "RunInfo",
    "RunStatus",
    "RunStore",
    "TrainResultLike",
    "canonical_json",
    "default_store",
    "export_tensorboard",
    "run_key",
    "save_result",
]
