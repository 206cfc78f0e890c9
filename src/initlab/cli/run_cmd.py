"""``initlab run NAME``, ``initlab list`` and ``initlab demo`` (the quick suite).

Thin commands: each calls one library function of :mod:`initlab.experiments` and prints
what it did with rich. User mistakes (unknown experiment, bad ``--set``) raise
:class:`initlab.errors.InitlabError`; the main entry point prints them as one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from initlab.cli.console import make_console
from initlab.cli.front import Interrupted
from initlab.cli.paths import check_folder

if TYPE_CHECKING:
    from initlab.experiments import ExperimentResult

STORE_FILE = "runs.db"  # as initlab.experiments.runner.STORE_FILE (not imported: torch)

OWN_PROCESS = False
"""True in the ``initlab`` console script's own process (set by :func:`initlab.cli.main.main`),
False where the commands run inside a caller's process (tests, notebooks)."""


def settle_imports() -> None:
    """Once torch, the store and the runner are imported: ``gc.freeze()``, in the console
    script's own process only (:data:`OWN_PROCESS`).

    Their ~190 000 objects then sit in the garbage collector's permanent generation, which
    its full collections skip, during the run and when the interpreter exits (a process that
    had imported torch spent 1.0 s exiting, 0.35 s frozen; measured for issue 13). Objects
    made afterwards, the run's own, are collected as usual.
    """
    if OWN_PROCESS:
        import gc

        gc.freeze()


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Run store: a file or a database URL, e.g. postgresql+psycopg://user@host/db "
        "(default: OUT/runs.db). Figures and summaries still go to --out.",
    ),
]


def _console() -> Console:
    """A console per command, so its width follows the terminal (or $COLUMNS) of the call;
    lines are not wrapped when the output is not a terminal."""
    return make_console()


def stored_runs(store_address: str | Path, experiments: list[str] | None = None) -> int:
    """How many runs of ``experiments`` (all when None) the store (a file or a database
    URL) holds finished; 0 when there is no store file yet."""
    if "://" not in str(store_address) and not Path(store_address).is_file():
        return 0
    from initlab.store import RunStore

    with RunStore(store_address, create=False) as store:
        infos = store.list_experiments()
    return sum(
        info.counts.get("done", 0) + info.counts.get("diverged", 0)
        for info in infos
        if experiments is None or info.name in experiments
    )


@contextmanager
def interrupt_message(count: Callable[[], int]) -> Iterator[None]:
    """Turn Ctrl-C into :class:`Interrupted` with how many runs are stored (exit 130)."""
    try:
        yield
    except KeyboardInterrupt:
        try:
            stored = count()
        except Exception:  # the store may be mid-write; the message must still come out
            stored = None
        done = "some runs" if stored is None else f"{stored} run{'s' * (stored != 1)}"
        raise Interrupted(f"interrupted; {done} stored, rerun the same command to resume") from None


def list_command() -> None:
    """List the experiments: name, what it shows, expected cost (full and --quick)."""
    from initlab.experiments.listing import builtin_listing

    listed = builtin_listing()
    if listed is None:  # a module the source reader cannot read: import them all
        from initlab.experiments import list_experiments

        listed = list(list_experiments())
    console = _console()
    table = Table(title="initlab experiments", title_justify="left")
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("description")
    # costs with a note ("~85 min (CNN half ~6 min; ...)") wrap in their own column, so the
    # description keeps its width
    table.add_column("cost", max_width=28)
    table.add_column("--quick", no_wrap=True)
    for experiment in listed:
        table.add_row(
            experiment.name, experiment.description, experiment.cost, experiment.quick_cost
        )
    console.print(table)
    console.print("Run one with [bold]initlab run NAME[/]; its settings: initlab run NAME --show")


def show_settings(name: str) -> None:
    """Print an experiment's settings: key, default value, help."""
    from initlab.experiments import get_experiment
    from initlab.experiments.config import config_to_dict, field_help

    console = _console()
    experiment = get_experiment(name)
    defaults = config_to_dict(experiment.Config())
    helps = field_help(experiment.Config)
    table = Table(title=f"{name}: settings (--set key=value)", title_justify="left")
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("default")
    table.add_column("quick", style="yellow")
    table.add_column("meaning")
    for key, value in defaults.items():
        quick = experiment.quick.get(key, "")
        table.add_row(key, repr(value), "" if quick == "" else repr(quick), helps.get(key, ""))
    console.print(table)
    console.print(f"[dim]{experiment.source}[/]")


def print_result(result: ExperimentResult) -> None:
    """Print what a run did: runs computed / resumed, verdicts, where the files are."""
    console = _console()
    bad = [f"{key} ({status})" for key, status in result.statuses.items() if status != "done"]
    line = (
        f"[bold green]{result.name}[/]: {len(result.executed)} run(s) computed, "
        f"{len(result.skipped)} found in the store"
    )
    if bad:
        line += f", [red]{len(bad)} not done: {', '.join(bad)}[/]"
    console.print(line)
    for verdict in result.verdicts:
        console.print(f"  • {escape(verdict)}")
    console.print(f"  figures and summary: {result.out_dir}")


def run_command(
    name: Annotated[str, typer.Argument(help="Experiment to run (see `initlab list`).")],
    set: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a setting: key=value, the value a TOML literal (0.01, [1, 2], "
            "'he_normal', {adam = 0.1}). Repeatable.",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="A TOML file of settings.")
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Workspace folder: runs.db and one folder per experiment.")
    ] = Path("initlab-runs"),
    seed: Annotated[int, typer.Option("--seed", help="Base seed of the runs.")] = 0,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smoke-test settings: under a minute.")
    ] = False,
    show: Annotated[
        bool, typer.Option("--show", help="Print the settings with their defaults and exit.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """Run (or resume) one experiment; write its figures, summary.json, and print verdicts."""
    if show:
        show_settings(name)
        return
    check_folder(out, "--out")
    from initlab.experiments import run_experiment
    from initlab.experiments.common import machine_cores

    settle_imports()
    address = out / STORE_FILE if store is None else store
    with interrupt_message(lambda: stored_runs(address, [name])):
        result = run_experiment(
            name,
            overrides=set or [],
            config_file=config,
            out_dir=out,
            seed=seed,
            quick=quick,
            store=store,
            figure_workers=machine_cores(),
        )
    print_result(result)
    _console().print(f"  report: initlab report {name} --out {out}")


def suite_command(
    out: Annotated[
        Path, typer.Option("--out", help="Workspace folder for the runs and the report.")
    ] = Path("initlab-runs"),
    quick: Annotated[
        bool, typer.Option("--quick/--full", help="Quick settings (default) or the full presets.")
    ] = True,
    seed: Annotated[int, typer.Option("--seed", help="Base seed of the runs.")] = 0,
    store: StoreOption = None,
) -> None:
    """The classic lessons in a few minutes: run the suite, then build the HTML report."""
    check_folder(out, "--out")
    from initlab.experiments import run_suite
    from initlab.experiments.common import machine_cores

    settle_imports()
    address = out / STORE_FILE if store is None else store
    with interrupt_message(lambda: stored_runs(address)):
        _, report = run_suite(
            out,
            quick=quick,
            seed=seed,
            on_done=print_result,
            store=store,
            figure_workers=machine_cores(),
        )
    typer.echo(f"report: {report}")
