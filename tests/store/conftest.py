"""Fixtures for the run store tests: a fresh SQLite store per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from initlab.store import RunStore


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "runs.db"


@pytest.fixture
def store(store_path: Path) -> Iterator[RunStore]:
    with RunStore(store_path) as opened:
        yield opened


def _probe_record(step: int, layer: str, kind: str = "activation", **extra: Any) -> dict:
    """A contract-(c) record with a 3-bin histogram whose counts depend on the step."""
    record: dict[str, Any] = {
        "step": step,
        "layer": layer,
        "kind": kind,
        "stats": {
            "mean": 0.5 + step,
            "std": 0.25,
            "p2": 0.0,
            "p50": 0.5,
            "p98": 1.0,
            "saturated": 0.1,
            "dead": 0.0,
            "nonfinite": 0.0,
        },
        "histogram": {"edges": [0.0, 0.5, 1.0, 1.5], "counts": [step, 2, 3]},
    }
    record.update(extra)
    return record


@pytest.fixture
def probe_record() -> Callable[..., dict]:
    """Factory of contract-(c) probe records: ``probe_record(step, layer, kind, **extra)``."""
    return _probe_record
