"""Shared test settings: fixed seeds and one intra-op thread, so the suite is fast and repeatable.

Tests use small tensors, where a second OpenMP thread costs more in synchronisation than it
gains (and on a busy 2-core machine it can cost 50x), so every test runs single-threaded.
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)


# -- a real PostgreSQL server for the store's and the search's multi-process tests ---------
_DATABASES = iter(range(1, 1_000_000))


@pytest.fixture(scope="session")
def postgres_cluster():
    """One throw-away PostgreSQL cluster per test session (see tests/postgres_cluster.py).

    Skipped with the reason where no server can be started here; on CI (``CI=true``) a
    server that cannot start fails the tests instead.
    """
    import os

    from postgres_cluster import start_cluster

    cluster, why = start_cluster()
    if cluster is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a PostgreSQL server for these tests: {why}")
        pytest.skip(f"no PostgreSQL server: {why}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """A fresh, empty database on the session's cluster: its SQLAlchemy URL."""
    from postgres_cluster import create_database

    return create_database(postgres_cluster, f"test_{next(_DATABASES)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A fresh database address: a SQLite file, then a PostgreSQL database (parametrized)."""
    if request.param == "sqlite":
        return str(tmp_path / "db" / "runs.db")
    return request.getfixturevalue("postgres_url")
