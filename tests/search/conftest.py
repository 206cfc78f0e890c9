"""Fixtures for the search tests: the tiny synthetic task of search_helpers.py."""

from __future__ import annotations

from typing import Any

import pytest
from search_helpers import TASK

from initlab.experiments.search.common import build_task


@pytest.fixture(scope="session")
def tiny_task() -> Any:
    """The tiny task itself."""
    return build_task(**TASK)
