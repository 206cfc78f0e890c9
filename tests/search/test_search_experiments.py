"""C1 and C2 end to end on tiny synthetic settings, the ``initlab search`` commands, and
``--store`` for ``initlab run`` / ``initlab demo``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from initlab.cli.main import app
from initlab.experiments import run_experiment
from initlab.experiments import suite as suite_module
from initlab.store import RunStore

TINY = {
    "dataset": "synthetic",
    "train_size": 300,
    "hidden": [32],
    "epochs": 5,
    "batch_size": 30,
    "trials": 10,
    "top": 5,
    "test_size": 200,
    "space": {
        "lr": {"kind": "log_uniform", "low": 1e-4, "high": 1.0},
        "weight_decay": {"kind": "log_uniform", "low": 1e-8, "high": 1e-4},
    },
}
SETS = [
    "--set",
    "dataset=synthetic",
    "--set",
    "train_size=300",
    "--set",
    "hidden=[32]",
    "--set",
    "epochs=5",
    "--set",
    "batch_size=30",
    "--set",
    "test_size=200",
    "--set",
    'space={lr={kind="log_uniform",low=1e-4,high=1.0}}',
]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_random_search_experiment_stores_trials_draws_figures_and_resumes(tmp_path: Path) -> None:
    result = run_experiment("random-search", TINY, out_dir=tmp_path, progress=False)
    assert result.statuses == {"random/seed=0": "done"}
    names = sorted(p.name for p in result.out_dir.iterdir())
    assert {"best-curves.png", "best-curves.svg", "search.png", "search.svg"} <= set(names)
    row = result.summary["searches"]["random/seed=0"]
    assert row["trials"] == 10 and row["pruned"] == 0 and row["epochs_trained"] == 50
    assert 1e-4 <= row["best_lr"] <= 1.0 and row["best_valid_acc"] > 0.8
    assert 0.5 < row["test_acc"] <= 1.0  # the best trial, evaluated once on 200 test images
    low, high = row["narrowed_lr"]
    assert 1e-4 <= low < row["best_lr"] < high <= 1.0
    assert any("evaluated once" in v for v in result.verdicts)
    summary = json.loads(result.summary_path.read_text())
    assert summary["runs"]["executed"] == 1
    with RunStore(tmp_path / "runs.db") as store:  # the study lives beside the runs
        (run,) = store.list_runs("random-search")
        assert len(store.metrics(run.id)) == 10
    again = run_experiment("random-search", TINY, out_dir=tmp_path, progress=False)
    assert again.skipped == ["random/seed=0"] and again.summary == result.summary


def test_bayes_search_compares_tpe_with_random_on_the_same_budget(tmp_path: Path) -> None:
    settings = {**TINY, "trials": 12, "seeds": 1, "batch": 4}
    result = run_experiment("bayes-search", settings, out_dir=tmp_path, progress=False)
    assert result.statuses == {"tpe/seed=0": "done", "random/seed=0": "done"}
    figures = {p.stem for p in result.out_dir.glob("*.png")}
    assert figures == {"budget", "tpe-search", "best-curves"}
    compare = result.summary["compare"]
    assert set(compare) == {"tpe", "random"}
    assert compare["tpe"]["epochs_trained"] <= 12 * 5
    assert compare["random"]["epochs_trained"] == 12 * 5  # no pruning: every epoch trained
    assert compare["tpe"]["best_at_10"] <= compare["tpe"]["best"]
    assert any("TPE with pruning finds" in v for v in result.verdicts)
    # C2's random search is C1's study (same task, space, sampler and seed): C1 reads it
    c1 = run_experiment("random-search", TINY, out_dir=tmp_path, progress=False)
    with RunStore(tmp_path / "runs.db") as store:
        (c1_run,) = store.list_runs("random-search")
        studies = {r.spec["key"]: r.summary["study"] for r in store.list_runs("bayes-search")}
    assert c1_run.summary["study"] == studies["random/seed=0"] != studies["tpe/seed=0"]
    assert c1.summary["searches"]["random/seed=0"]["trials"] == 10  # its first 10 trials


def test_search_commands_run_show_and_list(tmp_path: Path) -> None:
    storage = str(tmp_path / "runs.db")
    args = ["search", "random-search", *SETS, "--storage", storage]
    result = runner.invoke(app, [*args, "--trials", "6", "--batch", "3"])
    assert result.exit_code == 0, result.output
    assert "6 complete, 0 pruned, best validation accuracy" in result.output
    assert "best 5 trials of" in result.output and "initlab-random-none-seed0-" in result.output
    result = runner.invoke(app, ["search", "show", "random-search", *SETS, "--storage", storage])
    assert result.exit_code == 0, result.output
    assert "narrowed ranges" in result.output and "lr: 10^U(-4, 0) -> 10^U(" in result.output
    result = runner.invoke(app, ["search", "list", "--storage", storage])
    assert result.exit_code == 0 and "random/none" in result.output
    assert "│ 6 " in result.output or " 6 " in result.output
    # the study is the one `initlab run` uses: it is extended to 8 trials, not redone
    result = runner.invoke(
        app,
        [
            "run",
            "random-search",
            *SETS,
            "--set",
            "trials=8",
            "--set",
            "top=4",
            "--out",
            str(tmp_path),
            "--store",
            storage,
        ],
    )
    assert result.exit_code == 0, result.output
    with RunStore(storage) as store:
        (run,) = store.list_runs("random-search")
        assert run.summary["trials"] == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["random-search", "--sampler", "bayes"],
            "unknown sampler 'bayes'; valid: random, tpe, grid",
        ),
        (["random-search", "--pruner", "early"], "unknown pruner 'early'; valid: none, median"),
        (["init-compare"], "'init-compare' is not a search; valid: random-search, bayes-search"),
        (
            ["random-search", "--set", 'space={lr={kind="log_uniform",low=0,high=1}}'],
            "space parameter 'lr': a log range needs low > 0",
        ),
        (
            ["random-search", "--storage", "postgresql+psycopg://x@127.0.0.1:9/db"],
            "cannot reach study storage postgresql+psycopg://x@127.0.0.1:9/db:",
        ),
    ],
)
def test_search_mistakes_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    if "--storage" not in args:
        args = [*args, "--storage", str(tmp_path / "runs.db")]
    result = runner.invoke(app, ["search", *args])
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert message in line


def test_run_and_demo_take_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "elsewhere" / "runs.db"
    out = tmp_path / "out"
    args = ["run", "exploding-product", "--set", "multiplications=5", "--set", "points=11"]
    result = runner.invoke(app, [*args, "--out", str(out), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert store.exists() and not (out / "runs.db").exists()
    assert (out / "exploding-product" / "summary.json").exists()
    monkeypatch.setattr(suite_module, "SUITE", ("exploding-product",))
    result = runner.invoke(app, ["demo", "--out", str(out), "--store", str(store)])
    assert result.exit_code == 0, result.output
    again = runner.invoke(app, ["demo", "--out", str(out), "--store", str(store)])
    assert "0 run(s) computed" in again.output  # read back from --store
    assert not (out / "runs.db").exists() and (out / "report.html").exists()


def test_search_and_store_are_reachable_from_help() -> None:
    result = runner.invoke(app, ["--help"], terminal_width=120)
    assert result.exit_code == 0 and "search" in result.output
    for command in (["search", "--help"], ["run", "--help"], ["demo", "--help"]):
        result = runner.invoke(app, command, terminal_width=160)
        assert result.exit_code == 0, result.output
    assert "--store" in runner.invoke(app, ["demo", "--help"], terminal_width=160).output
    help_text = runner.invoke(app, ["search", "run", "--help"], terminal_width=160).output
    for option in ("--trials", "--sampler", "--workers", "--batch", "--storage", "--timeout"):
        assert option in help_text
