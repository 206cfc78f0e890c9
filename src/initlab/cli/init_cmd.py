"""``initlab init``: list the initialization schemes and explain one."""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from initlab.cli.console import make_console

if TYPE_CHECKING:
    from initlab.init.registry import Scheme

app = typer.Typer(
    help="Initialization schemes: list them, show one with its options.",
    no_args_is_help=True,
    add_completion=False,
)


_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")  # :func:`a.b.c` -> a.b.c, :func:`~a.b.c` -> c
_LINK = re.compile(r"`([^`<]+?)\s*<([^>]+)>`_+")  # `text <url>`_ -> text (url)
_LITERAL = re.compile(r"``([^`]+)``")  # ``code`` -> code
_EMPHASIS = re.compile(r"(?<![\w*])\*{1,2}([^*\n]+?)\*{1,2}(?![\w*])")  # *x*, **x** -> x


def _role_text(match: re.Match[str]) -> str:
    target = match.group(2)
    return target.rsplit(".", 1)[-1] if match.group(1) else target


def plain_text(doc: str) -> str:
    """A docstring as plain text: reST roles, literals, links and emphasis unwrapped, and
    each paragraph on one line (the console wraps it to the terminal); list items and
    indented lines keep their own lines."""
    text = _ROLE.sub(_role_text, doc)
    text = _LINK.sub(r"\1 (\2)", text)
    text = _LITERAL.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines: list[str] = []
        for line in block.splitlines():
            own_line = line.startswith((" ", "\t", "- ", "* ")) or not lines
            if own_line:
                lines.append(line.rstrip())
            else:
                lines[-1] += " " + line.strip()
        paragraphs.append("\n".join(lines).replace("::", ":"))
    return "\n\n".join(paragraphs)


def _options_text(scheme: Scheme) -> str:
    return ", ".join(f"{o.name}={o.default}" for o in scheme.options) or "-"


@app.command("list")
def list_command() -> None:
    """Print every scheme with its options (and defaults) and a one-line description."""
    from initlab.init import list_schemes

    table = Table(title="initialization schemes (use as NAME or NAME:key=value,...)")
    table.add_column("scheme", no_wrap=True, style="bold")
    table.add_column("options (defaults)")
    table.add_column("bias")
    table.add_column("description")
    for scheme in list_schemes():
        name = scheme.name + "".join(f"\n = {alias}" for alias in scheme.aliases)
        table.add_row(name, escape(_options_text(scheme)), scheme.bias, escape(scheme.description))
    make_console().print(table)


@app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="Scheme name or alias, e.g. he_normal.")],
) -> None:
    """Print one scheme: description, layers, bias rule, options and the formula it uses."""
    from initlab.init import get_scheme

    scheme = get_scheme(name)
    console = make_console()
    aliases = f" (also: {', '.join(scheme.aliases)})" if scheme.aliases else ""
    console.print(f"[bold]{scheme.name}[/bold]{aliases}: {escape(scheme.description)}")
    console.print(
        f"layers: {', '.join(scheme.applies_to)}; default bias rule: {scheme.bias}; "
        f"random: {'yes' if scheme.random else 'no'}",
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
    console.print(plain_text(doc.split("\n>>>")[0]), markup=False, highlight=False)
