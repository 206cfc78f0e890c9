"""``initlab store``: list experiments and runs, export runs to TensorBoard."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from initlab.cli.paths import check_folder

if TYPE_CHECKING:
    from initlab.store import RunStore
    from initlab.store.records import ExperimentInfo, RunInfo

app = typer.Typer(no_args_is_help=True, add_completion=False)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Run store: a file or a database URL (default: $INITLAB_STORE, else "
        "./initlab-runs/runs.db).",
    ),
]

_STATUS_STYLE = {
    "done": "green",
    "diverged": "magenta",
    "failed": "red",
    "interrupted": "yellow",
    "running": "cyan",
}


def _open(store: str | None) -> RunStore:
    from initlab.store import RunStore, default_store

    return RunStore(store or default_store(), create=False)


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _experiments_table(experiments: list[ExperimentInfo], address: str) -> Table:
    from initlab.store.records import RUN_STATUSES

    table = Table(title=f"experiments in {address}")
    table.add_column("experiment", no_wrap=True)
    table.add_column("runs", justify="right")
    table.add_column("status")
    table.add_column("created", no_wrap=True)
    for exp in experiments:
        counts = ", ".join(
            f"[{_STATUS_STYLE[status]}]{exp.counts[status]} {status}[/]"
            for status in RUN_STATUSES
            if exp.counts.get(status)
        )
        table.add_row(exp.name, str(exp.total), counts or "-", _when(exp.created_at))
    return table


def _runs_table(runs: list[RunInfo], experiment: str) -> Table:
    table = Table(title=f"runs of {experiment}")
    for name, justify in [
        ("id", "right"),
        ("seed", "right"),
        ("status", "left"),
        ("steps", "right"),
        ("final loss", "right"),
        ("duration", "right"),
        ("key", "left"),
        ("error", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for run in runs:
        loss = "-" if run.final_loss is None else f"{run.final_loss:.4g}"
        if run.final_loss is not None and math.isnan(run.final_loss):
            loss = "nan"
        style = _STATUS_STYLE.get(run.status, "")
        table.add_row(
            str(run.id),
            str(run.seed),
            f"[{style}]{run.status}[/]" if style else run.status,
            "-" if run.last_step is None else str(run.last_step),
            loss,
            _duration(run.duration),
            run.key[:10],
            run.error or "",
        )
    return table


@app.command("runs")
def runs_command(
    experiment: Annotated[
        str | None, typer.Argument(help="Show this experiment's runs (default: list experiments).")
    ] = None,
    store: StoreOption = None,
) -> None:
    """List the experiments of a run store, or the runs of one experiment."""
    console = Console()
    with _open(store) as runs_store:
        if experiment is None:
            experiments = runs_store.list_experiments()
            if not experiments:
                console.print(f"no experiments in {runs_store.address} yet")
                return
            console.print(_experiments_table(experiments, runs_store.address))
        else:
            console.print(_runs_table(runs_store.list_runs(experiment), experiment))


@app.command("export-tb")
def export_tb_command(
    target: Annotated[
        str,
        typer.Argument(
            metavar="RUN_OR_EXPERIMENT", help="A run id (digits) or an experiment name."
        ),
    ],
    logdir: Annotated[Path, typer.Option("--logdir", help="TensorBoard log folder to write.")],
    store: StoreOption = None,
) -> None:
    """Export a run, or every run of an experiment, to TensorBoard event files."""
    from initlab.store import export_tensorboard

    check_folder(logdir, "--logdir")
    with _open(store) as runs_store:
        folders = export_tensorboard(runs_store, target, logdir)
    for folder in folders:
        typer.echo(f"wrote {folder}")
    typer.echo(f"view with: tensorboard --logdir {logdir}")
