"""The runner: stores every run, resumes after an interruption, records NaN runs as diverged."""

import json
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest

from initlab.experiments import (
    Experiment,
    ExperimentData,
    Recorder,
    RunSpec,
    run_experiment,
)
from initlab.experiments import runner as runner_module
from initlab.experiments.signal.exploding_product import ExplodingProduct
from initlab.report.figures import FigureInfo, LinePanel, Series
from initlab.store import RunStore


@dataclass(frozen=True)
class ToyConfig:
    runs: Annotated[int, "number of runs"] = 4
    nan_run: Annotated[int, "the run whose metric is NaN"] = 2


class Toy(Experiment):
    """Each run logs 3 steps of value = run index; one run produces a NaN."""

    name = "toy"
    description = "toy"
    cost = "~0 s"
    source = "a test"
    Config = ToyConfig
    executed: ClassVar[list[str]] = []

    def plan(self, config: ToyConfig, seed: int = 0) -> list[RunSpec]:
        return [RunSpec(f"run{i}", {"i": i}, seed) for i in range(config.runs)]

    def execute(self, run, config, recorder: Recorder, progress=None) -> None:  # type: ignore[no-untyped-def]
        Toy.executed.append(run.key)
        i = run.spec["i"]
        value = math.nan if i == config.nan_run else float(i)
        recorder.log_metrics([{"step": s, "value": value} for s in range(3)])

    def figures(self, config: ToyConfig, data: ExperimentData) -> list[FigureInfo]:
        series = [Series(*r.series("value"), r.key) for r in data.finished()]
        return [FigureInfo("toy", "Toy", [[LinePanel(series, title="values")]])]

    def summary(self, config: ToyConfig, data: ExperimentData) -> dict[str, Any]:
        return {r.key: r.status for r in data}

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        return [f"{sum(s == 'diverged' for s in summary.values())} diverged"]


def test_nan_run_is_diverged_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "get_experiment", lambda name: Toy())
    Toy.executed.clear()
    result = run_experiment("toy", out_dir=tmp_path, progress=False)
    assert Toy.executed == ["run0", "run1", "run2", "run3"]
    assert result.statuses == {"run0": "done", "run1": "done", "run2": "diverged", "run3": "done"}
    assert result.verdicts == ["1 diverged"]
    doc = json.loads((tmp_path / "toy" / "summary.json").read_text())
    assert doc["runs"]["statuses"]["run2"] == "diverged"
    assert doc["provenance"]["seed"] == 0 and doc["provenance"]["torch"]
    assert (tmp_path / "toy" / "toy.png").stat().st_size > 1000
    assert (tmp_path / "toy" / "toy.svg").read_text().lstrip().startswith("<?xml")
    # a second invocation finds every run final (done or diverged): nothing runs again
    Toy.executed.clear()
    again = run_experiment("toy", out_dir=tmp_path, progress=False)
    assert Toy.executed == [] and len(again.skipped) == 4


def _interrupt_after(count: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make ExplodingProduct.execute raise KeyboardInterrupt on call number count + 1."""
    calls: list[str] = []
    original = ExplodingProduct.execute

    def execute(self, run, config, recorder, progress):  # type: ignore[no-untyped-def]
        if len(calls) == count:
            raise KeyboardInterrupt
        calls.append(run.key)
        return original(self, run, config, recorder, progress)

    monkeypatch.setattr(ExplodingProduct, "execute", execute)
    return calls


def test_interrupted_experiment_resumes_and_computes_only_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ["seeds=4", "multiplications=20", "points=21"]  # 4 products + the sigmoid curve
    _interrupt_after(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_experiment("exploding-product", settings, out_dir=tmp_path, progress=False)
    with RunStore(tmp_path / "runs.db") as store:
        statuses = [r.status for r in store.list_runs("exploding-product")]
        kept = [len(store.metrics(r.id)) for r in store.list_runs("exploding-product")]
    assert statuses == ["done", "done", "interrupted"]
    assert kept == [21, 21, 0]  # the finished runs lost nothing
    monkeypatch.undo()

    result = run_experiment("exploding-product", settings, out_dir=tmp_path, progress=False)
    assert result.skipped == ["product/seed=0", "product/seed=1"]
    assert result.executed == ["product/seed=2", "product/seed=3", "sigmoid"]
    assert set(result.statuses.values()) == {"done"}

    # delete one run's rows: only that run is computed again
    with sqlite3.connect(tmp_path / "runs.db") as db:
        run_id = db.execute("SELECT id FROM runs WHERE spec LIKE '%sigmoid%'").fetchone()[0]
        db.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
        db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    again = run_experiment("exploding-product", settings, out_dir=tmp_path, progress=False)
    assert again.executed == ["sigmoid"] and len(again.skipped) == 4
    doc = json.loads((tmp_path / "exploding-product" / "summary.json").read_text())
    assert doc["runs"] == {
        "planned": 5,
        "executed": 1,
        "skipped": 4,
        "finished": 5,
        "statuses": {k: "done" for k in [*result.skipped, *result.executed]},
    }
    assert doc["partial"] is False
    assert doc["summary"]["seeds"] == 4


def test_changed_settings_are_new_runs_in_the_same_store(tmp_path: Path) -> None:
    first = run_experiment(
        "exploding-product", ["seeds=2", "multiplications=10"], out_dir=tmp_path, progress=False
    )
    second = run_experiment(
        "exploding-product", ["seeds=3", "multiplications=10"], out_dir=tmp_path, progress=False
    )
    assert len(first.executed) == 3
    assert second.executed == ["product/seed=2"]  # seeds 0, 1 and the curve are reused


def test_results_are_written_one_process_after_another(tmp_path) -> None:
    """The results lock serializes writers: a second holder waits until the first is done,
    so the last process to finish its runs writes the whole summary."""
    import threading
    import time as clock

    from initlab.experiments.runner import _results_lock

    order: list[str] = []

    def second() -> None:
        with _results_lock(tmp_path):
            order.append("second")

    with _results_lock(tmp_path):
        thread = threading.Thread(target=second)
        thread.start()
        clock.sleep(0.2)
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]


def test_figures_leave_no_temporary_files(tmp_path) -> None:
    from initlab.report.figures import FigureInfo, LinePanel, Series
    from initlab.report.render import render_figure

    info = FigureInfo(
        "curve", "a curve", [[LinePanel([Series([0, 1, 2], [1.0, 0.5, 0.25], "s")], "p")]]
    )
    paths = render_figure(info, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_the_figures_of_a_run_with_workers_are_drawn_by_the_drawing_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from initlab.report import render

    sent: list[list[str]] = []
    real = render.DrawingProcess.render

    def recorded(self: render.DrawingProcess, infos: list, out_dir: Any) -> Any:
        sent.append([info.name for info in infos])
        return real(self, infos, out_dir)

    monkeypatch.setattr(render.DrawingProcess, "render", recorded)
    monkeypatch.chdir(tmp_path)  # a relative workspace: the process draws where we look
    result = run_experiment(
        "exploding-product", quick=True, out_dir="ws", progress=False, figure_workers=2
    )
    assert sent and sent[0] == [path["png"].stem for path in result.figures]
    for paths in result.figures:
        assert paths["png"].exists() and paths["svg"].exists()
