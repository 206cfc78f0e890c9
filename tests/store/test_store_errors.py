"""Opening something that is not a run store fails with one actionable line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from initlab.errors import InitlabError
from initlab.store import RunStore


def _one_line_error(target: str | Path, **kwargs: object) -> str:
    with pytest.raises(InitlabError) as info:
        RunStore(target, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "runs.db"
    junk.write_bytes(b"this is not a database at all, just some text\n" * 100)
    message = _one_line_error(junk)
    assert message.startswith(f"run store {junk}: file is not a database")
    assert "not an initlab run store" in message
    assert junk.read_bytes().startswith(b"this is not a database")  # left as it was


def test_truncated_sqlite_header_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.db"
    with RunStore(good) as store:
        store.begin_experiment("e")
    broken = tmp_path / "broken.db"
    data = bytearray(good.read_bytes())
    data[0:16] = b"garbage-garbage!"  # the magic header
    broken.write_bytes(bytes(data))
    assert "file is not a database" in _one_line_error(broken)


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
    message = _one_line_error(other)
    assert message.startswith(f"{other} is not an initlab run store: table 'runs' lacks ")
    assert "experiment_id" in message
    missing_tables = tmp_path / "empty.db"
    sqlite3.connect(missing_tables).close()
    assert "has no table 'experiments'" in _one_line_error(missing_tables, create=False)


def test_missing_store_folder_store_and_bad_url(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "runs.db"
    assert "no run store at" in _one_line_error(missing, create=False)
    assert not missing.parent.exists()
    assert "is a folder" in _one_line_error(tmp_path)
    assert "bad run store URL" in _one_line_error("bad url://x")
    assert "bad run store URL" in _one_line_error("postgresql://u@host:notaport/db")
    assert "unknown database URL scheme 'nosuchdb'" in _one_line_error("nosuchdb://user@host/db")
