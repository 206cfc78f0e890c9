"""Run an experiment end to end: config, runs (resumable), figures, summary.json.

``run_experiment("activation-histograms", out_dir="initlab-runs")`` does, in order:

1. build the config: defaults -> ``quick`` overrides -> ``--config FILE.toml`` -> ``--set``;
2. plan the runs and store each in ``OUT/runs.db`` (:class:`initlab.store.RunStore`); a run
   already done (or diverged) with the same spec and seed is skipped, so an interrupted
   experiment started again loses nothing and computes only what is missing; runs that
   share a ``group`` are claimed together and their unfinished members computed in one
   ``execute_group`` call (a partly finished group computes only its missing members);
3. record a run whose numbers went NaN/Inf as "diverged" and go on with the others;
4. read every planned run back from the store, draw the figures (PNG and SVG) and write
   ``OUT/NAME/summary.json``: config (with help), headline numbers, verdicts, figure files,
   run counts and provenance (library and torch versions, seed, time, platform). When some
   planned runs are not finished (another process is computing them, or they failed), the
   summary says ``"partial": true``, the figure titles and the first verdict say how many
   runs they cover, and the process that finishes last writes the whole.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from initlab import __version__
from initlab.errors import InitlabError
from initlab.experiments.base import (
    Experiment,
    ExperimentData,
    Progress,
    Recorder,
    RunData,
    RunOutcome,
    RunSpec,
)
from initlab.experiments.config import build_config, config_to_dict, field_help, load_config_file
from initlab.experiments.registry import get_experiment
from initlab.report.render import CAN_FORK, DrawingProcess, render_figures
from initlab.store import RunStore

STORE_FILE = "runs.db"
SUMMARY_FILE = "summary.json"


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` did and wrote."""

    name: str
    out_dir: Path  # OUT/NAME: figures and summary.json
    summary_path: Path
    summary: dict[str, Any]  # the headline numbers
    verdicts: list[str]
    figures: list[dict[str, Path]]  # {"png": path, "svg": path} per figure
    executed: list[str] = field(default_factory=list)  # keys of the runs computed now
    skipped: list[str] = field(default_factory=list)  # keys of the runs found done already
    statuses: dict[str, str] = field(default_factory=dict)  # key -> final status
    partial: bool = False  # figures and summary cover only the runs finished when written


def resolve_config(
    experiment: Experiment,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    config_file: str | Path | None = None,
    quick: bool = False,
) -> Any:
    """The experiment's config from its defaults, quick preset, config file and ``--set``."""
    file_values = load_config_file(config_file, experiment.name) if config_file else None
    config = build_config(
        experiment.Config,
        quick=experiment.quick if quick else None,
        file_values=file_values,
        overrides=overrides,
        what=f"experiment {experiment.name!r}",
    )
    experiment.validate(config)
    return config


def provenance(seed: int, started: float, finished: float) -> dict[str, Any]:
    """Where and how the results were made: versions, seed, times, machine."""
    return {
        "initlab": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "seed": seed,
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "finished": datetime.fromtimestamp(finished, UTC).isoformat(timespec="seconds"),
        "wall_time_s": round(finished - started, 3),
    }


def load_experiment_data(store: RunStore, name: str, plan: Sequence[RunSpec]) -> ExperimentData:
    """Every planned run with what the store holds for it (status "missing" if nothing)."""
    stored = {info.key: info for info in store.list_runs(name)}
    runs = []
    for run in plan:
        info = stored.get(store.run_key(run.stored_spec(), run.seed))
        if info is None:
            runs.append(RunData(run=run, status="missing"))
            continue
        run_id = info.id
        runs.append(
            RunData(
                run=run,
                status=info.status,
                run_id=run_id,
                summary=dict(info.summary or {}),
                metrics=store.metrics(run_id),
                probes=store.probes(run_id),
                params_loader=lambda run_id=run_id: store.params(run_id),
            )
        )
    return ExperimentData(runs)


def _check_plan(name: str, plan: Sequence[RunSpec]) -> None:
    keys = [run.key for run in plan]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise InitlabError(f"experiment {name!r} planned runs with repeated keys: {repeated}")
    if not plan:
        raise InitlabError(f"experiment {name!r} has no runs with these settings")


@contextmanager
def _progress_display(enabled: bool) -> Iterator[Any]:
    """A rich progress display (overall + current run), or None when disabled."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import (
        Progress as RichProgress,
    )

    columns = (
        TextColumn("{task.description}", justify="left"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with RichProgress(*columns, transient=False) as bar:
        yield bar


def _execute_one(
    experiment: Experiment, run: RunSpec, config: Any, handle: Any, progress: Progress
) -> str:
    """Execute one claimed run inside its handle; return the final status."""
    return _execute_group(experiment, [run], config, [handle], progress, grouped=False)[0]


def _final_status(outcome: RunOutcome | None, recorder: Recorder) -> tuple[str, dict[str, Any]]:
    """The status to store: the outcome's, or "diverged" when the recorder saw NaN/Inf."""
    outcome = outcome or RunOutcome()
    status = outcome.status
    if recorder.nonfinite and status == "done":
        status = "diverged"
    return status, outcome.summary


def _execute_group(
    experiment: Experiment,
    runs: Sequence[RunSpec],
    config: Any,
    handles: Sequence[Any],
    progress: Progress,
    grouped: bool = True,
) -> list[str]:
    """Execute claimed runs (one, or a group's unfinished members) inside their handles.

    Every handle is held open around the computation: an exception or an interrupt marks
    all of them failed / interrupted (resume computes them again). Returns the statuses.
    """
    recorders = [Recorder(handle) for handle in handles]
    with ExitStack() as stack:
        for handle in handles:
            stack.enter_context(handle)
        if grouped:
            outcomes = list(experiment.execute_group(runs, config, recorders, progress))
        else:
            outcomes = [experiment.execute(runs[0], config, recorders[0], progress)]
        if len(outcomes) != len(runs):
            raise InitlabError(
                f"experiment {experiment.name!r} returned {len(outcomes)} outcomes for a group "
                f"of {len(runs)} runs"
            )
        statuses = []
        for handle, recorder, outcome in zip(handles, recorders, outcomes, strict=True):
            status, summary = _final_status(outcome, recorder)
            handle.finish(status, summary)
            statuses.append(status)
    return statuses


def _plan_units(plan: Sequence[RunSpec]) -> list[list[RunSpec]]:
    """The plan cut into what is executed together: single runs, and whole groups (placed
    where their first member is planned)."""
    units: list[list[RunSpec]] = []
    groups: dict[str, list[RunSpec]] = {}
    for run in plan:
        if run.group is None:
            units.append([run])
        elif run.group in groups:
            groups[run.group].append(run)
        else:
            groups[run.group] = [run]
            units.append(groups[run.group])
    return units


def _execute_plan(
    store: RunStore, experiment: Experiment, plan: Sequence[RunSpec], config: Any, show: bool
) -> tuple[list[str], list[str]]:
    """Run every planned run the store does not have yet; return (executed, skipped) keys.

    Runs of one group are claimed together and the unfinished ones computed in one
    ``execute_group`` call.
    """
    executed: list[str] = []
    skipped: list[str] = []
    with _progress_display(show) as bar:
        overall = bar.add_task(f"[bold]{experiment.name}", total=len(plan)) if bar else None
        for unit in _plan_units(plan):
            claimed = []
            for run in unit:
                handle = store.start_run(experiment.name, run.stored_spec(), run.seed)
                if handle is None:
                    skipped.append(run.key)
                else:
                    claimed.append((run, handle))
            if claimed:
                runs = [run for run, _ in claimed]
                label = runs[0].key if unit[0].group is None else f"{unit[0].group} ({len(runs)})"
                task = bar.add_task(f"  {label}", total=1.0) if bar else None

                def report(done: float, total: float, task: Any = task) -> None:
                    if bar is not None:
                        bar.update(task, completed=done, total=max(total, 1e-12))

                handles = [handle for _, handle in claimed]
                if unit[0].group is None:
                    _execute_one(experiment, runs[0], config, handles[0], report)
                else:
                    _execute_group(experiment, runs, config, handles, report)
                executed.extend(run.key for run in runs)
                if bar is not None:
                    bar.remove_task(task)
            if bar is not None:
                bar.advance(overall, len(unit))
    return executed, skipped


def _json_safe(value: Any) -> Any:
    """Non-finite floats as the strings "nan", "inf", "-inf" (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


PARTIAL_RETRIES = 3
"""How often figures and summary are drawn again when runs finished while they were drawn."""


def _statuses(store: RunStore, name: str, plan: Sequence[RunSpec]) -> dict[str, str]:
    """Each planned run's status in the store now ("missing" when it has none)."""
    stored = {info.key: info.status for info in store.list_runs(name)}
    return {
        run.key: stored.get(store.run_key(run.stored_spec(), run.seed), "missing") for run in plan
    }


def partial_title(title: str, finished: int, planned: int) -> str:
    """A figure title that says it shows only some of the planned runs."""
    return f"{title} (partial: {finished} of {planned} runs finished)"


def _results(
    experiment: Experiment,
    config: Any,
    data: ExperimentData,
    exp_dir: Path,
    figure_workers: int = 1,
    drawing: DrawingProcess | None = None,
) -> tuple[list[Any], list[dict[str, Path]], dict[str, Any], list[str], int]:
    """Figures (drawn, by ``drawing`` when given), headline numbers, verdicts and the
    number of finished runs; the figures of a partial experiment say so in their titles."""
    finished = len(data.finished())
    figures = experiment.figures(config, data)
    if finished < len(data):
        for info in figures:
            info.title = partial_title(info.title, finished, len(data))
    if drawing is not None:
        paths = drawing.render(figures, exp_dir)
    else:
        paths = render_figures(figures, exp_dir, workers=figure_workers)
    headline = experiment.summary(config, data)
    verdicts = experiment.verdicts(headline)
    if finished < len(data):
        verdicts = [
            f"Partial: {finished} of {len(data)} planned runs had finished when this was "
            "written (others are running or failed); run the same command again to complete "
            "it.",
            *verdicts,
        ]
    return figures, paths, headline, verdicts, finished


@contextmanager
def _results_lock(exp_dir: Path) -> Iterator[None]:
    """Hold ``OUT/NAME/.results.lock`` while figures and summary.json are made.

    Every process stores its runs first and only then takes this lock to read the store and
    write the results, so the processes write one after another and the last one to finish
    its runs reads (and writes) them all. Without ``fcntl`` (Windows) there is no lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux/macOS
        yield
        return
    with open(exp_dir / ".results.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so readers never see half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)


@contextmanager
def _drawing(workers: int) -> Iterator[DrawingProcess | None]:
    """The process that draws the figures (``workers > 1``, Linux), forked before the runs
    so that it imports matplotlib while they compute; None otherwise."""
    if workers <= 1 or not CAN_FORK:
        yield None
        return
    with DrawingProcess(workers) as drawing:
        yield drawing


def run_experiment(
    name: str,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    config_file: str | Path | None = None,
    out_dir: str | Path = "initlab-runs",
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    store: str | Path | None = None,
    figure_workers: int = 1,
) -> ExperimentResult:
    """Run (or resume) the experiment ``name``, then write its figures and summary.json.

    Args:
        name: a registered experiment (see :func:`initlab.experiments.list_experiments`).
        overrides: ``"key=value"`` strings (``--set``) or a mapping of config values.
        config_file: a TOML file of config values (a table named after the experiment, or
            top-level keys).
        out_dir: the workspace: ``OUT/runs.db`` and ``OUT/NAME/``.
        seed: the base seed; run seeds derive from it.
        quick: apply the experiment's smoke-test overrides first (< 1 minute).
        progress: show rich progress bars (overall and per run).
        store: the run store, a file or a database URL such as
            ``postgresql+psycopg://user@host/db`` (None: ``OUT/runs.db``); figures and
            summary.json are written to ``OUT/NAME/`` either way.
        figure_workers: processes that draw the figures at once (forked, on Linux; the
            ``initlab`` command uses every core it may run on, a library call one unless
            told). With more than one, the drawing process is forked before the runs start
            and imports matplotlib while they compute (:class:`DrawingProcess`).
    """
    started = time.time()
    # 1. settings and plan
    experiment = get_experiment(name)
    config = resolve_config(experiment, overrides, config_file, quick)
    plan = experiment.plan(config, seed)
    _check_plan(name, plan)
    estimate = experiment.cost_estimate(config)
    if estimate:
        print(f"{name}: {estimate}", file=sys.stderr, flush=True)
    exp_dir = Path(out_dir) / name
    exp_dir.mkdir(parents=True, exist_ok=True)
    config_dict = config_to_dict(config)
    # 2. the runs the store lacks, then everything planned read back from the store
    address = Path(out_dir) / STORE_FILE if store is None else store
    with _drawing(figure_workers) as drawing, RunStore(address) as opened:
        opened.begin_experiment(name, {"config": config_dict, "seed": seed, "quick": quick})
        executed, skipped = _execute_plan(opened, experiment, plan, config, progress)
        # 3. figures, headline numbers, verdicts -> OUT/NAME/, from what the store holds; when
        # another process is still computing planned runs, they are marked partial, and drawn
        # again if those runs finished meanwhile (the last process to finish writes it whole)
        with _results_lock(exp_dir):
            for _ in range(PARTIAL_RETRIES):
                data = load_experiment_data(opened, name, plan)
                figures, paths, headline, verdicts, finished = _results(
                    experiment, config, data, exp_dir, figure_workers, drawing
                )
                statuses = {run.key: run.status for run in data}
                if finished == len(plan) or _statuses(opened, name, plan) == statuses:
                    break
            document = {
                "experiment": name,
                "description": experiment.description,
                "source": experiment.source,
                "cost": experiment.quick_cost if quick else experiment.cost,
                "quick": quick,
                "seed": seed,
                "config": config_dict,
                "config_help": field_help(experiment.Config),
                "summary": _json_safe(headline),
                "verdicts": verdicts,
                "figures": [
                    {"name": info.name, "title": info.title, "caption": info.caption}
                    | {fmt: path.name for fmt, path in p.items()}
                    for info, p in zip(figures, paths, strict=True)
                ],
                "runs": {
                    "planned": len(plan),
                    "executed": len(executed),
                    "skipped": len(skipped),
                    "finished": finished,
                    "statuses": statuses,
                },
                "partial": finished < len(plan),
                "provenance": provenance(seed, started, time.time()),
            }
            summary_path = exp_dir / SUMMARY_FILE
            _write_atomic(summary_path, json.dumps(document, indent=2, allow_nan=False) + "\n")
    return ExperimentResult(
        partial=finished < len(plan),
        name=name,
        out_dir=exp_dir,
        summary_path=summary_path,
        summary=headline,
        verdicts=verdicts,
        figures=paths,
        executed=executed,
        skipped=skipped,
        statuses=statuses,
    )
