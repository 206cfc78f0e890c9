"""``initlab search``: run a hyperparameter search, show its best trials, list studies.

``initlab search NAME`` runs (or resumes, or joins) the search of the experiment preset
NAME (``random-search``, ``bayes-search``) on its study in ``--storage``; started on
several machines with one ``--storage postgresql+psycopg://...``, the processes share the
study. ``initlab search show`` prints the best trials and the narrowed ranges,
``initlab search list`` the studies of a storage.

Optuna, torch and :mod:`initlab.search` are imported inside the commands, so ``initlab
--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

SEARCH_EXPERIMENTS = ("random-search", "bayes-search")


class _DefaultToRun(TyperGroup):
    """``initlab search NAME ...`` means ``initlab search run NAME ...``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "run", self.get_command(ctx, "run"), args
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=_DefaultToRun, no_args_is_help=True, add_completion=False)

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Where the study lives: a file or a database URL, e.g. "
        "postgresql+psycopg://user@host/db (default: $INITLAB_STORE, else "
        "./initlab-runs/runs.db, the run store of `initlab run`).",
    ),
]


def _storage(value: str | None) -> str:
    from initlab.store import default_store

    return value or default_store()


def _preset(name: str, overrides: list[str], config: Path | None, quick: bool) -> tuple[Any, Any]:
    """The experiment and its config."""
    from initlab.errors import InitlabError
    from initlab.experiments import get_experiment, resolve_config

    if name not in SEARCH_EXPERIMENTS:
        get_experiment(name)  # an unknown name lists the valid ones
        raise InitlabError(f"{name!r} is not a search; valid: {', '.join(SEARCH_EXPERIMENTS)}")
    experiment = get_experiment(name)
    return experiment, resolve_config(experiment, overrides, config, quick)


def _main_run(
    experiment: Any, config: Any, seed: int, sampler: str | None, pruner: str | None
) -> dict[str, Any]:
    """The preset's main search (C1: its sampler; C2: TPE), with --sampler / --pruner."""
    from initlab.experiments.search.common import search_spec, study_name

    run = experiment.plan(config, seed)[0]
    spec = dict(run.spec)
    if sampler is not None or pruner is not None:
        spec = search_spec(config, sampler or spec["sampler"], pruner or spec["pruner"])
    spec["study"] = study_name({k: v for k, v in spec.items() if k != "study"}, seed)
    return spec


def _progress_bar(console: Console) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("best {task.fields[best]}"),
        console=console,
    )


def run_command(
    name: Annotated[str, typer.Argument(help="Search preset: random-search or bayes-search.")],
    trials: Annotated[
        int | None, typer.Option("--trials", help="Finished trials the study should have.")
    ] = None,
    sampler: Annotated[
        str | None, typer.Option("--sampler", help="random, tpe or grid (default: the preset's).")
    ] = None,
    pruner: Annotated[str | None, typer.Option("--pruner", help="none, median or halving.")] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Worker processes on this machine.")
    ] = 1,
    batch: Annotated[
        int | None, typer.Option("--batch", help="Trials trained together (0: automatic).")
    ] = None,
    threads: Annotated[
        int,
        typer.Option("--threads", help="Intra-op threads per worker (0: the cores / workers)."),
    ] = 0,
    storage: StorageOption = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds; no new batch starts after.")
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="Study name (default: from the settings).")
    ] = None,
    set: Annotated[
        list[str] | None, typer.Option("--set", help="Override a preset setting: key=value.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="A TOML file of settings.")
    ] = None,
    space: Annotated[
        Path | None, typer.Option("--space", help="A TOML file with the search space.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the search.")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="The preset's smoke settings.")] = False,
) -> None:
    """Run, resume or join a search; start it on several machines to share the work."""
    from initlab.experiments.search.common import search_job
    from initlab.search.driver import best_value, counts, run_search, worker_threads
    from initlab.search.space import load_space

    overrides = list(set or [])
    experiment, cfg = _preset(name, overrides, config, quick)
    if space is not None:
        from dataclasses import replace

        cfg = replace(cfg, space=load_space(space).to_dict())
    spec = _main_run(experiment, cfg, seed, sampler, pruner)
    per_worker = worker_threads(workers, threads)
    job = search_job(
        spec, seed, _storage(storage), study=study, trials=trials, batch=batch, timeout=timeout
    )
    console = Console()
    console.print(
        f"[bold]{name}[/]: study [cyan]{job.study}[/], {job.settings.trials} trials, "
        f"sampler {job.settings.sampler}, pruner {job.settings.pruner}, "
        f"batch {job.settings.batch_size}, {workers} worker(s) x {per_worker} thread(s)"
    )
    with _progress_bar(console) as bar:
        task = bar.add_task("trials", total=job.settings.trials, best="-")

        def show(done: float, total: float, best: float | None) -> None:
            fields = {} if best is None else {"best": f"{best:.4f}"}
            bar.update(task, completed=done, total=total, **fields)

        try:
            found, report = run_search(job, workers=workers, threads=threads, progress=show)
        except KeyboardInterrupt:
            console.print(
                "[yellow]interrupted[/]: finished trials are kept; the same command resumes"
            )
            raise typer.Exit(130) from None
    state = counts(found)
    best = best_value(found)
    console.print(
        f"{state['COMPLETE']} complete, {state['PRUNED']} pruned"
        + (f", best validation accuracy {best:.4f}" if best is not None else "")
        + f" ({report.finished} trained here"
        + (", stopped by the timeout" if report.stopped_by_timeout else "")
        + ")"
    )
    _print_best(console, found, 5)
    console.print(f"  figures: initlab run {name} (same --set/--seed; --store for a server)")


def _print_best(console: Console, study: Any, top: int) -> None:
    from initlab.search.analysis import narrowed, top_rows
    from initlab.search.driver import study_trials
    from initlab.search.space import SearchSpace, describe_param, parse_param
    from initlab.search.storage import SPACE_ATTR

    rows = study_trials(study)
    best = top_rows(rows, top)
    table = Table(title=f"best {len(best)} trials of {study.study_name}", title_justify="left")
    table.add_column("trial", justify="right")
    table.add_column("validation accuracy", justify="right")
    names = list(best[0]["params"]) if best else []
    for n in names:
        table.add_column(n, justify="right")
    for r in best:
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in r["params"].values()]
        table.add_row(str(r["number"]), f"{r['value']:.4f}", *cells)
    console.print(table)
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored and best:
        space = SearchSpace.from_dict(stored)
        narrow = narrowed(space, top_rows(rows, max(top, 20)))
        console.print(f"narrowed ranges (from the best {min(len(rows), max(top, 20))} trials):")
        for pname, table_ in narrow.items():
            old = describe_param(space[pname])
            new = describe_param(parse_param(pname, table_)) if _valid(pname, table_) else table_
            console.print(f"  {pname}: {old} -> {new}")


def _valid(name: str, table: dict[str, Any]) -> bool:
    from initlab.errors import InitlabError
    from initlab.search.space import parse_param

    try:
        parse_param(name, table)
    except InitlabError:
        return False
    return True


def show_command(
    name: Annotated[str, typer.Argument(help="A study name, or a search preset's name.")],
    storage: StorageOption = None,
    top: Annotated[int, typer.Option("--top", help="How many of the best trials.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the preset's study.")] = 0,
    set: Annotated[list[str] | None, typer.Option("--set", help="Preset setting.")] = None,
) -> None:
    """The best trials of a study and the ranges narrowed to them."""
    import optuna

    from initlab.errors import InitlabError
    from initlab.search.storage import open_storage, study_names

    opened = open_storage(_storage(storage))
    names = study_names(opened)
    study_name = name
    if name not in names and name in SEARCH_EXPERIMENTS:
        experiment, cfg = _preset(name, list(set or []), None, False)
        study_name = _main_run(experiment, cfg, seed, None, None)["study"]
    if study_name not in names:
        raise InitlabError(
            f"no study {study_name!r} in {_storage(storage)}; studies: {', '.join(names) or 'none'}"
        )
    study = optuna.load_study(study_name=study_name, storage=opened)
    _print_best(Console(), study, top)


def list_command(storage: StorageOption = None) -> None:
    """The studies of a storage: trials per state, best value."""
    import optuna

    from initlab.search.driver import best_value, counts
    from initlab.search.storage import SETUP_ATTR, open_storage

    opened = open_storage(_storage(storage))
    table = Table(title=f"studies in {_storage(storage)}", title_justify="left")
    for column in ("study", "sampler", "complete", "pruned", "running", "failed", "best"):
        table.add_column(column, justify="left" if column in ("study", "sampler") else "right")
    for summary in optuna.get_all_study_summaries(opened, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=opened)
        state = counts(study)
        best = best_value(study)
        setup = study.user_attrs.get(SETUP_ATTR, {})
        table.add_row(
            summary.study_name,
            f"{setup.get('sampler', '?')}/{setup.get('pruner', '?')}",
            str(state["COMPLETE"]),
            str(state["PRUNED"]),
            str(state["RUNNING"]),
            str(state["FAIL"]),
            "-" if best is None else f"{best:.4f}",
        )
    Console().print(table)


app.command("run", help="Run, resume or join the search of a preset (the default command).")(
    run_command
)
app.command("show", help="The best trials of a study and the narrowed ranges.")(show_command)
app.command("list", help="The studies of a storage.")(list_command)
