"""Resume: done and diverged runs are skipped; failed, interrupted and abandoned ones restart."""

from __future__ import annotations

import socket
import sqlite3
import time

import pytest

from initlab.errors import InitlabError
from initlab.store import RunStore


def _run_to(store: RunStore, spec: dict, status: str) -> int:
    run = store.start_run("e", spec, 0)
    assert run is not None
    run.log_metrics([{"step": s, "train_loss": 1.0 + s} for s in range(3)])
    run.save_params({})
    if status != "running":
        run.finish(status)  # type: ignore[arg-type]
    return run.id


def _set_owner(store: RunStore, run_id: int, owner: str, heartbeat_at: float) -> None:
    """Pretend another process owns the run (written behind the store's back)."""
    with sqlite3.connect(store.address) as conn:
        conn.execute(
            "UPDATE runs SET owner = ?, heartbeat_at = ? WHERE id = ?",
            (owner, heartbeat_at, run_id),
        )


def test_resume_skips_final_runs_and_restarts_the_others(store: RunStore) -> None:
    store.begin_experiment("e")
    ids = {
        status: _run_to(store, {"s": status}, status)
        for status in ("done", "diverged", "failed", "interrupted")
    }
    for status in ("done", "diverged"):
        assert store.start_run("e", {"s": status}, 0) is None
        assert len(store.metrics(ids[status])) == 3  # untouched
    for status in ("failed", "interrupted"):
        again = store.start_run("e", {"s": status}, 0)
        assert again is not None and (again.id, again.attempt) == (ids[status], 2)
        info = store.get_run(again.id)
        assert (info.status, info.attempt, info.error, info.last_step) == ("running", 2, None, None)
        assert store.metrics(again.id) == [] and store.params(again.id) is None  # replaced
        again.log_metrics([{"step": 0, "train_loss": 9.0}])
        again.finish("done")
        assert store.metrics(again.id) == [{"step": 0, "train_loss": 9.0}]
        assert store.start_run("e", {"s": status}, 0) is None
    assert len(store.list_runs("e")) == 4


def test_run_abandoned_by_this_process_is_restarted_and_old_handle_refused(
    store: RunStore,
) -> None:
    store.begin_experiment("e")
    first = store.start_run("e", {"lr": 0.1}, 0)
    assert first is not None
    first.log_metrics([{"step": 0, "train_loss": 1.0}])
    second = store.start_run("e", {"lr": 0.1}, 0)  # same process: the first was abandoned
    assert second is not None and (second.id, second.attempt) == (first.id, 2)
    with pytest.raises(InitlabError, match=r"run \d+ \(attempt 1\) is no longer running"):
        first.log_metrics([{"step": 1, "train_loss": 0.5}])
    with pytest.raises(InitlabError, match="no longer running"):
        first.finish("done")
    second.log_metrics([{"step": 0, "train_loss": 2.0}])
    second.finish("done")
    assert store.metrics(second.id) == [{"step": 0, "train_loss": 2.0}]


def test_running_run_of_another_host_is_taken_over_only_when_stale(tmp_path) -> None:
    with RunStore(tmp_path / "runs.db", stale_after=60.0) as store:
        store.begin_experiment("e")
        run_id = _run_to(store, {"lr": 0.1}, "running")
        other = f"not-{socket.gethostname()}:12345:678"
        _set_owner(store, run_id, other, heartbeat_at=time.time() - 10)
        assert store.start_run("e", {"lr": 0.1}, 0) is None  # fresh heartbeat: still owned
        _set_owner(store, run_id, other, heartbeat_at=time.time() - 120)
        taken = store.start_run("e", {"lr": 0.1}, 0)
        assert taken is not None and (taken.id, taken.attempt) == (run_id, 2)


def test_running_run_of_a_dead_or_reused_pid_is_restarted(store: RunStore) -> None:
    store.begin_experiment("e")
    run_id = _run_to(store, {"lr": 0.1}, "running")
    host = socket.gethostname()
    dead_pid = 2**22 + 17  # above the default pid_max, so no such process
    _set_owner(store, run_id, f"{host}:{dead_pid}:1", heartbeat_at=time.time())
    again = store.start_run("e", {"lr": 0.1}, 0)
    assert again is not None and again.attempt == 2
    # pid 1 exists but started at another time than recorded: a reused pid, not the owner
    _set_owner(store, run_id, f"{host}:1:999999999999", heartbeat_at=time.time())
    third = store.start_run("e", {"lr": 0.1}, 0)
    assert third is not None and third.attempt == 3
