"""When to probe: schedules are closures ``step -> bool`` (as in Cockpit's ``schedules``).

A probe records at step ``t`` exactly when ``schedule(t)`` is true. Steps count from 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from initlab.errors import InitlabError

Schedule = Callable[[int], bool]
"""A function of the step (0, 1, 2, ...) that says whether to record at that step."""


def always(step: int) -> bool:
    """Record at every step."""
    return True


def every(k: int, start: int = 0) -> Schedule:
    """Record at steps ``start, start + k, start + 2k, ...``.

    >>> [t for t in range(10) if every(3)(t)]
    [0, 3, 6, 9]
    """
    if k < 1:
        raise InitlabError(f"every(k) needs a positive k, got {k}")
    if start < 0:
        raise InitlabError(f"every(k, start) needs start >= 0, got {start}")

    def schedule(step: int) -> bool:
        return step >= start and (step - start) % k == 0

    return schedule


def logspaced_steps(n: int, total: int) -> list[int]:
    """At most ``n`` distinct steps in ``[0, total)``, spaced evenly in log(1 + step).

    The steps are round(total ** (i / (n - 1))) - 1 for i = 0 .. n - 1 (so 0 and total - 1
    are always included), dense early in training when things change fastest, sparse later;
    rounding may merge early ones, so fewer than ``n`` can come out.

    >>> logspaced_steps(5, 10_000)
    [0, 9, 99, 999, 9999]
    """
    if n < 1:
        raise InitlabError(f"logspaced(n, total) needs n >= 1, got {n}")
    if total < 1:
        raise InitlabError(f"logspaced(n, total) needs total >= 1, got {total}")
    if n == 1:
        return [0]
    top = math.log(total)
    return sorted({round(math.exp(top * i / (n - 1))) - 1 for i in range(n)})


def logspaced(n: int, total: int) -> Schedule:
    """Record at the :func:`logspaced_steps` ``(n, total)``: log-spaced steps in ``[0, total)``."""
    steps = frozenset(logspaced_steps(n, total))

    def schedule(step: int) -> bool:
        return step in steps

    return schedule
