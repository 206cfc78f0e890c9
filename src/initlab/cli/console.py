"""The rich console the commands print with.

In a terminal rich wraps long lines at word boundaries to the terminal's width. When the
output goes to a file or a pipe there is no width to honour (rich would assume 80 columns
and break verdict sentences mid-phrase), so lines are left whole, and tables are laid out
for :data:`PIPE_WIDTH` columns unless ``$COLUMNS`` says otherwise.
"""

from __future__ import annotations

import os

from rich.console import Console

PIPE_WIDTH = 120
"""Table width when the output is not a terminal and ``$COLUMNS`` is not set."""


def make_console(stderr: bool = False) -> Console:
    """A console for one command: word-wrapped in a terminal; off a terminal, unwrapped
    lines and tables :data:`PIPE_WIDTH` wide."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console.soft_wrap = True
        if not os.environ.get("COLUMNS"):
            console.width = PIPE_WIDTH
    return console
