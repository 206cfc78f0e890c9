"""Where the run store lives: URL resolution, engine set-up and database-error translation.

A store is addressed by a file path (``runs.db``, a SQLite file, created with its folder
when missing) or a SQLAlchemy database URL (``sqlite:///runs.db``,
``postgresql+psycopg://user@host/db``). With no address the store is ``$INITLAB_STORE``,
else ``./initlab-runs/runs.db``.

SQLite is set up for several writer processes: write-ahead logging (readers never block
the writer), ``synchronous=NORMAL`` (a commit survives the process being killed; only a
power cut may lose the last commits), a busy timeout so a writer waits for the lock
instead of failing, and ``BEGIN IMMEDIATE`` for write transactions, so a transaction takes
the write lock before it reads and never fails half-way on a lock upgrade.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from initlab.errors import InitlabError

STORE_ENV = "INITLAB_STORE"
"""Environment variable naming the default store (a path or a database URL)."""

DEFAULT_STORE_PATH = Path("initlab-runs") / "runs.db"
"""The store used when neither an address nor ``$INITLAB_STORE`` is given."""

WRITE_OPTION = "initlab_write"
"""Execution option that makes a SQLite transaction ``BEGIN IMMEDIATE`` (takes the write lock)."""


def default_store() -> str:
    """Return ``$INITLAB_STORE`` if set, else ``initlab-runs/runs.db`` (relative to the cwd)."""
    return os.environ.get(STORE_ENV) or str(DEFAULT_STORE_PATH)


def resolve_url(target: str | Path) -> URL:
    """Turn a file path or a database URL into a SQLAlchemy URL (paths become SQLite URLs)."""
    text = str(target)
    if isinstance(target, Path) or "://" not in text:
        if not text:
            raise InitlabError("empty run store address; give a file path or a database URL")
        return URL.create("sqlite", database=str(Path(text).expanduser()))
    try:
        return make_url(text)
    except (ArgumentError, ValueError) as err:
        raise InitlabError(
            f"bad run store URL {text!r}; valid: a file path, sqlite:///PATH, "
            "postgresql+psycopg://USER@HOST/DB"
        ) from err


def sqlite_file(url: URL) -> Path | None:
    """Return the file of a SQLite URL, or None for in-memory SQLite and server databases."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def display_url(url: URL) -> str:
    """The store's address for messages: the file path for SQLite, the URL without password."""
    path = sqlite_file(url)
    return str(path) if path is not None else url.render_as_string(hide_password=True)


def _install_sqlite_hooks(engine: Engine, busy_timeout: float) -> None:
    """Pragmas per connection and our own BEGIN (the sqlite3 driver's is switched off)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(url: URL, *, create: bool, busy_timeout: float) -> Engine:
    """Create the engine for ``url``; for a SQLite file, check it exists unless ``create``."""
    path = sqlite_file(url)
    if path is not None:
        if path.is_dir():
            raise InitlabError(f"run store {path} is a folder; give a file such as {path}/runs.db")
        if not path.exists():
            if not create:
                raise InitlabError(
                    f"no run store at {path}; run an experiment first, or pass --store / "
                    f"set ${STORE_ENV}"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if url.get_backend_name() == "sqlite":
            memory = path is None
            engine = create_engine(
                url,
                connect_args={"check_same_thread": not memory},
                poolclass=StaticPool if memory else None,
            )
            _install_sqlite_hooks(engine, busy_timeout)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except NoSuchModuleError as err:
        raise InitlabError(
            f"unknown database URL scheme {url.drivername!r} in {display_url(url)}; valid: a "
            "file path, sqlite:///PATH or a SQLAlchemy URL such as postgresql+psycopg://USER@HOST/DB"
        ) from err
    except ModuleNotFoundError as err:
        raise InitlabError(
            f"no database driver for {display_url(url)}: Python module {err.name!r} is not "
            f"installed; pip install {err.name}"
        ) from err
    return engine


@contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """Re-raise database errors as one-line InitlabErrors naming the store.

    IntegrityError passes through untouched: callers that expect one handle it.
    """
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as err:
        reason = str(err.orig).strip().splitlines()[0] if err.orig is not None else str(err)
        hint = ""
        if "not a database" in reason:
            hint = "; it is not an initlab run store: use another (--out DIR or --store URL)"
        elif "locked" in reason or "busy" in reason:
            hint = "; another process held the write lock past the busy timeout"
        raise InitlabError(f"run store {where}: {reason}{hint}") from err
