"""The ``initlab`` command line (Typer): one sub-app per noun, thin commands."""
