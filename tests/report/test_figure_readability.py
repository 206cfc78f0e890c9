"""Figures a reader can read: each histogram panel spans its own data, tick labels carry no
shared multiplier, diverged runs are marked (an x at the step, "diverged" in the legend)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from initlab.experiments import get_experiment, resolve_config, run_experiment
from initlab.report import draw_figure
from initlab.report.figures import (
    ContourPanel,
    FigureInfo,
    HistogramPanel,
    LinePanel,
    Path2D,
    Series,
)
from initlab.store import RunStore


class _Memory:
    """A run writer that keeps what it is given (no store, no figures written)."""

    def __init__(self) -> None:
        self.metrics: list[dict] = []
        self.probes: list[dict] = []

    def log_metrics(self, rows):  # type: ignore[no-untyped-def]
        self.metrics.extend(rows)
        return len(rows)

    def log_probes(self, records):  # type: ignore[no-untyped-def]
        self.probes.extend(records)
        return len(records)

    def save_params(self, params):  # type: ignore[no-untyped-def]
        return 0


@pytest.fixture(scope="module")
def relu_histograms() -> FigureInfo:
    """A1 for ReLU, 5 layers, small input: the figure info as the experiment makes it."""
    from initlab.experiments import ExperimentData, Recorder, RunData

    experiment = get_experiment("activation-histograms")
    config = resolve_config(experiment, ["activations=['relu']", "samples=200", "width=40"])
    runs = []
    for run in experiment.plan(config, 0):
        writer = _Memory()
        experiment.execute(run, config, Recorder(writer))
        runs.append(RunData(run, "done", 1, {}, writer.metrics, writer.probes))
    (info,) = experiment.figures(config, ExperimentData(runs))
    return info


def test_each_histogram_panel_spans_its_own_data(relu_histograms: FigureInfo) -> None:
    fig = draw_figure(relu_histograms)
    fig.canvas.draw()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    panels = [p for row in relu_histograms.panels for p in row if p is not None]
    assert len(axes) == len(panels) == 25
    for ax, panel in zip(axes, panels, strict=True):
        assert isinstance(panel, HistogramPanel)
        lo, hi = ax.get_xlim()
        first, last = panel.edges[0], panel.edges[-1]
        assert lo <= first and last <= hi * (1 + 1e-9), (ax.get_title(), lo, hi, first, last)
        # the data fills the axis (a row-shared range left std-0.01 panels at 1e-6 of it)
        assert (last - first) >= 0.9 * (hi - lo), (lo, hi, first, last)
        assert ax.xaxis.get_offset_text().get_text() == ""  # no "x10^5" on a neighbour


def _diverging_figure() -> FigureInfo:
    line = LinePanel(
        series=[
            Series([0, 1, 2, 3], [2.0, 1.5, 1.2, 1.0], label="Adam"),
            Series([0, 1, 2, 3], [2.0, 1.7, math.nan, math.nan], label="SGD"),
            Series([0, 1, 2, 3], [math.inf, math.nan, math.nan, math.nan], label="lr 10"),
        ],
        yscale="log",
    )
    grid = [float(i) for i in range(-2, 3)]
    contour = ContourPanel(
        x=grid,
        y=grid,
        z=[[x * x + y * y for x in grid] for y in grid],
        levels=[1.0, 2.0],
        paths=[
            Path2D([1.0, 1.5, math.inf], [1.0, -1.0, math.nan], label="SGD"),
            Path2D([1.0, 0.5, 0.1], [1.0, 0.5, 0.1], label="Adam", color="tab:blue"),
        ],
    )
    return FigureInfo("diverging", "diverging", [[line, contour]])


def test_diverged_runs_are_marked_in_lines_and_paths() -> None:
    fig = draw_figure(_diverging_figure())
    line_ax, contour_ax = fig.axes[:2]
    legend = [t.get_text() for t in line_ax.get_legend().get_texts()]
    assert legend == ["Adam", "SGD (diverged)", "lr 10 (diverged)"]
    marks = [ln for ln in line_ax.get_lines() if ln.get_marker() == "x"]
    assert len(marks) == 2
    assert list(marks[0].get_xdata()) == [2] and list(marks[0].get_ydata()) == [1.7]
    assert list(marks[1].get_xdata()) == [0]  # nothing finite: at the top of the panel
    labels = [ln.get_label() for ln in contour_ax.get_lines() if not ln.get_label().startswith("_")]
    assert "SGD (diverged)" in labels and "Adam" in labels
    (mark,) = [ln for ln in contour_ax.get_lines() if ln.get_marker() == "x"]
    assert list(mark.get_xdata()) == [1.5] and list(mark.get_ydata()) == [-1.0]


def test_ranking_sentences_list_diverged_runs_apart() -> None:
    from initlab.experiments.common import ranking

    values = {"sgd": math.nan, "adam": 0.081, "momentum": 0.31, "big": math.inf}
    assert ranking(values) == "adam 0.081 < momentum 0.31; diverged: sgd, big"
    assert ranking({"a": 1.0, "b": 0.5}, diverged=["a"], sep=", ") == "b 0.5; diverged: a"


def test_partial_experiment_says_so_and_completes_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A planned run still held by another live process: summary, titles and verdicts say
    partial; once it is gone and the command runs again, the whole is written."""
    import json
    import sqlite3

    settings = ["seeds=2", "multiplications=5", "points=11"]
    experiment = get_experiment("exploding-product")
    plan = experiment.plan(resolve_config(experiment, settings), 0)
    import os
    import socket

    from initlab.store import owner, runstore

    parent = os.getppid()  # a live process that is not this one holds the run
    other = f"{socket.gethostname()}:{parent}:{owner.process_start(parent) or '-'}"
    with RunStore(tmp_path / "runs.db") as store:
        store.begin_experiment(experiment.name, {})
        with monkeypatch.context() as patch:
            patch.setattr(runstore, "current_owner", lambda: other)
            held = store.start_run(experiment.name, plan[0].stored_spec(), plan[0].seed)
        assert held is not None
    result = run_experiment(experiment.name, settings, out_dir=tmp_path, progress=False)
    assert result.partial and result.statuses[plan[0].key] == "running"
    doc = json.loads(result.summary_path.read_text())
    assert doc["partial"] is True and doc["runs"]["finished"] == len(plan) - 1
    assert doc["verdicts"][0].startswith(f"Partial: {len(plan) - 1} of {len(plan)} planned")
    svg = (tmp_path / "exploding-product" / "exploding-product.svg").read_text()
    assert f"partial: {len(plan) - 1} of {len(plan)} runs finished" in svg
    with sqlite3.connect(tmp_path / "runs.db") as db:  # the other process went away
        db.execute("DELETE FROM runs WHERE status = 'running'")
    again = run_experiment(experiment.name, settings, out_dir=tmp_path, progress=False)
    assert not again.partial and again.executed == [plan[0].key]
    assert json.loads(again.summary_path.read_text())["partial"] is False


def test_a_divergence_outside_the_y_range_is_marked_at_the_top() -> None:
    panel = LinePanel(series=[Series([0, 1, 2], [0.5, 5.0, math.nan], label="SGD")], ylim=(0, 1))
    fig = draw_figure(FigureInfo("clipped", "clipped", [[panel]]))
    (ax,) = fig.axes
    (mark,) = [ln for ln in ax.get_lines() if ln.get_marker() == "x"]
    assert list(mark.get_xdata()) == [2] and list(mark.get_ydata()) == [0.92]  # axes fraction
    assert mark.get_transform() != ax.transData and ax.get_ylim() == (0, 1)
