"""Shared test settings: fixed seeds and one intra-op thread, so the suite is fast and repeatable.

Tests use small tensors, where a second OpenMP thread costs more in synchronisation than it
gains (and on a busy 2-core machine it can cost 50x), so every test runs single-threaded.
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)
