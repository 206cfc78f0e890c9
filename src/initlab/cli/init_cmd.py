"""``initlab init``: list the initialization schemes and explain one."""

from __future__ import annotations

import inspect
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from initlab.init import get_scheme, list_schemes
from initlab.init.registry import Scheme

app = typer.Typer(
    help="Initialization schemes: list them, show one with its options.",
    no_args_is_help=True,
    add_completion=False,
)


def _options_text(scheme: Scheme) -> str:
    return ", ".join(f"{o.name}={o.default}" for o in scheme.options) or "-"


@app.command("list")
def list_command() -> None:
    """Print every scheme with its options (and defaults) and a one-line description."""
    table = Table(title="initialization schemes (use as NAME or NAME:key=value,...)")
    table.add_column("scheme", no_wrap=True, style="bold")
    table.add_column("options (defaults)")
    table.add_column("bias")
    table.add_column("description")
    for scheme in list_schemes():
        name = scheme.name + "".join(f"\n = {alias}" for alias in scheme.aliases)
        table.add_row(name, escape(_options_text(scheme)), scheme.bias, escape(scheme.description))
    Console().print(table)


@app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="Scheme name or alias, e.g. he_normal.")],
) -> None:
    """Print one scheme: description, layers, bias rule, options and the formula it uses."""
    scheme = get_scheme(name)
    console = Console()
    aliases = f" (also: {', '.join(scheme.aliases)})" if scheme.aliases else ""
    console.print(f"[bold]{scheme.name}[/bold]{aliases}: {escape(scheme.description)}")
    console.print(
        f"layers: {', '.join(scheme.applies_to)}; default bias rule: {scheme.bias}; "
        f"random: {'yes' if scheme.random else 'no'}",
        markup=False,
    )
    if scheme.needs_data:
        console.print(
            f"data-dependent: initialize(model, {scheme.name!r}, data=x) with a batch x",
            markup=False,
        )
    if scheme.options:
        table = Table(title="options")
        table.add_column("option", no_wrap=True)
        table.add_column("type")
        table.add_column("default")
        table.add_column("meaning")
        for option in scheme.options:
            table.add_row(
                option.name, escape(option.type_name), str(option.default), escape(option.help)
            )
        console.print(table)
    doc = inspect.getdoc(scheme.weight) or ""
    console.print(doc.split("\n>>>")[0].rstrip(), markup=False, highlight=False)
