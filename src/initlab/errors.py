"""User-facing errors.

Every mistake a user can make (an unknown scheme, a bad option, a missing data file, a
corrupt cache) raises :class:`InitlabError` with a one-line, actionable message. The CLI
prints that line and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class InitlabError(ValueError):
    """A user's mistake, described in one line that says what was wrong and what is valid."""


def check_choice(value: str, valid: Iterable[str], what: str) -> str:
    """Return ``value`` if it is one of ``valid``, else raise an error listing the valid ones.

    >>> check_choice("relu", ["relu", "tanh"], "activation")
    'relu'
    """
    options = list(valid)
    if value not in options:
        raise InitlabError(f"unknown {what} {value!r}; valid: {', '.join(options)}")
    return value
