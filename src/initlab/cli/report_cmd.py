"""``initlab report [NAME | --all]``: build the static HTML report of a workspace."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from initlab.cli.paths import check_folder
from initlab.errors import InitlabError


def report_command(
    experiment: Annotated[
        str | None, typer.Argument(help="One experiment's report (default: --all).")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every experiment found in the workspace.")
    ] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Workspace folder (as given to `initlab run --out`).")
    ] = Path("initlab-runs"),
    open_: Annotated[
        bool, typer.Option("--open", help="Open the report in the web browser.")
    ] = False,
) -> None:
    """Write the HTML report (figures, numbers, verdicts, settings, provenance); print its path."""
    if experiment is not None and all_:
        raise InitlabError("give an experiment name or --all, not both")
    from initlab.report import build_report

    if out.is_dir():
        check_folder(out, "--out")
    path = build_report(out, None if experiment is None else [experiment])
    typer.echo(str(path))
    if open_:
        webbrowser.open(path.resolve().as_uri())
