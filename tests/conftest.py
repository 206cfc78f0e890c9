"""Shared test settings: fixed seeds and a small thread count so the suite is fast and repeatable."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)
