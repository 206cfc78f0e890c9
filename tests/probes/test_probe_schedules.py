"""Schedules: closures step -> bool."""

from itertools import pairwise

import pytest

from initlab.errors import InitlabError
from initlab.probes import always, every, logspaced, logspaced_steps


def test_every() -> None:
    assert [t for t in range(12) if every(4)(t)] == [0, 4, 8]
    assert [t for t in range(12) if every(5, start=2)(t)] == [2, 7]
    assert all(every(1)(t) for t in range(5)) and always(123)
    with pytest.raises(InitlabError, match="positive k"):
        every(0)


def test_logspaced_includes_ends_and_spreads_geometrically() -> None:
    assert logspaced_steps(5, 10_000) == [0, 9, 99, 999, 9999]
    steps = logspaced_steps(20, 1000)
    assert steps[0] == 0 and steps[-1] == 999
    assert len(steps) <= 20 and steps == sorted(set(steps))
    gaps = [b - a for a, b in pairwise(steps)]
    assert gaps[-1] > 10 * gaps[0]  # dense early, sparse late
    schedule = logspaced(20, 1000)
    assert [t for t in range(1000) if schedule(t)] == steps
    assert logspaced_steps(1, 50) == [0]
    with pytest.raises(InitlabError, match="total >= 1"):
        logspaced(3, 0)
