"""The ``initlab`` command: a Typer app with one sub-app per noun.

User mistakes raise :class:`initlab.errors.InitlabError`; the root group
(:class:`initlab.cli.front.InitlabGroup`) turns them, Typer's usage errors and refused file
writes into one line on stderr and exit status 2, and Ctrl-C into one line and status 130,
so nobody sees a traceback for a typo. The command modules import torch, matplotlib and the
store only inside their commands: ``initlab --help`` and a usage error answer at once.
"""

from __future__ import annotations

import typer

from initlab import __version__
from initlab.cli import data_cmd, init_cmd, run_cmd, search_cmd, store_cmd
from initlab.cli.diagnose_cmd import diagnose_command
from initlab.cli.front import InitlabGroup
from initlab.cli.report_cmd import report_command
from initlab.cli.run_cmd import list_command, run_command, suite_command

app = typer.Typer(
    name="initlab",
    cls=InitlabGroup,
    help=(
        "Weight initialization, signal-propagation probes and the classic training "
        "experiments, on PyTorch."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(init_cmd.app, name="init", help="Initialization schemes: list and explain them.")
app.add_typer(data_cmd.app, name="data", help="Datasets: fetch MNIST, show what is cached.")
app.add_typer(store_cmd.app, name="store", help="The run store: list runs, export to TensorBoard.")
app.add_typer(
    search_cmd.app,
    name="search",
    help="Hyperparameter search (Optuna): run or join a study, show its best trials, list.",
)
app.command(
    "diagnose",
    help="One forward/backward pass; per layer: vanishing, exploding, saturated, dead, symmetric.",
)(diagnose_command)
app.command("list", help="Every experiment with a one-line description and its expected cost.")(
    list_command
)
app.command("run", help="Run one experiment preset: stored, resumable, with figures.")(run_command)
app.command(
    "demo", help="The quick suite (A1, A2, A3, B1, optimizer paths) ending in the HTML report."
)(suite_command)
app.command("report", help="Build the static HTML report of a workspace.")(report_command)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"initlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """Weight initialization, signal-propagation probes and the classic experiments."""


def main() -> None:
    """Console-script entry point: run the app (user errors end as one line, exit 2)."""
    run_cmd.OWN_PROCESS = True  # the process is initlab's: it may freeze the imports' objects
    app()


if __name__ == "__main__":
    main()
