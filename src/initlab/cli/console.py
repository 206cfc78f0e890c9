"""The rich console the commands print with.

In a terminal rich wraps long lines at word boundaries to the terminal's width. When the
output goes to a file or a pipe there is no width to honour (rich would assume 80 columns
and break verdict sentences mid-phrase), so lines are left whole; tables keep their layout.
"""

from __future__ import annotations

from rich.console import Console


def make_console(stderr: bool = False) -> Console:
    """A console for one command: word-wrapped in a terminal, unwrapped lines otherwise."""
    console = Console(stderr=stderr, highlight=False)
    console.soft_wrap = not console.is_terminal
    return console
