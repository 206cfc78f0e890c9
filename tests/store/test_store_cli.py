"""``initlab store runs`` and ``initlab store export-tb``, driven in-process."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from initlab.cli.store_cmd import app
from initlab.errors import InitlabError
from initlab.store import RunStore

runner = CliRunner()


@pytest.fixture
def filled(store_path: Path) -> Path:
    with RunStore(store_path) as store:
        store.begin_experiment("init-compare")
        store.begin_experiment("empty")
        for seed, status in enumerate(["done", "diverged", "failed"]):
            run = store.start_run("init-compare", {"init": "he"}, seed)
            assert run is not None
            loss = [1.5, 0.25] if status == "done" else [1.5, math.nan]
            run.log_metrics([{"step": s * 100, "train_loss": v} for s, v in enumerate(loss)])
            if status == "failed":
                run.finish("failed", error="RuntimeError: boom")
            else:
                run.finish(status, wall_time=75.0)  # type: ignore[arg-type]
    return store_path


def test_runs_lists_experiments_then_runs(filled: Path) -> None:
    result = runner.invoke(app, ["runs", "--store", str(filled)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "init-compare" in result.output and "empty" in result.output
    assert "1 done, 1 diverged, 1 failed" in result.output
    result = runner.invoke(
        app, ["runs", "init-compare", "--store", str(filled)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "│" in line]
    assert len(lines) == 3
    assert "done" in lines[0] and "100" in lines[0] and "0.25" in lines[0] and "1m15s" in lines[0]
    assert "diverged" in lines[1] and "nan" in lines[1]
    assert "failed" in lines[2] and "RuntimeError: boom" in lines[2]


def test_runs_uses_environment_store(filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INITLAB_STORE", str(filled))
    result = runner.invoke(app, ["runs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "init-compare" in result.output


def test_export_tb_writes_event_files(filled: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    logdir = tmp_path / "tb"
    result = runner.invoke(
        app, ["export-tb", "init-compare", "--logdir", str(logdir), "--store", str(filled)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("wrote ") == 3
    assert len(list(logdir.glob("init-compare/run*/events.out.tfevents.*"))) == 3


def test_user_mistakes_surface_as_initlab_errors(filled: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["runs", "--store", str(tmp_path / "none.db")])
    assert isinstance(missing.exception, InitlabError)
    assert "no run store at" in str(missing.exception)
    assert not (tmp_path / "none.db").exists()
    unknown = runner.invoke(app, ["runs", "nope", "--store", str(filled)])
    assert isinstance(unknown.exception, InitlabError)
    assert "valid: init-compare, empty" in str(unknown.exception)
