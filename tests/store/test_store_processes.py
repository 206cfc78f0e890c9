"""Several processes on one store: crashes keep committed rows, concurrent writers lose nothing.

Workers are started with the "spawn" method (a fresh interpreter, as a second
``initlab run`` would be) and open the store themselves. The tests run on a SQLite file and
on a real PostgreSQL server (the ``database`` fixture of tests/conftest.py: a throw-away
cluster, skipped with a reason where none can start, required on CI).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from initlab.store import RunStore

CTX = mp.get_context("spawn")
STEPS, METRICS, BATCH_STEPS = 60, 3, 20
SPECS = [{"lr": 10.0**-k, "width": w} for k in range(2, 6) for w in (10, 20, 30)]  # 12 runs


def _rows(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {"step": s, **{f"m{j}": s + j / 10 for j in range(METRICS)}}
        for s in range(first, first + count)
    ]


def _crash_worker(path: str, how: str) -> None:
    store = RunStore(path)
    store.begin_experiment("crash")
    run = store.start_run("crash", {"lr": 0.1}, 0)
    assert run is not None
    with run:
        run.log_metrics(_rows(0, 5))
        run.log_metrics(_rows(5, 5))
        if how == "exit":
            os._exit(3)  # no finally, no finish: like a kill -9
        raise RuntimeError("boom at step 10")


def _endless_writer(path: str) -> None:
    store = RunStore(path)
    store.begin_experiment("kill")
    run = store.start_run("kill", {"lr": 0.1}, 0)
    assert run is not None
    step = 0
    while True:  # each call is one transaction of 250 steps x 4 metrics = 1000 values
        run.log_metrics(
            [{"step": s, "a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0} for s in range(step, step + 250)]
        )
        step += 250


def _sweep_worker(path: str, index: int, barrier: Any, done: Any) -> None:
    barrier.wait(60)  # all workers start together
    store = RunStore(path)  # ... and race to create the store and its tables
    store.begin_experiment("sweep", {"specs": len(SPECS)})
    mine = []
    own = [(spec, 100 + index) for spec in SPECS[:4]]  # this worker's runs, written in parallel
    shared = [(spec, 0) for spec in SPECS]  # every worker tries to claim these
    for spec, seed in own + shared:
        run = store.start_run("sweep", spec, seed)
        if run is None:
            continue
        with run:
            for first in range(0, STEPS, BATCH_STEPS):
                run.log_metrics(_rows(first, BATCH_STEPS))
            run.log_probes(
                [
                    {"step": 0, "layer": "linear1", "kind": "weight", "stats": {"std": 0.1}},
                    {"step": STEPS, "layer": "linear1", "kind": "weight", "stats": {"std": 0.2}},
                ]
            )
        mine.append(run.id)
    done.put((index, mine))


def _holder(path: str, started: Any, release: Any) -> None:
    store = RunStore(path)
    store.begin_experiment("hold")
    run = store.start_run("hold", {"lr": 0.1}, 0)
    assert run is not None
    with run:
        run.log_metrics(_rows(0, 2))
        started.set()
        release.wait(30)


def _count(path: Path, sql: str) -> Any:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchone()[0]


def _scalar(address: str, sql: str) -> Any:
    """One value from the database at ``address`` (a SQLite file or a URL)."""
    url = address if "://" in address else f"sqlite:///{address}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def _is_sqlite(address: str) -> bool:
    return "://" not in address


@pytest.mark.parametrize("how", ["exit", "exception"])
def test_crash_keeps_committed_metrics_and_resume_restarts(database: str, how: str) -> None:
    path = database
    proc = CTX.Process(target=_crash_worker, args=(str(path), how))
    proc.start()
    proc.join(60)
    assert proc.exitcode == (3 if how == "exit" else 1)
    with RunStore(path) as store:
        (info,) = store.list_runs("crash")
        assert info.status == ("running" if how == "exit" else "failed")
        if how == "exception":
            assert info.error == "RuntimeError: boom at step 10"
        assert store.metrics(info.id) == _rows(0, 10)  # both committed batches are there
        again = store.start_run("crash", {"lr": 0.1}, 0)  # owner is gone: restart
        assert again is not None and (again.id, again.attempt) == (info.id, 2)
        assert store.metrics(info.id) == []


def test_kill_during_writes_loses_no_committed_batch_and_tears_none(database: str) -> None:
    path = database
    proc = CTX.Process(target=_endless_writer, args=(str(path),))
    proc.start()
    try:
        deadline = time.monotonic() + 60
        rows = 0
        while rows < 3000 and time.monotonic() < deadline:
            time.sleep(0.05)
            if not _is_sqlite(path) or Path(path).exists():
                try:
                    rows = _scalar(path, "SELECT COUNT(*) FROM metrics")
                except DBAPIError:  # tables not created yet
                    rows = 0
        assert rows >= 3000
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-transaction, most likely
        proc.join(30)
    if _is_sqlite(path):
        assert _count(Path(path), "PRAGMA integrity_check") == "ok"
    with RunStore(path) as store:
        (info,) = store.list_runs("kill")
        metrics = store.metrics(info.id)
        assert info.status == "running" and len(metrics) % 250 == 0 and len(metrics) >= 750
        assert [row["step"] for row in metrics] == list(range(len(metrics)))
        assert all(len(row) == 5 for row in metrics)  # no half-written step
        assert store.start_run("kill", {"lr": 0.1}, 0) is not None


def test_concurrent_writers_lose_nothing_and_never_share_a_run(database: str) -> None:
    path = database
    barrier, done = CTX.Barrier(3), CTX.Queue()
    workers = [
        CTX.Process(target=_sweep_worker, args=(str(path), i, barrier, done)) for i in range(3)
    ]
    for worker in workers:
        worker.start()
    results = sorted(done.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    claimed = [run_id for _, ids in results for run_id in ids]
    total = 3 * 4 + len(SPECS)
    assert len(claimed) == len(set(claimed)) == total  # each run done exactly once
    assert all(len(ids) >= 4 for _, ids in results)  # every worker wrote its own runs
    with RunStore(path) as store:
        runs = store.list_runs("sweep")
        assert len(runs) == total
        assert {(r.status, r.attempt, r.last_step) for r in runs} == {("done", 1, STEPS - 1)}
        assert len({r.owner for r in runs}) == 3
        for run in runs:
            assert store.metrics(run.id) == _rows(0, STEPS)
        assert len(store.probes(runs[0].id, kind="weight")) == 2
    assert _scalar(path, "SELECT COUNT(*) FROM metrics") == total * STEPS * METRICS
    if _is_sqlite(path):
        assert _count(Path(path), "PRAGMA journal_mode") == "wal"


def test_run_held_by_a_live_process_is_skipped(database: str) -> None:
    path = database
    started, release = CTX.Event(), CTX.Event()
    proc = CTX.Process(target=_holder, args=(str(path), started, release))
    proc.start()
    try:
        assert started.wait(60)
        with RunStore(path) as store:
            assert store.start_run("hold", {"lr": 0.1}, 0) is None  # another worker has it
            (info,) = store.list_runs("hold")
            assert info.status == "running" and f":{proc.pid}:" in info.owner
    finally:
        release.set()
        proc.join(30)
    assert proc.exitcode == 0
    with RunStore(path) as store:
        (info,) = store.list_runs("hold")
        assert (info.status, info.attempt) == ("done", 1)
        assert store.start_run("hold", {"lr": 0.1}, 0) is None


def _forked_writer(store: RunStore) -> None:
    run = store.start_run("fork", {"lr": 0.1}, 1)  # the parent's store object, new connections
    assert run is not None
    with run:
        run.log_metrics(_rows(0, 3))


def test_store_object_survives_fork(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.db") as store:
        store.begin_experiment("fork")
        parent_run = store.start_run("fork", {"lr": 0.1}, 0)
        assert parent_run is not None
        proc = mp.get_context("fork").Process(target=_forked_writer, args=(store,))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        parent_run.log_metrics(_rows(0, 2))  # the parent's pooled connection still works
        parent_run.finish("done")
        runs = store.list_runs("fork")
        assert [(r.seed, r.status, r.last_step) for r in runs] == [(0, "done", 1), (1, "done", 2)]
        assert runs[0].owner != runs[1].owner
