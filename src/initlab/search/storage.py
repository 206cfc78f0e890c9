"""Where a study lives: Optuna's RDB storage in the workspace's SQLite file or on a server.

The address is the run store's (:mod:`initlab.store.engine`): a file path (SQLite) or a
SQLAlchemy URL such as ``postgresql+psycopg://user@host/db``. The study's tables (Optuna's
``studies``, ``trials``, ...) and the run store's (``experiments``, ``runs``, ...) do not
share names, so one database holds both. Several processes, on one machine or on several
that reach one server, can work on one study at once.

Before Optuna touches it, the address is checked with one connection that gives up after
:data:`CONNECT_TIMEOUT` seconds, so an unreachable server is one line saying which and why.

A study remembers its space (``initlab_space`` user attribute, with its fingerprint); a
study name that exists with another space, sampler or direction is refused with a hint to
pick another name, and nothing is written.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    SQLAlchemyError,
)

from initlab.errors import InitlabError
from initlab.search.space import SearchSpace
from initlab.store.engine import display_url, resolve_url, sqlite_file

CREATE_ATTEMPTS = 4  # tries to open (and create) the tables when workers start together
CONNECT_TIMEOUT = 5  # seconds an unreachable server gets before we give up
SQLITE_TIMEOUT = 60.0  # seconds a SQLite writer waits for another writer's lock
HEARTBEAT_INTERVAL = 10  # seconds between a running trial's heartbeats
GRACE_PERIOD = 60  # seconds without a heartbeat after which a remote trial counts as dead
SPACE_ATTR = "initlab_space"
SETUP_ATTR = "initlab_setup"

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# ask-and-tell with heartbeats is what the driver does on purpose (it records them itself)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


def storage_url(address: str | Path) -> URL:
    """The SQLAlchemy URL of a storage address (a path becomes a SQLite URL)."""
    return resolve_url(address)


def _engine_kwargs(url: URL) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": SQLITE_TIMEOUT}}
    if backend == "postgresql":
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}, "pool_pre_ping": True}
    return {"pool_pre_ping": True}


def _reason(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def check_reachable(url: URL) -> None:
    """Connect once (within :data:`CONNECT_TIMEOUT` s); raise a one-line InitlabError that
    names the address and the reason when that fails."""
    where = display_url(url)
    path = sqlite_file(url)
    if path is not None:
        if path.is_dir():
            raise InitlabError(f"study storage {path} is a folder; give a file such as runs.db")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, **_engine_kwargs(url))
    except (NoSuchModuleError, ModuleNotFoundError) as err:
        raise InitlabError(
            f"no database driver for {where} ({err}); install it, e.g. "
            "pip install 'initlab[postgres]' for postgresql+psycopg://"
        ) from None
    except ArgumentError as err:
        raise InitlabError(f"bad study storage URL {where}: {err}") from None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (DBAPIError, SQLAlchemyError, OSError) as err:
        raise InitlabError(f"cannot reach study storage {where}: {_reason(err)}") from None
    finally:
        engine.dispose()


def open_storage(address: str | Path, *, heartbeat: int = HEARTBEAT_INTERVAL) -> Any:
    """Optuna's RDB storage at ``address``, checked first (see :func:`check_reachable`).

    Trials record a heartbeat every ``heartbeat`` seconds; a running trial silent for
    :data:`GRACE_PERIOD` seconds (a worker on another machine that died) is failed and its
    parameters are tried again by the next worker (:mod:`initlab.search.driver`).
    """
    url = storage_url(address)
    check_reachable(url)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for attempt in range(CREATE_ATTEMPTS):
        try:
            storage = optuna.storages.RDBStorage(
                url.render_as_string(hide_password=False),
                engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=heartbeat,
                grace_period=max(GRACE_PERIOD, 2 * heartbeat),
            )
            break
        except (SQLAlchemyError, RuntimeError, ValueError) as err:
            # workers that start together on a fresh server database race to create
            # Optuna's tables; the loser's CREATE fails, and its next try finds them
            if attempt == CREATE_ATTEMPTS - 1:
                raise InitlabError(f"study storage {display_url(url)}: {_reason(err)}") from None
            time.sleep(0.5 * (attempt + 1))
    if sqlite_file(url) is not None:
        _sqlite_pragmas(storage.engine)
    return storage


def _sqlite_pragmas(engine: Any) -> None:
    """The run store's SQLite settings on Optuna's engine: write-ahead logging and
    ``synchronous=NORMAL`` (a commit survives a killed process; only a power cut may lose
    the last ones). Optuna's default (a full fsync per commit) made its ~10 commits per
    trial cost 14 ms each here, more than training the trial."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    engine.dispose()  # connections opened before the hook get the settings when reopened


def study_names(storage: Any) -> list[str]:
    """The names of the studies in a storage."""
    return [s.study_name for s in optuna.get_all_study_summaries(storage)]


def open_study(
    storage: Any,
    name: str,
    space: SearchSpace,
    setup: dict[str, Any],
    sampler: Any,
    pruner: Any,
) -> optuna.Study:
    """Create the study ``name`` (maximizing) or load it; refuse one made with another
    space or setup, before writing anything."""
    if name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        stored_space = study.user_attrs.get(SPACE_ATTR)
        stored_setup = study.user_attrs.get(SETUP_ATTR)
        if stored_space != space.to_dict() or (stored_setup or {}) != setup:
            what = "space" if stored_space != space.to_dict() else "settings"
            differs = _differs(stored_space, stored_setup, space, setup)
            raise InitlabError(
                f"study {name!r} exists with another {what} ({differs}); "
                f"give a new name, e.g. --study {name}-2"
            )
        return study
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="maximize",
        load_if_exists=True,
    )
    if SPACE_ATTR not in study.user_attrs:
        study.set_user_attr(SPACE_ATTR, space.to_dict())
        study.set_user_attr(SETUP_ATTR, setup)
    return study


def _differs(
    stored_space: Any, stored_setup: Any, space: SearchSpace, setup: dict[str, Any]
) -> str:
    """A short account of the first difference, for the error message."""
    if stored_space != space.to_dict():
        return f"stored {json.dumps(stored_space)}"
    stored_setup = stored_setup or {}
    for key in sorted(set(stored_setup) | set(setup)):
        if stored_setup.get(key) != setup.get(key):
            return f"{key} = {stored_setup.get(key)!r} there, {setup.get(key)!r} here"
    return "unknown"


# --- batched writes -------------------------------------------------------------------------
try:  # Optuna's own row models and session (internal: pinned in constraints.txt, tested)
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    BATCH_WRITES = all(  # and every method used below is where it was
        hasattr(model, name)
        for model, name in (
            (models.StudyModel, "find_or_raise_by_id"),
            (models.TrialModel, "count_past_trials"),
            (models.TrialValueModel, "value_to_stored_repr"),
        )
    )
except ImportError:  # an Optuna whose internals moved: the driver asks and tells one by one
    BATCH_WRITES = False

# Optuna's ask-and-tell commits once per call: asking a trial (create, every parameter, the
# owner tag, the seed, the heartbeat) and telling it (curves, state) were ~8 commits and as
# many re-reads of the study's unfinished trials, which for a batch of 100 trials asked at
# once grew as 100^2: 8.5 CPU s per C1 search (1.5 s with these helpers). The helpers
# below write the same rows through Optuna's own session and row models, a whole batch in
# one transaction. They are checked against Optuna's calls on SQLite and PostgreSQL
# (tests/search/test_search_storage.py).


@dataclass(frozen=True)
class NewTrial:
    """What a batch trial starts with (given its number, which the transaction assigns)."""

    params: Mapping[str, Any]  # external representation, as ``trial.params``
    distributions: Mapping[str, Any]
    user_attrs: Mapping[str, Any]
    system_attrs: Mapping[str, Any]


@dataclass(frozen=True)
class Finish:
    """How a batch trial ends: its state, value (None: no value) and user attributes."""

    trial_id: int
    state: TrialState
    value: float | None
    user_attrs: Mapping[str, Any]


def _rdb(storage: Any) -> Any:
    """The RDBStorage under Optuna's cache wrapper (``study._storage``) or itself."""
    return getattr(storage, "_backend", storage)


def create_running_trials(
    storage: Any, study_id: int, count: int, fill: Callable[[int], NewTrial]
) -> list[tuple[int, int]] | None:
    """Create ``count`` RUNNING trials in one transaction; return their (trial id, number),
    or None (nothing written) when the study holds a WAITING trial (a retry another worker
    queued after the caller looked), which ``study.ask`` has to take first.

    Row for row what ``study.ask`` + ``set_trial_system_attr`` + ``set_user_attr`` +
    ``record_heartbeat`` write: the study row is locked first, as Optuna's
    ``create_new_trial`` does, so numbers are unique among concurrent workers, and each
    trial's number is the count of the study's trials created before it; ``fill(number)``
    gives its parameters and attributes; the heartbeat row gets the server's time."""
    rdb = _rdb(storage)
    made: list[tuple[int, int]] = []
    with _create_scoped_session(rdb.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        waiting = (
            session.query(models.TrialModel.trial_id)
            .filter(models.TrialModel.study_id == study_id)
            .filter(models.TrialModel.state == TrialState.WAITING)
            .first()
        )
        if waiting is not None:  # a retry queued meanwhile: study.ask must pop it first
            return None
        checked: set[str] = set()
        for _ in range(count):
            trial = models.TrialModel(
                study_id=study_id,
                number=None,
                state=TrialState.RUNNING,
                datetime_start=datetime.now(),
            )
            session.add(trial)
            session.flush()
            trial.number = trial.count_past_trials(session)
            new = fill(trial.number)
            for name in set(new.params) - checked:  # as Optuna: against the stored kind
                _check_distribution(session, study_id, name, new.distributions[name])
                checked.add(name)
            session.add_all(_trial_rows(trial.trial_id, new))
            made.append((trial.trial_id, trial.number))
    return made


def _check_distribution(session: Any, study_id: int, name: str, dist: Any) -> None:
    """Refuse a parameter whose distribution differs in kind from the one stored for it
    (the check of Optuna's ``_set_trial_param_without_commit``)."""
    stored = (
        session.query(models.TrialParamModel)
        .join(models.TrialModel)
        .filter(models.TrialModel.study_id == study_id)
        .filter(models.TrialParamModel.param_name == name)
        .first()
    )
    if stored is not None:
        previous = optuna.distributions.json_to_distribution(stored.distribution_json)
        optuna.distributions.check_distribution_compatibility(previous, dist)


def _trial_rows(trial_id: int, new: NewTrial) -> list[Any]:
    """The parameter, attribute and heartbeat rows of a new trial, as Optuna writes them
    (internal parameter values, distributions and attributes as JSON)."""
    rows: list[Any] = [
        models.TrialParamModel(
            trial_id=trial_id,
            param_name=name,
            param_value=new.distributions[name].to_internal_repr(value),
            distribution_json=optuna.distributions.distribution_to_json(new.distributions[name]),
        )
        for name, value in new.params.items()
    ]
    for model, attrs in (
        (models.TrialUserAttributeModel, new.user_attrs),
        (models.TrialSystemAttributeModel, new.system_attrs),
    ):
        rows += [
            model(trial_id=trial_id, key=k, value_json=json.dumps(v)) for k, v in attrs.items()
        ]
    rows.append(models.TrialHeartbeatModel(trial_id=trial_id))
    return rows


def finish_trials(storage: Any, finishes: Sequence[Finish]) -> set[int]:
    """Finish running trials in one transaction; return the ids finished.

    Per trial what ``trial.set_user_attr`` + ``study.tell`` write (the sampler's
    ``after_trial`` is the caller's business): the user attributes, the value, the state
    and the completion time. The trials are locked (``FOR UPDATE``) and read in one query,
    their attributes and values in one each. A trial that is no longer RUNNING (another
    worker took it over as abandoned) is left as it is and not in the result."""
    rdb = _rdb(storage)
    ids = [item.trial_id for item in finishes]
    done: set[int] = set()
    with _create_scoped_session(rdb.scoped_session) as session:
        trial_cls, attr_cls, value_cls = (
            models.TrialModel,
            models.TrialUserAttributeModel,
            models.TrialValueModel,
        )
        query = session.query(trial_cls).filter(trial_cls.trial_id.in_(ids))
        trials = {t.trial_id: t for t in query.with_for_update().all()}
        attrs = {
            (a.trial_id, a.key): a
            for a in session.query(attr_cls).filter(attr_cls.trial_id.in_(ids)).all()
        }
        values = {
            v.trial_id: v
            for v in session.query(value_cls)
            .filter(value_cls.trial_id.in_(ids), value_cls.objective == 0)
            .all()
        }
        for item in finishes:
            trial = trials.get(item.trial_id)
            if trial is None:
                raise KeyError(f"no trial with trial_id {item.trial_id}")
            if trial.state != TrialState.RUNNING:
                continue
            for key, value in item.user_attrs.items():
                row = attrs.get((trial.trial_id, key))
                if row is None:
                    session.add(
                        attr_cls(trial_id=trial.trial_id, key=key, value_json=json.dumps(value))
                    )
                else:
                    row.value_json = json.dumps(value)
            if item.value is not None:
                stored, kind = value_cls.value_to_stored_repr(float(item.value))
                row = values.get(trial.trial_id)
                if row is None:
                    session.add(
                        value_cls(
                            trial_id=trial.trial_id, objective=0, value=stored, value_type=kind
                        )
                    )
                else:
                    row.value, row.value_type = stored, kind
            trial.state = item.state
            trial.datetime_complete = datetime.now()
            done.add(item.trial_id)
    return done
